/**
 * Test support: crowds of HTTP clients against a server process, in a
 * process of their own, so that reading their streams does not delay the
 * measuring process's event loop (its probes then time the server, not the
 * prober). Each client binds a loopback address of its own (`localAddress`:
 * 127.0.0.2, 127.0.0.3, …; Linux routes all of 127/8 to lo), so the server,
 * which tells clients apart by remote address, sees as many clients as there
 * are addresses — past its per-client cap on transfers.
 *
 * `startCrowd()` forks this file (`node --import tsx`); the child runs what
 * the parent asks over IPC:
 *
 * - `ramp`: subscriptions opened at a steady rate and held, each client
 *   giving up after `giveUpMs` without an answer; every answer timed to its
 *   head (a 503 must come fast: that is what shedding is for).
 * - `storm`: clients that all arrive at once and try again after each 503
 *   as the library's client does (`Retry-After` plus full jitter,
 *   `retryWait` of client/internal/Backoff.ts), until admitted; then held.
 * - `live`: subscribers that track `Last-Event-ID` and resume with it, and
 *   check every price's sequence number: a gap or a repeat is only allowed
 *   where an `event: dropped` reported it. They time each price from its
 *   quote (`at`, the server's clock, the same machine's) to its arrival, in
 *   windows the parent marks (before, during, after a storm).
 * - `hog`: one transfer read at full speed.
 * - `stall`: transfers opened and never read; `release` reads them out
 *   afterwards, to see how each ended (cut by the server: truncated).
 *
 * Every answer is counted by what the client saw: 200 (a stream), 503 (shed:
 * well formed with `Retry-After` and a JSON `{_tag, message}`), another
 * status, a connection error, or no answer within its give-up time (the
 * client closes the connection).
 */
import * as Http from "node:http"
import { createParser } from "eventsource-parser"
import { retryWait } from "../../client/internal/Backoff.ts"
import { forkChild } from "./childProcess.ts"

/** Milliseconds: count, median, 99th percentile, maximum, and how many over 1 s. */
export interface Distribution {
  readonly count: number
  readonly medianMs: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly over1s: number
}

export const distribution = (values: ReadonlyArray<number>): Distribution => {
  const sorted = Float64Array.from(values).sort()
  const at = (q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? 0)
  let over1s = 0
  for (const ms of sorted) if (ms > 1_000) over1s++
  return { count: sorted.length, medianMs: at(0.5), p99Ms: at(0.99), maxMs: Math.round(sorted.at(-1) ?? 0), over1s }
}

/** `base.0.0.2`-style addresses: `count` of them from `first` (e.g. "127.0.1.1"), carrying into the higher bytes. */
export const loopbackAddresses = (first: string, count: number): Array<string> => {
  const [a, b, c, d] = first.split(".").map(Number) as [number, number, number, number]
  const start = ((b << 16) | (c << 8) | d) >>> 0
  return Array.from({ length: count }, (_, i) => {
    const n = start + i
    return `${a}.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`
  })
}

/** How the requests of a ramp or a storm were answered, as their clients saw it. */
export interface Answers {
  readonly sent: number
  /** Answered 200: a stream the server started for a client still there. */
  readonly ok: number
  readonly shed: number
  /** 503s with `Retry-After` and a JSON `{_tag, message}`. */
  readonly shedWellFormed: number
  readonly other: number
  readonly errors: number
  /** No answer within the give-up time: the client closed the connection. */
  readonly gaveUp: number
  /** Sent and not answered (nor given up) yet. */
  readonly pending: number
  /** Streams open now, and streams the server ended while their client still held them. */
  readonly open: number
  readonly endedByServer: number
  /** Time from sending to the response head, of 503s and of 200s. */
  readonly shedMs: Distribution
  readonly okMs: Distribution
  /**
   * How late this process's own event loop ran (a 50 ms timer's lateness):
   * when it is late by seconds, the times above are partly the crowd's.
   */
  readonly crowdLoopDelay: Distribution
}

export interface StormAnswers extends Answers {
  readonly clients: number
  /** Clients answered 200 at last, and how long after the storm began the last of them was. */
  readonly admitted: number
  readonly allAdmittedMs: number | undefined
  /** When each client was admitted, from the storm's start. */
  readonly admittedAtMs: Distribution
  /** Most attempts one client needed. */
  readonly maxAttempts: number
}

