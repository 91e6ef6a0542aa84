/**
 * `npm run bench` — end-to-end benchmarks of the server library against a
 * plain `node:http` baseline measured in the same run.
 *
 * Method
 * - Every (scenario, implementation, round) starts a fresh server process:
 *   `node --import tsx bench/servers/<impl>.ts`. The server listens on
 *   127.0.0.1 port 0 and prints `{"port":N}` (contract in `harness.ts`).
 *   The load generator (`loadgen.ts`: hand-written HTTP/1.1 on a raw `net`
 *   socket, byte-loop parsing) runs in this process, so server and client
 *   each have a core on a 2-core machine. The server is killed afterwards.
 * - Every implementation serves the same source (`workload.ts`): ~100-byte
 *   JSON ticks produced in batches of 64 with an event-loop turn
 *   (`setImmediate`) between batches, and fresh 64 KiB buffers for
 *   downloads. A source that never yields would starve the event loop, and no
 *   real source (I/O, timers, PubSub) behaves that way.
 * - SSE throughput: one subscriber; after a warm-up, the ticks delivered in a
 *   fixed window are counted in the bytes (each `"seq":N` is one tick; the
 *   sequence numbers give what a sliding policy dropped). Figure: events/s.
 * - Download: a warm-up transfer, then 1 GiB (quick: 64 MiB) timed from the
 *   request to the last byte. Figure: MB/s (10^6 bytes per second).
 * - Rounds: 3 (quick: 1), implementations alternating order; the table shows
 *   the median and the ratio of medians to `raw`. CPU of the server (from
 *   /proc, Linux only) and of this client during the window are recorded, to
 *   show which side was the bottleneck, and the server's RSS at start and its
 *   growth to the peak (VmHWM). The load average at start is printed: other
 *   work on the machine skews the figures, the ratios less so (interleaved).
 * - Output: a markdown table on stdout, the same data in bench/results.json.
 *
 * Flags: --quick (smoke run of everything, < 30 s), --scenario=sse,download,
 * --impl=raw,effect-stream-rpc, --profile (servers run with --cpu-prof,
 * profiles in bench/profiles/<label>/; read them with
 * `npx tsx bench/profile-top.ts <file>`).
 *
 * Adding a peer (tRPC, oRPC, better-sse, @effect/rpc): write
 * bench/servers/<name>.ts following `harness.ts` and list it in `implementations`.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process"
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { ByteCounter, get, TickCounter } from "./loadgen.ts"
import { paths } from "./workload.ts"

const benchDir = Path.dirname(fileURLToPath(import.meta.url))
const repoDir = Path.dirname(benchDir)

// ---------------------------------------------------------------- settings

const argv = process.argv.slice(2)
const flag = (name: string): boolean => argv.includes(`--${name}`)
const option = (name: string): Array<string> | undefined => {
  const arg = argv.find((a) => a.startsWith(`--${name}=`))
  return arg === undefined ? undefined : arg.slice(name.length + 3).split(",").filter((s) => s !== "")
}
const known = ["--quick", "--profile"]
for (const arg of argv) {
  if (!known.includes(arg) && !/^--(scenario|impl)=/.test(arg)) {
    console.error(`unknown argument ${arg}; use --quick, --profile, --scenario=a,b, --impl=a,b`)
    process.exit(2)
  }
}

const quick = flag("quick")
const profile = flag("profile")
const MiB = 1024 * 1024

const settings = quick
  ? { rounds: 1, sseWarmupMs: 500, sseWindowMs: 1000, downloadWarmupBytes: 16 * MiB, downloadBytes: 64 * MiB }
  : { rounds: 3, sseWarmupMs: 2000, sseWindowMs: 5000, downloadWarmupBytes: 128 * MiB, downloadBytes: 1024 * MiB }
/** A transfer slower than 4 MB/s is cut off at this point and reported as such. */
const downloadTimeoutMs = settings.downloadBytes / 4e3
const startupTimeoutMs = 30_000

