/**
 * RFC 4180 CSV with a header row, both halves: the encoder and the
 * incremental record decoder, with the formula guard and its inverse.
 *
 * Cells that a spreadsheet would evaluate as a formula — text starting with
 * `=`, `+`, `-`, `@`, a tab or a carriage return — are prefixed with a single
 * quote (`'`), as OWASP recommends against CSV injection. Numbers are written
 * as numbers (a negative number is not a formula). Text that already starts
 * with quotes followed by one of those characters (`'=x`) gets one more, so
 * `unneutralize`, which strips one leading `'` from every cell matching
 * `^'+[=+\-@\t\r]`, gives the original text back exactly. An empty string is
 * written quoted (`""`), so that it differs from an absent value (an empty
 * cell). Every record, the last one included, ends with CRLF.
 */
import { type RowDecoder, type RowEncoder, RowSyntaxError, RowsTruncated } from "./Rows.ts"

// ---------------------------------------------------------------------------
// The formula guard and its inverse
// ---------------------------------------------------------------------------

const formulaStart = /^'*[=+\-@\t\r]/
const guarded = /^'+[=+\-@\t\r]/

/** Text a spreadsheet would not evaluate: one more leading `'` where it would. */
export const neutralize = (text: string): string => formulaStart.test(text) ? `'${text}` : text

/** `neutralize` undone: one leading `'` before `=`, `+`, `-`, `@`, tab or CR. */
export const unneutralize = (text: string): string => guarded.test(text) ? text.slice(1) : text

// ---------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------

const needsQuotes = /[",\r\n]/

/** Text of one CSV cell, neutralised against formula injection and quoted per RFC 4180. */
export const cell = (value: unknown): string => {
  let text: string
  if (value === null || value === undefined) return ""
  switch (typeof value) {
    case "string":
      if (value === "") return "\"\""
      text = neutralize(value)
      break
    case "number":
    case "bigint":
    case "boolean":
      text = String(value)
      break
    default:
      text = neutralize(value instanceof Date ? value.toISOString() : JSON.stringify(value))
  }
  return needsQuotes.test(text) ? `"${text.replace(/"/g, "\"\"")}"` : text
}

export const line = (cells: ReadonlyArray<unknown>): string => {
  let out = ""
  for (let i = 0; i < cells.length; i++) {
    if (i > 0) out += ","
    out += cell(cells[i])
  }
  return out + "\r\n"
}

const field = (row: unknown, column: string): unknown =>
  typeof row === "object" && row !== null ? (row as Record<string, unknown>)[column] : undefined

/**
 * CSV with a header row. `columns` fixes the order; without it, the keys of
 * the first row are used (an empty export then has no header at all).
 */
export const encoder = (columns?: ReadonlyArray<string>): RowEncoder => {
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
          out += line(header)
          headerWritten = true
        }
        const cells = new Array<unknown>(header.length)
        for (let c = 0; c < header.length; c++) cells[c] = field(row, header[c]!)
        out += line(cells)
      }
      return out
    },
    get footer() {
      // An export with declared columns and no rows still carries its header.
      return !headerWritten && columns !== undefined ? line(columns) : ""
    }
  }
}

// ---------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------

export interface Cell {
  readonly text: string
  /** Whether the cell was quoted: `""` is an empty string, an empty unquoted cell is no value. */
  readonly quoted: boolean
}

export type CsvKind = "string" | "number" | "boolean" | "null" | "undefined" | "json"

/**
 * What a column's cells hold, by the field's type on the encoded side: its
 * kinds (`CsvKind`) joined by `|`, and `?` at the end when the field is
 * optional (`"number"`, `"string|null?"`). The contract reads it off a row
 * schema; a generated client has it written out.
 */
export type CsvField = string

/** The fields of a row, by column name. */
export type CsvFields = { readonly [column: string]: CsvField }

/**
 * RFC 4180 records from text in pieces: quoted fields with `""` escapes and
 * line breaks inside them; records end with CRLF, LF or CR. A record still
 * open at the end of the body is `RowsTruncated`.
 */
export const decoder = (): RowDecoder<ReadonlyArray<Cell>> => {
  // "start": at the start of a field; "plain": in an unquoted field;
  // "quoted": in a quoted field; "quote": just after a quote in a quoted field
  let state: "start" | "plain" | "quoted" | "quote" = "start"
  let text = ""
  let quoted = false
  let record: Array<Cell> = []
  let recordOpen = false
  let skipLF = false

  const endField = () => {
    record.push({ text, quoted })
    text = ""
    quoted = false
    recordOpen = true
  }
  const endRecord = (out: Array<ReadonlyArray<Cell>>) => {
    endField()
    out.push(record)
    record = []
    recordOpen = false
  }

  return {
    push(piece) {
      const out: Array<ReadonlyArray<Cell>> = []
      const length = piece.length
      let i = 0
      if (skipLF) {
        skipLF = false
        if (length > 0 && piece.charCodeAt(0) === 10) i = 1
      }
      let start = i // start of the literal run of the current field in this piece
      /** A record ends at `i` (CR, LF or CRLF); a CR at the end of the piece may pair with the next LF. */
      const lineBreak = (c: number) => {
        endRecord(out)
        if (c === 13) {
          if (i + 1 < length) {
            if (piece.charCodeAt(i + 1) === 10) i++
          } else {
            skipLF = true
          }
        }
        start = i + 1
      }
      for (; i < length; i++) {
        const c = piece.charCodeAt(i)
        switch (state) {
          case "start":
            if (c === 34) {
              quoted = true
              state = "quoted"
              start = i + 1
            } else if (c === 44) {
              endField()
              start = i + 1
            } else if (c === 13 || c === 10) {
              lineBreak(c)
            } else {
              state = "plain"
              start = i
              recordOpen = true
            }
            break
          case "plain":
            if (c === 44 || c === 13 || c === 10) {
              text += piece.slice(start, i)
              state = "start"
              if (c === 44) {
                endField()
                start = i + 1
              } else {
                lineBreak(c)
              }
            }
            break
          case "quoted":
            if (c === 34) {
              text += piece.slice(start, i)
              state = "quote"
            }
            break
          case "quote":
            if (c === 34) {
              // an escaped quote: keep one, continue the quoted field
              state = "quoted"
              start = i
            } else if (c === 44) {
              state = "start"
              endField()
              start = i + 1
            } else if (c === 13 || c === 10) {
              state = "start"
              lineBreak(c)
            } else {
              throw new RowSyntaxError("CSV: a quoted field is followed by text")
            }
            break
        }
      }
      if (state === "plain" || state === "quoted") text += piece.slice(start)
      return out
    },
    end() {
      const open = state !== "start" || recordOpen
      state = "start"
      record = []
      recordOpen = false
      text = ""
      if (open) throw new RowsTruncated("CSV: truncated: the body ended inside a record")
      return []
    }
  }
}
