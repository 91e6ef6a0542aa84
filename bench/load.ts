/**
 * The load process: `node --import tsx bench/load.ts '<job JSON>'`, started
 * by the runner for one measurement against one server process, on its own
 * core. It talks to the runner with JSON lines:
 * - stdout `{"mark":"<name>"}`: a point of the measurement (the runner reads
 *   the server's CPU there); `{"barrier":"<name>"}` also waits for a line on
 *   stdin, so the runner can read the server's memory (after a full GC) while
 *   the connections are held exactly as they are;
 * - stdout `{"result":{...}}` once, then it exits; `{"error":"..."}` on failure.
 * The runner kills it when its job's time limit passes.
 */
import type { Route } from "./harness.ts"
import { readdirSync, readFileSync } from "node:fs"
import { monitorEventLoopDelay } from "node:perf_hooks"
import * as Backoff from "../client/internal/Backoff.ts"
import { defaults as reconnectDefaults } from "../client/Subscription.ts"
import {
  BodyText,
  ByteCounter,
  type Connection,
  LineCounter,
  request,
  SeqStampReader,
  StampReader,
  SubscriptionReader,
  TickCounter
} from "./loadgen.ts"
import { keyCount, nowMicros, symbolCount, symbolOf } from "./workload.ts"

export type Job =
  | { readonly kind: "throughput"; readonly port: number; readonly route: Route; readonly warmupMs: number; readonly windowMs: number }
  | { readonly kind: "throughputClient"; readonly port: number; readonly warmupMs: number; readonly windowMs: number }
  | {
    readonly kind: "idle"
    readonly port: number
    readonly route: Route
    readonly connections: number
    readonly warmConnections: number
    readonly concurrency: number
  }
  | {
    readonly kind: "fanout"
    readonly port: number
    /** Several instances of one service: subscriber i connects to `ports[i % ports.length]` (default: `port`). */
    readonly ports?: ReadonlyArray<number>
    readonly route: Route
    readonly subscribers: number
    readonly concurrency: number
    readonly warmupMs: number
    readonly windowMs: number
    readonly graceMs: number
    /** How long subscribing may take; past it the measurement starts with whoever is subscribed. */
    readonly connectDeadlineMs: number
    /**
     * The keyed feed: subscriber i asks for key `k<i % keyCount>` (`{key}` in
     * the route), and is owed only the ticks of its key.
     */
    readonly keyed?: boolean
    /** Barriers `baseline` (before subscribing) and `held` (after the measurement, all still open). */
    readonly memory?: boolean
  }
  | {
    /**
     * Subscriptions to the symbol feed (`symbolCount` symbols): with `mux`,
     * each connection carries one subscription per symbol (ids = symbols);
     * without, connection i subscribes to symbol `s<i % symbolCount>`
     * (`{key}` in the route). Every subscription's values are checked in
     * order (a symbol's seqs are `symbolCount` apart): none missing,
     * repeated or attributed to another subscription. Barriers `baseline`
     * (before subscribing) and `held` (after the measurement, all open).
     */
    readonly kind: "subscriptions"
    readonly port: number
    readonly route: Route
    readonly mux: boolean
    readonly connections: number
    readonly concurrency: number
    readonly warmupMs: number
    readonly windowMs: number
    readonly graceMs: number
    readonly connectDeadlineMs: number
  }
  | {
    /**
     * A reconnect storm: `live` subscribers to the live feed receive it for
     * `warmupMs`, then `arrivals` clients each open a subscription, every
     * connection started in the same tick. A client is admitted once its
     * response is 200 and its first value has arrived; a 502/503/504 is
     * tried again after its `Retry-After` plus the jittered backoff, and a
     * connection error (or a close before the first value) after the
     * backoff, as the generated client does (`client/internal/Backoff.ts`);
     * any other status ends that client. Until every client is admitted, or
     * `cutoffMs`, and for at least `minWindowMs`: the live subscribers' lag,
     * and `probePaths` requested every `probeEveryMs` on fresh connections.
     * Marks `window-start` (the storm begins) and `window-end`.
     */
    readonly kind: "storm"
    readonly port: number
    readonly route: Route
    readonly live: number
    readonly arrivals: number
    /** Live subscriptions opened at once at most (they open before the storm). */
    readonly concurrency: number
    /** How long the live subscribers may take to subscribe; the storm starts with whoever is subscribed. */
    readonly connectDeadlineMs: number
    readonly warmupMs: number
    readonly cutoffMs: number
    readonly minWindowMs: number
    /** Late deliveries of values published in the window still count, up to this. */
    readonly graceMs: number
    readonly probeEveryMs: number
    readonly probePaths: ReadonlyArray<string>
    /** Probes unanswered at once at most (each holds a socket); past it one is skipped. */
    readonly maxProbesOut: number
  }
  | { readonly kind: "slow"; readonly port: number; readonly route: Route; readonly readMs: number; readonly stallMs: number }
  | {
    readonly kind: "download"
    readonly port: number
    readonly route: Route
    /** Read in full before the measured transfer; none when the runner has warmed the server itself. */
    readonly warmupRoute?: Route | undefined
    readonly bytes: number
  }
  | {
    readonly kind: "slowDownload"
    readonly port: number
    readonly route: Route
    readonly bytesPerSecond: number
    readonly durationMs: number
  }
  | {
    readonly kind: "export"
    readonly port: number
    readonly route: Route
    readonly rows: number
    /** Lines that are not rows: CSV's header; a JSON array's `[` and `]`. */
    readonly extraLines: number
  }

  | {
    readonly kind: "stalledExports"
    readonly port: number
    readonly route: Route
    readonly connections: number
    readonly concurrency: number
    /** How long the clients read nothing, once every export has answered. */
    readonly stallMs: number
  }