export interface LiveReport {
  readonly subscribers: number
  /** Subscribers that received at least one price. */
  readonly receiving: number
  readonly prices: number
  /** Sequence numbers skipped (past the last one seen) and seen again or out of order. */
  readonly skipped: number
  readonly repeated: number
  /** Prices reported as not delivered (`event: dropped` counts), and gaps of unknown size (`null`). */
  readonly droppedReported: number
  readonly unknownGaps: number
  /** Skipped beyond what `dropped` reported, summed over subscribers that had no gap of unknown size. */
  readonly unexplainedSkips: number
  /** Connections the subscribers opened again (their stream ended or failed), and answers other than 200 to them. */
  readonly reconnects: number
  readonly refused: number
  /** Quote-to-arrival lag of the prices that arrived in each marked window. */
  readonly lag: Readonly<Record<string, Distribution>>
  /** Prices per window, and subscribers that received none in it. */
  readonly pricesIn: Readonly<Record<string, number>>
  readonly silentIn: Readonly<Record<string, number>>
  /** As in `Answers`: when the crowd's own loop is late, so are the lags it measures. */
  readonly crowdLoopDelay: Distribution
}

export interface HogReport {
  readonly status: number | "error"
  readonly bytes: number
  /** Lines (NDJSON rows) received whole. */
  readonly rows: number
  readonly ms: number
  /** The body came to its end (not cut, not stopped). */
  readonly complete: boolean
  /** Time from sending to the response head. */
  readonly headMs: number
}

export interface StallReport {
  readonly statuses: Readonly<Record<string, number>>
  readonly headMs: Distribution
}

export interface ReleaseReport {
  /** Held responses read out to their end: whole (`complete`) or not (cut by the server). */
  readonly complete: number
  readonly truncated: number
  /** Still not ended when the release gave up waiting. */
  readonly unfinished: number
  readonly bytes: number
}

export interface RampCommand {
  readonly url: string
  readonly perSecond: number
  readonly durationMs: number
  readonly giveUpMs: number
  readonly addresses: ReadonlyArray<string>
}

export interface StormCommand {
  readonly url: string
  readonly clients: number
  readonly addresses: ReadonlyArray<string>
  /** An attempt without an answer this long is given up (and tried again). */
  readonly giveUpMs: number
  /** The library client's `reconnect` settings (its defaults: 500 and 30,000). */
  readonly initialDelayMs: number
  readonly maxDelayMs: number
}

export interface LiveCommand {
  readonly url: string
  readonly subscribers: number
  readonly addresses: ReadonlyArray<string>
  readonly initialDelayMs: number
  readonly maxDelayMs: number
}

type Command =
  | { readonly type: "ramp"; readonly ramp: RampCommand }
  | { readonly type: "storm"; readonly storm: StormCommand }
  | { readonly type: "answers" }
  | { readonly type: "live"; readonly live: LiveCommand }
  | { readonly type: "mark"; readonly window: string }
  | { readonly type: "liveReport" }
  | { readonly type: "hog"; readonly url: string; readonly address: string }
  | { readonly type: "stopHog" }
  | { readonly type: "stall"; readonly requests: ReadonlyArray<{ readonly url: string; readonly address: string }>; readonly timeoutMs: number }
  | { readonly type: "release"; readonly timeoutMs: number }
  | { readonly type: "close" }

// ---------------------------------------------------------------------------
// The child
// ---------------------------------------------------------------------------

const wellFormed503 = (response: Http.IncomingMessage, body: string): boolean => {
  try {
    const parsed = JSON.parse(body) as { _tag?: unknown; message?: unknown }
    return response.headers["retry-after"] !== undefined && typeof parsed._tag === "string" && typeof parsed.message === "string"
  } catch {
    return false
  }
}

/** A `Retry-After` in seconds, in milliseconds (what `retryAfterOf` of the client reads). */
const retryAfterMs = (response: Http.IncomingMessage): number | undefined => {
  const header = response.headers["retry-after"]
  return typeof header === "string" && /^\s*\d+\s*$/.test(header) ? Number(header) * 1000 : undefined
}

type Outcome =
  | { readonly kind: "ok"; readonly response: Http.IncomingMessage; readonly request: Http.ClientRequest }
  | { readonly kind: "shed"; readonly retryAfterMs: number | undefined }
  | { readonly kind: "other" | "error" | "gaveUp" }

