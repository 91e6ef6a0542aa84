/**
 * Leaks, fast version (the soak run does 10,000 cycles): 500
 * subscribe/disconnect cycles and 50 downloads aborted mid-body against the
 * demo contract. Afterwards the active-streams gauge is 0, no Effect fiber,
 * server socket or handle is left behind, and the heap is back to its
 * baseline within a tolerance.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { quiet } from "../soak/harness.ts"
import { leakCycles } from "../soak/leaks.ts"

describe("leaks", () => {
  it.scopedLive("500 subscribe/disconnect cycles and 50 aborted downloads leave nothing behind", () =>
    Effect.gen(function*() {
      const report = yield* leakCycles({ subscriptions: 500, downloads: 50, concurrency: 20 })
      expect(report.failedCycles).toBe(0)
      expect(report.gauge).toEqual({ subscription: 0, download: 0 })
      expect(report.fibers.after).toBeLessThanOrEqual(report.fibers.baseline)
      expect(report.handles.after).toBeLessThanOrEqual(report.handles.baseline)
      expect(report.serverSockets).toBe(0)
      // A leak of 12 KB per cycle would show here; a few MB is the noise of a warm heap.
      expect(report.heapAfter - report.heapBaseline).toBeLessThan(6 * 1024 * 1024)
    }).pipe(quiet), 60_000)
})
