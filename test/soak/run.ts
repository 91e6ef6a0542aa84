/**
 * The soak run: `npm run soak`. The reliability cases of `test/reliability`
 * at full size, on loopback only, each bounded in count and in time; prints
 * a summary table and exits non-zero when any check fails.
 *
 *   leaks       10,000 subscribe/disconnect cycles + 1,000 downloads aborted mid-body
 *   resume      2 × 150 random cuts of a resumable subscription
 *   truncation  every byte offset of 6 real responses, StreamClient and RpcClient
 *   shutdown    SIGTERM to a demo process with 500 subscriptions and 10 downloads on it
 *   shutdown-deadline  SIGTERM with 500 subscriptions, 10 stalled and 3 reading downloads: exit by the deadline + 1 s
 *   flood       subscriptions ramped past capacity + 10 stalled exports against a demo process
 *   ramp-200, ramp-300  new subscribers at 200/s and 300/s for 10 s, each giving up after 5 s: all answered, 503s within 1 s
 *   hog         a 10,000,000-row export read at full speed while 40 other clients ask: ≥ 95% admitted
 *   stalled, stalled-mixed  256 transfers that never read (exports; half downloads) released by TRANSFER_STALL_TIMEOUT_MS
 *   storm, storm-100  5,000 clients at once, retrying 503s with jitter, while 500 subscribers are live (10 and 100 prices/s)
 *
 * SOAK_ONLY=leaks,resume runs a subset.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Os from "node:os"
import type { Distribution } from "../support/crowd.ts"
import { reasons } from "../support/serverWatch.ts"
import { floodPastCapacity } from "./flood.ts"
import { admittedByKind, exportHog } from "./hog.ts"
import { leakCycles } from "./leaks.ts"
import { mb, quiet, within } from "./harness.ts"
import { subscriptionRamp } from "./ramp.ts"
import { resumeUnderFaults } from "./resume.ts"
import { shutdownUnderLoad } from "./shutdown.ts"
import { shutdownAtDeadline } from "./shutdownDeadline.ts"
import { stalledTransfers } from "./stalled.ts"
import { reconnectStorm } from "./storm.ts"
import { truncationAtEveryOffset } from "./truncation.ts"

interface Row {
  readonly name: string
  readonly injected: string
  readonly count: string
  readonly lost: string
  readonly failures: ReadonlyArray<string>
  readonly seconds: number
}

const rows: Array<Row> = []

const check = (failures: Array<string>, ok: boolean, what: string) => {
  if (!ok) failures.push(what)
}

const only = new Set((process.env["SOAK_ONLY"] ?? "").split(",").filter((name) => name !== ""))

const runCase = async (
  name: string,
  budgetMs: number,
  body: () => Effect.Effect<Omit<Row, "name" | "seconds">, never, Scope.Scope>
) => {
  if (only.size > 0 && !only.has(name)) return
  const started = Date.now()
  process.stdout.write(`${name}: running (at most ${budgetMs / 1000} s)…\n`)
  try {
    const row = await within(Effect.runPromise(body().pipe(Effect.scoped, quiet)), budgetMs, `${name} did not finish`)
    rows.push({ name, ...row, seconds: (Date.now() - started) / 1000 })
  } catch (error) {
    rows.push({
      name,
      injected: "-",
      count: "-",
      lost: "?",
      failures: [String(error).slice(0, 300)],
      seconds: (Date.now() - started) / 1000
    })
  }
  const row = rows.at(-1)!
  process.stdout.write(`${name}: ${row.failures.length === 0 ? "ok" : `FAILED: ${row.failures.join("; ")}`} (${row.seconds.toFixed(0)} s)\n`)
}

await runCase("leaks", 300_000, () =>
  Effect.map(leakCycles({ subscriptions: 10_000, downloads: 1_000, concurrency: 20 }), (report) => {
    const failures: Array<string> = []
    const growth = report.heapAfter - report.heapBaseline
    // After the first quarter (warm-up of the code and pools), growth per cycle.
    const series = report.heapSeries
    const perCycle = series.length >= 4 ? (series[3]! - series[1]!) / (report.subscriptions / 2) : 0
    check(failures, report.failedCycles === 0, `${report.failedCycles} cycles failed`)
    check(failures, report.gauge.subscription === 0 && report.gauge.download === 0, `gauge ${JSON.stringify(report.gauge)}`)
    check(failures, report.fibers.after <= report.fibers.baseline, `fibers ${report.fibers.baseline} → ${report.fibers.after}`)
    check(failures, report.handles.after <= report.handles.baseline, `handles ${report.handles.baseline} → ${report.handles.after}`)
    check(failures, report.serverSockets === 0, `${report.serverSockets} server sockets open`)
    check(failures, growth < 10 * 1024 * 1024, `heap grew ${mb(growth)}`)
    check(failures, perCycle < 1024, `heap grows ${perCycle.toFixed(0)} B per cycle`)
    return {
      injected: "client disconnect after the first value; download aborted after the first chunk",
      count: `${report.subscriptions} + ${report.downloads}`,
      lost: `gauge ${report.gauge.subscription}/${report.gauge.download}, fibers ${report.fibers.baseline}→${report.fibers.after}, ` +
        `handles ${report.handles.baseline}→${report.handles.after}, sockets ${report.serverSockets}, heap ${mb(report.heapBaseline)}→${
          mb(report.heapAfter)
        } (${series.map(mb).join(", ")}; ${perCycle.toFixed(0)} B/cycle)`,
      failures
    }
  }))

await runCase("resume", 180_000, () =>
  Effect.gen(function*() {
    const failures: Array<string> = []
    let cuts = 0
    let values = 0
    let lost = 0
    let duplicated = 0
    let cutInHead = 0
    for (const seed of [11, 12]) {
      const report = yield* resumeUnderFaults({ cuts: 150, seed })
      cuts += report.cuts
      values += report.values
      lost += report.missing
      duplicated += report.duplicates + report.outOfOrder
      cutInHead += report.cutInHead
      check(failures, report.outcome === "end", `seed ${seed}: ${report.outcome}`)
      check(failures, report.cuts === 150, `seed ${seed}: ${report.cuts} cuts`)
      check(failures, report.values === report.expected, `seed ${seed}: ${report.values} of ${report.expected} values`)
      check(failures, report.missing + report.duplicates + report.outOfOrder + report.dropped === 0, `seed ${seed}: ${JSON.stringify(report)}`)
      check(failures, report.activeAfter === 0, `seed ${seed}: ${report.activeAfter} streams still open`)
    }
    return {
      injected: `TCP cut at a random byte (0-1500) of the response, ${cutInHead} of them in the head`,
      count: `${cuts} cuts, ${values} values`,
      lost: `${lost} missing, ${duplicated} repeated or out of order`,
      failures
    }
  }))

await runCase("truncation", 120_000, () =>
  Effect.map(truncationAtEveryOffset(), (results) => {
    const failures: Array<string> = []
    let offsets = 0
    let errors = 0
    for (const row of results) {
      offsets += row.offsets
      errors += row.errors
      check(
        failures,
        row.falseSuccesses === 0 && row.hangs === 0 && row.untyped === 0 && row.wholeOk,
        `${row.client} ${row.target}: ${JSON.stringify(row)}`
      )
    }
    return {
      injected: "response cut after byte k, every k (6 responses × 2 clients)",
      count: `${offsets} responses`,
      lost: `${errors} typed errors, ${results.reduce((n, row) => n + row.falseSuccesses, 0)} false successes, ${
        results.reduce((n, row) => n + row.hangs, 0)
      } hangs`,
      failures
    }
  }))

await runCase("shutdown", 240_000, () =>
  Effect.map(
    shutdownUnderLoad({ subscriptions: 500, downloads: 10, downloadMb: 64, shutdownDeadlineMs: 60_000 }),
    (report) => {
      const failures: Array<string> = []
      check(failures, report.exitCode === 0, `exit code ${report.exitCode} (${report.exitSignal})`)
      check(failures, report.transfersAtSigterm === 10, `${report.transfersAtSigterm} transfers running at SIGTERM`)
      check(failures, report.drained, "A did not drain before its deadline")
      check(failures, report.downloadsComplete === 10, `${report.downloadsComplete} downloads complete`)
      check(failures, report.downloadByteErrors === 0, `${report.downloadByteErrors} wrong bytes`)
      check(failures, report.resumedOnB === 500, `${report.resumedOnB} subscriptions resumed on B while A drained`)
      check(failures, report.repeated === 0, `${report.repeated} subscriptions repeated a sequence number`)
      check(failures, report.gapsReported === 500, `${report.gapsReported} gaps reported`)
      check(failures, report.failed === 0, `${report.failed} subscriptions failed`)
      check(failures, report.bExitCode === 0, `B exit code ${report.bExitCode}`)
      return {
        injected: "SIGTERM to instance A (rolling deploy to B behind a loopback balancer)",
        count: `${report.subscriptions} subscriptions + ${report.downloads} × 64 MiB downloads`,
        lost: `${report.downloadByteErrors} wrong bytes, ${10 - report.downloadsComplete} downloads cut, ${report.repeated} repeats, ` +
          `${report.resumedOnB}/500 resumed on B (gap reported: ${report.gapsReported}), exit ${report.exitCode}`,
        failures
      }
    }
  ))

await runCase("shutdown-deadline", 120_000, () =>
  Effect.map(
    Effect.promise(() =>
      shutdownAtDeadline({ subscriptions: 500, stalled: 10, stalledMb: 1024, reading: 3, readingMb: 64, shutdownDeadlineMs: 5_000 })
    ),
    (report) => {
      const failures: Array<string> = []
      check(failures, report.exitCode === 0, `exit code ${report.exitCode} (${report.exitSignal})`)
      check(failures, report.sigtermToExitMs <= 5_000 + 1_000, `exit ${report.sigtermToExitMs.toFixed(0)} ms after SIGTERM (deadline 5,000 ms)`)
      check(failures, report.stalledTruncated === 10, `${report.stalledTruncated}/10 stalled downloads truncated`)
      check(failures, report.readingInProgressAtSigterm === 3, `${report.readingInProgressAtSigterm}/3 reading downloads in progress at SIGTERM`)
      check(failures, report.readingComplete === 3, `${report.readingComplete}/3 reading downloads complete`)
      check(failures, report.subscriptionsEnded === 500, `${report.subscriptionsEnded}/500 subscriptions ended`)
      check(failures, report.cutAtDeadline === 10, `the server logged ${report.cutAtDeadline} transfers cut at the deadline`)
      return {
        injected: "SIGTERM (SHUTDOWN_DEADLINE_MS=5000) with clients that stopped reading",
        count: "500 subscriptions + 10 stalled × 1 GiB + 3 reading × 64 MiB downloads",
        lost: `exit ${report.exitCode} ${(report.sigtermToExitMs / 1000).toFixed(2)} s after SIGTERM (≤ 6 s); stalled truncated ${report.stalledTruncated}/10 ` +
          `(server cut ${report.cutAtDeadline}); reading complete ${report.readingComplete}/3 (${report.readingInProgressAtSigterm} in progress at the signal); ` +
          `subscriptions ended ${report.subscriptionsEnded}/500`,
        failures
      }
    }
  ))

await runCase("flood", 300_000, () =>
  Effect.map(
    Effect.promise(() =>
      floodPastCapacity({
        pricesPerSecond: 100,
        symbols: 5,
        // 4,000 at 100/s no longer took the demo past capacity once fan-out took the whole loop
        // when nothing else waits (its values stayed under a second late): 200/s up to 9,000.
        step: 200,
        stepMs: 1_000,
        maxSubscriptions: 9_000,
        rampMs: 45_000,
        holdMs: 15_000,
        stalledExports: 10,
        stalledExportRows: 10_000_000,
        probeEveryMs: 500,
        settleMs: 30_000
      })
    ),
    (report) => {
      const failures: Array<string> = []
      const shed = Object.values(report.shedByReason).reduce((sum, n) => sum + n, 0)
      const memory = report.memory
      check(failures, shed > 0, "the server never shed")
      check(failures, report.probes503.hangs + report.probesServed.hangs === 0, `${report.probes503.hangs + report.probesServed.hangs} probes hung (no answer in 10 s)`)
      check(failures, report.probes503.over1s === 0, `${report.probes503.over1s} 503s later than 1 s (max ${report.probes503.maxMs} ms)`)
      check(failures, report.probesServed.over1s === 0, `${report.probesServed.over1s} served requests answered later than 1 s (max ${report.probesServed.maxMs} ms)`)
      check(failures, report.probes503WellFormed === report.probes503.count, `${report.probes503.count - report.probes503WellFormed} 503s without Retry-After or JSON`)
      check(failures, report.flood.shedWellFormed === report.flood.shed, `${report.flood.shed - report.flood.shedWellFormed} flood 503s without Retry-After or JSON`)
      check(failures, report.probesOtherStatus === 0, `${report.probesOtherStatus} probes answered neither 200 nor 503`)
      check(failures, report.metricsNot200 === 0, `${report.metricsNot200} /metrics scrapes not answered 200`)
      check(failures, report.metrics.hangs === 0 && report.metrics.over1s === 0, `/metrics: ${report.metrics.over1s} answers later than 1 s, ${report.metrics.hangs} hangs (max ${report.metrics.maxMs} ms)`)
      check(failures, report.healthNot200 === 0, `${report.healthNot200} /health probes not answered 200`)
      check(failures, report.health.hangs === 0 && report.health.over1s === 0, `/health: ${report.health.over1s} answers later than 1 s, ${report.health.hangs} hangs (max ${report.health.maxMs} ms)`)
      check(failures, report.activeAfter === 0, `${report.activeAfter} streams still active after every client left`)
      check(failures, report.orphans === 0, `${report.orphans} streams started for clients that had gone`)
      check(failures, report.subscriptionsClosedInLog === report.subscriptionsStarted, `log ${report.subscriptionsClosedInLog} subscription closes, metrics ${report.subscriptionsStarted}`)
      check(failures, report.subscriptionAfter && report.exportAfter, `after the flood: subscription ${report.subscriptionAfter}, export ${report.exportAfter}`)
      check(failures, memory.heapAfterGc <= memory.heapBaseline + 32 * 1024 * 1024, `heap ${mb(memory.heapBaseline)} → ${mb(memory.heapAfterGc)} after a full GC`)
      check(failures, memory.rssAfterGc <= memory.rssBaseline + 128 * 1024 * 1024, `RSS ${mb(memory.rssBaseline)} → ${mb(memory.rssAfterGc)} after a full GC`)
      check(failures, report.exitCode === 0, `exit code ${report.exitCode}`)
      const reasons = Object.entries(report.shedByReason).map(([reason, n]) => `${n} ${reason}`).join(", ") || "none"
      return {
        injected: "subscriptions ramped 200/s past capacity (100 prices/s × 5 symbols each) + 10 stalled exports",
        count: `${report.flood.sent} subscriptions (${report.flood.ok} served, ${report.flood.shed} shed, ${report.flood.gaveUp} gave up after 10 s), ` +
          `peak ${report.peakActive} open`,
        lost: `shed: ${reasons}` +
          (report.activeAtFirstShed === undefined ? "" : ` (first at ${report.activeAtFirstShed} open, ${((report.firstShedAfterMs ?? 0) / 1000).toFixed(1)} s)`) +
          `; probes 503 ${report.probes503.count} (max ${report.probes503.maxMs} ms), served ${report.probesServed.count} (max ${report.probesServed.maxMs} ms, ${report.probesServed.over1s} > 1 s, ${report.probesServed.hangs} hung)` +
          `; /metrics max ${report.metrics.maxMs} ms (${report.metrics.over1s}/${report.metrics.count} > 1 s, ${report.metrics.hangs} hung)` +
          `; /health max ${report.health.maxMs} ms (${report.health.over1s}/${report.health.count} > 1 s)` +
          `; started/answered subscriptions ${report.subscriptionsStarted}/${report.subscriptionsAnswered} (log ${report.subscriptionsClosedInLog}), exports ${report.exportsStarted}/${report.exportsAnswered}: ${report.orphans} orphans` +
          `; active after ${report.activeAfter}; after: subscription ${report.subscriptionAfter ? "ok" : "FAILED"}, export ${report.exportAfter ? "ok" : "FAILED"}` +
          `; RSS ${mb(memory.rssBaseline)} → ${mb(memory.rssPeak)} → ${mb(memory.rssAfter)} → ${mb(memory.rssAfterGc)}, heap ${mb(memory.heapBaseline)} → ${mb(memory.heapPeak)} → ${mb(memory.heapAfter)} → ${mb(memory.heapAfterGc)} ` +
          `(baseline after a full GC → peak → ${memory.settledSeconds.toFixed(0)} s after the clients left → after a full GC)`,
        failures
      }
    }
  ))

/** "median 12 / p99 340 / max 512 ms" */
const times = (d: Distribution): string => d.count === 0 ? "none" : `median ${d.medianMs} / p99 ${d.p99Ms} / max ${d.maxMs} ms`
/** The machine's 1-minute load average when a case starts: others may share it, and its figures depend on it. */
const load = (): string => `load ${Os.loadavg()[0]!.toFixed(1)}`

