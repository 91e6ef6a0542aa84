/**
 * `npm run bench` — end-to-end benchmarks of this library against a plain
 * `node:http` baseline and the peers, all measured in the same run.
 *
 * Method
 * - Every measurement starts a fresh server process
 *   (`node --expose-gc --import tsx bench/servers/<impl>.ts`) and a fresh
 *   load process (`bench/load.ts`, hand-written HTTP/1.1 on raw `net`
 *   sockets, byte-loop parsing), both on loopback, each with the open-file
 *   limit raised to the hard limit, each killed when its time limit passes.
 *   On a 2-core machine server and load generator each get a core; this
 *   runner only samples the server (/proc: CPU, RSS, peak RSS; heap over
 *   stdin after a full GC, see `harness.ts`).
 * - The server announces how its clients request each stream (`routes`), so
 *   the load generator is the same for every peer whatever its protocol.
 * - Every implementation serves the same sources (`workload.ts`): ~100-byte
 *   JSON ticks in batches of 64 with an event-loop turn between batches; a
 *   quiet feed and a 10-per-second feed shared by all subscribers; fresh
 *   64 KiB buffers for downloads; pages of 128 rows for exports.
 * - Scenarios: throughput of one subscriber; memory of idle subscriptions;
 *   fan-out latency and CPU per delivery (2,000 subscribers at 10 events/s;
 *   `fanout-20k`: 20,000 at 1 event/s, with RSS per subscription, as many as
 *   the open-file limits of both processes allow; `keyed`: 10,000 subscribers
 *   each to 1 of 1,000 keys, 10,000 events/s across the keys; `mux`: 2,000
 *   clients × 10 subscriptions (1 value/s each) on one multiplexed connection
 *   per client (wire protocol v1.1), against the same 20,000 subscriptions on
 *   a connection each, CPU per delivery and RSS and heap per subscription;
 *   `fanout-redis`: 2 server processes x 2,000 subscribers on one
 *   `RedisTopic`, against the same 2 processes on in-memory Topics, with a
 *   `redis-server` of the bench's own when installed); reconnect storms
 *   (`storm`: 2,000 clients subscribe in one tick to the 10-per-second feed
 *   200 subscribers receive, `storm-20k`: 20,000 to the 1-per-second one,
 *   retrying 503s after `Retry-After` plus jitter as the generated client
 *   does; ours with the library's default admission and metrics: time until
 *   all are admitted, 503s, connection errors, the live subscribers' lag,
 *   `/health` and `/metrics` answer times); heap of a
 *   stalled subscriber; download speed (from a Stream and, where a server
 *   has one, from a Node `Readable`) and memory with a slow reader (counted
 *   from after a warm-up transfer and a full GC: the peak RSS, and what the
 *   transfer holds after a full GC); export
 *   speed (CSV, NDJSON, JSON; rows with a Date and an optional field);
 *   memory of 200 exports whose clients read nothing; the client SSE parser
 *   (in process). Subscriptions of ours are
 *   measured on a `Topic` and on a Stream per subscriber (the general path).
 * - Several rounds where the figure is a speed, or the slow reader's memory
 *   (implementations alternating order), the median is shown and the ratio of medians to `raw` (or to the
 *   scenario's baseline). The load average is recorded at the start and the
 *   end: other work on the machine skews the figures, the ratios less so.
 * - Output: markdown tables on stdout, the same data in bench/results.json
 *   (bench/results.quick.json for --quick, bench/results.partial.json for a
 *   run of some scenarios or implementations; neither is committed). A full
 *   run also renders bench/RESULTS.md from what it wrote to results.json.
 *
 * Flags: --quick (small smoke version of every scenario), --scenario=a,b,
 * --impl=a,b, --rounds=N, --profile (servers run with --cpu-prof, profiles in
 * bench/profiles/<label>/; read them with `npx tsx bench/profile-top.ts <file>`);
 * --render alone writes bench/RESULTS.md from the committed bench/results.json
 * and measures nothing; --merge with --scenario= puts the scenarios measured
 * into bench/results.json (replacing their earlier tables, marked with their
 * own run) and renders bench/RESULTS.md.
 *
 * Adding a peer: write bench/servers/<name>.ts following `harness.ts` and
 * list it in `implementations`.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process"
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import type { Announcement, Route, RouteName, Routes, Stats } from "./harness.ts"
import type { Job, Result } from "./load.ts"
import { defaults as admissionDefaults } from "../src/server/internal/Admission.ts"
import { downloadChunkBytes, fanoutRate, keyCount, keyedRate, sparseRate, symbolCount, symbolRate } from "./workload.ts"

const benchDir = Path.dirname(fileURLToPath(import.meta.url))
const repoDir = Path.dirname(benchDir)

// ---------------------------------------------------------------- settings

const argv = process.argv.slice(2)
const flag = (name: string): boolean => argv.includes(`--${name}`)
const option = (name: string): Array<string> | undefined => {
  const arg = argv.find((a) => a.startsWith(`--${name}=`))
  return arg === undefined ? undefined : arg.slice(name.length + 3).split(",").filter((s) => s !== "")
}
for (const arg of argv) {
  if (!["--quick", "--profile", "--render", "--merge"].includes(arg) && !/^--(scenario|impl)=/.test(arg) && !/^--rounds=[1-9][0-9]?$/.test(arg)) {
    console.error(`unknown argument ${arg}; use --quick, --profile, --scenario=a,b, --impl=a,b, --rounds=N, --merge, or --render alone`)
    process.exit(2)
  }
}

const quick = flag("quick")
const profile = flag("profile")
/** `--render`: only write bench/RESULTS.md from the committed bench/results.json (nothing is measured). */
const render = flag("render")
if (render && argv.length > 1) {
  console.error("--render takes no other argument: it renders bench/results.json as it is")
  process.exit(2)
}
/** `--rounds=N`: rounds of the speed scenarios (default 3, 1 with `--quick`). */
const rounds = option("rounds")?.map(Number)[0]
/**
 * `--merge` (with `--scenario=`, without `--quick` or `--impl=`): the
 * scenarios measured replace (or join) the same scenarios in
 * bench/results.json, each marked with the run it comes from; the others stay
 * as they were, and bench/RESULTS.md is rendered again.
 */
const merge = flag("merge")
if (merge && (quick || option("scenario") === undefined || option("impl") !== undefined)) {
  console.error("--merge takes --scenario= (and neither --quick nor --impl=): it replaces those scenarios' tables in bench/results.json")
  process.exit(2)
}
const MiB = 1024 * 1024

const presets = quick
  ? {
    rounds: 1,
    throughputWarmupMs: 300,
    throughputWindowMs: 500,
    idleConnections: 500,
    fanoutSubscribers: 200,
    fanoutWarmupMs: 300,
    fanoutWindowMs: 1000,
    fanoutGraceMs: 300,
    fanoutConnectDeadlineMs: 10_000,
    wideSubscribers: 1000,
    wideWarmupMs: 1000,
    wideWindowMs: 2000,
    wideConnectDeadlineMs: 15_000,
    keyedSubscribers: 1000,
    keyedConnectDeadlineMs: 10_000,
    muxClients: 100,
    muxWarmupMs: 500,
    muxWindowMs: 2000,
    muxConnectDeadlineMs: 15_000,
    stormLive: 20,
    stormArrivals: 200,
    stormWideArrivals: 1000,
    stormWarmupMs: 1000,
    stormCutoffMs: 5000,
    stormMinWindowMs: 1000,
    slowReadMs: 300,
    slowStallMs: 3000,
    downloadWarmupBytes: 8 * MiB,
    downloadBytes: 64 * MiB,
    slowReaderBytesPerSecond: 20e6,
    slowReaderMs: 1000,
    exportRows: 50_000,
    stalledExports: 50,
    stalledExportsMs: 3000
  }
  : {
    rounds: 3,
    throughputWarmupMs: 1000,
    throughputWindowMs: 2000,
    idleConnections: 10_000,
    fanoutSubscribers: 2000,
    fanoutWarmupMs: 1000,
    fanoutWindowMs: 3000,
    fanoutGraceMs: 1000,
    fanoutConnectDeadlineMs: 8000,
    wideSubscribers: 20_000,
    wideWarmupMs: 1500,
    wideWindowMs: 5000,
    wideConnectDeadlineMs: 60_000,
    keyedSubscribers: 10_000,
    keyedConnectDeadlineMs: 30_000,
    muxClients: 2000,
    muxWarmupMs: 1500,
    muxWindowMs: 5000,
    muxConnectDeadlineMs: 60_000,
    stormLive: 200,
    stormArrivals: 2000,
    stormWideArrivals: 20_000,
    stormWarmupMs: 2000,
    stormCutoffMs: 90_000,
    stormMinWindowMs: 5000,
    slowReadMs: 500,
    slowStallMs: 20_000,
    downloadWarmupBytes: 64 * MiB,
    downloadBytes: 1024 * MiB,
    slowReaderBytesPerSecond: 20e6,
    slowReaderMs: 3000,
    exportRows: 1_000_000,
    stalledExports: 200,
    stalledExportsMs: 20_000
  }
const resultsFile = Path.join(benchDir, "results.json")
const resultsMarkdownFile = Path.join(benchDir, "RESULTS.md")
/** The run `--render` renders; its settings are the ones the tables read. */
const stored: Report | undefined = render ? JSON.parse(readFileSync(resultsFile, "utf8")) as Report : undefined
const settings = stored !== undefined ? { ...presets, ...stored.settings } : rounds === undefined ? presets : { ...presets, rounds }
const startupTimeoutMs = 30_000

// ---------------------------------------------------------------- implementations

interface Implementation {
  /** Used by `--impl=`. */
  readonly id: string
  readonly label: string
  readonly file: string
  /** Adds a throughput row with our own client (`client/effect/StreamClient.ts`) in the load process. */
  readonly clientRow?: boolean
}

const baseline = "raw"
const implementations: ReadonlyArray<Implementation> = [
  { id: "raw", label: "raw node:http", file: "servers/raw.ts" },
  { id: "effect-stream-rpc", label: "effect-stream-rpc (ours)", file: "servers/effect-stream-rpc.ts", clientRow: true },
  { id: "trpc", label: "tRPC v11", file: "servers/trpc.ts" },
  { id: "orpc", label: "oRPC", file: "servers/orpc.ts" },
  { id: "effect-rpc", label: "@effect/rpc (HTTP ndjson)", file: "servers/effect-rpc.ts" },
  { id: "better-sse", label: "better-sse", file: "servers/better-sse.ts" }
]

// ---------------------------------------------------------------- processes

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

/**
 * Starts `node <args>` with the open-file limit raised as far as allowed
 * (`ulimit -n` is per process: 10,000 sockets need more than the usual 1024).
 */
