import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as ContentDisposition from "../../src/protocol/ContentDisposition.ts"

describe("Content-Disposition", () => {
  it("round trip: the name a client reads back is the sanitized name, whatever the name", () => {
    fc.assert(
      fc.property(fc.fullUnicodeString({ maxLength: 40 }), (name) => {
        const header = ContentDisposition.attachment(name)
        expect(header).toMatch(/^attachment; filename="[\x20-\x7e]*"; filename\*=UTF-8''[\x21-\x7e]*$/)
        expect(ContentDisposition.filenameOf(header)).toBe(ContentDisposition.sanitize(name))
      }),
      { numRuns: 1000 }
    )
  })

  it("filename* preferred, filename as fallback", () => {
    expect(ContentDisposition.filenameOf("attachment; filename=\"report.bin\"; filename*=UTF-8''r%C3%A9port%20%E2%9C%93.bin"))
      .toBe("réport ✓.bin")
    expect(ContentDisposition.filenameOf("attachment; filename=\"a \\\"quoted\\\" name.txt\"")).toBe("a \"quoted\" name.txt")
    expect(ContentDisposition.filenameOf("attachment; filename=plain.csv")).toBe("plain.csv")
    expect(ContentDisposition.filenameOf("attachment; filename*=UTF-8''%E0%A4%A; filename=\"fallback.bin\"")).toBe("fallback.bin")
    expect(ContentDisposition.filenameOf("attachment")).toBeUndefined()
    expect(ContentDisposition.filenameOf(null)).toBeUndefined()
  })
})