for (const perSecond of [200, 300]) {
  await runCase(`ramp-${perSecond}`, 180_000, () => {
    const loadAtStart = load()
    return Effect.map(
      Effect.promise(() =>
        subscriptionRamp({
          // The flood's feed (100 prices/s × 5 symbols each): the ramp reaches the demo's capacity, so it sheds.
          pricesPerSecond: 100,
          symbols: 5,
          perSecond,
          durationMs: 10_000,
          holdMs: 5_000,
          giveUpMs: 5_000,
          addresses: 64,
          probeEveryMs: 250
        })
      ),
      (report) => {
        const failures: Array<string> = []
        const { after, answers } = report
        check(failures, answers.gaveUp === 0, `${answers.gaveUp} clients gave up (no answer in 5 s)`)
        check(failures, answers.errors + answers.other + answers.pending === 0, `${answers.errors} errors, ${answers.other} other statuses, ${answers.pending} unanswered`)
        check(failures, answers.shedWellFormed === answers.shed, `${answers.shed - answers.shedWellFormed} 503s without Retry-After or JSON`)
        check(failures, answers.shedMs.over1s === 0, `${answers.shedMs.over1s}/${answers.shed} 503s later than 1 s (max ${answers.shedMs.maxMs} ms)`)
        // Every 503 the server counted reached a client (when none gave up, none went to a closed connection).
        const serverShed = Object.values(after.shedByReason).reduce((sum, n) => sum + n, 0)
        check(failures, answers.gaveUp > 0 || serverShed === answers.shed, `the server counted ${serverShed} shed, the clients saw ${answers.shed} 503s`)
        check(failures, report.watched.metricsNot200 === 0, `${report.watched.metricsNot200} /metrics scrapes not answered 200`)
        check(failures, after.active === 0, `${after.active} streams still active after every client left`)
        check(failures, report.orphans === 0, `${report.orphans} streams started for clients that had gone (${after.started.subscription} started, ${report.subscriptionsAnswered} answered 200)`)
        check(failures, after.subscriptionsClosedInLog === after.started.subscription, `log ${after.subscriptionsClosedInLog} subscription closes, metrics ${after.started.subscription}`)
        check(failures, report.subscriptionAfter, "no subscription served after the ramp")
        check(failures, report.exitCode === 0, `exit code ${report.exitCode}`)
        return {
          injected: `${perSecond} new subscribers/s for 10 s (100 prices/s × 5 symbols each), each giving up after 5 s; ${loadAtStart}`,
          count: `${answers.sent} subscriptions: ${answers.ok} served (${(report.admittedShare * 100).toFixed(1)}%), ${answers.shed} shed, ${answers.gaveUp} gave up`,
          lost: `503s ${times(answers.shedMs)} (${answers.shedMs.over1s} > 1 s); 200s ${times(answers.okMs)}; shed: ${reasons(after.shedByReason)}` +
            `; /metrics ${times(report.watched.metrics)}, /health ${times(report.watched.health)}` +
            `; started/answered ${after.started.subscription}/${report.subscriptionsAnswered}: ${report.orphans} orphans; active after ${after.active}` +
            `; CPU server ${report.serverCpu.toFixed(2)}, clients ${report.crowdCpu.toFixed(2)} (clients' loop late p99 ${answers.crowdLoopDelay.p99Ms} ms)`,
          failures
        }
      }
    )
  })
}