// ---------------------------------------------------------------- implementations

interface Implementation {
  readonly name: string
  readonly file: string
}

const baseline = "raw"
const implementations: ReadonlyArray<Implementation> = [
  { name: "raw", file: "servers/raw.ts" },
  { name: "effect-stream-rpc", file: "servers/effect-stream-rpc.ts" }
]

// ---------------------------------------------------------------- server processes

interface Server {
  readonly port: number
  readonly pid: number
  /** Seconds of CPU (user + system) the server has used, or undefined off Linux. */
  readonly cpuSeconds: () => number | undefined
  /** RSS of the server when it announced its port, in bytes, or undefined off Linux. */
  readonly startRss: number | undefined
  /** Peak RSS of the server so far in bytes, or undefined off Linux. */
  readonly peakRss: () => number | undefined
  /** Throws if the server died on its own. */
  readonly assertAlive: () => void
  readonly stop: () => Promise<void>
}

const running = new Set<ChildProcess>()
const killAll = () => {
  for (const child of running) child.kill("SIGKILL")
}
process.on("exit", killAll)
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    killAll()
    process.exit(130)
  })
}

const clockTicks = 100 // USER_HZ on Linux
const procCpuSeconds = (pid: number): number | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    // Fields after the command: state is index 0, utime 11, stime 12.
    return (Number(fields[11]) + Number(fields[12])) / clockTicks
  } catch {
    return undefined
  }
}

/** A memory figure of a process in bytes (VmRSS: now, VmHWM: peak), or undefined off Linux. */
const procMemory = (pid: number, field: "VmRSS" | "VmHWM"): number | undefined => {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "latin1"))
    return match === null ? undefined : Number(match[1]) * 1024
  } catch {
    return undefined
  }
}

const startServer = (implementation: Implementation, label: string): Promise<Server> =>
  new Promise((resolve, reject) => {
    const flags = profile
      // One directory per server: the tsx loader thread writes a profile of its own (the smaller file).
      ? ["--cpu-prof", "--cpu-prof-dir", Path.join(benchDir, "profiles", label)]
      : []
    const child = spawn(process.execPath, [...flags, "--import", "tsx", Path.join(benchDir, implementation.file)], {
      cwd: repoDir,
      stdio: ["pipe", "pipe", "pipe"]
    })
    running.add(child)
    let stderr = ""
    let stdout = ""
    let port: number | undefined
    let stopping = false
    let exit: string | undefined
    child.stderr!.setEncoding("utf8").on("data", (text: string) => {
      stderr = (stderr + text).slice(-8000)
    })
    const failure = (why: string) =>
      new Error(
        `server ${implementation.name} (${implementation.file}) ${why}` +
          (stderr.trim() === "" ? "" : `\n--- its stderr ---\n${stderr.trim()}`)
      )
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(failure(`did not print its port within ${startupTimeoutMs / 1000} s`))
    }, startupTimeoutMs)
    const exited = new Promise<void>((resolveExit) => {
      child.on("exit", (code, signal) => {
        running.delete(child)
        exit = signal !== null ? `signal ${signal}` : `code ${code}`
        clearTimeout(timer)
        if (port === undefined) reject(failure(`exited (${exit}) before printing its port`))
        resolveExit()
      })
    })
    child.on("error", (error) => {
      clearTimeout(timer)
      reject(failure(`could not be started: ${error.message}`))
    })
    child.stdout!.setEncoding("utf8").on("data", (text: string) => {
      if (port !== undefined) return
      stdout += text
      const newline = stdout.indexOf("\n")
      if (newline < 0) return
      const line = stdout.slice(0, newline)
      let parsed: unknown
      try {
        parsed = JSON.parse(line)
      } catch {
        parsed = undefined
      }
      const value = (parsed as { port?: unknown } | undefined)?.port
      if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
        child.kill("SIGKILL")
        clearTimeout(timer)
        reject(failure(`printed ${JSON.stringify(line)} instead of {"port":N}`))
        return
      }
      port = value
      clearTimeout(timer)
      const pid = child.pid!
      resolve({
        port,
        pid,
        cpuSeconds: () => procCpuSeconds(pid),
        startRss: procMemory(pid, "VmRSS"),
        peakRss: () => procMemory(pid, "VmHWM"),
        assertAlive: () => {
          if (exit !== undefined && !stopping) throw failure(`died during the measurement (${exit})`)
        },
        stop: async () => {
          stopping = true
          if (exit !== undefined) return
          child.kill("SIGTERM")
          const killer = setTimeout(() => child.kill("SIGKILL"), 5000)
          await exited
          clearTimeout(killer)
        }
      })
    })
  })

