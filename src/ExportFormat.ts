/**
 * Export encodings: a streamed JSON array, RFC 4180 CSV and NDJSON. Each
 * encoder turns a chunk of rows into one string, so the cost is one write
 * per chunk, and nothing is ever collected in memory.
 *
 * CSV cells that a spreadsheet would evaluate as a formula — text starting
 * with `=`, `+`, `-`, `@`, a tab or a carriage return — are prefixed with a
 * single quote (`'`), as OWASP recommends against CSV injection. Numbers are
 * written as numbers (a negative number is not a formula). Text that already
 * starts with quotes followed by one of those characters (`'=x`) gets one
 * more, so a consumer that strips one leading `'` from every cell matching
 * `^'+[=+\-@\t\r]` gets the original text back exactly. An empty string
 * is written quoted (`""`), so that it differs from an absent value (an
 * empty cell).
 */

export type ExportFormat = "json" | "csv" | "ndjson"

export const formats: ReadonlyArray<ExportFormat> = ["json", "csv", "ndjson"]

export const isExportFormat = (u: unknown): u is ExportFormat => u === "json" || u === "csv" || u === "ndjson"

export const contentTypes: Record<ExportFormat, string> = {
  json: "application/json",
  csv: "text/csv; charset=utf-8",
  ndjson: "application/x-ndjson"
}

export const extensions: Record<ExportFormat, string> = {
  json: "json",
  csv: "csv",
  ndjson: "ndjson"
}

/** Streaming encoder: `header` once, `rows` per chunk, `footer` once after the last row. */
export interface RowEncoder {
  readonly header: string
  rows(rows: ReadonlyArray<unknown>): string
  readonly footer: string
}

const formulaStart = /^'*[=+\-@\t\r]/
const needsQuotes = /[",\r\n]/

/** Text of one CSV cell, neutralised against formula injection and quoted per RFC 4180. */
export const csvCell = (value: unknown): string => {
  let text: string
  if (value === null || value === undefined) return ""
  switch (typeof value) {
    case "string":
      if (value === "") return "\"\""
      text = formulaStart.test(value) ? `'${value}` : value
      break
    case "number":
    case "bigint":
    case "boolean":
      text = String(value)
      break
    default:
      text = value instanceof Date ? value.toISOString() : JSON.stringify(value)
      if (formulaStart.test(text)) text = `'${text}`
  }
  return needsQuotes.test(text) ? `"${text.replace(/"/g, "\"\"")}"` : text
}

export const csvLine = (cells: ReadonlyArray<unknown>): string => {
  let line = ""
  for (let i = 0; i < cells.length; i++) {
    if (i > 0) line += ","
    line += csvCell(cells[i])
  }
  return line + "\r\n"
}

const field = (row: unknown, column: string): unknown =>
  typeof row === "object" && row !== null ? (row as Record<string, unknown>)[column] : undefined

/**
 * CSV with a header row. `columns` fixes the order; without it, the keys of
 * the first row are used (an empty export then has no header at all).
 */
export const csv = (columns?: ReadonlyArray<string>): RowEncoder => {
  let header: ReadonlyArray<string> | undefined = columns
  let headerWritten = false
  return {
    header: "",
    rows(rows) {
      let out = ""
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i]
        if (header === undefined) {
          header = typeof row === "object" && row !== null ? Object.keys(row) : ["value"]
        }
        if (!headerWritten) {
          out += csvLine(header)
          headerWritten = true
        }
        const cells = new Array<unknown>(header.length)
        for (let c = 0; c < header.length; c++) cells[c] = field(row, header[c]!)
        out += csvLine(cells)
      }
      return out
    },
    get footer() {
      // An export with declared columns and no rows still carries its header.
      return !headerWritten && columns !== undefined ? csvLine(columns) : ""
    }
  }
}

/** A JSON array streamed element by element. */
export const json = (): RowEncoder => {
  let first = true
  return {
    header: "[",
    rows(rows) {
      let out = ""
      for (let i = 0; i < rows.length; i++) {
        out += first ? "\n" : ",\n"
        first = false
        out += JSON.stringify(rows[i] ?? null)
      }
      return out
    },
    get footer() {
      return first ? "]\n" : "\n]\n"
    }
  }
}

/** One JSON document per line. */
export const ndjson = (): RowEncoder => ({
  header: "",
  rows(rows) {
    let out = ""
    for (let i = 0; i < rows.length; i++) out += JSON.stringify(rows[i] ?? null) + "\n"
    return out
  },
  footer: ""
})

export const encoder = (format: ExportFormat, columns?: ReadonlyArray<string>): RowEncoder => {
  switch (format) {
    case "csv":
      return csv(columns)
    case "json":
      return json()
    case "ndjson":
      return ndjson()
  }
}