await runCase("hog", 180_000, () => {
  const loadAtStart = load()
  return Effect.map(
    Effect.promise(() =>
      exportHog({ rows: 10_000_000, attempts: 40, spreadMs: 12_000, stopHogAfterAttempts: false, downloadMb: 8, exportRows: 10_000, probeEveryMs: 500 })
    ),
    (report) => {
      const failures: Array<string> = []
      const answeredMs = report.attempts.map((attempt) => attempt.result.headMs).sort((a, b) => a - b)
      check(failures, report.admittedShare >= 0.95, `${report.admitted}/40 admitted`)
      check(failures, report.attempts.every((a) => a.result.status === 200 ? a.whole : a.result.status === 503 && a.result.wellFormed503), "an attempt neither served whole nor a well-formed 503")
      check(failures, report.attempts.every((a) => a.duringHog), `${report.attempts.filter((a) => !a.duringHog).length} attempts answered after the hog ended`)
      check(failures, report.hog.complete && report.hog.rows === 10_000_000, `the hog: ${JSON.stringify(report.hog)}`)
      check(failures, report.after.active === 0 && report.orphans === 0, `active after ${report.after.active}, ${report.orphans} orphans`)
      check(failures, report.exitCode === 0, `exit code ${report.exitCode}`)
      return {
        injected: `one client reads a 10,000,000-row NDJSON export at full speed; ${loadAtStart}`,
        count: `40 attempts from 40 other addresses over 12 s: ${admittedByKind(report.attempts)}`,
        lost: `admitted ${report.admitted}/40 (${(report.admittedShare * 100).toFixed(0)}%), answered within max ${Math.round(answeredMs.at(-1) ?? 0)} ms` +
          ` (median ${Math.round(answeredMs[answeredMs.length >> 1] ?? 0)} ms); shed: ${reasons(report.after.shedByReason)}` +
          `; the hog ${(report.hog.bytes / 1e9).toFixed(2)} GB, ${report.hog.rows.toLocaleString("en")} rows in ${(report.hog.ms / 1000).toFixed(1)} s` +
          ` (${Math.round(report.hog.rows / (report.hog.ms / 1000)).toLocaleString("en")} rows/s); /metrics ${times(report.watched.metrics)}`,
        failures
      }
    }
  )
})

