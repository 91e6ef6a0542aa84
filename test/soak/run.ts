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
 *
 * SOAK_ONLY=leaks,resume runs a subset.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { floodPastCapacity } from "./flood.ts"
import { leakCycles } from "./leaks.ts"
import { mb, quiet, within } from "./harness.ts"
import { resumeUnderFaults } from "./resume.ts"
import { shutdownUnderLoad } from "./shutdown.ts"
import { shutdownAtDeadline } from "./shutdownDeadline.ts"
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
        step: 100,
        stepMs: 1_000,
        maxSubscriptions: 4_000,
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
        injected: "subscriptions ramped 100/s past capacity (100 prices/s × 5 symbols each) + 10 stalled exports",
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
