/**
 * Overload against the demo server as a real process, fast version (the
 * soak run ramps to thousands of subscriptions): 200 subscriptions and 10
 * exports of ten million rows whose clients never read, while new
 * subscriptions, exports and `/metrics` are probed on fresh connections.
 * Every probe is answered — served, or `503` with `Retry-After` and a JSON
 * `{_tag, message}` — none hangs; `/metrics` answers every scrape; once the
 * clients leave nothing is left running (`stream_active` 0), the server
 * started a stream only for requests its clients saw answered (streams in
 * `stream_terminations_total` and in the "stream closed" log = 200s
 * received), and a new subscription and export work. Only behaviour and
 * counts are asserted, never a latency: the soak run reports those.
 * (Shedding forced by a low limit is `test/Admission.test.ts`.)
 */
import { describe, expect, it } from "@effect/vitest"
import { floodPastCapacity } from "../soak/flood.ts"

describe("flood against a real process", () => {
  it("stalled exports and 200 subscriptions: every new request answered, /metrics answers, nothing left running, no orphan stream", async () => {
    const report = await floodPastCapacity({
      pricesPerSecond: 100,
      symbols: 1,
      step: 100,
      stepMs: 500,
      maxSubscriptions: 200,
      rampMs: 5_000,
      holdMs: 2_000,
      stalledExports: 10,
      stalledExportRows: 10_000_000,
      probeEveryMs: 250,
      settleMs: 0
    })
    const what = JSON.stringify({ ...report, output: report.output.slice(-1500) })
    // Every new request was answered, served or shed, never left hanging.
    expect(report.probes503.hangs + report.probesServed.hangs, what).toBe(0)
    expect(report.probesOtherStatus, what).toBe(0)
    expect(report.probes503WellFormed, what).toBe(report.probes503.count)
    expect(report.flood.gaveUp + report.flood.errors + report.flood.other, what).toBe(0)
    expect(report.flood.ok + report.flood.shed, what).toBe(200)
    expect(report.flood.shedWellFormed, what).toBe(report.flood.shed)
    expect(report.metrics.count, what).toBeGreaterThan(0)
    expect(report.metricsNot200, what).toBe(0)
    // Nothing left running once the clients left, and no stream for a client that had gone.
    expect(report.activeAfter, what).toBe(0)
    expect(report.subscriptionsStarted, what).toBe(report.subscriptionsAnswered)
    expect(report.subscriptionsClosedInLog, what).toBe(report.subscriptionsStarted)
    expect(report.exportsStarted, what).toBe(report.exportsAnswered)
    expect(report.orphans, what).toBe(0)
    // The server serves again.
    expect(report.subscriptionAfter, what).toBe(true)
    expect(report.exportAfter, what).toBe(true)
    expect(report.exitCode, what).toBe(0)
  }, 120_000)
})
