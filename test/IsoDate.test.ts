import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as IsoDate from "../src/core/IsoDate.ts"

/** The range of a valid Date: ±100,000,000 days around the epoch. */
const maxTime = 8.64e15

describe("IsoDate.isoString", () => {
  it("is toISOString for any valid time, in any order (the cached day is never stale)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -maxTime, max: maxTime }), { minLength: 1, maxLength: 20 }), (times) => {
        for (const time of times) expect(IsoDate.isoString(time)).toBe(new Date(time).toISOString())
      }),
      { numRuns: 2000 }
    )
  })

  it("is toISOString around the edges: day and year boundaries, leap days, years 0 and 9999, negative times", () => {
    const edges = [
      0,
      -1,
      1,
      86_399_999,
      86_400_000,
      -86_400_000,
      -86_400_001,
      Date.UTC(2000, 1, 29, 23, 59, 59, 999), // a leap day (divisible by 400)
      Date.UTC(1900, 1, 28, 12), // 1900 is not a leap year
      Date.UTC(2024, 1, 29),
      Date.UTC(2026, 11, 31, 23, 59, 59, 999),
      Date.UTC(2027, 0, 1),
      -62_167_219_200_000, // 0000-01-01T00:00:00.000Z
      -62_167_219_200_001, // -000001-12-31T23:59:59.999Z: the builtin's expanded year
      253_402_300_799_999, // 9999-12-31T23:59:59.999Z
      253_402_300_800_000, // +010000-01-01T00:00:00.000Z
      maxTime,
      -maxTime
    ]
    for (const time of edges) expect(IsoDate.isoString(time), String(time)).toBe(new Date(time).toISOString())
  })

  it("formats times within one day from the cached day, and a new day when the day changes", () => {
    const day = Date.UTC(2026, 5, 15)
    for (let time = day - 5_000_000; time < day + 90_000_000; time += 1_234_567) {
      expect(IsoDate.isoString(time)).toBe(new Date(time).toISOString())
    }
  })

  it("leaves what is not a finite time to the builtin (which throws, as toISOString does)", () => {
    expect(() => IsoDate.isoString(Number.NaN)).toThrow(RangeError)
  })
})
