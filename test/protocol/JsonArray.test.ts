import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as JsonArray from "../../src/protocol/JsonArray.ts"
import { RowsTruncated, RowSyntaxError } from "../../src/protocol/Rows.ts"
import { encodeAll, everySplit, feedAll, feedBytes, splitAt, splitBytesAt, utf8 } from "./support.ts"

const value = fc.jsonValue()
const same = (values: ReadonlyArray<unknown>) => JSON.parse(JSON.stringify(values)) as Array<unknown>

describe("JSON array", () => {
  it("round trip: encoded rows, cut in two at every byte offset, decode to the same rows", () => {
    fc.assert(
      fc.property(fc.array(value, { maxLength: 6 }), fc.integer({ min: 1, max: 4 }), (values, chunkSize) => {
        const bytes = utf8(encodeAll(JsonArray.encoder(), values, chunkSize))
        for (const pieces of everySplit(bytes)) expect(feedBytes(JsonArray.decoder(), pieces)).toEqual(same(values))
      }),
      { numRuns: 100 }
    )
  })

  it("round trip: encoded rows cut at random multi-splits decode to the same rows", () => {
    fc.assert(
      fc.property(fc.array(value, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (values, offsets) => {
        const bytes = utf8(encodeAll(JsonArray.encoder(), values, 3))
        expect(feedBytes(JsonArray.decoder(), splitBytesAt(bytes, offsets))).toEqual(same(values))
      }),
      { numRuns: 300 }
    )
  })

  it("any array split anywhere gives its elements, compact or pretty", () => {
    fc.assert(
      fc.property(fc.array(value, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), fc.boolean(), (values, offsets, pretty) => {
        const text = pretty ? JSON.stringify(values, null, 2) : JSON.stringify(values)
        expect(feedAll(JsonArray.decoder(), splitAt(text, offsets))).toEqual(same(values))
      })
    )
  })

  it("malformed or unfinished arrays are errors; an unfinished one is truncation", () => {
    for (const text of ["[1,]", "[,1]", "[1 2]", "{\"a\":1}", "[1] x"]) {
      expect(() => feedAll(JsonArray.decoder(), [text]), text).toThrow(RowSyntaxError)
    }
    for (const text of ["", "[", "[1, {\"a\": [2]}", "[\"unterminated]"]) {
      expect(() => feedAll(JsonArray.decoder(), [text]), text).toThrow(RowsTruncated)
    }
    expect(feedAll(JsonArray.decoder(), [" [ ] \n"])).toEqual([])
  })

  it("every proper prefix of an encoded body is truncation", () => {
    const text = encodeAll(JsonArray.encoder(), [{ a: "]" }, [1, 2], "x,y"], 2)
    for (let k = 0; k < text.trimEnd().length; k++) {
      expect(() => feedAll(JsonArray.decoder(), [text.slice(0, k)]), JSON.stringify(text.slice(0, k))).toThrow(RowsTruncated)
    }
  })
})
