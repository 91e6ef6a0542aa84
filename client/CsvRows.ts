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
import { type RowDecoder, RowSyntaxError } from "../src/protocol/Rows.ts"

/**
 * Marks fields that are every field the row can have (its encoded side has
 * no index signature): a header column none of them names is an error, not
 * a value the row schema would drop unseen.
 */
export const closedRow: unique symbol = Symbol.for("effect-stream-rpc/CsvRows/closedRow")

/** The fields of a row, by column name, closed or not (see `closedRow`). */
export type CsvFields = Csv.CsvFields & { readonly [closedRow]?: true }

/** `fields`, as every field the row can have (see `closedRow`). */
export const closed = (fields: Csv.CsvFields): CsvFields => ({ ...fields, [closedRow]: true })

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

/**
 * CSV records to row objects: the first record names the columns (the
 * contract's declared columns, or the keys of the server's first row when it
 * declares none), and each following record becomes an object keyed by those
 * names. A body with no record, or the header only, is no rows. With
 * `closed` fields, a header column none of them names is a `RowSyntaxError`.
 */
export const decoder = (columns: CsvFields): RowDecoder<unknown> => {
  const parser = Csv.decoder()
  const fields = new Map(Object.entries(columns).map(([name, field]) => [name, parseField(field)]))
  let header: ReadonlyArray<string> | undefined
  const toRows = (records: Array<ReadonlyArray<Csv.Cell>>): Array<unknown> => {
    const rows: Array<unknown> = []
    for (const record of records) {
      if (header === undefined) {
        header = record.map((cell) => cell.text)
        if (columns[closedRow] === true) {
          const unknown = header.filter((name) => !fields.has(name))
          if (unknown.length > 0) {
            throw new RowSyntaxError(`CSV: the header names columns the row does not have: ${unknown.map((name) => JSON.stringify(name)).join(", ")}`)
          }
        }
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