// ---------------------------------------------------------------- scenarios

interface Measurement {
  readonly value: number
  readonly details: Record<string, number | string | boolean>
}

interface Scenario {
  readonly id: string
  readonly title: string
  readonly unit: string
  readonly measure: (server: Server) => Promise<Measurement>
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const round = (n: number, digits = 3) => Number(n.toPrecision(digits))

/** The server's RSS when it started and its growth to the peak, in MiB. */
const memoryDetails = (server: Server): Record<string, number> => {
  const peak = server.peakRss()
  if (peak === undefined || server.startRss === undefined) return {}
  return { serverStartRssMiB: round(server.startRss / MiB), serverRssGrowthMiB: round((peak - server.startRss) / MiB) }
}

const sseScenario: Scenario = {
  id: "sse",
  title: "SSE throughput, 1 subscriber, ~100 B JSON events",
  unit: "events/s",
  measure: async (server) => {
    const counter = new TickCounter()
    const connection = get(server.port, paths.sse, counter)
    try {
      const response = await connection.response
      if (response.status !== 200) throw new Error(`GET ${paths.sse} answered ${response.status}`)
      const type = response.headers.get("content-type") ?? ""
      if (!type.startsWith("text/event-stream")) throw new Error(`GET ${paths.sse} answered content-type ${type}`)
      await sleep(settings.sseWarmupMs)
      if (counter.count === 0) throw new Error(`no event arrived within the ${settings.sseWarmupMs} ms warm-up`)
      const count0 = counter.count
      const seq0 = counter.lastSeq
      const bytes0 = counter.bytes
      const server0 = server.cpuSeconds()
      const client0 = process.cpuUsage()
      const t0 = performance.now()
      await sleep(settings.sseWindowMs)
      const seconds = (performance.now() - t0) / 1000
      const client = process.cpuUsage(client0)
      const server1 = server.cpuSeconds()
      const delivered = counter.count - count0
      const produced = counter.lastSeq - seq0
      server.assertAlive()
      const details: Record<string, number> = {
        seconds: round(seconds, 4),
        delivered,
        droppedShare: produced > 0 ? round(Math.max(0, 1 - delivered / produced)) : 0,
        bodyMBps: round((counter.bytes - bytes0) / 1e6 / seconds),
        clientCpu: round((client.user + client.system) / 1e6 / seconds, 2)
      }
      if (server0 !== undefined && server1 !== undefined) details["serverCpu"] = round((server1 - server0) / seconds, 2)
      Object.assign(details, memoryDetails(server))
      return { value: delivered / seconds, details }
    } finally {
      connection.close()
    }
  }
}

/** One timed transfer of `bytes`, from the request to the last byte. */
const downloadOnce = async (server: Server, bytes: number): Promise<Measurement> => {
  const counter = new ByteCounter()
  const server0 = server.cpuSeconds()
  const client0 = process.cpuUsage()
  const t0 = performance.now()
  const connection = get(server.port, `${paths.download}?bytes=${bytes}`, counter)
  try {
    const response = await connection.response
    if (response.status !== 200) throw new Error(`GET ${paths.download} answered ${response.status}`)
    let timer: ReturnType<typeof setTimeout> | undefined
    const outcome = await Promise.race([
      connection.done.then(() => "done" as const),
      new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), downloadTimeoutMs)
      })
    ]).finally(() => clearTimeout(timer))
    const seconds = (performance.now() - t0) / 1000
    const client = process.cpuUsage(client0)
    const server1 = server.cpuSeconds()
    server.assertAlive()
    if (outcome === "done" && counter.bytes !== bytes) {
      throw new Error(`download delivered ${counter.bytes} bytes instead of ${bytes}`)
    }
    const details: Record<string, number | boolean> = {
      seconds: round(seconds, 4),
      bytes: counter.bytes,
      complete: outcome === "done",
      clientCpu: round((client.user + client.system) / 1e6 / seconds, 2)
    }
    if (server0 !== undefined && server1 !== undefined) details["serverCpu"] = round((server1 - server0) / seconds, 2)
    Object.assign(details, memoryDetails(server))
    return { value: counter.bytes / 1e6 / seconds, details }
  } finally {
    connection.close()
  }
}