const spawnNode = (args: ReadonlyArray<string>, env?: Readonly<Record<string, string>>): ChildProcess => {
  const child = spawn(
    "bash",
    ["-c", "ulimit -n 65536 2>/dev/null || ulimit -n hard 2>/dev/null; exec \"$0\" \"$@\"", process.execPath, ...args],
    { cwd: repoDir, stdio: ["pipe", "pipe", "pipe"], ...(env === undefined ? {} : { env: { ...process.env, ...env } }) }
  )
  running.add(child)
  child.on("exit", () => running.delete(child))
  return child
}

/** Splits a child's stdout into lines. */
const onLines = (child: ChildProcess, handle: (line: string) => void): void => {
  let pending = ""
  child.stdout!.setEncoding("utf8").on("data", (text: string) => {
    pending += text
    let newline: number
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, newline)
      pending = pending.slice(newline + 1)
      handle(line)
    }
  })
}

const keepTail = (child: ChildProcess): (() => string) => {
  let text = ""
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    text = (text + chunk).slice(-4000)
  })
  return () => text.trim()
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

interface Server {
  readonly pid: number
  readonly port: number
  readonly routes: Routes
  /** Seconds of CPU (user + system) the server has used, or undefined off Linux. */
  readonly cpuSeconds: () => number | undefined
  /** RSS of the server when it announced its port, in bytes, or undefined off Linux. */
  readonly startRss: number | undefined
  /** Peak RSS of the server so far in bytes, or undefined off Linux. */
  readonly peakRss: () => number | undefined
  /**
   * Resets the peak RSS to the RSS of the moment (Linux `clear_refs`) and
   * returns that RSS; undefined where it cannot (the peak then counts from the start).
   */
  readonly resetPeakRss: () => number | undefined
  /** RSS of the server now in bytes, or undefined off Linux. */
  readonly rss: () => number | undefined
  /** Memory after a full GC, reported by the server itself. */
  readonly stats: () => Promise<Stats>
  /** Throws if the server died on its own. */
  readonly assertAlive: () => void
  readonly stop: () => Promise<void>
}

const startServer = (implementation: Implementation, label: string, env?: Readonly<Record<string, string>>): Promise<Server> =>
  new Promise((resolve, reject) => {
    const flags = profile
      // One directory per server: the tsx loader thread writes a profile of its own (the smaller file).
      ? ["--cpu-prof", "--cpu-prof-dir", Path.join(benchDir, "profiles", label)]
      : []
    const child = spawnNode(["--expose-gc", ...flags, "--import", "tsx", Path.join(benchDir, implementation.file)], env)
    const stderr = keepTail(child)
    let announced: Announcement | undefined
    let stopping = false
    let exit: string | undefined
    const statsWaiters: Array<{ resolve: (s: Stats) => void; reject: (e: Error) => void }> = []
    const failure = (why: string) =>
      new Error(
        `server ${implementation.id} (${implementation.file}) ${why}` +
          (stderr() === "" ? "" : `\n--- its stderr ---\n${stderr()}`)
      )
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(failure(`did not announce its port within ${startupTimeoutMs / 1000} s`))
    }, startupTimeoutMs)
    const exited = new Promise<void>((resolveExit) => {
      child.on("exit", (code, signal) => {
        exit = signal !== null ? `signal ${signal}` : `code ${code}`
        clearTimeout(timer)
        if (announced === undefined) reject(failure(`exited (${exit}) before announcing its port`))
        for (const waiter of statsWaiters.splice(0)) waiter.reject(failure(`exited (${exit})`))
        resolveExit()
      })
    })
    child.on("error", (error) => {
      clearTimeout(timer)
      reject(failure(`could not be started: ${error.message}`))
    })
    child.stdin!.on("error", () => {})
    onLines(child, (line) => {
      let parsed: unknown
      try {
        parsed = JSON.parse(line)
      } catch {
        parsed = undefined
      }
      if (announced !== undefined) {
        const stats = (parsed as { stats?: Stats } | undefined)?.stats
        if (stats !== undefined) statsWaiters.shift()?.resolve(stats)
        return
      }
      const value = parsed as Partial<Announcement> | undefined
      if (typeof value?.port !== "number" || !Number.isInteger(value.port) || value.port <= 0) {
        child.kill("SIGKILL")
        clearTimeout(timer)
        reject(failure(`printed ${JSON.stringify(line)} instead of {"port":N,"routes":{...}}`))
        return
      }
      announced = { port: value.port, routes: value.routes ?? {} }
      clearTimeout(timer)
      const pid = child.pid!
      resolve({
        pid,
        port: announced.port,
        routes: announced.routes,
        cpuSeconds: () => procCpuSeconds(pid),
        startRss: procMemory(pid, "VmRSS"),
        peakRss: () => procMemory(pid, "VmHWM"),
        resetPeakRss: () => {
          try {
            writeFileSync(`/proc/${pid}/clear_refs`, "5")
          } catch {
            return undefined
          }
          return procMemory(pid, "VmRSS")
        },
        rss: () => procMemory(pid, "VmRSS"),
        stats: () =>
          new Promise<Stats>((resolveStats, rejectStats) => {
            if (exit !== undefined) return rejectStats(failure(`exited (${exit})`))
            statsWaiters.push({ resolve: resolveStats, reject: rejectStats })
            child.stdin!.write("stats\n")
          }),
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

/**
 * Runs one job in a fresh load process. `onMark` is called at each of its
 * marks (no wait); `onBarrier` at each barrier, the load process waiting
 * until it is done. The process is killed after `timeoutMs`.
 */
const runLoad = (
  job: Job,
  timeoutMs: number,
  hooks: {
    readonly onMark?: (name: string) => void
    readonly onBarrier?: (name: string) => Promise<void>
  } = {}
): Promise<Result> =>
  new Promise((resolve, reject) => {
    const child = spawnNode(["--import", "tsx", Path.join(benchDir, "load.ts"), JSON.stringify(job)])
    const stderr = keepTail(child)
    let settled = false
    const settle = (outcome: () => void) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      outcome()
    }
    const failure = (why: string) =>
      new Error(`load generator (${job.kind}) ${why}${stderr() === "" ? "" : `\n--- its stderr ---\n${stderr()}`}`)
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      settle(() => reject(failure(`did not finish within its ${Math.round(timeoutMs / 1000)} s limit`)))
    }, timeoutMs)
    child.stdin!.on("error", () => {})
    onLines(child, (line) => {
      let message: { mark?: string; barrier?: string; result?: Result; error?: string }
      try {
        message = JSON.parse(line)
      } catch {
        return
      }
      if (message.mark !== undefined) hooks.onMark?.(message.mark)
      else if (message.barrier !== undefined) {
        const name = message.barrier
        Promise.resolve(hooks.onBarrier?.(name)).then(
          () => child.stdin!.write("go\n"),
          (error: unknown) => {
            child.kill("SIGKILL")
            settle(() => reject(error instanceof Error ? error : new Error(String(error))))
          }
        )
      } else if (message.result !== undefined) {
        const result = message.result
        settle(() => resolve(result))
      } else if (message.error !== undefined) {
        const error = message.error
        settle(() => reject(failure(`failed: ${error}`)))
      }
    })
    child.on("exit", (code, signal) => {
      settle(() => reject(failure(`exited (${signal ?? `code ${code}`}) without a result`)))
    })
  })

// ---------------------------------------------------------------- scenarios

type Trial = Record<string, number | string | boolean>

interface Subject {
  readonly implementation: Implementation
  readonly route: Route
  /** Label of the row. */
  readonly label: string
  /** Our client instead of the raw-socket reader (throughput only). */
  readonly client?: boolean
  /** The `mux` route: many subscriptions per connection (the `mux` scenario). */
  readonly mux?: boolean
}

interface Scenario {
  readonly id: string
  readonly title: string
  /** The route the scenario requests; `fallback` when a server does not announce it. */
  readonly route: RouteName
  readonly fallback?: RouteName
  readonly rounds: number
  /** The environment of the scenario's servers (default: none, and a spare server may serve). */
  readonly serverEnv?: Readonly<Record<string, string>>
  /** The figure the table is sorted by and ratios are taken of; higher is better unless `lowerIsBetter`. */
  readonly measure: (server: Server, subject: Subject) => Promise<Trial>
  /** Extra subjects for an implementation (the row with our own client). */
  readonly extraSubjects?: (implementation: Implementation, routes: ReadonlyArray<Route>) => ReadonlyArray<Subject>
  readonly table: (rows: ReadonlyArray<Row>) => Array<string>
}

interface Row {
  readonly subject: string
  readonly implementation: string
  /** Median of each numeric figure over the trials. */
  readonly median: Record<string, number>
  readonly trials: ReadonlyArray<Trial>
  readonly error?: string
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const round = (n: number, digits = 4) => Number(n.toPrecision(digits))

/**
 * Runs `job`, taking the server's memory figures at the load's `baseline`
 * barrier (before its subscriptions) and `held` barrier (with all of them).
 */
const runLoadHeld = async (
  server: Server,
  job: Job,
  timeoutMs: number,
  onMark?: (name: string) => void
): Promise<{ readonly result: Result; readonly before: Stats | undefined; readonly after: Stats | undefined }> => {
  let before: Stats | undefined
  let after: Stats | undefined
  const result = await runLoad(job, timeoutMs, {
    ...(onMark === undefined ? {} : { onMark }),
    onBarrier: async (name) => {
      if (name === "baseline") before = await server.stats()
      if (name === "held") after = await server.stats()
    }
  })
  return { result, before, after }
}

/** Server CPU (cores) between the load process's `window-start` and `window-end` marks. */
const cpuWindow = (server: Server) => {
  let cpu0: number | undefined
  let t0 = 0
  let share: number | undefined
  return {
    onMark: (name: string) => {
      if (name === "window-start") {
        cpu0 = server.cpuSeconds()
        t0 = performance.now()
      } else if (name === "window-end") {
        const cpu1 = server.cpuSeconds()
        if (cpu0 !== undefined && cpu1 !== undefined) share = (cpu1 - cpu0) / ((performance.now() - t0) / 1000)
      }
    },
    figures: (): Trial => (share === undefined ? {} : { serverCpu: round(share, 2) })
  }
}

/** The server's RSS when it started and its growth to the peak, in MiB. */
const memoryFigures = (server: Server): Trial => {
  const peak = server.peakRss()
  if (peak === undefined || server.startRss === undefined) return {}
  return { serverStartRssMiB: round(server.startRss / MiB, 3), serverRssGrowthMiB: round((peak - server.startRss) / MiB, 3) }
}

const fill = (route: Route, values: Record<string, number | string>): Route => {
  const substitute = (text: string) => text.replace(/\{(\w+)\}/g, (whole, name: string) => String(values[name] ?? whole))
  return { ...route, path: substitute(route.path), ...(route.body === undefined ? {} : { body: substitute(route.body) }) }
}

// ---- formatting

const int = (n: number | undefined): string => (n === undefined || !Number.isFinite(n) ? "–" : Math.round(n).toLocaleString("en-US"))
const num = (n: number | undefined, digits = 3): string =>
  n === undefined || !Number.isFinite(n) ? "–" : Number(n.toPrecision(digits)).toLocaleString("en-US", { maximumFractionDigits: 2 })
const pct = (share: number | undefined): string => (share === undefined ? "–" : `${Math.round(share * 100)}%`)
const times = (value: number | undefined, base: number | undefined): string =>
  value === undefined || base === undefined || base === 0 || !Number.isFinite(value) ? "–" : `${(value / base).toFixed(2)}×`
const kib = (bytes: number | undefined): string => (bytes === undefined ? "–" : `${num(bytes / 1024)} KiB`)
const mib = (value: number | undefined): string => (value === undefined ? "–" : `${num(value)} MiB`)
const size = (bytes: number): string => (bytes >= 1024 * MiB ? `${bytes / (1024 * MiB)} GiB` : `${bytes / MiB} MiB`)

const baseRow = (rows: ReadonlyArray<Row>): Row | undefined =>
  rows.find((r) => r.implementation === baseline && r.error === undefined)

/** The first cell of a row, or its failure. */
const failed = (row: Row, columns: number): string | undefined =>
  row.error === undefined ? undefined : `| ${row.subject} | failed: ${row.error.split("\n")[0]!.replaceAll("|", "\\|")} |${" |".repeat(columns - 2)}`

// ---- 1. throughput

const throughputScenario: Scenario = {
  id: "throughput",
  title: "Throughput: one subscriber, ~100-byte JSON events",
  route: "ticks",
  rounds: settings.rounds,
  extraSubjects: (implementation, routes) =>
    implementation.clientRow === true && routes[0] !== undefined
      ? [{
        implementation,
        route: routes[0],
        label: `${implementation.label}, with our client (StreamClient)`,
        client: true
      }]
      : [],
  measure: async (server, subject) => {
    const cpu = cpuWindow(server)
    const timing = { warmupMs: settings.throughputWarmupMs, windowMs: settings.throughputWindowMs }
    const job: Job = subject.client === true
      ? { kind: "throughputClient", port: server.port, ...timing }
      : { kind: "throughput", port: server.port, route: subject.route, ...timing }
    const result = await runLoad(job, timing.warmupMs + timing.windowMs + 20_000, { onMark: cpu.onMark })
    server.assertAlive()
    return { ...result, ...cpu.figures(), ...memoryFigures(server) }
  },
  table: (rows) => {
    const base = baseRow(rows)?.median["value"]
    const lines = [
      "| implementation | events/s | × raw | wire MB/s | dropped (sliding policy) | server CPU | load-generator CPU | server RSS: start + growth |",
      "|---|---:|---:|---:|---:|---:|---:|---:|"
    ]
    for (const row of rows) {
      const m = row.median
      lines.push(
        failed(row, 8) ??
          `| ${row.subject} | ${int(m["value"])} | ${times(m["value"], base)} | ${num(m["bodyMBps"])} | ${pct(m["droppedShare"])} | ${
            pct(m["serverCpu"])
          } | ${pct(m["clientCpu"])} | ${int(m["serverStartRssMiB"])} + ${int(m["serverRssGrowthMiB"])} MiB |`
      )
    }
    return lines
  }
}

// ---- 2. idle

const idleScenario: Scenario = {
  id: "idle",
  title: `Idle subscriptions: ${settings.idleConnections.toLocaleString("en-US")} held open`,
  route: "idle",
  rounds: 1,
  measure: async (server, subject) => {
    const job: Job = {
      kind: "idle",
      port: server.port,
      route: subject.route,
      connections: settings.idleConnections,
      warmConnections: Math.min(200, settings.idleConnections / 10),
      concurrency: 300
    }
    const { result, before, after } = await runLoadHeld(server, job, 60_000 + settings.idleConnections * 15)
    server.assertAlive()
    if (before === undefined || after === undefined) throw new Error("no memory figures")
    const n = Number(result["connections"])
    return {
      ...result,
      rssPerConnection: (after.rss - before.rss) / n,
      heapPerConnection: (after.heapUsed - before.heapUsed) / n,
      externalPerConnection: (after.external - before.external) / n,
      baselineRssMiB: round(before.rss / MiB, 3),
      baselineHeapMiB: round(before.heapUsed / MiB, 3)
    }
  },
  table: (rows) => {
    const base = baseRow(rows)?.median
    const lines = [
      "| implementation | RSS / subscription | × raw | heap / subscription | × raw | server RSS → with all held | time to open all |",
      "|---|---:|---:|---:|---:|---:|---:|"
    ]
    for (const row of rows) {
      const m = row.median
      const held = m["baselineRssMiB"]! + (m["rssPerConnection"]! * settings.idleConnections) / MiB
      lines.push(
        failed(row, 7) ??
          `| ${row.subject} | ${kib(m["rssPerConnection"])} | ${times(m["rssPerConnection"], base?.["rssPerConnection"])} | ${
            kib(m["heapPerConnection"])
          } | ${times(m["heapPerConnection"], base?.["heapPerConnection"])} | ${int(m["baselineRssMiB"])} → ${int(held)} MiB | ${
            num(m["connectSeconds"], 2)
          } s |`
      )
    }
    return lines
  }
}

// ---- 3. fan-out

/**
 * Sockets a process can still accept: its open-file limit minus the files it
 * has open, less a margin (Linux; elsewhere unlimited). Each process of a run
 * gets the hard limit (`spawnNode`).
 */
const socketHeadroom = (pid: number): number => {
  try {
    const limit = Number(/^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, "latin1"))?.[1])
    const open = readdirSync(`/proc/${pid}/fd`).length
    return Number.isFinite(limit) ? limit - open - 32 : Infinity
  } catch {
    return Infinity
  }
}