export type Result = Record<string, number | string | boolean>

const send = (message: unknown): void => {
  process.stdout.write(`${JSON.stringify(message)}\n`)
}

// ---------------------------------------------------------------- runner conversation

const lines: Array<string> = []
let lineWaiter: (() => void) | undefined
let stdinText = ""
process.stdin.setEncoding("utf8").on("data", (text: string) => {
  stdinText += text
  let newline: number
  while ((newline = stdinText.indexOf("\n")) >= 0) {
    lines.push(stdinText.slice(0, newline))
    stdinText = stdinText.slice(newline + 1)
  }
  const wake = lineWaiter
  lineWaiter = undefined
  wake?.()
})
// The runner died: nothing left to measure for.
process.stdin.on("end", () => process.exit(3))

const nextLine = async (): Promise<string> => {
  while (lines.length === 0) await new Promise<void>((resolve) => (lineWaiter = resolve))
  return lines.shift()!
}

/** A point of the measurement; the runner samples the server's CPU. */
const mark = (name: string): void => send({ mark: name })
/** A point where the runner reads the server's memory; resumes when it is done. */
const barrier = async (name: string): Promise<void> => {
  send({ barrier: name })
  await nextLine()
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const round = (n: number, digits = 4) => Number(n.toPrecision(digits))
const cpuSince = (start: NodeJS.CpuUsage, seconds: number): number => {
  const used = process.cpuUsage(start)
  return round((used.user + used.system) / 1e6 / seconds, 2)
}

/** Stamps (microseconds, `nowMicros()`) of the values that count: from `since`, before `until`. */
interface Window {
  since: number
  until: number
}

/**
 * The measurement window of a fan-out job: values stamped in it count, the
 * server's CPU is marked around it, the client's own CPU is measured in it;
 * late deliveries of values stamped in it still count, up to the grace period.
 */
const measureWindow = async (window: Window, job: { readonly windowMs: number; readonly graceMs: number }) => {
  window.since = nowMicros()
  mark("window-start")
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await sleep(job.windowMs)
  window.until = nowMicros()
  const seconds = (performance.now() - t0) / 1000
  mark("window-end")
  const clientCpu = cpuSince(cpu0, seconds)
  await sleep(job.graceMs)
  window.since = Infinity
  return { seconds, clientCpu }
}

/** p50, p99 and max of the first `size` latencies of `samples` (microseconds), in milliseconds. */
const latencyFigures = (samples: Float64Array, size: number) => {
  const sorted = samples.slice(0, size).sort()
  return {
    p50Ms: round(percentile(sorted, 0.5) / 1000),
    p99Ms: round(percentile(sorted, 0.99) / 1000),
    maxMs: round((sorted[size - 1] ?? NaN) / 1000)
  }
}

const expectOk = async (connection: Connection, what: string): Promise<void> => {
  const response = await connection.response
  if (response.status !== 200) throw new Error(`${what} answered HTTP ${response.status}`)
}

/** Runs `open(i)` for i in [0, count) with at most `concurrency` unsettled at once. */
const paced = async (count: number, concurrency: number, open: (i: number) => Promise<void>): Promise<void> => {
  let next = 0
  const worker = async () => {
    while (next < count) await open(next++)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
}

/** A tick counter that tells when the first tick arrived. */
class FirstTick extends TickCounter {
  readonly arrived: Promise<void>
  private signal!: () => void
  constructor() {
    super()
    this.arrived = new Promise((resolve) => (this.signal = resolve))
  }
  override data(buffer: Uint8Array, start: number, end: number): void {
    const before = this.count
    super.data(buffer, start, end)
    if (before === 0 && this.count > 0) this.signal()
  }
}

// ---------------------------------------------------------------- jobs

const throughput = async (job: Extract<Job, { kind: "throughput" }>): Promise<Result> => {
  const counter = new TickCounter()
  const connection = request(job.port, job.route, counter)
  try {
    await expectOk(connection, job.route.path)
    await sleep(job.warmupMs)
    if (counter.count === 0) throw new Error(`no tick arrived within the ${job.warmupMs} ms warm-up`)
    const count0 = counter.count
    const seq0 = counter.lastSeq
    const bytes0 = counter.bytes
    mark("window-start")
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    await sleep(job.windowMs)
    const seconds = (performance.now() - t0) / 1000
    mark("window-end")
    const delivered = counter.count - count0
    const produced = counter.lastSeq - seq0
    return {
      value: delivered / seconds,
      seconds: round(seconds),
      delivered,
      droppedShare: produced > 0 ? round(Math.max(0, 1 - delivered / produced), 3) : 0,
      bodyMBps: round((counter.bytes - bytes0) / 1e6 / seconds, 3),
      clientCpu: cpuSince(cpu0, seconds)
    }
  } finally {
    connection.close()
  }
}

/** Ours end to end: `StreamClient.subscribe` (fetch, our SSE parser, schema decoding, the async iterator). */
const throughputClient = async (job: Extract<Job, { kind: "throughputClient" }>): Promise<Result> => {
  const StreamClient = await import("../client/effect/StreamClient.ts")
  const { BenchApi } = await import("./contract.ts")
  const client = StreamClient.make(BenchApi, { baseUrl: `http://127.0.0.1:${job.port}/rpc` })
  const subscription = client.subscribe("ticks", undefined, { heartbeatTimeoutMs: 60_000 })
  let count = 0
  let lastSeq = -1
  const reading = (async () => {
    for await (const tick of subscription) {
      count++
      lastSeq = tick.seq
    }
  })()
  reading.catch(() => {})
  try {
    await sleep(job.warmupMs)
    if (count === 0) throw new Error(`no tick arrived within the ${job.warmupMs} ms warm-up`)
    const count0 = count
    const seq0 = lastSeq
    mark("window-start")
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    await sleep(job.windowMs)
    const seconds = (performance.now() - t0) / 1000
    mark("window-end")
    const delivered = count - count0
    const produced = lastSeq - seq0
    return {
      value: delivered / seconds,
      seconds: round(seconds),
      delivered,
      droppedShare: produced > 0 ? round(Math.max(0, 1 - delivered / produced), 3) : 0,
      clientCpu: cpuSince(cpu0, seconds)
    }
  } finally {
    subscription.unsubscribe()
  }
}

const idle = async (job: Extract<Job, { kind: "idle" }>): Promise<Result> => {
  const open = async (into: Array<Connection>): Promise<void> => {
    const sink = new FirstTick()
    const connection = request(job.port, job.route, sink)
    into.push(connection)
    await expectOk(connection, job.route.path)
    await Promise.race([sink.arrived, connection.done.then(() => Promise.reject(new Error("the subscription ended")))])
  }
  // Warm-up: whatever a server allocates lazily on its first subscriptions is not counted.
  const warm: Array<Connection> = []
  await paced(job.warmConnections, job.concurrency, () => open(warm))
  for (const connection of warm) connection.reset()
  await sleep(300)
  await barrier("baseline")
  const held: Array<Connection> = []
  const t0 = performance.now()
  try {
    await paced(job.connections, job.concurrency, () => open(held))
    const connectSeconds = (performance.now() - t0) / 1000
    await sleep(500)
    await barrier("held")
    return { connections: held.length, connectSeconds: round(connectSeconds) }
  } finally {
    for (const connection of held) connection.reset()
  }
}

const percentile = (sorted: Float64Array, p: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!

/**
 * Sockets this process can still open: its open-file limit minus what it has
 * open, less a margin (Linux; elsewhere unlimited).
 */
const socketHeadroom = (): number => {
  try {
    const limit = Number(/^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "latin1"))?.[1])
    const open = readdirSync("/proc/self/fd").length
    return Number.isFinite(limit) ? limit - open - 32 : Infinity
  } catch {
    return Infinity
  }
}

const fanout = async (job: Extract<Job, { kind: "fanout" }>): Promise<Result> => {
  const keyed = job.keyed === true
  // More sockets than the open-file limit allows would fail with EMFILE.
  const subscriberCount = Math.min(job.subscribers, socketHeadroom())
  let samples = new Float64Array(1 << 16)
  let size = 0
  /** The stamps seen in the window: the ticks the feed published in it. */
  const stamps = new Set<number>()
  /** Keyed: the seqs seen in the window (a tick is owed to the subscribers of its key only). */
  const seqs = new Set<number>()
  /** Values stamped in this window count. */
  const stamped: Window = { since: Infinity, until: Infinity }
  const record = (stamp: number, now: number, seq: number) => {
    if (stamp < stamped.since || stamp >= stamped.until) return
    if (size === samples.length) {
      const grown = new Float64Array(samples.length * 2)
      grown.set(samples)
      samples = grown
    }
    samples[size++] = now - stamp
    if (keyed) seqs.add(seq)
    else stamps.add(stamp)
  }
  interface Subscriber {
    readonly connection: Connection
    readonly first: FirstTick
    /** Keyed: the index of its key. */
    readonly key: number
    /** Subscribed when the window opened: only these are measured. */
    measured: boolean
  }
  const subscribers: Array<Subscriber> = []
  let opening = true
  try {
    if (job.memory === true) await barrier("baseline")
    // A server that cannot keep up with the fan-out also falls behind in accepting
    // subscribers: whoever is subscribed when the deadline passes is measured.
    const openedAt = performance.now()
    const open = paced(subscriberCount, job.concurrency, async (i) => {
      if (!opening) return
      const first = new FirstTick()
      let subscriber: Subscriber | undefined
      const reader = keyed
        ? new SeqStampReader(nowMicros, (seq, stamp, now) => {
          if (subscriber?.measured === true) record(stamp, now, seq)
        })
        : new StampReader(nowMicros, (stamp, now) => {
          if (subscriber?.measured === true) record(stamp, now, -1)
        })
      const sink = {
        data(buffer: Uint8Array, start: number, end: number) {
          first.data(buffer, start, end)
          reader.data(buffer, start, end)
        }
      }
      const key = i % keyCount
      const route = keyed
        ? {
          ...job.route,
          path: job.route.path.replaceAll("{key}", `k${key}`),
          ...(job.route.body === undefined ? {} : { body: job.route.body.replaceAll("{key}", `k${key}`) })
        }
        : job.route
      const ports = job.ports ?? [job.port]
      const connection = request(ports[i % ports.length]!, route, sink)
      subscriber = { connection, first, key, measured: false }
      subscribers.push(subscriber)
      await expectOk(connection, route.path)
      await first.arrived
    })
    await Promise.race([open, sleep(job.connectDeadlineMs)])
    opening = false
    const connectSeconds = (performance.now() - openedAt) / 1000
    await sleep(job.warmupMs)
    const measured = subscribers.filter((s) => s.first.count > 0)
    for (const subscriber of measured) subscriber.measured = true
    const { seconds, clientCpu } = await measureWindow(stamped, job)
    let owed = stamps.size * measured.length
    if (keyed) {
      const perKey = new Array<number>(keyCount).fill(0)
      for (const seq of seqs) if (seq >= 0) perKey[seq % keyCount]!++
      owed = 0
      for (const subscriber of measured) owed += perKey[subscriber.key]!
    }
    const subscribed = subscribers.filter((s) => s.first.count > 0).length
    if (job.memory === true) await barrier("held")
    return {
      subscribers: measured.length,
      ...(subscriberCount < job.subscribers ? { subscribersCappedByFileLimit: subscriberCount } : {}),
      subscribedAtEnd: subscribed,
      connectSeconds: round(connectSeconds),
      published: keyed ? seqs.size : stamps.size,
      deliveries: size,
      deliveredShare: owed === 0 ? 0 : round(size / owed, 3),
      ...latencyFigures(samples, size),
      seconds: round(seconds),
      clientCpu
    }
  } finally {
    opening = false
    for (const subscriber of subscribers) subscriber.connection.reset()
  }
}

/** One subscription of the `subscriptions` job. */
interface Subscription {
  readonly symbol: string
  /** Values received (all of them, from the first). */
  count: number
  lastSeq: number
  /** Values never received between two received ones (a symbol's seqs are `symbolCount` apart). */
  gaps: number
  /** Values received again, or out of order. */
  repeats: number
  /** Values of another symbol read as this subscription's (a `sub:` misread). */
  misattributed: number
  /** Values stamped in the window. */
  inWindow: number
  /** `event: dropped` / `error` / `end` received. */
  others: number
  /** Subscribed when the window opened: only these are measured. */
  measured: boolean
}

const subscriptions = async (job: Extract<Job, { kind: "subscriptions" }>): Promise<Result> => {
  // More sockets than the open-file limit allows would fail with EMFILE.
  const connectionCount = Math.min(job.connections, socketHeadroom())
  let samples = new Float64Array(1 << 16)
  let size = 0
  /** The seqs stamped in the window that anyone received: each is owed to every measured subscription of its symbol. */
  const seqs = new Set<number>()
  /** Values stamped in this window count. */
  const stamped: Window = { since: Infinity, until: Infinity }
  const all: Array<Subscription> = []
  const connections: Array<Connection> = []
  let ready = 0
  let opening = true
  const onValue = (subscription: Subscription, data: string, now: number) => {
    const tick = JSON.parse(data) as { seq: number; symbol: string; ts: number }
    if (tick.symbol !== subscription.symbol) {
      subscription.misattributed++
      return
    }
    if (subscription.count > 0) {
      const step = tick.seq - subscription.lastSeq
      if (step <= 0) {
        subscription.repeats++
        return
      }
      subscription.gaps += step / symbolCount - 1
    }
    subscription.count++
    subscription.lastSeq = tick.seq
    if (!subscription.measured || tick.ts < stamped.since || tick.ts >= stamped.until) return
    subscription.inWindow++
    seqs.add(tick.seq)
    if (size === samples.length) {
      const grown = new Float64Array(samples.length * 2)
      grown.set(samples)
      samples = grown
    }
    samples[size++] = now - tick.ts
  }
  try {
    await barrier("baseline")
    const openedAt = performance.now()
    const open = paced(connectionCount, job.concurrency, async (i) => {
      if (!opening) return
      const symbols = job.mux ? Array.from({ length: symbolCount }, (_, k) => `s${k}`) : [`s${i % symbolCount}`]
      const mine = new Map<string, Subscription>()
      for (const symbol of symbols) {
        const subscription: Subscription = {
          symbol,
          count: 0,
          lastSeq: -1,
          gaps: 0,
          repeats: 0,
          misattributed: 0,
          inWindow: 0,
          others: 0,
          measured: false
        }
        mine.set(symbol, subscription)
        all.push(subscription)
      }
      let waiting = symbols.length
      let allArrived!: () => void
      const arrived = new Promise<void>((resolve) => (allArrived = resolve))
      let unknown = 0
      const reader = new SubscriptionReader(nowMicros, {
        onValue: (sub, data, now) => {
          const subscription = mine.get(sub)
          if (subscription === undefined) {
            unknown++
            return
          }
          const first = subscription.count === 0
          onValue(subscription, data, now)
          if (first && subscription.count > 0 && --waiting === 0) allArrived()
        },
        onOther: (sub) => {
          const subscription = mine.get(sub)
          if (subscription !== undefined) subscription.others++
          else unknown++
        }
      }, job.mux ? undefined : symbols[0])
      const route = {
        ...job.route,
        path: job.route.path.replaceAll("{key}", symbols[0]!),
        ...(job.route.body === undefined ? {} : { body: job.route.body.replaceAll("{key}", symbols[0]!) })
      }
      const connection = request(job.port, route, reader)
      connections.push(connection)
      await expectOk(connection, route.path)
      await Promise.race([arrived, connection.done.then(() => Promise.reject(new Error("a subscription's connection ended")))])
      if (unknown > 0) throw new Error(`${unknown} events of subscriptions the connection never asked for`)
      ready++
    })
    await Promise.race([open, sleep(job.connectDeadlineMs)])
    opening = false
    const connectSeconds = (performance.now() - openedAt) / 1000
    const connected = ready
    await sleep(job.warmupMs)
    const measured = all.filter((s) => s.count > 0)
    for (const subscription of measured) subscription.measured = true
    const { seconds, clientCpu } = await measureWindow(stamped, job)
    const perSymbol = new Map<string, number>()
    for (const seq of seqs) perSymbol.set(symbolOf(seq), (perSymbol.get(symbolOf(seq)) ?? 0) + 1)
    let owed = 0
    let missingInWindow = 0
    let incomplete = 0
    for (const subscription of measured) {
      const due = perSymbol.get(subscription.symbol) ?? 0
      owed += due
      if (subscription.inWindow < due) {
        missingInWindow += due - subscription.inWindow
        incomplete++
      }
    }
    let gaps = 0
    let repeats = 0
    let misattributed = 0
    let others = 0
    for (const subscription of all) {
      gaps += subscription.gaps
      repeats += subscription.repeats
      misattributed += subscription.misattributed
      others += subscription.others
    }
    const subscribedAtEnd = all.filter((s) => s.count > 0).length
    await barrier("held")
    return {
      connections: connected,
      ...(connectionCount < job.connections ? { connectionsCappedByFileLimit: connectionCount } : {}),
      subscribers: measured.length,
      subscribedAtEnd,
      connectSeconds: round(connectSeconds),
      published: seqs.size,
      deliveries: size,
      deliveredShare: owed === 0 ? 0 : round(size / owed, 4),
      missingInWindow,
      incompleteSubscriptions: incomplete,
      gaps,
      repeats,
      misattributed,
      otherEvents: others,
      ...latencyFigures(samples, size),
      seconds: round(seconds),
      clientCpu
    }
  } finally {
    opening = false
    for (const connection of connections) connection.reset()
  }
}

// ---- storm

/** Durations (ms or µs), growing as they come; read sorted once. */
class Samples {
  private values = new Float64Array(1 << 12)
  size = 0
  push(value: number): void {
    if (this.size === this.values.length) {
      const grown = new Float64Array(this.values.length * 2)
      grown.set(this.values)
      this.values = grown
    }
    this.values[this.size++] = value
  }
  sorted(): Float64Array {
    return this.values.slice(0, this.size).sort()
  }
}

/** Counts of named outcomes (errors by code, shed reasons), as one line: `a 3, b 1`, most frequent first. */
const tally = (counts: ReadonlyMap<string, number>): string =>
  [...counts].sort((a, b) => b[1] - a[1]).map(([name, n]) => `${name} ${n}`).join(", ")

const bump = (counts: Map<string, number>, name: string, by = 1): void => {
  counts.set(name, (counts.get(name) ?? 0) + by)
}

/** The live subscribers' lag: of the values published before the storm, and of those published during it. */
class LiveLag {
  readonly before = new Samples()
  readonly during = new Samples()
  /** The stamps seen in the storm's window: the values the feed published in it. */
  readonly stamps = new Set<number>()
  beforeSince = Infinity
  stormSince = Infinity
  stormUntil = Infinity
  readonly record = (stamp: number, now: number): void => {
    if (stamp >= this.beforeSince && stamp < this.stormSince) this.before.push(now - stamp)
    else if (stamp >= this.stormSince && stamp < this.stormUntil) {
      this.during.push(now - stamp)
      this.stamps.add(stamp)
    }
  }
}

interface LiveSubscriber {
  readonly connection: Connection
  readonly first: FirstTick
}

/** Opens the live subscriptions (until `connectDeadlineMs`), their values recorded by `lag`; `onLost` when one closes. */
const openLive = async (
  job: Extract<Job, { kind: "storm" }>,
  lag: LiveLag,
  into: Array<LiveSubscriber>,
  onLost: () => void
): Promise<void> => {
  const open = paced(job.live, job.concurrency, async () => {
    const first = new FirstTick()
    const reader = new StampReader(nowMicros, lag.record)
    const connection = request(job.port, job.route, {
      data(buffer, start, end) {
        first.data(buffer, start, end)
        reader.data(buffer, start, end)
      }
    })
    into.push({ connection, first })
    await expectOk(connection, job.route.path)
    await first.arrived
    connection.done.then(onLost, onLost)
  })
  await Promise.race([open, sleep(job.connectDeadlineMs)])
}

/**
 * GET each of `paths` on a fresh connection every `everyMs`: the answer
 * times, and what failed. At most `maxOut` unanswered at once (each holds a
 * socket): past it a probe is skipped, and counted.
 */
const probing = (port: number, paths: ReadonlyArray<string>, everyMs: number, maxOut: number) => {
  const times = new Map(paths.map((path) => [path, new Samples()]))
  const failures = new Map<string, number>()
  /** Probes not answered yet, with when they were sent. */
  const out = new Map<Connection, { readonly path: string; readonly t0: number }>()
  let skipped = 0
  const send = () => {
    for (const path of paths) {
      if (out.size >= maxOut) {
        skipped++
        continue
      }
      const t0 = performance.now()
      const connection = request(port, { path }, new ByteCounter())
      out.set(connection, { path, t0 })
      const answered = (failure: string | undefined) => {
        if (!out.delete(connection)) return
        times.get(path)!.push(performance.now() - t0)
        if (failure !== undefined) bump(failures, `${path}: ${failure}`)
      }
      connection.response.then(
        (response) =>
          connection.done.then(
            () => answered(response.status === 200 ? undefined : `HTTP ${response.status}`),
            (error: Error) => answered(error.message)
          ),
        (error: Error) => answered(error.message)
      )
    }
  }
  send()
  const timer = setInterval(send, everyMs)
  return {
    /** Stops sending; waits up to `waitMs` for the probes still out, then counts them at the time they have taken. */
    stop: async (waitMs: number): Promise<Result> => {
      clearInterval(timer)
      const deadline = performance.now() + waitMs
      while (out.size > 0 && performance.now() < deadline) await sleep(20)
      const unanswered = out.size
      for (const [connection, { path, t0 }] of out) {
        times.get(path)!.push(performance.now() - t0)
        connection.reset()
      }
      out.clear()
      const figures: Result = {}
      let max = 0
      for (const [path, samples] of times) {
        const sorted = samples.sorted()
        const name = path.replace(/[^a-z]/g, "")
        const slowest = sorted[sorted.length - 1] ?? NaN
        figures[`${name}P99Ms`] = round(percentile(sorted, 0.99))
        figures[`${name}MaxMs`] = round(slowest)
        max = Math.max(max, slowest)
      }
      return { ...figures, probeMaxMs: round(max), probeFailures: tally(failures), probesUnanswered: unanswered, probesSkipped: skipped }
    }
  }
}

/** One client of the storm: its attempts until admitted, as the generated client makes them. */
interface StormClient {
  /** Failed attempts in a row (the backoff's exponent). */
  failures: number
  /** ms from the storm's start, once admitted. */
  admittedAfterMs: number | undefined
  /** Answered a status a client does not retry: it gave up. */
  gaveUp: boolean
  /** Between two attempts, waiting out its backoff. */
  waiting: boolean
  /** The current attempt's status, once answered. */
  status: number | undefined
  connection: Connection | undefined
}

/** Where a client not admitted is: what keeps it out (`waiting to retry`, `connecting`, …). */
const pendingState = (client: StormClient): string =>
  client.waiting
    ? "waiting to retry"
    : client.connection?.connected() !== true
    ? "connecting (SYN not answered)"
    : client.status === undefined
    ? "connected, no answer"
    : `answered ${client.status}, no value`

/**
 * `count` clients, each opening its subscription, all in this tick; refused
 * and failed attempts are made again after the generated client's wait
 * (`Backoff.retryWait`: the `Retry-After`, at most `maxDelayMs`, plus full
 * jitter over the exponential backoff from `initialDelayMs`).
 */
const arrive = (port: number, route: Route, count: number) => {
  const t0 = performance.now()
  const clients: Array<StormClient> = []
  let stopped = false
  const outcomes = { admitted: 0, refused: 0, refusedOther: 0, connectionErrors: 0, lostAfterAdmission: 0 }
  const errorKinds = new Map<string, number>()
  const otherStatuses = new Map<string, number>()
  let settled = 0
  let allSettled!: () => void
  const done = new Promise<void>((resolve) => (allSettled = resolve))
  const settle = () => {
    if (++settled === count) allSettled()
  }
  const attempt = (client: StormClient): void => {
    if (stopped) return
    const first = new FirstTick()
    const connection = request(port, route, first)
    client.connection = connection
    client.waiting = false
    client.status = undefined
    /** This attempt is decided: admitted, refused, failed or given up. */
    let over = false
    const retry = (retryAfterMs: number | undefined) => {
      over = true
      connection.reset()
      client.failures++
      client.waiting = true
      const wait = Backoff.retryWait(client.failures, reconnectDefaults.initialDelayMs, reconnectDefaults.maxDelayMs, retryAfterMs)
      setTimeout(() => attempt(client), wait)
    }
    connection.response.then((response) => {
      client.status = response.status
      if (over || response.status === 200) return
      if (!Backoff.transientStatuses.has(response.status)) {
        over = true
        connection.reset()
        client.gaveUp = true
        bump(otherStatuses, `HTTP ${response.status}`)
        return settle()
      }
      if (response.status === 503) outcomes.refused++
      else outcomes.refusedOther++
      // The client's own reading of the header (it reads a fetch Response).
      retry(Backoff.retryAfterOf(new globalThis.Response(null, { status: response.status, headers: [...response.headers] })))
    }, () => {})
    first.arrived.then(() => {
      if (over) return
      over = true
      client.admittedAfterMs = performance.now() - t0
      outcomes.admitted++
      settle()
      const lost = () => {
        if (!stopped) outcomes.lostAfterAdmission++
      }
      connection.done.then(lost, lost)
    })
    // A connection error, or a close before the first value (a 200 whose stream ended).
    const failed = (error?: Error) => {
      if (over || stopped || first.count > 0) return
      outcomes.connectionErrors++
      bump(errorKinds, (error as NodeJS.ErrnoException | undefined)?.code ?? "closed before a value")
      retry(undefined)
    }
    connection.done.then(() => failed(), failed)
  }
  for (let i = 0; i < count; i++) {
    clients.push({ failures: 0, admittedAfterMs: undefined, gaveUp: false, waiting: false, status: undefined, connection: undefined })
  }
  for (const client of clients) attempt(client)
  if (count === 0) allSettled()
  return {
    /** Every client admitted, or given up. */
    done,
    /** ms since the storm's start. */
    elapsedMs: () => performance.now() - t0,
    /** Admitted clients whose connection closed since (not by us). */
    lost: () => outcomes.lostAfterAdmission,
    /** What the clients saw so far. */
    figures: (): Result => {
      const times = clients.map((c) => c.admittedAfterMs).filter((ms): ms is number => ms !== undefined).sort((a, b) => a - b)
      const half = Math.floor((count - 1) / 2)
      const pending = new Map<string, number>()
      for (const client of clients) if (client.admittedAfterMs === undefined && !client.gaveUp) bump(pending, pendingState(client))
      return {
        ...outcomes,
        ...(outcomes.admitted === count ? { allAdmittedSeconds: round((times[count - 1] ?? 0) / 1000) } : {}),
        ...(times.length > half ? { halfAdmittedSeconds: round(times[half]! / 1000) } : {}),
        connectionErrorKinds: tally(errorKinds),
        gaveUp: clients.filter((c) => c.gaveUp).length,
        otherStatuses: tally(otherStatuses),
        notAdmitted: tally(pending)
      }
    },
    /** No more attempts; every connection closed. */
    stop: () => {
      stopped = true
      for (const client of clients) client.connection?.reset()
    }
  }
}

/** `stream_shed_total` of the server's `/metrics`, summed by reason (`fan_out_delay 1200, …`; "" when none). */
const shedReasons = async (port: number, timeoutMs: number): Promise<string> => {
  const page = new BodyText()
  const connection = request(port, { path: "/metrics" }, page)
  try {
    const answered = await Promise.race([connection.done.then(() => true), sleep(timeoutMs).then(() => false)])
    if (!answered) return `(/metrics not answered within ${timeoutMs / 1000} s)`
  } catch (error) {
    return `(no /metrics: ${error instanceof Error ? error.message : String(error)})`
  } finally {
    connection.reset()
  }
  const counts = new Map<string, number>()
  for (const line of page.text().split("\n")) {
    if (!line.startsWith("stream_shed_total")) continue
    bump(counts, /reason="([^"]*)"/.exec(line)?.[1] ?? "?", Number(line.slice(line.lastIndexOf(" ") + 1)))
  }
  return tally(counts)
}