const size = (bytes: number): string => bytes >= 1024 * MiB ? `${bytes / (1024 * MiB)} GiB` : `${bytes / MiB} MiB`

const downloadScenario: Scenario = {
  id: "download",
  title: `Download ${size(settings.downloadBytes)} over loopback`,
  unit: "MB/s",
  measure: async (server) => {
    await downloadOnce(server, settings.downloadWarmupBytes)
    return downloadOnce(server, settings.downloadBytes)
  }
}

const scenarios: ReadonlyArray<Scenario> = [sseScenario, downloadScenario]

// ---------------------------------------------------------------- run

const pick = <A extends { readonly id?: string; readonly name?: string }>(
  all: ReadonlyArray<A>,
  wanted: Array<string> | undefined,
  what: string
): ReadonlyArray<A> => {
  if (wanted === undefined) return all
  const keyOf = (a: A) => a.id ?? a.name ?? ""
  for (const w of wanted) {
    if (!all.some((a) => keyOf(a) === w)) {
      console.error(`unknown ${what} ${w}; known: ${all.map(keyOf).join(", ")}`)
      process.exit(2)
    }
  }
  return all.filter((a) => wanted.includes(keyOf(a)))
}

interface ImplementationResult {
  readonly implementation: string
  readonly median: number
  readonly ratio: number | undefined
  readonly trials: ReadonlyArray<Measurement>
}

interface ScenarioResult {
  readonly id: string
  readonly title: string
  readonly unit: string
  readonly results: ReadonlyArray<ImplementationResult>
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const runScenario = async (scenario: Scenario, impls: ReadonlyArray<Implementation>): Promise<ScenarioResult> => {
  const trials = new Map<string, Array<Measurement>>(impls.map((i) => [i.name, []]))
  for (let r = 0; r < settings.rounds; r++) {
    const order = r % 2 === 0 ? impls : [...impls].reverse()
    for (const implementation of order) {
      const label = `${scenario.id}-${implementation.name}-${r + 1}`
      process.stderr.write(`  ${label} ...`)
      const server = await startServer(implementation, label)
      let measurement: Measurement
      try {
        measurement = await scenario.measure(server)
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error)
        throw new Error(`${scenario.id} / ${implementation.name}: ${message}`)
      } finally {
        await server.stop()
      }
      process.stderr.write(` ${format(measurement.value, scenario.unit)}\n`)
      trials.get(implementation.name)!.push(measurement)
    }
  }
  const medians = new Map(impls.map((i) => [i.name, median(trials.get(i.name)!.map((m) => m.value))]))
  const base = medians.get(baseline)
  return {
    id: scenario.id,
    title: scenario.title,
    unit: scenario.unit,
    results: impls.map((i) => ({
      implementation: i.name,
      median: medians.get(i.name)!,
      ratio: base === undefined ? undefined : medians.get(i.name)! / base,
      trials: trials.get(i.name)!
    }))
  }
}