interface FanoutOptions {
  readonly id: string
  readonly title: string
  readonly route: RouteName
  readonly subscribers: number
  readonly warmupMs: number
  readonly windowMs: number
  readonly connectDeadlineMs: number
  /** Subscriber i watches key `k<i % keyCount>` of the keyed feed. */
  readonly keyed?: boolean
  /** Server RSS per subscription (memory barriers before subscribing and with all held). */
  readonly memory?: boolean
}

/** Fan-out of a shared feed to many subscribers: delivery, latency, server CPU per delivery (and memory). */
const fanoutScenarioOf = (options: FanoutOptions): Scenario => ({
  id: options.id,
  title: options.title,
  route: options.route,
  rounds: 1,
  measure: async (server, subject) => {
    const cpu = cpuWindow(server)
    // The server accepts one socket per subscriber: more than its open-file limit allows would fail with EMFILE.
    const serverHeadroom = socketHeadroom(server.pid)
    const job: Job = {
      kind: "fanout",
      port: server.port,
      route: subject.route,
      subscribers: Math.min(options.subscribers, serverHeadroom),
      concurrency: 200,
      warmupMs: options.warmupMs,
      windowMs: options.windowMs,
      graceMs: settings.fanoutGraceMs,
      connectDeadlineMs: options.connectDeadlineMs,
      ...(options.keyed === true ? { keyed: true } : {}),
      ...(options.memory === true ? { memory: true } : {})
    }
    const { result, before, after } = await runLoadHeld(server, job, 30_000 + options.connectDeadlineMs + options.warmupMs + options.windowMs + settings.fanoutGraceMs, cpu.onMark)
    server.assertAlive()
    const cpuShare = cpu.figures()["serverCpu"]
    const deliveriesPerSecond = Number(result["deliveries"]) / Number(result["seconds"])
    const held = Number(result["subscribedAtEnd"])
    const capped = Math.min(options.subscribers, serverHeadroom, Number(result["subscribersCappedByFileLimit"] ?? Infinity))
    return {
      ...result,
      ...cpu.figures(),
      ...(capped < options.subscribers ? { subscribersAllowedByFileLimits: capped } : {}),
      ...(typeof cpuShare === "number" && deliveriesPerSecond > 0
        ? { cpuMicrosPerDelivery: round((cpuShare * 1e6) / deliveriesPerSecond, 3) }
        : {}),
      ...(before !== undefined && after !== undefined && held > 0
        ? { rssPerSubscription: round((after.rss - before.rss) / held), baselineRssMiB: round(before.rss / MiB, 3) }
        : {})
    }
  },
  table: (rows) => {
    const base = baseRow(rows)?.median
    const memory = options.memory === true
    const lines = [
      `| implementation | subscribed (time to subscribe) | delivered (within the grace period) | p50 latency | p99 latency | p99 × raw | max | server CPU | CPU per delivery | × raw |${
        memory ? " RSS / subscription | × raw |" : ""
      }`,
      `|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|${memory ? "---:|---:|" : ""}`
    ]
    for (const row of rows) {
      const m = row.median
      lines.push(
        failed(row, memory ? 12 : 10) ??
          `| ${row.subject} | ${int(m["subscribers"])} (${num(m["connectSeconds"], 2)} s) | ${pct(m["deliveredShare"])} | ${
            num(m["p50Ms"])
          } ms | ${num(m["p99Ms"])} ms | ${times(m["p99Ms"], base?.["p99Ms"])} | ${num(m["maxMs"])} ms | ${pct(m["serverCpu"])} | ${
            num(m["cpuMicrosPerDelivery"])
          } µs | ${times(m["cpuMicrosPerDelivery"], base?.["cpuMicrosPerDelivery"])} |${
            memory ? ` ${kib(m["rssPerSubscription"])} | ${times(m["rssPerSubscription"], base?.["rssPerSubscription"])} |` : ""
          }`
      )
    }
    const capped = rows.map((r) => r.median["subscribersAllowedByFileLimits"]).filter((n): n is number => n !== undefined)
    if (capped.length > 0) {
      lines.push(
        "",
        `Asked for ${options.subscribers.toLocaleString("en-US")} subscribers; the open-file limits (server and load process, ${
          "one socket per subscriber each"
        }) allowed ${Math.min(...capped).toLocaleString("en-US")}: that is the N measured.`
      )
    }
    return lines
  }
})

const fanoutScenario = fanoutScenarioOf({
  id: "fanout",
  title: `Fan-out: one source, ${settings.fanoutSubscribers.toLocaleString("en-US")} subscribers, ${fanoutRate} events/s each`,
  route: "fanout",
  subscribers: settings.fanoutSubscribers,
  warmupMs: settings.fanoutWarmupMs,
  windowMs: settings.fanoutWindowMs,
  connectDeadlineMs: settings.fanoutConnectDeadlineMs
})

const wideFanoutScenario = fanoutScenarioOf({
  id: "fanout-20k",
  title: `Wide fan-out: one source, ${settings.wideSubscribers.toLocaleString("en-US")} subscribers, ${sparseRate} event/s each`,
  route: "sparse",
  subscribers: settings.wideSubscribers,
  warmupMs: settings.wideWarmupMs,
  windowMs: settings.wideWindowMs,
  connectDeadlineMs: settings.wideConnectDeadlineMs,
  memory: true
})

