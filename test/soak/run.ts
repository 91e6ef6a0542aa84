/**
 * The soak run: `npm run soak`. The reliability cases of `test/reliability`
 * at full size, on loopback only, each bounded in count and in time; prints
 * a summary table and exits non-zero when any check fails.
 *
 *   leaks       10,000 subscribe/disconnect cycles + 1,000 downloads aborted mid-body
 *   resume      2 × 150 random cuts of a resumable subscription
 *   truncation  every byte offset of 6 real responses, StreamClient and RpcClient
 *   shutdown    SIGTERM to a demo process with 500 subscriptions and 10 downloads on it
 *
 * SOAK_ONLY=leaks,resume runs a subset.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { leakCycles } from "./leaks.ts"
import { mb, quiet, within } from "./harness.ts"
import { resumeUnderFaults } from "./resume.ts"
import { shutdownUnderLoad } from "./shutdown.ts"
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