const storm = async (job: Extract<Job, { kind: "storm" }>): Promise<Result> => {
  // The live subscribers, the arrivals and the probes each hold a socket: more than
  // the open-file limit allows would fail with EMFILE.
  const arrivalCount = Math.max(0, Math.min(job.arrivals, socketHeadroom() - job.live - job.maxProbesOut - 8))
  const lag = new LiveLag()
  const live: Array<LiveSubscriber> = []
  let stopped = false
  let liveLost = 0
  let arrivals: ReturnType<typeof arrive> | undefined
  try {
    await openLive(job, lag, live, () => {
      if (!stopped) liveLost++
    })
    const liveCount = live.filter((l) => l.first.count > 0).length
    lag.beforeSince = nowMicros()
    await sleep(job.warmupMs)
    // This process's own lateness (its connects in one tick, the answers after): part of every time it measures.
    const ownDelay = monitorEventLoopDelay({ resolution: 10 })
    ownDelay.enable()
    mark("window-start")
    const cpu0 = process.cpuUsage()
    lag.stormSince = nowMicros()
    arrivals = arrive(job.port, job.route, arrivalCount)
    // The first probes go out behind the storm's connections, as a health check during a storm does.
    const probes = probing(job.port, job.probePaths, job.probeEveryMs, job.maxProbesOut)
    await Promise.race([arrivals.done, sleep(job.cutoffMs)])
    // The figures at the cut-off (or once all are in); the window lasts at least `minWindowMs`.
    const admission = arrivals.figures()
    await sleep(job.minWindowMs - arrivals.elapsedMs())
    lag.stormUntil = nowMicros()
    const windowSeconds = arrivals.elapsedMs() / 1000
    mark("window-end")
    const clientCpu = cpuSince(cpu0, windowSeconds)
    ownDelay.disable()
    const probeFigures = await probes.stop(5000)
    await sleep(job.graceMs)
    stopped = true
    const before = lag.before.sorted()
    const during = lag.during.sorted()
    const owed = lag.stamps.size * liveCount
    return {
      arrivals: arrivalCount,
      ...admission,
      lostAfterAdmission: arrivals.lost(),
      ...(arrivalCount < job.arrivals ? { arrivalsCappedByFileLimit: arrivalCount } : {}),
      live: liveCount,
      liveLost,
      beforeP99Ms: round(percentile(before, 0.99) / 1000),
      p50Ms: round(percentile(during, 0.5) / 1000),
      p99Ms: round(percentile(during, 0.99) / 1000),
      maxMs: round((during[during.length - 1] ?? NaN) / 1000),
      deliveredShare: owed === 0 ? 0 : round(during.length / owed, 3),
      ...probeFigures,
      windowSeconds: round(windowSeconds),
      loadLoopDelayMaxMs: round(ownDelay.max / 1e6),
      clientCpu,
      shed: await shedReasons(job.port, 5000)
    }
  } finally {
    stopped = true
    arrivals?.stop()
    for (const { connection } of live) connection.reset()
  }
}

