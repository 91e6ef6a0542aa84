import { describe, expect, it } from "@effect/vitest"
import * as Schema from "effect/Schema"
import * as fc from "fast-check"
import * as CsvRows from "../../client/CsvRows.ts"
import { csvFields } from "../../src/contract/RowFields.ts"
import * as Csv from "../../src/protocol/Csv.ts"
import { RowsTruncated, RowSyntaxError } from "../../src/protocol/Rows.ts"
import { encodeAll, everySplit, feedAll, feedBytes, splitAt, splitBytesAt, utf8 } from "./support.ts"

/** Text that exercises quoting, line breaks inside cells, the formula guard and multi-byte UTF-8. */
const text = fc.stringOf(
  fc.constantFrom("a", "b", ",", "\"", "\r", "\n", "\r\n", " ", "'", "=", "+", "-", "@", "\t", "é", "✓", "𝄞"),
  { maxLength: 8 }
)

const Row = Schema.Struct({
  text: Schema.String,
  n: Schema.Number,
  flag: Schema.Boolean,
  note: Schema.optional(Schema.String)
})
type Row = typeof Row.Type
const columns = ["text", "n", "flag", "note"]

const row: fc.Arbitrary<Row> = fc.record({
  text,
  n: fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Object.is(n, -0))),
  flag: fc.boolean(),
  note: fc.option(text, { nil: undefined })
}).map(({ note, ...rest }) => (note === undefined ? rest : { ...rest, note }))

describe("CSV", () => {
  it("round trip: rows (formula guard included), cut in two at every byte offset, decode to the same rows", () => {
    fc.assert(
      fc.property(fc.array(row, { maxLength: 4 }), fc.integer({ min: 1, max: 3 }), (rows, chunkSize) => {
        const bytes = utf8(encodeAll(Csv.encoder(columns), rows, chunkSize))
        for (const pieces of everySplit(bytes)) expect(feedBytes(CsvRows.decoder(csvFields(Row)), pieces)).toEqual(rows)
      }),
      { numRuns: 60 }
    )
  })

  it("round trip: cells cut at random multi-splits come back as the exact text, the formula guard undone", () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(text, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (records, offsets) => {
          const encoded = records.map(Csv.line).join("")
          const decoded = feedBytes(Csv.decoder(), splitBytesAt(utf8(encoded), offsets))
          expect(decoded.map((record) => record.map((cell) => Csv.unneutralize(cell.text)))).toEqual(records)
          // Nothing a spreadsheet would evaluate is left unguarded.
          for (const record of decoded) {
            for (const cell of record) expect(cell.text).not.toMatch(/^[=+\-@\t\r]/)
          }
        }
      ),
      { numRuns: 300 }
    )
  })

  it("RFC 4180 split anywhere gives its records: quotes, \"\" escapes, CR, LF and CRLF inside quoted fields", () => {
    const cell = fc.stringOf(fc.constantFrom("a", "b", ",", "\"", "\r", "\n", "\r\n", " ", "'", "é"))
    fc.assert(
      fc.property(
        fc.array(fc.array(cell, { minLength: 2, maxLength: 4 }), { minLength: 1, maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.constantFrom("\r\n", "\n", "\r"),
        (records, offsets, newline) => {
          const quote = (text: string) => /[",\r\n]/.test(text) || text === "" ? `"${text.replace(/"/g, "\"\"")}"` : text
          const text = records.map((record) => record.map(quote).join(",")).join(newline) + newline
          const parsed = feedAll(Csv.decoder(), splitAt(text, offsets))
          expect(parsed.map((record) => record.map((c) => c.text))).toEqual(records)
          expect(parsed.every((record) => record.every((c) => c.quoted))).toBe(
            records.every((record) => record.every((c) => quote(c) !== c))
          )
        }
      )
    )
  })

  it("distinguishes an empty quoted cell from an empty unquoted one, and undoes the formula guard once", () => {
    const [record] = feedAll(Csv.decoder(), ["a,\"\",,'=1,''=2,'x\r\n"])
    expect(record).toEqual([
      { text: "a", quoted: false },
      { text: "", quoted: true },
      { text: "", quoted: false },
      { text: "'=1", quoted: false },
      { text: "''=2", quoted: false },
      { text: "'x", quoted: false }
    ])
    expect(record!.map((c) => Csv.unneutralize(c.text))).toEqual(["a", "", "", "=1", "'=2", "'x"])
    expect(() => feedAll(Csv.decoder(), ["\"a\"b"])).toThrow(RowSyntaxError)
  })

  it("a body that ends inside a record (an open quote, a last record without its line break) is truncation", () => {
    expect(() => feedAll(Csv.decoder(), ["\"open"])).toThrow(RowsTruncated)
    expect(() => feedAll(Csv.decoder(), ["a,b\r\n1,2"])).toThrow(RowsTruncated)
    expect(() => feedAll(Csv.decoder(), ["a,b\r\n1,"])).toThrow(RowsTruncated)
    expect(feedAll(Csv.decoder(), [""])).toEqual([])
  })
})