const format = (value: number, unit: string): string =>
  unit === "events/s"
    ? `${Math.round(value).toLocaleString("en-US")} ${unit}`
    : `${value.toLocaleString("en-US", { maximumFractionDigits: value >= 100 ? 0 : 1 })} ${unit}`

/** The client SSE parser micro-benchmark (bench/parser.ts), when that module is present. */
const runParser = async (): Promise<unknown> => {
  const url = new URL("./parser.ts", import.meta.url)
  if (!existsSync(fileURLToPath(url))) return undefined
  try {
    const module: unknown = await import(url.href)
    const run = (module as { runParserBench?: unknown }).runParserBench
    if (typeof run !== "function") return { skipped: "bench/parser.ts does not export runParserBench" }
    process.stderr.write("  parser ...")
    const result: unknown = await run({ quick })
    process.stderr.write(" done\n")
    return result
  } catch (error) {
    return { skipped: `bench/parser.ts failed: ${error instanceof Error ? error.message : String(error)}` }
  }
}

const parserTable = (result: unknown): Array<string> => {
  if (result === undefined) return []
  const r = result as { ours?: unknown; peer?: unknown; ratio?: unknown; skipped?: unknown }
  if (typeof r.ours === "number" && typeof r.peer === "number" && typeof r.ratio === "number") {
    return [
      "",
      "Client SSE parser (bench/parser.ts; in process, bytes in, best of runs):",
      "",
      "| parser | MB/s | × eventsource-parser |",
      "|---|---:|---:|",
      `| eventsource-parser | ${format(r.peer, "").trim()} | 1.00× |`,
      `| ours (client/SseParser.ts) | ${format(r.ours, "").trim()} | ${r.ratio.toFixed(2)}× |`
    ]
  }
  if (typeof r.skipped === "string") return ["", `Client SSE parser: skipped (${r.skipped}).`]
  return ["", `Client SSE parser: ${JSON.stringify(result)}`]
}

interface SourceState {
  readonly commit: string
  /** Library files that differ from the commit. */
  readonly uncommitted: Array<string>
  /** The whole state of `src/` (status and diff), to notice edits made during the run. */
  readonly fingerprint: string
}

/** What library code the servers load: the commit, and the files of `src/` that differ from it. */
const sourceState = (): SourceState | undefined => {
  try {
    // Not trimmed: a porcelain line starts with its two status columns, often a space.
    const git = (...args: Array<string>) => execFileSync("git", args, { cwd: repoDir, encoding: "utf8" })
    const status = git("status", "--porcelain", "--", "src")
    return {
      commit: git("rev-parse", "--short", "HEAD").trim(),
      uncommitted: status.split("\n").filter((l) => l !== "").map((l) => l.slice(3)),
      fingerprint: `${git("rev-parse", "HEAD")}\n${status}\n${git("diff", "HEAD", "--", "src")}`
    }
  } catch {
    return undefined
  }
}