const slow = async (job: Extract<Job, { kind: "slow" }>): Promise<Result> => {
  const counter = new TickCounter()
  const connection = request(job.port, job.route, counter)
  try {
    await expectOk(connection, job.route.path)
    await sleep(job.readMs)
    if (counter.count === 0) throw new Error(`no tick arrived within ${job.readMs} ms`)
    await barrier("stall-start")
    const readBefore = counter.count
    connection.pause()
    mark("paused")
    await sleep(job.stallMs)
    await barrier("stall-end")
    const bytesAtEnd = counter.bytes
    return { readBeforeStall: readBefore, bytesReadBeforeStall: bytesAtEnd }
  } finally {
    connection.close()
  }
}

const download = async (job: Extract<Job, { kind: "download" }>): Promise<Result> => {
  const transfer = async (route: Route, bytes: number | undefined) => {
    const counter = new ByteCounter()
    const connection = request(job.port, route, counter)
    try {
      await expectOk(connection, route.path)
      await connection.done
      if (bytes !== undefined && counter.bytes !== bytes) {
        throw new Error(`download delivered ${counter.bytes} bytes instead of ${bytes}`)
      }
    } finally {
      connection.close()
    }
  }
  if (job.warmupRoute !== undefined) await transfer(job.warmupRoute, undefined)
  mark("window-start")
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await transfer(job.route, job.bytes)
  const seconds = (performance.now() - t0) / 1000
  mark("window-end")
  return { value: job.bytes / 1e6 / seconds, seconds: round(seconds), clientCpu: cpuSince(cpu0, seconds) }
}

