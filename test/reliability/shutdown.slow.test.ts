/**
 * Graceful shutdown under load, fast version (the soak run has 500
 * subscriptions and 10 downloads): two demo server processes behind a
 * loopback "load balancer"; SIGTERM to the first while 50 subscriptions and
 * 3 downloads run on it. The subscriptions move to the second instance and
 * resume (a gap reported, no sequence number repeated) while the first is
 * still draining; the downloads finish with every byte right; the first
 * exits 0 having drained before its deadline.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { quiet } from "../soak/harness.ts"
import { shutdownUnderLoad } from "../soak/shutdown.ts"

describe("graceful shutdown under load", () => {
  it.scopedLive("SIGTERM with 50 subscriptions and 3 downloads running: clean hand-over, exit 0", () =>
    Effect.gen(function*() {
      const report = yield* shutdownUnderLoad({
        subscriptions: 50,
        downloads: 3,
        downloadMb: 32,
        shutdownDeadlineMs: 30_000
      })
      const what = `${JSON.stringify({ ...report, output: undefined })}\n${report.output.slice(-3000)}`
      expect(report.exitCode, what).toBe(0)
      expect(report.transfersAtSigterm, what).toBe(3)
      expect(report.drained, what).toBe(true)
      expect(report.downloadsComplete, what).toBe(3)
      expect(report.downloadByteErrors, what).toBe(0)
      expect(report.failed, what).toBe(0)
      expect(report.resumedOnB, what).toBe(50)
      expect(report.repeated, what).toBe(0)
      expect(report.gapsReported, what).toBe(50)
      expect(report.bExitCode, what).toBe(0)
    }).pipe(quiet), 90_000)
})
