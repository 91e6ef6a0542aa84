/**
 * CSV records back into rows of a contract's row schema. A CSV cell is text;
 * the row's encoded side says what it held: numbers and booleans are parsed
 * (unless the field also accepts a string), nested objects and arrays are
 * JSON, an empty unquoted cell is no value, and the formula guard is undone
 * (`Csv.unneutralize`).
 *
 * The fields come as data (`CsvFields`): a generated client has them written
 * out, the Effect-flavoured client reads them off the row schema
 * (`contract/RowFields.ts`).
 */
import * as Csv from "../src/protocol/Csv.ts"
import type { RowDecoder } from "../src/protocol/Rows.ts"

interface FieldKinds {
  readonly optional: boolean
  readonly kinds: ReadonlySet<string>
}

const parseField = (field: Csv.CsvField): FieldKinds => {
  const optional = field.endsWith("?")
  return { optional, kinds: new Set((optional ? field.slice(0, -1) : field).split("|")) }
}

const missing = Symbol("missing")

/**
 * The encoded value of one CSV cell, by the type of its field: numbers and
 * booleans are parsed (unless the field also accepts a string), nested
 * objects and arrays are JSON, an empty unquoted cell is no value (or
 * `null`, or `""`, whichever the field accepts first).
 */
const cellValue = (field: FieldKinds | undefined, cell: Csv.Cell): unknown => {
  if (!cell.quoted && cell.text === "") {
    if (field === undefined || field.optional || field.kinds.has("undefined")) return missing
    if (field.kinds.has("null")) return null
    if (field.kinds.has("string")) return ""
    return missing
  }
  const text = Csv.unneutralize(cell.text)
  if (field === undefined) return text
  const kinds = field.kinds
  if (kinds.has("string")) return text
  if (kinds.has("boolean") && (text === "true" || text === "false")) return text === "true"
  if (kinds.has("number")) {
    const number = Number(text)
    if (text.trim() !== "" && (!Number.isNaN(number) || text === "NaN")) return number
  }
  if (kinds.has("json")) {
    try {
      return JSON.parse(text)
    } catch {
      return text
    }
  }
  return text
}

/** CSV records to row objects: the first record names the columns. */
export const decoder = (columns: Csv.CsvFields): RowDecoder<unknown> => {
  const parser = Csv.decoder()
  const fields = new Map(Object.entries(columns).map(([name, field]) => [name, parseField(field)]))
  let header: ReadonlyArray<string> | undefined
  const toRows = (records: Array<ReadonlyArray<Csv.Cell>>): Array<unknown> => {
    const rows: Array<unknown> = []
    for (const record of records) {
      if (header === undefined) {
        header = record.map((cell) => cell.text)
        continue
      }
      const row: Record<string, unknown> = {}
      for (let c = 0; c < header.length; c++) {
        const name = header[c]!
        const value = cellValue(fields.get(name), record[c] ?? { text: "", quoted: false })
        if (value !== missing) row[name] = value
      }
      rows.push(row)
    }
    return rows
  }
  return {
    push: (text) => toRows(parser.push(text)),
    end: () => toRows(parser.end())
  }
}