/** A reader that takes `bytesPerSecond`, pausing the socket in between (the kernel buffers fill). */
const slowDownload = async (job: Extract<Job, { kind: "slowDownload" }>): Promise<Result> => {
  const counter = new ByteCounter()
  let allowed = 0
  let connection: Connection | undefined
  const sink = {
    data(buffer: Uint8Array, start: number, end: number) {
      counter.data(buffer, start, end)
      if (counter.bytes >= allowed) connection?.pause()
    }
  }
  connection = request(job.port, job.route, sink)
  const tickMs = 20
  const timer = setInterval(() => {
    allowed += (job.bytesPerSecond * tickMs) / 1000
    if (counter.bytes < allowed) connection?.resume()
  }, tickMs)
  try {
    await expectOk(connection, job.route.path)
    const t0 = performance.now()
    await sleep(job.durationMs)
    await barrier("slow-end")
    const seconds = (performance.now() - t0) / 1000
    return { bytesRead: counter.bytes, readMBps: round(counter.bytes / 1e6 / seconds) }
  } finally {
    clearInterval(timer)
    connection.close()
  }
}

const exportRows = async (job: Extract<Job, { kind: "export" }>): Promise<Result> => {
  const counter = new LineCounter()
  mark("window-start")
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const connection = request(job.port, job.route, counter)
  try {
    await expectOk(connection, job.route.path)
    await connection.done
    const seconds = (performance.now() - t0) / 1000
    mark("window-end")
    const rows = counter.lines - job.extraLines
    if (rows !== job.rows) throw new Error(`the export delivered ${rows} rows instead of ${job.rows}`)
    return {
      value: rows / seconds,
      seconds: round(seconds),
      bytes: counter.bytes,
      bodyMBps: round(counter.bytes / 1e6 / seconds),
      clientCpu: cpuSince(cpu0, seconds)
    }
  } finally {
    connection.close()
  }
}

