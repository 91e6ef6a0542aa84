/**
 * Resume under faults, fast version (the soak run cuts 100+ times): a
 * resumable subscription through a loopback proxy that cuts the connection
 * at a random point 20 times in a row. Every value arrives exactly once, in
 * order, with no gap reported, and the server's streams all end.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { quiet } from "../soak/harness.ts"
import { resumeUnderFaults } from "../soak/resume.ts"

describe("resume under faults", () => {
  for (const seed of [1, 2]) {
    it.scopedLive(`20 random cuts (seed ${seed}): every value exactly once, in order`, () =>
      Effect.gen(function*() {
        const report = yield* resumeUnderFaults({ cuts: 20, seed })
        expect(report.outcome).toBe("end")
        expect(report.cuts).toBe(20)
        expect(report.connections).toBe(21)
        expect(report.values).toBe(report.expected)
        expect(report.duplicates).toBe(0)
        expect(report.missing).toBe(0)
        expect(report.outOfOrder).toBe(0)
        expect(report.dropped).toBe(0)
        expect(report.activeAfter).toBe(0)
      }).pipe(quiet), 60_000)
  }
})
