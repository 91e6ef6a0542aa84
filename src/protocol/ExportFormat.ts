/**
 * The export formats: a streamed JSON array, RFC 4180 CSV and NDJSON, chosen
 * per call with `?format=`. Each encoder turns a chunk of rows into one
 * string, so the cost is one write per chunk and nothing is collected in
 * memory; each decoder buffers only the row being read.
 */
import * as Csv from "./Csv.ts"
import * as JsonArray from "./JsonArray.ts"
import { contentTypes as types } from "./Names.ts"
import * as Ndjson from "./Ndjson.ts"
import type { RowDecoder, RowEncoder } from "./Rows.ts"

export type { RowDecoder, RowEncoder } from "./Rows.ts"

export type ExportFormat = "json" | "csv" | "ndjson"

export const formats: ReadonlyArray<ExportFormat> = ["json", "csv", "ndjson"]

export const isExportFormat = (u: unknown): u is ExportFormat => u === "json" || u === "csv" || u === "ndjson"

export const contentTypes: Record<ExportFormat, string> = {
  json: types.json,
  csv: types.csv,
  ndjson: types.ndjson
}

export const extensions: Record<ExportFormat, string> = {
  json: "json",
  csv: "csv",
  ndjson: "ndjson"
}

/** `json` gives the JSON text of a row for the JSON formats (default: `JSON.stringify`). */
export const encoder = (
  format: ExportFormat,
  columns?: ReadonlyArray<string>,
  json?: (row: unknown) => string
): RowEncoder => {
  switch (format) {
    case "csv":
      return Csv.encoder(columns)
    case "json":
      return JsonArray.encoder(json)
    case "ndjson":
      return Ndjson.encoder(json)
  }
}

/** Raw rows of a JSON format; CSV gives cells, which only a row schema turns into rows. */
export const jsonDecoder = (format: Exclude<ExportFormat, "csv">): RowDecoder<unknown> =>
  format === "json" ? JsonArray.decoder() : Ndjson.decoder()