/**
 * Many exports whose clients read nothing after the response headers: the
 * server can only hold them back. Barriers `baseline` (before), `stalled`
 * (once all answered), `mid` and `end` of the stall.
 */
const stalledExports = async (job: Extract<Job, { kind: "stalledExports" }>): Promise<Result> => {
  await barrier("baseline")
  const held: Array<{ readonly connection: Connection; readonly counter: ByteCounter }> = []
  try {
    await paced(job.connections, job.concurrency, async () => {
      const counter = new ByteCounter()
      const connection = request(job.port, job.route, counter)
      held.push({ connection, counter })
      await expectOk(connection, job.route.path)
      connection.pause()
    })
    await barrier("stalled")
    await sleep(job.stallMs / 2)
    await barrier("mid")
    await sleep(job.stallMs / 2)
    await barrier("end")
    let bytes = 0
    for (const { counter } of held) bytes += counter.bytes
    return { connections: held.length, clientBytesMiB: round(bytes / 1024 / 1024) }
  } finally {
    for (const { connection } of held) connection.reset()
  }
}

const run = (job: Job): Promise<Result> => {
  switch (job.kind) {
    case "throughput":
      return throughput(job)
    case "throughputClient":
      return throughputClient(job)
    case "idle":
      return idle(job)
    case "fanout":
      return fanout(job)
    case "subscriptions":
      return subscriptions(job)
    case "storm":
      return storm(job)
    case "slow":
      return slow(job)
    case "download":
      return download(job)
    case "slowDownload":
      return slowDownload(job)
    case "export":
      return exportRows(job)
    case "stalledExports":
      return stalledExports(job)
  }
}

run(JSON.parse(process.argv[2] ?? "null") as Job).then(
  (result) => {
    send({ result })
    process.exit(0)
  },
  (error: unknown) => {
    send({ error: error instanceof Error ? error.message : String(error) })
    process.exit(1)
  }
)