for (const [name, downloads, stallTimeoutMs] of [["stalled", 0, 2_000], ["stalled-mixed", 128, 15_000]] as const) {
  await runCase(name, 240_000, () => {
    const loadAtStart = load()
    return Effect.map(
      Effect.promise(() =>
        stalledTransfers({
          stallTimeoutMs,
          transfers: 256,
          addresses: 8,
          downloads,
          downloadMb: 1024,
          exportRows: 10_000_000,
          probeEveryMs: 250,
          heldWithinMs: 60_000,
          releasedWithinMs: 120_000
        })
      ),
      (report) => {
        const failures: Array<string> = []
        const memory = report.memory
        check(failures, report.opened.statuses["200"] === 256, `opened: ${JSON.stringify(report.opened.statuses)}`)
        check(failures, report.allHeld, `never all 256 held at once (peak ${report.peakHeld})`)
        check(failures, report.refused?.status === 503 && report.refused.wellFormed503 && report.shedTransfers === 1, `another client while all held: ${report.refused?.status}, shed for transfers ${report.shedTransfers}`)
        check(failures, report.activeAfterCut === 0, `${report.activeAfterCut} transfers still open after the stall timeout`)
        check(failures, report.stalledInLog === 256, `${report.stalledInLog} "transfer stalled" log lines`)
        check(failures, report.servedAfter === report.triedAfter, `after: ${report.servedAfter}/${report.triedAfter} new transfers served whole`)
        check(failures, report.released.truncated === 256, `held responses: ${JSON.stringify(report.released)}`)
        check(failures, report.exitCode === 0, `exit code ${report.exitCode}`)
        const what = downloads === 0 ? "256 NDJSON exports of 10 M rows" : `${downloads} downloads of 1 GiB + ${256 - downloads} exports of 10 M rows`
        return {
          injected: `${what} from 8 addresses × 32, never read; TRANSFER_STALL_TIMEOUT_MS=${stallTimeoutMs}; ${loadAtStart}`,
          count: `256 held (heads ${times(report.opened.headMs)}; all held ${((report.heldAfterMs ?? 0) / 1000).toFixed(1)} s after the first)`,
          lost: `another client ${report.refused?.status ?? "not tried"} (shed ${reasons(report.after.shedByReason)}); all cut ${((report.releasedAfterMs ?? 0) / 1000).toFixed(1)} s later` +
            ` (${report.stalledInLog} logged, ${report.released.truncated}/256 truncated, ${(report.released.bytes / 1e6).toFixed(0)} MB were in the socket buffers)` +
            `; transfers after ${report.activeAfterCut}; new transfers ${report.servedAfter}/${report.triedAfter} served` +
            `; RSS ${mb(memory.rssBefore)} → ${mb(memory.rssPeak)} → ${mb(memory.rssAfter)} (before, peak, after a full GC): ${mb(memory.perTransfer)} per stalled transfer` +
            `; /metrics ${times(report.watched.metrics)}`,
          failures
        }
      }
    )
  })
}