const child = () => {
  const loopDelays: Array<number> = []
  let expected = performance.now() + 50
  setInterval(() => {
    const now = performance.now()
    loopDelays.push(Math.max(0, now - expected))
    expected = now + 50
  }, 50)
  const held = new Set<Http.ClientRequest>()
  let closing = false
  const counts = { sent: 0, ok: 0, shed: 0, shedWellFormed: 0, other: 0, errors: 0, gaveUp: 0, endedByServer: 0 }
  const shedMs: Array<number> = []
  const okMs: Array<number> = []

  /**
   * One GET from `address`: a 200 is held (read and discarded) until the end,
   * anything else read to its end and counted. The client gives up (closes
   * the connection) after `giveUpMs` without a head.
   */
  const attempt = (url: string, address: string, giveUpMs: number, headers: Record<string, string> = {}) =>
    new Promise<Outcome>((resolve) => {
      counts.sent++
      const started = performance.now()
      let settled = false
      const settle = (outcome: Outcome) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resolve(outcome)
      }
      let answered = false
      const request = Http.get(url, { agent: false, localAddress: address, headers }, (response) => {
        const ms = performance.now() - started
        answered = true
        clearTimeout(timer)
        if (response.statusCode === 200) {
          counts.ok++
          okMs.push(ms)
          held.add(request)
          response.on("close", () => {
            if (held.delete(request) && !closing) counts.endedByServer++
          })
          response.on("error", () => {})
          return settle({ kind: "ok", response, request })
        }
        // A 503 counts as shed from its head on; whether it was well formed, once its body is in.
        if (response.statusCode === 503) {
          counts.shed++
          shedMs.push(ms)
        } else {
          counts.other++
        }
        let body = ""
        response.setEncoding("utf8")
        response.on("data", (text: string) => {
          body += text
        })
        const done = () => {
          if (response.statusCode !== 503) return settle({ kind: "other" })
          if (!settled && wellFormed503(response, body)) counts.shedWellFormed++
          settle({ kind: "shed", retryAfterMs: retryAfterMs(response) })
        }
        response.on("end", done)
        response.on("error", done)
        response.on("close", done)
      })
      const timer = setTimeout(() => {
        counts.gaveUp++
        settle({ kind: "gaveUp" })
        request.destroy()
      }, giveUpMs)
      request.on("error", () => {
        // After the head, the response's own events settle the attempt.
        if (settled || answered) return
        counts.errors++
        settle({ kind: "error" })
      })
    })

  const answers = (): Answers => ({
    ...counts,
    pending: counts.sent - counts.ok - counts.shed - counts.other - counts.errors - counts.gaveUp,
    open: held.size,
    shedMs: distribution(shedMs),
    okMs: distribution(okMs),
    crowdLoopDelay: distribution(loopDelays)
  })

  // The storm's clients: when each was admitted, and how many attempts it took.
  let storm: { readonly started: number; readonly clients: number; readonly admittedAt: Array<number>; maxAttempts: number } | undefined
  const stormAnswers = (): StormAnswers => {
    const admittedAt = storm?.admittedAt ?? []
    return {
      ...answers(),
      clients: storm?.clients ?? 0,
      admitted: admittedAt.length,
      allAdmittedMs: storm !== undefined && admittedAt.length === storm.clients ? Math.round(Math.max(0, ...admittedAt)) : undefined,
      admittedAtMs: distribution(admittedAt),
      maxAttempts: storm?.maxAttempts ?? 0
    }
  }

  const runStorm = (command: StormCommand) => {
    const state = { started: performance.now(), clients: command.clients, admittedAt: [] as Array<number>, maxAttempts: 0 }
    storm = state
    const client = async (i: number) => {
      const address = command.addresses[i % command.addresses.length]!
      for (let failures = 0; !closing;) {
        const outcome = await attempt(command.url, address, command.giveUpMs)
        if (outcome.kind === "ok") {
          outcome.response.on("data", () => {})
          state.admittedAt.push(performance.now() - state.started)
          state.maxAttempts = Math.max(state.maxAttempts, failures + 1)
          return
        }
        failures++
        const wait = retryWait(failures, command.initialDelayMs, command.maxDelayMs, outcome.kind === "shed" ? outcome.retryAfterMs : undefined)
        await new Promise((resolve) => setTimeout(resolve, wait))
      }
    }
    for (let i = 0; i < command.clients; i++) void client(i)
  }

  const runRamp = (command: RampCommand) =>
    new Promise<void>((resolve) => {
      const started = performance.now()
      const total = Math.round((command.perSecond * command.durationMs) / 1000)
      let opened = 0
      const open = () => {
        const due = Math.min(total, Math.floor(((performance.now() - started) * command.perSecond) / 1000))
        for (; opened < due; opened++) {
          void attempt(command.url, command.addresses[opened % command.addresses.length]!, command.giveUpMs).then((outcome) => {
            if (outcome.kind === "ok") outcome.response.on("data", () => {})
          })
        }
        if (opened < total) return
        clearInterval(timer)
        resolve()
      }
      // Every 10 ms: the rate holds within a few requests however late a turn of this loop runs.
      const timer = setInterval(open, 10)
    })

  // Live subscribers: their windows of lag, and what their sequence numbers say.
  let window = "before"
  const lags = new Map<string, Array<number>>()
  const pricesIn = new Map<string, number>()
  interface Watcher {
    lastEventId: string | undefined
    lastSeq: number | undefined
    prices: number
    skipped: number
    repeated: number
    dropped: number
    unknownGaps: number
    reconnects: number
    refused: number
    /** Windows in which this subscriber received a price. */
    readonly heardIn: Set<string>
  }
  const watchers: Array<Watcher> = []
  const lagsOf = (name: string) => {
    let list = lags.get(name)
    if (list === undefined) lags.set(name, list = [])
    return list
  }
  const startLive = (command: LiveCommand) => {
    for (let i = 0; i < command.subscribers; i++) {
      const watcher: Watcher = {
        lastEventId: undefined,
        lastSeq: undefined,
        prices: 0,
        skipped: 0,
        repeated: 0,
        dropped: 0,
        unknownGaps: 0,
        reconnects: 0,
        refused: 0,
        heardIn: new Set()
      }
      watchers.push(watcher)
      const address = command.addresses[i % command.addresses.length]!
      const connect = async (failures: number): Promise<void> => {
        if (closing) return
        const headers: Record<string, string> = watcher.lastEventId === undefined ? {} : { "last-event-id": watcher.lastEventId }
        const outcome = await attempt(command.url, address, 10_000, headers)
        if (outcome.kind !== "ok") {
          watcher.refused++
          await new Promise((resolve) =>
            setTimeout(resolve, retryWait(failures + 1, command.initialDelayMs, command.maxDelayMs, outcome.kind === "shed" ? outcome.retryAfterMs : undefined))
          )
          return connect(failures + 1)
        }
        const parser = createParser({
          onEvent: (event) => {
            if (event.id !== undefined) watcher.lastEventId = event.id
            if (event.event === "dropped") {
              const count = (JSON.parse(event.data) as { count: number | null }).count
              if (count === null) watcher.unknownGaps++
              else watcher.dropped += count
              return
            }
            if (event.event !== undefined && event.event !== "message") return
            const price = JSON.parse(event.data) as { seq: number; at: string }
            const now = Date.now()
            watcher.prices++
            watcher.heardIn.add(window)
            pricesIn.set(window, (pricesIn.get(window) ?? 0) + 1)
            lagsOf(window).push(now - Date.parse(price.at))
            if (watcher.lastSeq !== undefined) {
              if (price.seq <= watcher.lastSeq) watcher.repeated++
              else watcher.skipped += price.seq - watcher.lastSeq - 1
            }
            if (watcher.lastSeq === undefined || price.seq > watcher.lastSeq) watcher.lastSeq = price.seq
          }
        })
        const decoder = new TextDecoder()
        outcome.response.on("data", (bytes: Buffer) => parser.feed(decoder.decode(bytes, { stream: true })))
        outcome.response.on("close", () => {
          if (closing) return
          // The stream ended or broke: resume from the last id, as a client does.
          watcher.reconnects++
          setTimeout(() => void connect(1), retryWait(1, command.initialDelayMs, command.maxDelayMs, undefined))
        })
      }
      void connect(0)
    }
  }
  const liveReport = (): LiveReport => {
    const sum = (f: (w: Watcher) => number) => watchers.reduce((total, w) => total + f(w), 0)
    const windows = [...lags.keys()]
    return {
      subscribers: watchers.length,
      receiving: watchers.filter((w) => w.prices > 0).length,
      prices: sum((w) => w.prices),
      skipped: sum((w) => w.skipped),
      repeated: sum((w) => w.repeated),
      droppedReported: sum((w) => w.dropped),
      unknownGaps: sum((w) => w.unknownGaps),
      unexplainedSkips: sum((w) => w.unknownGaps > 0 ? 0 : Math.max(0, w.skipped - w.dropped)),
      reconnects: sum((w) => w.reconnects),
      refused: sum((w) => w.refused),
      lag: Object.fromEntries(windows.map((name) => [name, distribution(lags.get(name)!)])),
      pricesIn: Object.fromEntries(windows.map((name) => [name, pricesIn.get(name) ?? 0])),
      silentIn: Object.fromEntries(windows.map((name) => [name, watchers.filter((w) => !w.heardIn.has(name)).length])),
      crowdLoopDelay: distribution(loopDelays)
    }
  }

  // The hog: one transfer read as fast as this process can.
  let hog: { request: Http.ClientRequest; finish: (complete: boolean) => void } | undefined
  const runHog = (url: string, address: string) =>
    new Promise<HogReport>((resolve) => {
      const started = performance.now()
      let status: number | "error" = "error"
      let bytes = 0
      let rows = 0
      let headMs = 0
      let done = false
      const finish = (complete: boolean) => {
        if (done) return
        done = true
        resolve({ status, bytes, rows, ms: Math.round(performance.now() - started), complete, headMs: Math.round(headMs) })
      }
      const request = Http.get(url, { agent: false, localAddress: address }, (response) => {
        status = response.statusCode ?? 0
        headMs = performance.now() - started
        response.on("data", (chunk: Buffer) => {
          bytes += chunk.byteLength
          for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) rows++
        })
        response.on("end", () => finish(response.complete))
        response.on("error", () => finish(false))
        response.on("close", () => finish(response.complete))
      })
      request.on("error", () => finish(false))
      hog = { request, finish }
    })

  // Stalled transfers: paused from their head on; read out by `release`.
  const stalled: Array<{ readonly request: Http.ClientRequest; response: Http.IncomingMessage | undefined }> = []
  const runStall = (requests: ReadonlyArray<{ readonly url: string; readonly address: string }>, timeoutMs: number) =>
    new Promise<StallReport>((resolve) => {
      const statuses: Record<string, number> = {}
      const heads: Array<number> = []
      let answered = 0
      const count = (status: string) => {
        statuses[status] = (statuses[status] ?? 0) + 1
        if (++answered === requests.length) finish()
      }
      const finish = () => {
        clearTimeout(timer)
        resolve({ statuses: { ...statuses }, headMs: distribution(heads) })
      }
      const timer = setTimeout(finish, timeoutMs)
      for (const { address, url } of requests) {
        const started = performance.now()
        const entry: (typeof stalled)[number] = {
          request: Http.get(url, { agent: false, localAddress: address }, (response) => {
            heads.push(performance.now() - started)
            entry.response = response
            response.pause()
            response.on("error", () => {})
            count(String(response.statusCode))
          }),
          response: undefined
        }
        entry.request.on("error", () => {
          if (entry.response === undefined) count("error")
        })
        stalled.push(entry)
      }
    })
  const release = (timeoutMs: number) =>
    new Promise<ReleaseReport>((resolve) => {
      const report = { complete: 0, truncated: 0, unfinished: 0, bytes: 0 }
      const open = stalled.filter((entry) => entry.response !== undefined)
      let left = open.length
      const finish = () => {
        clearTimeout(timer)
        resolve({ ...report, unfinished: left })
      }
      const timer = setTimeout(finish, timeoutMs)
      if (left === 0) finish()
      for (const { response } of open) {
        let ended = false
        const end = () => {
          if (ended) return
          ended = true
          if (response!.complete) report.complete++
          else report.truncated++
          if (--left === 0) finish()
        }
        response!.on("data", (chunk: Buffer) => {
          report.bytes += chunk.byteLength
        })
        response!.on("end", end)
        response!.on("close", end)
        response!.on("error", end)
        response!.resume()
      }
    })

  const reply = (id: number, value: unknown) => process.send!({ id, value })
  process.on("message", ({ command, id }: { readonly id: number; readonly command: Command }) => {
    switch (command.type) {
      case "ramp":
        return void runRamp(command.ramp).then(() => reply(id, answers()))
      case "storm":
        runStorm(command.storm)
        return reply(id, stormAnswers())
      case "answers":
        return reply(id, stormAnswers())
      case "live":
        startLive(command.live)
        return reply(id, liveReport())
      case "mark":
        window = command.window
        lagsOf(window)
        return reply(id, liveReport())
      case "liveReport":
        return reply(id, liveReport())
      case "hog":
        return void runHog(command.url, command.address).then((report) => reply(id, report))
      case "stopHog":
        hog?.request.destroy()
        hog?.finish(false)
        return reply(id, null)
      case "stall":
        return void runStall(command.requests, command.timeoutMs).then((report) => reply(id, report))
      case "release":
        return void release(command.timeoutMs).then((report) => reply(id, report))
      case "close":
        closing = true
        for (const request of held) request.destroy()
        for (const { request } of stalled) request.destroy()
        hog?.request.destroy()
        held.clear()
        return process.send!({ id, value: stormAnswers() }, () => process.exit(0))
    }
  })
  process.send!({ ready: true })
}