const main = async () => {
  const started = performance.now()
  const source = sourceState()
  const chosenScenarios = pick(scenarios, option("scenario"), "scenario")
  const chosenImpls = pick(implementations, option("impl"), "implementation")
  const cpu = Os.cpus()
  const machine = {
    cpu: cpu[0]?.model.trim() ?? "unknown",
    cores: cpu.length,
    memoryGiB: round(Os.totalmem() / 1024 ** 3),
    os: `${Os.type()} ${Os.release()} ${Os.arch()}`,
    loadAverageAtStart: round(Os.loadavg()[0] ?? 0, 2)
  }
  process.stderr.write(`bench (${quick ? "quick" : "full"}): ${chosenScenarios.length} scenarios × ${chosenImpls.length} implementations × ${settings.rounds} rounds\n`)

  const results: Array<ScenarioResult> = []
  for (const scenario of chosenScenarios) results.push(await runScenario(scenario, chosenImpls))
  const parser = option("scenario") === undefined ? await runParser() : undefined
  const wallSeconds = round((performance.now() - started) / 1000)
  const changedDuringRun = source !== undefined && sourceState()?.fingerprint !== source.fingerprint

  const lines = [
    `## effect-stream-rpc benchmarks (${quick ? "quick" : "full"})`,
    "",
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB RAM, ${machine.os}; Node ${process.version}; load average at start ${machine.loadAverageAtStart}${
      machine.loadAverageAtStart > machine.cores / 4 ? " (the machine was busy: figures are noisy)" : ""
    }.`,
    `Source: ${
      source === undefined
        ? "unknown (no git)"
        : `commit ${source.commit}${source.uncommitted.length === 0 ? "" : ` + uncommitted changes in ${source.uncommitted.join(", ")}`}`
    }.${changedDuringRun ? " WARNING: src/ changed during the run; servers started at different times ran different code." : ""}`,
    `Median of ${settings.rounds} round${settings.rounds === 1 ? "" : "s"}, each on a fresh server process; ratio = median / median of \`${baseline}\` in this run.`,
    "",
    "| scenario | implementation | result | × raw | notes |",
    "|---|---|---:|---:|---|"
  ]
  for (const scenario of results) {
    for (const r of scenario.results) {
      const notes: Array<string> = []
      if (r.trials.length > 1) {
        const values = r.trials.map((t) => t.value)
        notes.push(`range ${format(Math.min(...values), "").trim()}–${format(Math.max(...values), "").trim()}`)
      }
      const mean = (key: string): number | undefined => {
        const values = r.trials.map((t) => t.details[key]).filter((v): v is number => typeof v === "number")
        return values.length === 0 ? undefined : values.reduce((a, b) => a + b, 0) / values.length
      }
      const dropped = mean("droppedShare")
      if (dropped !== undefined && dropped > 0) notes.push(`${(dropped * 100).toFixed(1)}% dropped by the sliding policy`)
      const serverCpu = mean("serverCpu")
      const clientCpu = mean("clientCpu")
      if (serverCpu !== undefined) notes.push(`server CPU ${Math.round(serverCpu * 100)}%`)
      if (clientCpu !== undefined) notes.push(`client CPU ${Math.round(clientCpu * 100)}%`)
      const growth = mean("serverRssGrowthMiB")
      const startRss = mean("serverStartRssMiB")
      if (growth !== undefined && startRss !== undefined) {
        notes.push(`server RSS ${Math.round(startRss)} MiB +${Math.round(growth)} MiB at peak`)
      }
      if (r.trials.some((t) => t.details["complete"] === false)) notes.push("cut off by the time limit")
      lines.push(
        `| ${scenario.title} | ${r.implementation} | ${format(r.median, scenario.unit)} | ${
          r.ratio === undefined ? "n/a" : `${r.ratio.toFixed(2)}×`
        } | ${notes.join("; ")} |`
      )
    }
  }
  lines.push(...parserTable(parser))
  lines.push("", `Wall time: ${wallSeconds} s.`)
  console.log(lines.join("\n"))

  const report = {
    mode: quick ? "quick" : "full",
    date: new Date().toISOString(),
    machine,
    node: process.version,
    source: source === undefined ? null : { commit: source.commit, uncommitted: source.uncommitted, changedDuringRun },
    baseline,
    settings,
    wallSeconds,
    scenarios: results,
    parser: parser ?? null
  }
  const file = Path.join(benchDir, "results.json")
  writeFileSync(`${file}.tmp`, `${JSON.stringify(report, null, 2)}\n`)
  renameSync(`${file}.tmp`, file)
}

main().catch((error: unknown) => {
  killAll()
  console.error(`\nbench failed: ${error instanceof Error ? error.message : String(error)}`)
  process.exit(1)
})