// At 10 prices/s the demo takes the storm without shedding on a quiet machine; at 100 prices/s
// (each storm client on one symbol) it is near its capacity, and sheds when others load the machine.
for (const [name, pricesPerSecond, stormSymbols] of [["storm", 10, 5], ["storm-100", 100, 1]] as const) {
  await runCase(name, 240_000, () => {
    const loadAtStart = load()
    return Effect.map(
      Effect.promise(() =>
        reconnectStorm({
          pricesPerSecond,
          live: 500,
          storm: 5_000,
          stormSymbols,
          stormAddresses: 256,
          giveUpMs: 10_000,
          admittedWithinMs: 120_000,
          afterMs: 5_000,
          probeEveryMs: 250
        })
      ),
      (report) => {
        const failures: Array<string> = []
        const { live, storm } = report
        check(failures, storm.admitted === 5_000, `${storm.admitted}/5,000 storm clients admitted`)
        check(failures, storm.shedWellFormed === storm.shed && storm.other + storm.errors === 0, `${storm.shed - storm.shedWellFormed} 503s malformed, ${storm.other} other, ${storm.errors} errors`)
        const serverShed = Object.values(report.after.shedByReason).reduce((sum, n) => sum + n, 0)
        const seenShed = storm.shed + report.liveAnswers.shed
        check(failures, storm.gaveUp + report.liveAnswers.gaveUp > 0 || serverShed === seenShed, `the server counted ${serverShed} shed, the clients saw ${seenShed} 503s`)
        check(failures, live.repeated === 0 && live.unexplainedSkips === 0, `live: ${live.repeated} repeated, ${live.unexplainedSkips} skipped without a dropped event`)
        check(failures, live.silentIn["storm"] === 0 && live.silentIn["after"] === 0, `live subscribers silent: ${JSON.stringify(live.silentIn)}`)
        check(failures, report.watched.metricsNot200 + report.watched.healthNot200 === 0, `/metrics ${report.watched.metricsNot200}, /health ${report.watched.healthNot200} not answered 200`)
        check(failures, report.after.active === 0 && report.orphans === 0, `active after ${report.after.active}, ${report.orphans} orphans`)
        check(failures, report.exitCode === 0, `exit code ${report.exitCode}`)
        const lag = live.lag
        return {
          injected: `5,000 clients at once (${stormSymbols} symbol${stormSymbols === 1 ? "" : "s"} each), retrying 503s after Retry-After + full jitter, ` +
            `while 500 subscribers are live (${pricesPerSecond} prices/s × 5 symbols); ${loadAtStart}`,
          count: `${storm.admitted}/5,000 admitted in ${((storm.allAdmittedMs ?? Number.NaN) / 1000).toFixed(1)} s (${storm.sent} attempts, at most ${storm.maxAttempts} for one client)`,
          lost: `503s ${storm.shed} (${times(storm.shedMs)}), shed: ${reasons(report.after.shedByReason)}; gave up ${storm.gaveUp}` +
            `; live: ${live.repeated} repeated, ${live.skipped} skipped (${live.droppedReported} reported dropped, ${live.unknownGaps} unknown gaps), ${live.reconnects} reconnects` +
            `; live lag p99 ${lag["before"]?.p99Ms} ms before, ${lag["storm"]?.p99Ms} ms during (max ${lag["storm"]?.maxMs}), ${lag["after"]?.p99Ms} ms after` +
            `; /metrics max ${report.watched.metrics.maxMs} ms, /health max ${report.watched.health.maxMs} ms` +
            `; ${report.orphans} orphans, active after ${report.after.active}` +
            ` (clients' loops late p99: storm ${storm.crowdLoopDelay.p99Ms} ms, live ${live.crowdLoopDelay.p99Ms} ms)`,
          failures
        }
      }
    )
  })
}

const table = [
  ["case", "injected", "how many", "lost / left behind", "result", "s"],
  ...rows.map((row) => [
    row.name,
    row.injected,
    row.count,
    row.lost,
    row.failures.length === 0 ? "PASS" : "FAIL",
    row.seconds.toFixed(0)
  ])
]
const widths = table[0]!.map((_, column) => Math.max(...table.map((cells) => cells[column]!.length)))
const line = (cells: ReadonlyArray<string>) => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(" | ")} |`
console.log("\nSoak summary")
console.log(line(table[0]!))
console.log(`|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`)
for (const cells of table.slice(1)) console.log(line(cells))
const failed = rows.filter((row) => row.failures.length > 0)
for (const row of failed) console.log(`\n${row.name} FAILED:\n  ${row.failures.join("\n  ")}`)
console.log(`\n${rows.length - failed.length} passed, ${failed.length} failed`)
process.exit(failed.length === 0 ? 0 : 1)