// ---------------------------------------------------------------------------
// The parent
// ---------------------------------------------------------------------------

export interface Crowd {
  readonly pid: number
  /** Opens subscriptions at `perSecond` for `durationMs`; resolves once the last is sent. */
  readonly ramp: (command: RampCommand) => Promise<Answers>
  /** Starts the storm's clients, all at once; `answers` tells how far they got. */
  readonly storm: (command: StormCommand) => Promise<StormAnswers>
  readonly answers: () => Promise<StormAnswers>
  readonly live: (command: LiveCommand) => Promise<LiveReport>
  /** Prices arriving from now on count in `window`'s lag. */
  readonly mark: (window: string) => Promise<LiveReport>
  readonly liveReport: () => Promise<LiveReport>
  /** Resolves once the transfer ended (or `stopHog` was called). */
  readonly hog: (url: string, address: string) => Promise<HogReport>
  readonly stopHog: () => Promise<void>
  /** Resolves once every request was answered (or after `timeoutMs`). */
  readonly stall: (requests: ReadonlyArray<{ readonly url: string; readonly address: string }>, timeoutMs?: number) => Promise<StallReport>
  readonly release: (timeoutMs?: number) => Promise<ReleaseReport>
  /** Closes every connection, then the child exits: the final answers. */
  readonly close: () => Promise<StormAnswers>
  /** SIGKILL if still running (a cleanup). */
  readonly kill: () => void
}