const keyedScenario = fanoutScenarioOf({
  id: "keyed",
  title: `Keyed fan-out: ${settings.keyedSubscribers.toLocaleString("en-US")} subscribers, each to 1 of ${
    keyCount.toLocaleString("en-US")
  } keys; ${keyedRate.toLocaleString("en-US")} events/s published across the keys`,
  route: "keyed",
  subscribers: settings.keyedSubscribers,
  warmupMs: settings.fanoutWarmupMs,
  windowMs: settings.fanoutWindowMs,
  connectDeadlineMs: settings.keyedConnectDeadlineMs,
  keyed: true
})

// ---- 3a. multiplexed subscriptions (wire protocol v1.1)

/**
 * `muxClients` clients × `symbolCount` subscriptions each, to the symbol feed
 * (`symbolRate` values/s per subscription): each client ONE multiplexed
 * connection (route `mux`), against `muxClients × symbolCount` v1
 * connections of one subscription each (route `symbol`, the same
 * subscriptions: 1 in `symbolCount` to each symbol), so both deliver the
 * same values at the same rate. Every subscription's values are checked in
 * order by the load generator (none missing, repeated, or read as another
 * subscription's). Memory per subscription: RSS and heap after a full GC,
 * with all held, less the same before subscribing.
 */
const muxScenario: Scenario = {
  id: "mux",
  title: `Multiplexed subscriptions: ${settings.muxClients.toLocaleString("en-US")} clients × ${symbolCount} subscriptions (${
    symbolRate
  } value/s each), one connection per client (v1.1) against one connection per subscription`,
  route: "symbol",
  rounds: 1,
  extraSubjects: (implementation) =>
    asList(knownRoutes.get(implementation.id)?.mux).map((route) => ({
      implementation,
      route,
      label: route.variant === undefined ? `${implementation.label}, multiplexed` : `${implementation.label}, ${route.variant}`,
      mux: true
    })),
  measure: async (server, subject) => {
    const cpu = cpuWindow(server)
    const mux = subject.mux === true
    const wanted = mux ? settings.muxClients : settings.muxClients * symbolCount
    // The server accepts one socket per connection: more than its open-file limit allows would fail with EMFILE.
    const serverHeadroom = socketHeadroom(server.pid)
    const job: Job = {
      kind: "subscriptions",
      port: server.port,
      route: subject.route,
      mux,
      connections: Math.min(wanted, serverHeadroom),
      concurrency: 200,
      warmupMs: settings.muxWarmupMs,
      windowMs: settings.muxWindowMs,
      graceMs: settings.fanoutGraceMs,
      connectDeadlineMs: settings.muxConnectDeadlineMs
    }
    const { result, before, after } = await runLoadHeld(server, job, 30_000 + job.connectDeadlineMs + job.warmupMs + job.windowMs + job.graceMs, cpu.onMark)
    server.assertAlive()
    const cpuShare = cpu.figures()["serverCpu"]
    const deliveriesPerSecond = Number(result["deliveries"]) / Number(result["seconds"])
    const held = Number(result["subscribedAtEnd"])
    const capped = Math.min(wanted, serverHeadroom, Number(result["connectionsCappedByFileLimit"] ?? Infinity))
    return {
      ...result,
      mux: mux ? 1 : 0,
      ...cpu.figures(),
      ...(capped < wanted ? { connectionsAllowedByFileLimits: capped } : {}),
      ...(typeof cpuShare === "number" && deliveriesPerSecond > 0
        ? { cpuMicrosPerDelivery: round((cpuShare * 1e6) / deliveriesPerSecond, 3) }
        : {}),
      ...(before !== undefined && after !== undefined && held > 0
        ? {
          rssPerSubscription: round((after.rss - before.rss) / held),
          heapPerSubscription: round((after.heapUsed - before.heapUsed) / held),
          externalPerSubscription: round((after.external - before.external) / held),
          baselineRssMiB: round(before.rss / MiB, 3)
        }
        : {})
    }
  },
  table: (rows) => {
    const base = baseRow(rows)?.median
    /** The same implementation's row with one connection per subscription. */
    const single = (row: Row) => rows.find((r) => r.implementation === row.implementation && r.error === undefined && r.median["mux"] !== 1)?.median
    const lines = [
      "| implementation | subscriptions (connections; time to subscribe) | delivered (within the grace period) | missing / repeated / misattributed | p50 latency | p99 latency | p99 × raw | server CPU | CPU per delivery | × raw | × single | RSS / subscription | × raw | × single | heap / subscription | × raw | × single |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    ]
    for (const row of rows) {
      const m = row.median
      const s = single(row)
      lines.push(
        failed(row, 17) ??
          `| ${row.subject} | ${int(m["subscribers"])} (${int(m["connections"])}; ${num(m["connectSeconds"], 2)} s) | ${
            pct(m["deliveredShare"])
          } | ${int((m["missingInWindow"] ?? 0) + (m["gaps"] ?? 0))} / ${int(m["repeats"])} / ${int(m["misattributed"])} | ${num(m["p50Ms"])} ms | ${
            num(m["p99Ms"])
          } ms | ${times(m["p99Ms"], base?.["p99Ms"])} | ${pct(m["serverCpu"])} | ${num(m["cpuMicrosPerDelivery"])} µs | ${
            times(m["cpuMicrosPerDelivery"], base?.["cpuMicrosPerDelivery"])
          } | ${times(m["cpuMicrosPerDelivery"], s?.["cpuMicrosPerDelivery"])} | ${kib(m["rssPerSubscription"])} | ${
            times(m["rssPerSubscription"], base?.["rssPerSubscription"])
          } | ${times(m["rssPerSubscription"], s?.["rssPerSubscription"])} | ${kib(m["heapPerSubscription"])} | ${
            times(m["heapPerSubscription"], base?.["heapPerSubscription"])
          } | ${times(m["heapPerSubscription"], s?.["heapPerSubscription"])} |`
      )
    }
    const capped = rows.map((r) => r.median["connectionsAllowedByFileLimits"]).filter((n): n is number => n !== undefined)
    lines.push(
      "",
      `× raw: to raw node:http with one connection per subscription; × single: to the same implementation with one connection per subscription. ${
        "Missing: values of a subscription never received (a gap in its sequence, or owed in the window and not received within the grace period); "
      }repeated: received twice or out of order; misattributed: a value of another symbol read as this subscription's (the \`sub:\` line is sticky).`
    )
    if (capped.length > 0) {
      lines.push(
        "",
        `Asked for ${(settings.muxClients * symbolCount).toLocaleString("en-US")} single-subscription connections; the open-file limits (server and load process) allowed ${
          Math.min(...capped).toLocaleString("en-US")
        }: that is the N measured for those rows (figures are per subscription).`
      )
    }
    return lines
  }
}

// ---- 3b. fan-out across instances (RedisTopic)

/**
 * Two server processes of our implementation, the subscribers split between
 * them, each process's live feed topic either its own in-memory `Topic` (each
 * runs the feed) or one `RedisTopic` on a Redis of the bench's own (one
 * process publishes the feed, both read it back): the same handlers, a
 * Layer swap. Both modes in every trial, in alternating order; CPU per
 * delivery is the two servers' CPU over the deliveries of the window.
 */
const instancesSubscribers = quick ? 200 : 2000
const instancesWindowMs = quick ? 1000 : 5000
const instancesWarmupMs = quick ? 500 : 1500
let instancesRound = 0

/** One inline command to a Redis on 127.0.0.1: its reply's first line, "" when none. */
const redisInline = (port: number, command: string): Promise<string> =>
  new Promise((resolve) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    socket.once("connect", () => socket.write(`${command}\r\n`))
    socket.once("data", (bytes) => {
      socket.destroy()
      resolve(bytes.toString("latin1"))
    })
    socket.once("error", () => resolve(""))
  })

/** Seconds of CPU a Redis has used (`INFO cpu`: user + system), undefined when it does not answer. */
const redisCpuSeconds = async (port: number): Promise<number | undefined> => {
  const info = await redisInline(port, "INFO cpu")
  const user = /used_cpu_user:([\d.]+)/.exec(info)?.[1]
  const sys = /used_cpu_sys:([\d.]+)/.exec(info)?.[1]
  return user === undefined || sys === undefined ? undefined : Number(user) + Number(sys)
}

/** `redis-server` on a free port with no persistence (its CPU is then this bench's alone), or undefined when not installed. */
const startBenchRedis = async (): Promise<{ url: string; stop: () => Promise<void> } | undefined> => {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" })
  } catch {
    return undefined
  }
  const port = await new Promise<number>((resolve, reject) => {
    const probe = Net.createServer()
    probe.once("error", reject)
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as Net.AddressInfo
      probe.close(() => resolve(port))
    })
  })
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore"
  })
  running.add(child)
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  child.once("exit", () => running.delete(child))
  const deadline = performance.now() + 10_000
  while (!(await redisInline(port, "PING")).startsWith("+PONG")) {
    if (performance.now() > deadline || child.exitCode !== null) throw new Error(`redis-server on port ${port} did not start`)
    await sleep(50)
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill("SIGKILL")
      await exited
    }
  }
}

/** CPU seconds of several processes together between the load process's window marks, per second of window. */
const cpuWindowOf = (samplers: ReadonlyArray<() => number | undefined>) => {
  const total = () => {
    let sum = 0
    for (const sample of samplers) {
      const seconds = sample()
      if (seconds === undefined) return undefined
      sum += seconds
    }
    return sum
  }
  let cpu0: number | undefined
  let t0 = 0
  let share: number | undefined
  return {
    onMark: (name: string) => {
      if (name === "window-start") {
        cpu0 = total()
        t0 = performance.now()
      } else if (name === "window-end") {
        const cpu1 = total()
        if (cpu0 !== undefined && cpu1 !== undefined) share = (cpu1 - cpu0) / ((performance.now() - t0) / 1000)
      }
    },
    share: () => share
  }
}

