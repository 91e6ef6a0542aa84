import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Ndjson from "../../src/protocol/Ndjson.ts"
import { RowsTruncated, RowSyntaxError } from "../../src/protocol/Rows.ts"
import { encodeAll, everySplit, feedAll, feedBytes, splitAt, splitBytesAt, utf8 } from "./support.ts"

const value = fc.jsonValue()
const same = (values: ReadonlyArray<unknown>) => JSON.parse(JSON.stringify(values)) as Array<unknown>

describe("NDJSON", () => {
  it("round trip: encoded rows, cut in two at every byte offset, decode to the same rows", () => {
    fc.assert(
      fc.property(fc.array(value, { maxLength: 6 }), fc.integer({ min: 1, max: 4 }), (values, chunkSize) => {
        const bytes = utf8(encodeAll(Ndjson.encoder(), values, chunkSize))
        for (const pieces of everySplit(bytes)) expect(feedBytes(Ndjson.decoder(), pieces)).toEqual(same(values))
      }),
      { numRuns: 100 }
    )
  })

  it("round trip: encoded rows cut at random multi-splits decode to the same rows", () => {
    fc.assert(
      fc.property(fc.array(value, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (values, offsets) => {
        const bytes = utf8(encodeAll(Ndjson.encoder(), values, 3))
        expect(feedBytes(Ndjson.decoder(), splitBytesAt(bytes, offsets))).toEqual(same(values))
      }),
      { numRuns: 300 }
    )
  })

  it("split anywhere gives its documents, with CRLF or LF line ends", () => {
    fc.assert(
      fc.property(fc.array(value, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), fc.boolean(), (values, offsets, crlf) => {
        const newline = crlf ? "\r\n" : "\n"
        const text = values.map((v) => JSON.stringify(v) + newline).join("")
        expect(feedAll(Ndjson.decoder(), splitAt(text, offsets))).toEqual(same(values))
      })
    )
  })

  it("a last line without its newline is truncation, not a shorter success", () => {
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), (values, offsets) => {
        const text = values.map((v) => JSON.stringify(v)).join("\n")
        expect(() => feedAll(Ndjson.decoder(), splitAt(text, offsets))).toThrow(RowsTruncated)
      })
    )
  })

  it("a line that is not JSON is a syntax error, not truncation", () => {
    let error: unknown
    try {
      feedAll(Ndjson.decoder(), ["{\"a\":1}\n{oops}\n"])
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(RowSyntaxError)
    expect(error).not.toBeInstanceOf(RowsTruncated)
  })
})