export const startCrowd = (): Promise<Crowd> => {
  const { child: process_, kill } = forkChild(import.meta.url, "--crowd-child")
  let next = 0
  const waiting = new Map<number, { resolve: (value: never) => void; reject: (error: Error) => void }>()
  process_.on("message", (message: { id?: number; value?: unknown }) => {
    if (message.id === undefined) return
    const entry = waiting.get(message.id)
    waiting.delete(message.id)
    entry?.resolve(message.value as never)
  })
  process_.once("exit", (code) => {
    for (const { reject } of waiting.values()) reject(new Error(`the crowd exited (code ${code})`))
    waiting.clear()
  })
  const ask = <A>(command: Command): Promise<A> =>
    new Promise<A>((resolve, reject) => {
      const id = next++
      waiting.set(id, { resolve: resolve as (value: never) => void, reject })
      process_.send({ id, command }, (error) => {
        if (error !== null) reject(error)
      })
    })
  return new Promise((resolve, reject) => {
    process_.once("error", reject)
    process_.once("exit", (code) => reject(new Error(`the crowd exited before it was ready (code ${code})`)))
    process_.once("message", () =>
      resolve({
        pid: process_.pid!,
        ramp: (ramp) => ask({ type: "ramp", ramp }),
        storm: (storm) => ask({ type: "storm", storm }),
        answers: () => ask({ type: "answers" }),
        live: (live) => ask({ type: "live", live }),
        mark: (window) => ask({ type: "mark", window }),
        liveReport: () => ask({ type: "liveReport" }),
        hog: (url, address) => ask({ type: "hog", url, address }),
        stopHog: () => ask({ type: "stopHog" }),
        stall: (requests, timeoutMs = 60_000) => ask({ type: "stall", requests, timeoutMs }),
        release: (timeoutMs = 30_000) => ask({ type: "release", timeoutMs }),
        close: () => ask({ type: "close" }),
        kill
      }))
  })
}

if (process.argv.includes("--crowd-child")) child()