const instancesScenario: Scenario = {
  id: "fanout-redis",
  title: `Fan-out across 2 instances: 2 × ${instancesSubscribers.toLocaleString("en-US")} subscribers, ${fanoutRate} events/s each; ` +
    "RedisTopic (one Redis) against the in-memory Topic",
  route: "fanoutInstances",
  rounds: settings.rounds,
  measure: async (server, subject) => {
    const implementation = subject.implementation
    const measureMode = async (mode: "memory" | "redis"): Promise<Trial> => {
      const redis = mode === "redis" ? await startBenchRedis() : undefined
      const redisUrl = mode === "memory" ? undefined : redis?.url ?? process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
      const stream = `bench:fanout-redis:${process.pid}:${Date.now()}`
      const env = (publishes: boolean): Record<string, string> | undefined =>
        redisUrl === undefined
          ? undefined
          : { BENCH_REDIS_URL: redisUrl, BENCH_REDIS_STREAM: stream, BENCH_REDIS_PUBLISH: publishes ? "1" : "0" }
      const started: Array<Server> = []
      try {
        // In memory, the runner's fresh server is instance A; through Redis both are started with its address.
        const a = mode === "memory" ? server : await startServer(implementation, `fanout-redis-a`, env(true))
        if (a !== server) started.push(a)
        const b = await startServer(implementation, `fanout-redis-${mode}-b`, env(false))
        started.push(b)
        const servers = [a, b]
        const cpu = cpuWindowOf(servers.map((s) => s.cpuSeconds))
        // Redis's own account (`INFO cpu`, microseconds), read at the window's marks
        const redisPort = redis === undefined ? undefined : Number(new URL(redis.url).port)
        let redisCpu0: Promise<number | undefined> | undefined
        let redisCpu1: Promise<number | undefined> | undefined
        let redisT0 = 0
        let redisSeconds = 0
        const job: Job = {
          kind: "fanout",
          port: a.port,
          ports: servers.map((s) => s.port),
          route: subject.route,
          subscribers: 2 * Math.min(instancesSubscribers, ...servers.map((s) => socketHeadroom(s.pid))),
          concurrency: 200,
          warmupMs: instancesWarmupMs,
          windowMs: instancesWindowMs,
          graceMs: settings.fanoutGraceMs,
          // 4,000 sockets over two servers: more time than one server's 2,000
          connectDeadlineMs: quick ? settings.fanoutConnectDeadlineMs : 30_000
        }
        const result = await runLoad(job, 30_000 + job.connectDeadlineMs + job.warmupMs + job.windowMs + job.graceMs, {
          onMark: (name) => {
            cpu.onMark(name)
            if (redisPort === undefined) return
            if (name === "window-start") {
              redisT0 = performance.now()
              redisCpu0 = redisCpuSeconds(redisPort)
            } else if (name === "window-end") {
              redisSeconds = (performance.now() - redisT0) / 1000
              redisCpu1 = redisCpuSeconds(redisPort)
            }
          }
        })
        for (const s of servers) s.assertAlive()
        const deliveriesPerSecond = Number(result["deliveries"]) / Number(result["seconds"])
        const publishedPerSecond = Number(result["published"]) / Number(result["seconds"])
        const share = cpu.share()
        const [r0, r1] = [await redisCpu0, await redisCpu1]
        const redisShare = r0 === undefined || r1 === undefined || redisSeconds === 0 ? undefined : (r1 - r0) / redisSeconds
        // In memory each instance runs a feed of its own: the load generator, which owes every
        // subscriber every stamp it saw, counts both feeds' stamps; a subscriber is owed its instance's.
        const deliveredShare = Number(result["deliveredShare"]) * (mode === "memory" ? servers.length : 1)
        const figures: Trial = {
          subscribers: Number(result["subscribers"]),
          deliveredShare: round(deliveredShare, 3),
          p50Ms: Number(result["p50Ms"]),
          p99Ms: Number(result["p99Ms"]),
          maxMs: Number(result["maxMs"]),
          ...(share === undefined ? {} : { serverCpu: round(share, 3), cpuMicrosPerDelivery: round((share * 1e6) / deliveriesPerSecond, 3) }),
          ...(redisShare === undefined ? {} : {
            redisCpu: round(redisShare, 3),
            redisCpuMicrosPerValue: round((redisShare * 1e6) / publishedPerSecond, 3),
            ...(share === undefined ? {} : { cpuMicrosPerDeliveryWithRedis: round(((share + redisShare) * 1e6) / deliveriesPerSecond, 3) })
          })
        }
        return Object.fromEntries(Object.entries(figures).map(([k, v]) => [`${mode}_${k}`, v]))
      } finally {
        for (const s of started) await s.stop()
        if (redis !== undefined) await redis.stop()
        else if (redisUrl !== undefined) await redisInline(Number(new URL(redisUrl).port || 6379), `DEL ${stream} ${stream}:meta`)
      }
    }
    const trial: Trial = {}
    // Alternating order over the rounds: whichever runs first finds a cooler machine.
    const order: Array<"memory" | "redis"> = instancesRound++ % 2 === 0 ? ["memory", "redis"] : ["redis", "memory"]
    for (const mode of order) Object.assign(trial, await measureMode(mode))
    const memory = trial["memory_cpuMicrosPerDelivery"]
    const redis = trial["redis_cpuMicrosPerDelivery"]
    if (typeof memory === "number" && typeof redis === "number" && memory > 0) trial["cpuRatio"] = round(redis / memory, 3)
    return trial
  },
  table: (rows) => {
    const lines = [
      "| topic | subscribed | delivered (within the grace period) | p50 latency | p99 latency | max | servers' CPU | CPU per delivery | × in memory | Redis CPU per value | CPU per delivery with Redis's |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    ]
    for (const row of rows) {
      const m = row.median
      const failure = failed(row, 11)
      if (failure !== undefined) {
        lines.push(failure)
        continue
      }
      for (const mode of ["memory", "redis"] as const) {
        const f = (name: string) => m[`${mode}_${name}`]
        lines.push(
          `| ${mode === "memory" ? "in-memory Topic, one per instance (each runs the feed)" : "RedisTopic, 2 instances on one Redis"} | ${
            int(f("subscribers"))
          } | ${pct(f("deliveredShare"))} | ${num(f("p50Ms"))} ms | ${num(f("p99Ms"))} ms | ${num(f("maxMs"))} ms | ${pct(f("serverCpu"))} | ${
            num(f("cpuMicrosPerDelivery"))
          } µs | ${mode === "memory" ? "1.00×" : `${num(m["cpuRatio"])}× (median of the rounds' ratios)`} | ${
            mode === "memory" ? "–" : f("redisCpuMicrosPerValue") === undefined ? "not measured" : `${num(f("redisCpuMicrosPerValue"))} µs`
          } | ${mode === "memory" ? "–" : f("cpuMicrosPerDeliveryWithRedis") === undefined ? "–" : `${num(f("cpuMicrosPerDeliveryWithRedis"))} µs`} |`
        )
      }
    }
    return lines
  }
}

// ---- 3c. reconnect storm

/** `/health` and `/metrics` are requested on fresh connections this often through a storm. */
const stormProbeEveryMs = 100
/** Probes unanswered at once at most: each holds a socket in both processes (past it one is skipped). */
const stormMaxProbesOut = 200

/**
 * A reconnect storm (after a deploy, a network blip, a failover):
 * `stormLive` subscribers receive a feed, then `arrivals` clients each
 * open a subscription to it, every connection started in the same
 * tick; a 503 is tried again after its `Retry-After` plus full jitter and a
 * failed connection after the jittered backoff, as the generated client
 * does. Servers run with `BENCH_DEFAULTS=1`: ours as an application that
 * configures nothing (the default admission sheds; raw has none). Measured
 * until every client is admitted (200 and its first value) or the cut-off:
 * how long it took, the 503s and connection errors, the live subscribers'
 * lag, and how long `/health` and `/metrics` took to answer.
 */
const stormScenarioOf = (options: {
  readonly id: string
  readonly arrivals: number
  /** Everyone's feed: 20,000 subscribers at 10 events/s each are past raw's capacity on 2 cores (as `fanout-20k`). */
  readonly feed: "fanout" | "sparse"
}): Scenario => {
  const subscriptions = settings.stormLive + options.arrivals
  const rate = options.feed === "fanout" ? fanoutRate : sparseRate
  // Only when the storm needs more open subscriptions than the default admits (HttpTransport's Options).
  const raised = subscriptions > admissionDefaults.maxSubscriptions
  return {
    id: options.id,
    title: `Reconnect storm: ${options.arrivals.toLocaleString("en-US")} clients subscribe at once to a feed of ${rate} event${
      rate === 1 ? "" : "s"
    }/s that ${settings.stormLive.toLocaleString("en-US")} subscribers receive; cut-off ${settings.stormCutoffMs / 1000} s`,
    route: "storm",
    rounds: 1,
    serverEnv: { BENCH_DEFAULTS: "1", ...(raised ? { BENCH_MAX_SUBSCRIPTIONS: String(subscriptions) } : {}) },
    measure: async (server, subject) => {
      const cpu = cpuWindow(server)
      // The server holds a socket per live subscriber, per arrival and per probe in flight: EMFILE past its limit.
      const serverHeadroom = socketHeadroom(server.pid) - settings.stormLive - stormMaxProbesOut
      const job: Job = {
        kind: "storm",
        port: server.port,
        route: fill(subject.route, { feed: options.feed }),
        live: settings.stormLive,
        arrivals: Math.max(0, Math.min(options.arrivals, serverHeadroom)),
        concurrency: 200,
        connectDeadlineMs: settings.fanoutConnectDeadlineMs,
        warmupMs: settings.stormWarmupMs,
        cutoffMs: settings.stormCutoffMs,
        minWindowMs: settings.stormMinWindowMs,
        graceMs: settings.fanoutGraceMs,
        probeEveryMs: stormProbeEveryMs,
        probePaths: ["/health", "/metrics"],
        maxProbesOut: stormMaxProbesOut
      }
      // The window, then up to 5 s for the probes still out and 5 s for the last /metrics.
      const window = Math.max(job.cutoffMs, job.minWindowMs) + 10_000
      const result = await runLoad(job, 60_000 + job.connectDeadlineMs + job.warmupMs + window + job.graceMs, { onMark: cpu.onMark })
      server.assertAlive()
      const capped = Math.min(job.arrivals, Number(result["arrivalsCappedByFileLimit"] ?? Infinity))
      return { ...result, ...cpu.figures(), ...(capped < options.arrivals ? { arrivalsAllowedByFileLimits: capped } : {}) }
    },
    table: (rows) => stormTable(rows, options.arrivals, raised ? subscriptions : undefined)
  }
}

/** Time to admit every client: its figure, or what was admitted by the cut-off. */
const admittedIn = (m: Record<string, number>): string => {
  const half = m["halfAdmittedSeconds"] === undefined ? "" : ` (half in ${num(m["halfAdmittedSeconds"], 2)} s)`
  return m["allAdmittedSeconds"] === undefined
    ? `not all by ${settings.stormCutoffMs / 1000} s${half}`
    : `${num(m["allAdmittedSeconds"], 3)} s${half}`
}

const stormTable = (rows: ReadonlyArray<Row>, asked: number, raisedTo: number | undefined): Array<string> => {
  const base = baseRow(rows)?.median
  const cutoffSeconds = settings.stormCutoffMs / 1000
  const lines = [
    "| implementation | admitted by the cut-off | time to all admitted | × raw | 503s answered | connection errors | live lag p50 / p99 / max | p99 × raw | live p99 before the storm | live values delivered | /health p99 / max | /metrics p99 / max | probe max × raw | server CPU |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  ]
  for (const row of rows) {
    const m = row.median
    const all = m["allAdmittedSeconds"]
    const timeRatio = all !== undefined ? times(all, base?.["allAdmittedSeconds"]) : `> ${times(cutoffSeconds, base?.["allAdmittedSeconds"])}`
    lines.push(
      failed(row, 14) ??
        `| ${row.subject} | ${int(m["admitted"])} of ${int(m["arrivals"])} | ${admittedIn(m)} | ${timeRatio} | ${int(m["refused"])}${
          (m["refusedOther"] ?? 0) > 0 ? ` (+ ${int(m["refusedOther"])} 502/504)` : ""
        } | ${int(m["connectionErrors"])} | ${num(m["p50Ms"])} / ${num(m["p99Ms"])} / ${num(m["maxMs"])} ms | ${times(m["p99Ms"], base?.["p99Ms"])} | ${
          num(m["beforeP99Ms"])
        } ms | ${pct(m["deliveredShare"])} | ${num(m["healthP99Ms"])} / ${num(m["healthMaxMs"])} ms | ${num(m["metricsP99Ms"])} / ${
          num(m["metricsMaxMs"])
        } ms | ${times(m["probeMaxMs"], base?.["probeMaxMs"])} | ${pct(m["serverCpu"])} |`
    )
  }
  lines.push(
    "",
    `raw node:http admits every connection (it has no admission). effect-stream-rpc serves its Topic route with the library's defaults, the bench setting \`BENCH_DEFAULTS=1\` in its server's environment for the storm scenarios only: \`HttpTransport.layer(BenchApi)\` with no admission options (the front door's row: the same, plus \`frontDoor: true\`, under \`/door\`)${
      raisedTo === undefined ? "" : ` but \`maxSubscriptions: ${raisedTo.toLocaleString("en-US")}\` (the live subscribers and clients asked for; the default admits ${
        admissionDefaults.maxSubscriptions.toLocaleString("en-US")
      })`
    }, with \`MetricsService\` and the Prometheus \`/metrics\`; the other scenarios run it with shedding off. ${
      "Clients try again as the generated client does (client/internal/Backoff.ts): after a 503's Retry-After plus full jitter, after a connection error the jittered backoff alone. "
    }Admitted: a 200 and the first value. Live lag: publish → receive of the values published from the storm's start until all were admitted or the cut-off (at least ${
      settings.stormMinWindowMs / 1000
    } s), received within ${settings.fanoutGraceMs / 1000} s after. Probes: \`GET /health\` and \`GET /metrics\` on fresh connections every ${stormProbeEveryMs} ms through the same window, connect to last byte.`
  )
  for (const row of rows) {
    const notes = stormNotes(row)
    if (notes.length > 0) lines.push("", `${row.subject}: ${notes.join("; ")}.`)
  }
  const capped = rows.map((r) => r.median["arrivalsAllowedByFileLimits"]).filter((n): n is number => n !== undefined)
  if (capped.length > 0) {
    lines.push(
      "",
      `Asked for ${asked.toLocaleString("en-US")} clients; the open-file limits (server and load process, one socket per subscriber and probe each) allowed ${
        Math.min(...capped).toLocaleString("en-US")
      }: that is the N measured.`
    )
  }
  return lines
}

/** What a row's server and clients reported beside the figures: shed reasons, error kinds, losses. */
const stormNotes = (row: Row): Array<string> => {
  const trial = row.trials[0]
  if (trial === undefined) return []
  const text = (key: string) => (typeof trial[key] === "string" && trial[key] !== "" ? trial[key] : undefined)
  const count = (key: string) => (typeof trial[key] === "number" && trial[key] > 0 ? trial[key] : undefined)
  const notes: Array<string> = []
  if (typeof trial["loadLoopDelayMaxMs"] === "number") {
    notes.push(`the load process's own event loop was late by up to ${num(trial["loadLoopDelayMaxMs"])} ms in the window (in every time it measures; its CPU ${
      pct(typeof trial["clientCpu"] === "number" ? trial["clientCpu"] : undefined)
    })`)
  }
  if (text("notAdmitted") !== undefined) notes.push(`not admitted at the cut-off: ${text("notAdmitted")}`)
  if (text("shed") !== undefined) notes.push(`shed (\`stream_shed_total\` by reason, after the storm) ${text("shed")}`)
  if (text("connectionErrorKinds") !== undefined) notes.push(`connection errors ${text("connectionErrorKinds")}`)
  if (text("otherStatuses") !== undefined) notes.push(`gave up on ${text("otherStatuses")}`)
  if (count("lostAfterAdmission") !== undefined) notes.push(`${count("lostAfterAdmission")} admitted clients lost their connection`)
  if (count("liveLost") !== undefined) notes.push(`${count("liveLost")} live subscribers lost their connection`)
  if (text("probeFailures") !== undefined) notes.push(`failed probes ${text("probeFailures")}`)
  if (count("probesUnanswered") !== undefined) notes.push(`${count("probesUnanswered")} probes unanswered 5 s after the window`)
  if (count("probesSkipped") !== undefined) notes.push(`${count("probesSkipped")} probes skipped (${stormMaxProbesOut} unanswered at once)`)
  return notes
}

const stormScenario = stormScenarioOf({ id: "storm", arrivals: settings.stormArrivals, feed: "fanout" })
const wideStormScenario = stormScenarioOf({ id: "storm-20k", arrivals: settings.stormWideArrivals, feed: "sparse" })

// ---- 4. slow consumer

const slowScenario: Scenario = {
  id: "slow",
  title: `Slow consumer: one subscriber stops reading for ${settings.slowStallMs / 1000} s while the source runs at full speed`,
  route: "slow",
  fallback: "ticks",
  rounds: 1,
  measure: async (server, subject) => {
    let before: Stats | undefined
    let after: Stats | undefined
    let peakDuringStall = 0
    let sampler: ReturnType<typeof setInterval> | undefined
    const job: Job = {
      kind: "slow",
      port: server.port,
      route: subject.route,
      readMs: settings.slowReadMs,
      stallMs: settings.slowStallMs
    }
    const result = await runLoad(job, settings.slowReadMs + settings.slowStallMs + 60_000, {
      onBarrier: async (name) => {
        if (name === "stall-start") {
          before = await server.stats()
          peakDuringStall = before.rss
          // RSS sampled through the stall: its peak, not what is left after the final GC.
          sampler = setInterval(() => {
            peakDuringStall = Math.max(peakDuringStall, server.rss() ?? 0)
          }, 100)
        }
        if (name === "stall-end") {
          clearInterval(sampler)
          peakDuringStall = Math.max(peakDuringStall, server.rss() ?? 0)
          after = await server.stats()
        }
      }
    }).finally(() => clearInterval(sampler))
    server.assertAlive()
    if (before === undefined || after === undefined) throw new Error("no memory figures")
    return {
      ...result,
      heapGrowthMiB: round((after.heapUsed - before.heapUsed) / MiB, 3),
      externalGrowthMiB: round((after.external - before.external) / MiB, 3),
      peakRssGrowthMiB: round((peakDuringStall - before.rss) / MiB, 3),
      heapAtEndMiB: round(after.heapUsed / MiB, 3)
    }
  },
  table: (rows) => {
    const lines = [
      "| implementation | heap + buffers growth | heap growth (after GC) | buffers (external) growth | peak RSS growth during the stall | read before the stall |",
      "|---|---:|---:|---:|---:|---:|"
    ]
    for (const row of rows) {
      const m = row.median
      lines.push(
        failed(row, 6) ??
          `| ${row.subject} | ${mib(m["heapGrowthMiB"]! + m["externalGrowthMiB"]!)} | ${mib(m["heapGrowthMiB"])} | ${
            mib(m["externalGrowthMiB"])
          } | ${mib(m["peakRssGrowthMiB"])} | ${int(m["readBeforeStall"])} events |`
      )
    }
    return lines
  }
}

// ---- 5. download

const downloadScenario: Scenario = {
  id: "download",
  title: `Download: ${size(settings.downloadBytes)} over loopback`,
  route: "download",
  rounds: settings.rounds,
  measure: async (server, subject) => {
    const cpu = cpuWindow(server)
    const bytes = settings.downloadBytes - (settings.downloadBytes % downloadChunkBytes)
    const job: Job = {
      kind: "download",
      port: server.port,
      route: fill(subject.route, { bytes }),
      warmupRoute: fill(subject.route, { bytes: settings.downloadWarmupBytes }),
      bytes
    }
    // A transfer slower than 4 MB/s is cut off.
    const result = await runLoad(job, 20_000 + (bytes + settings.downloadWarmupBytes) / 4e3, { onMark: cpu.onMark })
    server.assertAlive()
    return { ...result, ...cpu.figures(), ...memoryFigures(server) }
  },
  table: (rows) => {
    const base = baseRow(rows)?.median["value"]
    const lines = [
      "| implementation | MB/s | × raw | server CPU | load-generator CPU | server RSS: start + growth |",
      "|---|---:|---:|---:|---:|---:|"
    ]
    for (const row of rows) {
      const m = row.median
      lines.push(
        failed(row, 6) ??
          `| ${row.subject} | ${int(m["value"])} | ${times(m["value"], base)} | ${pct(m["serverCpu"])} | ${pct(m["clientCpu"])} | ${
            int(m["serverStartRssMiB"])
          } + ${int(m["serverRssGrowthMiB"])} MiB |`
      )
    }
    return lines
  }
}

const slowReaderScenario: Scenario = {
  id: "slow-reader",
  title: `Download with a slow reader (${settings.slowReaderBytesPerSecond / 1e6} MB/s for ${
    settings.slowReaderMs / 1000
  } s): what the server holds, counted from after a ${size(settings.downloadWarmupBytes)} transfer and a full GC`,
  route: "download",
  // Peak RSS moves by several MiB between runs (when the young generation is collected): the median of the rounds.
  rounds: settings.rounds,
  measure: async (server, subject) => {
    // First a transfer read at full speed, then a full GC: what is measured is then the slow
    // transfer's, not the first request's (code compiled, pools grown), for every implementation.
    await runLoad(
      {
        kind: "download",
        port: server.port,
        route: fill(subject.route, { bytes: settings.downloadWarmupBytes }),
        bytes: settings.downloadWarmupBytes
      },
      60_000
    )
    const before = await server.stats()
    const base = server.resetPeakRss() ?? server.startRss
    let after: Stats | undefined
    const job: Job = {
      kind: "slowDownload",
      port: server.port,
      route: fill(subject.route, { bytes: 1024 * MiB }),
      bytesPerSecond: settings.slowReaderBytesPerSecond,
      durationMs: settings.slowReaderMs
    }
    const result = await runLoad(job, settings.slowReaderMs + 20_000, {
      onBarrier: async () => {
        after = await server.stats()
      }
    })
    server.assertAlive()
    const peak = server.peakRss()
    return {
      ...result,
      ...(peak === undefined || base === undefined ? {} : { serverRssGrowthMiB: round((peak - base) / MiB, 3) }),
      ...(after === undefined ? {} : {
        // What the transfer holds: heap and buffers after a full GC while it runs, less the same before it.
        heldMiB: round((after.heapUsed + after.external - before.heapUsed - before.external) / MiB, 3),
        heapAtEndMiB: round(after.heapUsed / MiB, 3),
        externalAtEndMiB: round(after.external / MiB, 3)
      })
    }
  },
  table: (rows) => {
    const base = baseRow(rows)?.median["serverRssGrowthMiB"]
    const lines = [
      "| implementation | read | server peak RSS growth | × raw | held by the transfer (after a full GC) | heap at the end | external (buffers) at the end |",
      "|---|---:|---:|---:|---:|---:|---:|"
    ]
    for (const row of rows) {
      const m = row.median
      lines.push(
        failed(row, 7) ??
          `| ${row.subject} | ${num(m["readMBps"])} MB/s | ${mib(m["serverRssGrowthMiB"])} | ${times(m["serverRssGrowthMiB"], base)} | ${
            mib(m["heldMiB"])
          } | ${mib(m["heapAtEndMiB"])} | ${mib(m["externalAtEndMiB"])} |`
      )
    }
    return lines
  }
}

// ---- 6. export

const exportRoutes = { csv: "exportCsv", ndjson: "exportNdjson", json: "exportJson" } as const

const exportScenario = (format: "csv" | "ndjson" | "json"): Scenario => ({
  id: `export-${format}`,
  title: `Export: ${settings.exportRows.toLocaleString("en-US")} rows (a Date and an optional field each) as ${
    format === "csv" ? "CSV" : format === "json" ? "a JSON array" : "NDJSON"
  }`,
  route: exportRoutes[format],
  rounds: settings.rounds,
  measure: async (server, subject) => {
    const cpu = cpuWindow(server)
    const job: Job = {
      kind: "export",
      port: server.port,
      route: fill(subject.route, { rows: settings.exportRows }),
      rows: settings.exportRows,
      extraLines: format === "csv" ? 1 : format === "json" ? 2 : 0
    }
    // Slower than 20,000 rows/s is cut off.
    const result = await runLoad(job, 20_000 + settings.exportRows / 20, { onMark: cpu.onMark })
    server.assertAlive()
    return { ...result, ...cpu.figures(), ...memoryFigures(server) }
  },
  table: (rows) => {
    const base = baseRow(rows)?.median["value"]
    const lines = [
      "| implementation | rows/s | × baseline | MB/s | server CPU | server RSS growth |",
      "|---|---:|---:|---:|---:|---:|"
    ]
    for (const row of rows) {
      const m = row.median
      lines.push(
        failed(row, 6) ??
          `| ${row.subject} | ${int(m["value"])} | ${times(m["value"], base)} | ${num(m["bodyMBps"])} | ${pct(m["serverCpu"])} | ${
            mib(m["serverRssGrowthMiB"])
          } |`
      )
    }
    return lines
  }
})

// ---- 7. stalled exports

const stalledExportsScenario: Scenario = {
  id: "stalled-exports",
  title: `${settings.stalledExports} concurrent NDJSON exports of ${
    settings.exportRows.toLocaleString("en-US")
  } rows whose clients read nothing for ${settings.stalledExportsMs / 1000} s: what the server holds`,
  route: "exportNdjson",
  rounds: 1,
  measure: async (server, subject) => {
    const memory: Record<string, Stats> = {}
    const job: Job = {
      kind: "stalledExports",
      port: server.port,
      route: fill(subject.route, { rows: settings.exportRows }),
      connections: settings.stalledExports,
      concurrency: 50,
      stallMs: settings.stalledExportsMs
    }
    const result = await runLoad(job, settings.stalledExportsMs + 60_000, {
      onBarrier: async (name) => {
        memory[name] = await server.stats()
      }
    })
    server.assertAlive()
    const base = memory["baseline"]
    const growth = (name: string, field: "rss" | "heapUsed" | "external"): Trial => {
      const at = memory[name]
      return base === undefined || at === undefined ? {} : { [`${field}${name}MiB`]: round((at[field] - base[field]) / MiB, 3) }
    }
    return {
      ...result,
      ...growth("stalled", "rss"),
      ...growth("mid", "rss"),
      ...growth("end", "rss"),
      ...growth("stalled", "heapUsed"),
      ...growth("mid", "heapUsed"),
      ...growth("end", "heapUsed"),
      ...growth("end", "external"),
      ...memoryFigures(server)
    }
  },
  table: (rows) => {
    const base = baseRow(rows)?.median["rssendMiB"]
    const lines = [
      "| implementation | RSS growth (after GC): all answered → mid-stall → end | × raw (end) | heap growth (after GC): all answered → mid-stall → end | buffers growth at the end | peak RSS growth | read by the clients |",
      "|---|---:|---:|---:|---:|---:|---:|"
    ]
    for (const row of rows) {
      const m = row.median
      lines.push(
        failed(row, 7) ??
          `| ${row.subject} | ${mib(m["rssstalledMiB"])} → ${mib(m["rssmidMiB"])} → ${mib(m["rssendMiB"])} | ${times(m["rssendMiB"], base)} | ${
            mib(m["heapUsedstalledMiB"])
          } → ${mib(m["heapUsedmidMiB"])} → ${mib(m["heapUsedendMiB"])} | ${mib(m["externalendMiB"])} | ${mib(m["serverRssGrowthMiB"])} | ${
            mib(m["clientBytesMiB"])
          } |`
      )
    }
    return lines
  }
}

const scenarios: ReadonlyArray<Scenario> = [
  throughputScenario,
  idleScenario,
  fanoutScenario,
  wideFanoutScenario,
  keyedScenario,
  muxScenario,
  instancesScenario,
  stormScenario,
  wideStormScenario,
  slowScenario,
  downloadScenario,
  slowReaderScenario,
  exportScenario("csv"),
  exportScenario("ndjson"),
  exportScenario("json"),
  stalledExportsScenario
]

// ---------------------------------------------------------------- run

const pick = <A>(all: ReadonlyArray<A>, wanted: Array<string> | undefined, key: (a: A) => string, what: string): ReadonlyArray<A> => {
  if (wanted === undefined) return all
  for (const w of wanted) {
    if (!all.some((a) => key(a) === w)) {
      console.error(`unknown ${what} ${w}; known: ${all.map(key).join(", ")}`)
      process.exit(2)
    }
  }
  return all.filter((a) => wanted.includes(key(a)))
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** Routes each implementation announced (they are static: learned once). */
const knownRoutes = new Map<string, Routes>()

/** A server started to learn its routes, kept for the first measurement that needs a fresh one. */
const spareServers = new Map<string, Server>()

const routesOf = async (implementation: Implementation): Promise<Routes> => {
  const known = knownRoutes.get(implementation.id)
  if (known !== undefined) return known
  const server = await startServer(implementation, `discover-${implementation.id}`)
  spareServers.set(implementation.id, server)
  knownRoutes.set(implementation.id, server.routes)
  return server.routes
}

/**
 * A fresh server: the spare one if it is there (it has served nothing yet)
 * and the scenario sets no environment, else a new one.
 */
const freshServer = async (implementation: Implementation, label: string, env?: Readonly<Record<string, string>>): Promise<Server> => {
  const spare = spareServers.get(implementation.id)
  spareServers.delete(implementation.id)
  if (spare !== undefined && env === undefined) return spare
  // A spare started without the scenario's environment is of no use to it: it would only sit beside the measured one.
  await spare?.stop()
  return startServer(implementation, label, env)
}

const asList = (routes: Route | ReadonlyArray<Route> | undefined): ReadonlyArray<Route> =>
  routes === undefined ? [] : Array.isArray(routes) ? routes : [routes as Route]

const subjectsOf = async (scenario: Scenario, impls: ReadonlyArray<Implementation>): Promise<Array<Subject>> => {
  const subjects: Array<Subject> = []
  for (const implementation of impls) {
    const routes = await routesOf(implementation)
    const list = asList(routes[scenario.route] ?? (scenario.fallback === undefined ? undefined : routes[scenario.fallback]))
    for (const route of list) {
      subjects.push({
        implementation,
        route,
        label: route.variant === undefined ? implementation.label : `${implementation.label}, ${route.variant}`
      })
    }
    subjects.push(...(scenario.extraSubjects?.(implementation, list) ?? []))
  }
  return subjects
}

const slug = (text: string) => text.replace(/[^a-zA-Z0-9]+/g, "-").replace(/^-|-$/g, "").toLowerCase()

const runScenario = async (scenario: Scenario, impls: ReadonlyArray<Implementation>): Promise<Array<Row>> => {
  const subjects = await subjectsOf(scenario, impls)
  const trials = new Map<Subject, Array<Trial>>(subjects.map((s) => [s, []]))
  const errors = new Map<Subject, string>()
  for (let r = 0; r < scenario.rounds; r++) {
    const order = r % 2 === 0 ? subjects : [...subjects].reverse()
    for (const subject of order) {
      if (errors.has(subject)) continue
      const label = `${scenario.id}-${slug(subject.label)}-${r + 1}`
      process.stderr.write(`  ${label} ...`)
      try {
        const server = await freshServer(subject.implementation, label, scenario.serverEnv)
        try {
          const trial = await scenario.measure(server, subject)
          trials.get(subject)!.push(trial)
          process.stderr.write(` ${summary(trial)}\n`)
        } finally {
          await server.stop()
        }
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error)
        errors.set(subject, message)
        process.stderr.write(` FAILED\n${message}\n`)
      }
      // Lets the kernel release the sockets of the last run before the next server starts.
      await sleep(100)
    }
  }
  return subjects.map((subject) => {
    const list = trials.get(subject)!
    const keys = new Set(list.flatMap((t) => Object.keys(t).filter((k) => typeof t[k] === "number")))
    const medians: Record<string, number> = {}
    for (const key of keys) medians[key] = median(list.map((t) => t[key]).filter((v): v is number => typeof v === "number"))
    const error = errors.get(subject)
    return {
      subject: subject.label,
      implementation: subject.implementation.id,
      median: medians,
      trials: list,
      ...(error === undefined ? {} : { error })
    }
  })
}

const summary = (trial: Trial): string =>
  Object.entries(trial)
    .filter(([, v]) => typeof v === "number")
    .slice(0, 4)
    .map(([k, v]) => `${k}=${num(v as number)}`)
    .join(" ")

/** The client SSE parser micro-benchmark (bench/parser.ts), in this process. */
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

const parserTable = (result: unknown, mode: Report["mode"]): Array<string> => {
  if (result === undefined) return []
  const r = result as { ours?: unknown; peer?: unknown; ratio?: unknown; skipped?: unknown }
  if (typeof r.ours === "number" && typeof r.peer === "number" && typeof r.ratio === "number") {
    return [
      `### Client SSE parser: ${mode === "quick" ? "~8" : "~50"} MB of events, bytes in (in process, best of runs)`,
      "",
      "| parser | MB/s | × eventsource-parser |",
      "|---|---:|---:|",
      `| eventsource-parser | ${num(r.peer)} | 1.00× |`,
      `| ours (src/protocol/SseParser.ts) | ${num(r.ours)} | ${r.ratio.toFixed(2)}× |`
    ]
  }
  if (typeof r.skipped === "string") return [`Client SSE parser: skipped (${r.skipped}).`]
  return [`Client SSE parser: ${JSON.stringify(result)}`]
}

interface SourceState {
  readonly commit: string
  /** Library files that differ from the commit. */
  readonly uncommitted: Array<string>
  /** The whole state of the library (status and diff), to notice edits made during the run. */
  readonly fingerprint: string
}

/** What library code the servers load: the commit, and the files of `src/` and `client/` that differ from it. */
const sourceState = (): SourceState | undefined => {
  try {
    // Not trimmed: a porcelain line starts with its two status columns, often a space.
    const git = (...args: Array<string>) => execFileSync("git", args, { cwd: repoDir, encoding: "utf8" })
    const status = git("status", "--porcelain", "--", "src", "client")
    return {
      commit: git("rev-parse", "--short", "HEAD").trim(),
      uncommitted: status.split("\n").filter((l) => l !== "").map((l) => l.slice(3)),
      fingerprint: `${git("rev-parse", "HEAD")}\n${status}\n${git("diff", "HEAD", "--", "src", "client")}`
    }
  } catch {
    return undefined
  }
}

const loadAverage = () => round(Os.loadavg()[0] ?? 0, 2)

/** The run a scenario merged into bench/results.json comes from (`--merge`), when not the report's own. */
interface SeparateRun {
  readonly date: string
  readonly command: string
  readonly commit: string | null
  readonly loadAverageAtStart: number
  readonly loadAverageAtEnd: number
}

interface ScenarioResult {
  readonly id: string
  readonly title: string
  readonly rows: ReadonlyArray<Row>
  readonly skipped?: ReadonlyArray<string>
  readonly run?: SeparateRun
}

/** What a run writes to bench/results.json (and the other results files). */
interface Report {
  readonly mode: "quick" | "full"
  readonly date: string
  /** How the run was started (absent from runs before it was recorded: `npm run bench`). */
  readonly command?: string
  readonly machine: {
    readonly cpu: string
    readonly cores: number
    readonly memoryGiB: number
    readonly os: string
    readonly loadAverageAtStart: number
    readonly loadAverageAtEnd: number
  }
  readonly node: string
  readonly source: { readonly commit: string; readonly uncommitted: ReadonlyArray<string>; readonly changedDuringRun: boolean } | null
  readonly baseline: string
  readonly settings: typeof presets
  readonly wallSeconds: number
  readonly scenarios: ReadonlyArray<ScenarioResult>
  readonly parser: unknown
}

/** A run's tables, as printed on stdout and kept in bench/RESULTS.md. */
const markdown = (report: Report): Array<string> => {
  const { machine, source } = report
  // The bench itself keeps about two processes busy: the load average at the end is mostly its own.
  const busy = machine.loadAverageAtStart > machine.cores / 2
  const lines = [
    `## effect-stream-rpc benchmarks (${report.mode})`,
    "",
    `Run on ${report.date.slice(0, 10)} with \`${report.command ?? "npm run bench"}\`.`,
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB RAM, ${machine.os}; Node ${report.node}; load average ${machine.loadAverageAtStart} at the start${
      busy ? " (the machine was busy: figures are noisy)" : ""
    }, ${machine.loadAverageAtEnd} at the end (the bench's own two processes included).`,
    `Source: ${
      source === null
        ? "unknown (no git)"
        : `commit ${source.commit}${source.uncommitted.length === 0 ? "" : ` + uncommitted changes in ${source.uncommitted.join(", ")}`}`
    }.${source?.changedDuringRun ? " WARNING: src/ or client/ changed during the run; servers started at different times ran different code." : ""}`,
    `Each measurement on a fresh server process and a fresh load process; speeds are the median of ${report.settings.rounds} round${
      report.settings.rounds === 1 ? "" : "s"
    } (the other figures of 1); × raw = ratio to \`raw node:http\` in this run.`
  ]
  for (const result of report.scenarios) {
    const scenario = scenarios.find((s) => s.id === result.id)
    lines.push("", `### ${result.title}`, "")
    if (result.run !== undefined) {
      const run = result.run
      lines.push(
        `Measured separately on ${run.date.slice(0, 10)} with \`${run.command}\`${run.commit === null ? "" : ` (commit ${run.commit})`}; load average ${
          run.loadAverageAtStart
        } at the start, ${run.loadAverageAtEnd} at the end.`,
        ""
      )
    }
    if (scenario === undefined) lines.push(`(scenario ${result.id} is no longer in the bench: not rendered)`)
    else lines.push(...scenario.table(result.rows))
    if (result.skipped !== undefined && result.skipped.length > 0) {
      lines.push("", `Not measured (no route for this scenario in its server): ${result.skipped.join(", ")}.`)
    }
  }
  const parserLines = parserTable(report.parser ?? undefined, report.mode)
  if (parserLines.length > 0) lines.push("", ...parserLines)
  lines.push("", `Wall time: ${Math.round(report.wallSeconds)} s.`)
  return lines
}

/** bench/RESULTS.md: the full run in bench/results.json, rendered. */
const writeResultsMarkdown = (report: Report): void => {
  const text = [
    "# Benchmark results",
    "",
    "Written by `bench/run.ts` from `bench/results.json` at the end of a full run; `npm run bench -- --render` writes it again",
    "from the committed JSON without measuring anything. Method and reading: [docs/performance.md](../docs/performance.md).",
    "",
    ...markdown(report)
  ].join("\n")
  writeFileSync(resultsMarkdownFile, `${text}\n`)
}

const main = async () => {
  const started = performance.now()
  const source = sourceState()
  const chosenScenarios = pick(scenarios, option("scenario"), (s) => s.id, "scenario")
  const chosenImpls = pick(implementations, option("impl"), (i) => i.id, "implementation")
  const cpu = Os.cpus()
  const machine = {
    cpu: cpu[0]?.model.trim() ?? "unknown",
    cores: cpu.length,
    memoryGiB: round(Os.totalmem() / 1024 ** 3, 3),
    os: `${Os.type()} ${Os.release()} ${Os.arch()}`,
    loadAverageAtStart: loadAverage()
  }
  process.stderr.write(
    `bench (${quick ? "quick" : "full"}): ${chosenScenarios.length} scenarios × ${chosenImpls.length} implementations; load average ${machine.loadAverageAtStart}\n`
  )

  const results: Array<{ id: string; title: string; rows: Array<Row>; skipped: Array<string>; loadAverage: number }> = []
  for (const scenario of chosenScenarios) {
    process.stderr.write(`${scenario.title}\n`)
    const rows = await runScenario(scenario, chosenImpls)
    for (const spare of spareServers.values()) await spare.stop()
    spareServers.clear()
    // Implementations that announce no route for the scenario.
    const skipped = chosenImpls.filter((i) => !rows.some((row) => row.implementation === i.id)).map((i) => i.label)
    results.push({ id: scenario.id, title: scenario.title, rows, skipped, loadAverage: loadAverage() })
  }
  const parser = option("scenario") === undefined ? await runParser() : undefined
  const wallSeconds = round((performance.now() - started) / 1000)
  const loadAverageAtEnd = loadAverage()
  const changedDuringRun = source !== undefined && sourceState()?.fingerprint !== source.fingerprint

  const report: Report = {
    mode: quick ? "quick" : "full",
    date: new Date().toISOString(),
    command: ["npm run bench", ...(argv.length === 0 ? [] : ["--", ...argv])].join(" "),
    machine: { ...machine, loadAverageAtEnd },
    node: process.version,
    source: source === undefined ? null : { commit: source.commit, uncommitted: source.uncommitted, changedDuringRun },
    baseline,
    settings,
    wallSeconds,
    scenarios: results,
    parser: parser ?? null
  }
  console.log(markdown(report).join("\n"))

  // A smoke run (tests may start one) and a partial run (--scenario, --impl) leave the full run's results alone.
  const partial = option("scenario") !== undefined || option("impl") !== undefined
  const file = quick ? Path.join(benchDir, "results.quick.json") : partial ? Path.join(benchDir, "results.partial.json") : resultsFile
  writeFileSync(`${file}.tmp`, `${JSON.stringify(report, null, 2)}\n`)
  renameSync(`${file}.tmp`, file)
  if (file === resultsFile) writeResultsMarkdown(report)
  if (merge) mergeIntoResults(report)
  if (results.some((r) => r.rows.some((row) => row.error !== undefined))) {
    console.error("\nbench: some measurements failed (see the tables)")
    process.exitCode = 1
  }
}

/** `--merge`: this run's scenarios into bench/results.json, in the bench's order, each marked with this run; RESULTS.md rendered. */
const mergeIntoResults = (report: Report): void => {
  const full = JSON.parse(readFileSync(resultsFile, "utf8")) as Report
  const run: SeparateRun = {
    date: report.date,
    command: report.command ?? "npm run bench",
    commit: report.source === null ? null : `${report.source.commit}${report.source.uncommitted.length === 0 ? "" : " + uncommitted changes"}`,
    loadAverageAtStart: report.machine.loadAverageAtStart,
    loadAverageAtEnd: report.machine.loadAverageAtEnd
  }
  const fresh = new Map(report.scenarios.map((result) => [result.id, { ...result, run }]))
  const merged: Array<ScenarioResult> = []
  for (const scenario of scenarios) {
    const result = fresh.get(scenario.id) ?? full.scenarios.find((r) => r.id === scenario.id)
    if (result !== undefined) merged.push(result)
  }
  // Scenarios of the stored run that are no longer in the bench stay, at the end.
  for (const result of full.scenarios) if (!merged.some((r) => r.id === result.id)) merged.push(result)
  const updated: Report = { ...full, settings: { ...report.settings, ...full.settings }, scenarios: merged }
  writeFileSync(`${resultsFile}.tmp`, `${JSON.stringify(updated, null, 2)}\n`)
  renameSync(`${resultsFile}.tmp`, resultsFile)
  writeResultsMarkdown(updated)
  console.error(`merged ${report.scenarios.map((r) => r.id).join(", ")} into ${Path.relative(repoDir, resultsFile)}; rendered ${Path.relative(repoDir, resultsMarkdownFile)}`)
}

if (render) {
  writeResultsMarkdown(stored!)
  console.log(`wrote ${Path.relative(repoDir, resultsMarkdownFile)} from ${Path.relative(repoDir, resultsFile)}`)
} else main().catch((error: unknown) => {
  killAll()
  console.error(`\nbench failed: ${error instanceof Error ? error.message : String(error)}`)
  process.exit(1)
})
