/**
 * Slots taken all at once against the demo server as a real process, fast
 * versions (the soak run, `npm run soak`, has the full sizes and reports
 * the latencies and memory):
 *
 * - 256 exports (the server's transfer limit) from 8 loopback addresses (32
 *   each, the per-client cap) whose clients never read, with
 *   `TRANSFER_STALL_TIMEOUT_MS=2000`: while all are held a transfer from
 *   another address is refused (503, shed for `transfers`); the stall
 *   timeout cuts every one (logged), the transfer count comes back to 0, new
 *   transfers from other clients are served whole, and each held response
 *   ends truncated;
 * - a reconnect storm: 2,000 clients arriving at once while 500 subscribers
 *   are live, each retrying a 503 after `Retry-After` plus full jitter as the
 *   library's client does: all admitted in the end; the live subscribers
 *   lose nothing silently (a skipped or repeated sequence number only where
 *   `event: dropped` reported it) and keep receiving; `/metrics` answers
 *   every scrape; no orphan stream, nothing left running.
 *
 * Only behaviour and counts are asserted, never a latency.
 */
import { describe, expect, it } from "@effect/vitest"
import { stalledTransfers } from "../soak/stalled.ts"
import { reconnectStorm } from "../soak/storm.ts"

describe("slots taken all at once against a real process", () => {
  it("256 stalled exports: another client refused while they are held, all released by the stall timeout, then served again", async () => {
    const report = await stalledTransfers({
      stallTimeoutMs: 2_000,
      transfers: 256,
      addresses: 8,
      downloads: 0,
      downloadMb: 1024,
      exportRows: 10_000_000,
      probeEveryMs: 250,
      heldWithinMs: 20_000,
      releasedWithinMs: 40_000
    })
    const what = JSON.stringify({ ...report, output: report.output.slice(-1500) })
    expect(report.opened.statuses, what).toEqual({ "200": 256 })
    expect(report.allHeld, what).toBe(true)
    // Refused while all are held: a well-formed 503, shed for `transfers` (not the per-client cap).
    expect(report.refused?.status, what).toBe(503)
    expect(report.refused?.wellFormed503, what).toBe(true)
    expect(report.shedTransfers, what).toBe(1)
    // Released by the stall timeout: each cut (and logged), the slots free, new transfers served.
    expect(report.activeAfterCut, what).toBe(0)
    expect(report.stalledInLog, what).toBe(256)
    expect(report.servedAfter, what).toBe(report.triedAfter)
    expect(report.released, what).toMatchObject({ complete: 0, truncated: 256, unfinished: 0 })
    expect(report.after.active, what).toBe(0)
    expect(report.exitCode, what).toBe(0)
    // About 30 s here: the server fills 256 sockets' buffers (4 MB each) with rows before they count as stalled.
  }, 90_000)

  it("a reconnect storm of 2,000 while 500 are live: all admitted, the live lose nothing silently, /metrics answers", async () => {
    const report = await reconnectStorm({
      pricesPerSecond: 10,
      live: 500,
      storm: 2_000,
      stormSymbols: 5,
      stormAddresses: 64,
      giveUpMs: 10_000,
      admittedWithinMs: 30_000,
      afterMs: 2_000,
      probeEveryMs: 250
    })
    const { live, storm } = report
    const what = JSON.stringify({ ...report, output: report.output.slice(-1500) })
    // Every storm client admitted in the end; every 503 well formed.
    expect(storm.admitted, what).toBe(2_000)
    expect(storm.shedWellFormed, what).toBe(storm.shed)
    expect(storm.other + storm.errors, what).toBe(0)
    // The live subscribers: nothing lost or repeated beyond what `dropped` reported, receiving throughout.
    expect(live.receiving, what).toBe(500)
    expect(live.repeated, what).toBe(0)
    expect(live.unexplainedSkips, what).toBe(0)
    expect(live.silentIn["storm"], what).toBe(0)
    expect(live.silentIn["after"], what).toBe(0)
    // /metrics and /health answered every probe.
    expect(report.watched.metricsNot200 + report.watched.healthNot200, what).toBe(0)
    // No stream for a client that had gone, nothing left running.
    expect(report.after.active, what).toBe(0)
    expect(report.orphans, what).toBe(0)
    expect(report.after.subscriptionsClosedInLog, what).toBe(report.after.started.subscription)
    expect(report.exitCode, what).toBe(0)
  }, 60_000)
})
