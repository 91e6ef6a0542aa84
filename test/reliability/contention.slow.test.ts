/**
 * Contention against the demo server as a real process, fast versions (the
 * soak run, `npm run soak`, has the full sizes and reports the latencies):
 *
 * - subscription ramps of 200 and 300 new clients a second, each holding its
 *   subscription and giving up after 5 s without an answer: every request
 *   answered — 200, or a 503 with `Retry-After` and a JSON `{_tag, message}`
 *   — none given up; the server started a stream only for clients that saw
 *   their 200 (as many "stream closed" log lines); nothing left running
 *   once the clients leave, and a new subscription is served;
 * - an export hog (one client reading a 10,000,000-row NDJSON export at full
 *   speed): 40 new subscriptions, downloads and exports from other clients
 *   (other loopback addresses) while it runs, at least 95% of them admitted,
 *   every one answered, the admitted ones whole.
 *
 * Only behaviour and counts are asserted, never a latency.
 */
import { describe, expect, it } from "@effect/vitest"
import { exportHog } from "../soak/hog.ts"
import { subscriptionRamp } from "../soak/ramp.ts"

describe("contention against a real process", () => {
  for (const perSecond of [200, 300]) {
    it(`a ramp of ${perSecond} subscriptions a second: every one answered, no orphan stream, nothing left running`, async () => {
      const report = await subscriptionRamp({
        pricesPerSecond: 10,
        symbols: 5,
        perSecond,
        durationMs: 4_000,
        holdMs: 1_000,
        giveUpMs: 5_000,
        addresses: 16,
        probeEveryMs: 250
      })
      const { answers, after } = report
      const what = JSON.stringify({ ...report, output: report.output.slice(-1500) })
      // Every request answered, served or shed, none left for its client to give up on.
      expect(answers.sent, what).toBe(perSecond * 4)
      expect(answers.gaveUp + answers.errors + answers.other + answers.pending, what).toBe(0)
      expect(answers.ok + answers.shed, what).toBe(answers.sent)
      expect(answers.shedWellFormed, what).toBe(answers.shed)
      expect(answers.endedByServer, what).toBe(0)
      expect(report.watched.metricsNot200, what).toBe(0)
      // No stream for a client that had gone, and nothing left running.
      expect(after.active, what).toBe(0)
      expect(after.started.subscription, what).toBe(report.subscriptionsAnswered)
      expect(after.subscriptionsClosedInLog, what).toBe(after.started.subscription)
      expect(report.orphans, what).toBe(0)
      expect(report.subscriptionAfter, what).toBe(true)
      expect(report.exitCode, what).toBe(0)
    }, 60_000)
  }

  it("an export hog: new subscriptions, downloads and exports from other clients are admitted (≥ 95%)", async () => {
    const report = await exportHog({
      rows: 10_000_000,
      attempts: 40,
      spreadMs: 6_000,
      stopHogAfterAttempts: true,
      downloadMb: 4,
      exportRows: 10_000,
      probeEveryMs: 250
    })
    const what = JSON.stringify({ ...report, attempts: report.attempts.map((a) => ({ ...a, result: { ...a.result, body: a.result.body.slice(0, 100) } })), output: report.output.slice(-1500) })
    // The hog was being read all along: every attempt was answered while it ran.
    expect(report.hog.status, what).toBe(200)
    expect(report.hog.rows, what).toBeGreaterThan(0)
    expect(report.attempts.filter((attempt) => attempt.duringHog).length, what).toBe(40)
    // Answered: served (and whole), or shed with a well-formed 503; nearly all served.
    for (const attempt of report.attempts) {
      expect(attempt.result.status === 200 ? attempt.whole : attempt.result.status === 503 && attempt.result.wellFormed503, what).toBe(true)
    }
    expect(report.admitted / 40, what).toBeGreaterThanOrEqual(0.95)
    expect(report.after.active, what).toBe(0)
    expect(report.orphans, what).toBe(0)
    expect(report.exitCode, what).toBe(0)
  }, 60_000)
})
