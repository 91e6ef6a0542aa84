/**
 * Serves a `Topic` subscription over Server-Sent Events (wire protocol v1)
 * straight onto a `node:http` response: the topic writes shared, pre-encoded
 * frames to the socket, so a subscriber costs a small object and two
 * listeners — no fiber, queue, Stream or timer of its own. Heartbeats come
 * from one timer per interval shared by every response; draining
 * (`GracefulShutdown`) is watched once per process, not per response.
 *
 * Same headers, opening line, events, metrics and cleanup log line as
 * `StreamingService.sse`.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Http from "node:http"
import * as GracefulShutdown from "../GracefulShutdown.ts"
import type { Drain } from "../GracefulShutdown.ts"
import { MetricsService, type StreamMetrics } from "../MetricsService.ts"
import * as NodeSse from "./NodeSse.ts"
import * as Scheduling from "./Scheduling.ts"
import * as Sse from "../../protocol/Sse.ts"
import { StreamingConfig } from "../StreamingConfig.ts"
import * as Topic from "../../topic/Topic.ts"

export interface ServeOptions<A> {
  /** Procedure name, for logs and metrics. */
  readonly name: string
  /**
   * JSON of a value (e.g. `JSON.stringify(encodeSuccess(value))`). Frames are
   * cached per function: create it once per procedure, not per request.
   */
  readonly encode: (value: A) => string
  /** More headers for the answer (CORS, for one). */
  readonly headers?: Readonly<Record<string, string>> | undefined
}

/** The head of an SSE answer, as `StreamingService.sse` sends it. */
export const headers: Readonly<Record<string, string>> = NodeSse.headers

/**
 * Deliveries are tallied per procedure and handed to `MetricsService` once a
 * second (and when a response ends) by one shared timer: a metric update per
 * write would cost more than the write.
 */
interface Tally {
  values: number
  bytes: number
  dropped: number
}

const tallies = new Map<StreamMetrics, Map<string, Tally>>()
let tallyUsers = 0
let tallyTimer: ReturnType<typeof setInterval> | undefined

const flushTally = (metrics: StreamMetrics, name: string, tally: Tally): void => {
  if (tally.dropped > 0) metrics.dropped("subscription", name, tally.dropped)
  if (tally.values > 0 || tally.bytes > 0) metrics.delivered("subscription", name, tally.values, tally.bytes)
  tally.values = 0
  tally.bytes = 0
  tally.dropped = 0
}

const flushTallies = (): void => {
  for (const [metrics, byName] of tallies) for (const [name, tally] of byName) flushTally(metrics, name, tally)
}

const acquireTally = (metrics: StreamMetrics, name: string): Tally => {
  let byName = tallies.get(metrics)
  if (byName === undefined) {
    byName = new Map()
    tallies.set(metrics, byName)
  }
  let tally = byName.get(name)
  if (tally === undefined) {
    tally = { values: 0, bytes: 0, dropped: 0 }
    byName.set(name, tally)
  }
  tallyUsers++
  if (tallyTimer === undefined) {
    tallyTimer = setInterval(flushTallies, 1000)
    tallyTimer.unref()
  }
  return tally
}

const releaseTally = (metrics: StreamMetrics, name: string, tally: Tally): void => {
  flushTally(metrics, name, tally)
  tallyUsers--
  if (tallyUsers === 0) {
    clearInterval(tallyTimer)
    tallyTimer = undefined
    tallies.clear()
  }
}

/** Responses being served, timers (heartbeats, metrics) and drain watchers alive: for leak tests. */
export const debugCounts = (): { readonly responses: number; readonly timers: number; readonly drainWatchers: number } => {
  const shared = NodeSse.counts()
  return { ...shared, timers: shared.timers + (tallyTimer === undefined ? 0 : 1) }
}

// ---------------------------------------------------------------------------
// one response
// ---------------------------------------------------------------------------

class Connection<A> extends NodeSse.Connection {
  private attachment: Topic.Attachment | undefined = undefined
  private done: (() => void) | undefined = undefined
  private tally: Tally | undefined = undefined

  constructor(
    response: Http.ServerResponse,
    readonly subscription: Topic.Subscription<A>,
    readonly options: ServeOptions<A>,
    metrics: StreamMetrics | undefined,
    drain: Drain,
    heartbeatMillis: number,
    readonly opening: string
  ) {
    super(response, options.name, metrics, drain, heartbeatMillis)
  }

  private readonly sink: Topic.Sink = {
    write: (text, values, dropped) => {
      if (this.stopped) return false
      const bytes = Buffer.byteLength(text)
      this.values += values
      this.bytes += bytes
      const tally = this.tally
      if (tally !== undefined) {
        tally.values += values
        tally.bytes += bytes
        tally.dropped += dropped
      }
      return this.send(text)
    },
    end: () => {
      if (this.stopped) return
      this.termination = "completed"
      this.endResponse.call(this.response, Sse.end)
      this.stop()
    }
  }

  protected resumeWriting(): void {
    this.attachment?.resume()
  }

  start(done: () => void, draining: boolean): void {
    this.done = done
    if (this.metrics !== undefined) this.tally = acquireTally(this.metrics, this.options.name)
    if (!this.open(this.options.headers, this.opening, draining)) return
    this.attachment = this.subscription[Topic.TypeId].attach(this.sink, this.options.encode)
  }

  protected release(): void {
    this.attachment?.detach()
  }

  protected override beforeEnded(): void {
    if (this.metrics !== undefined && this.tally !== undefined) releaseTally(this.metrics, this.options.name, this.tally)
  }

  /** Completes `serve`. */
  protected afterStop(): void {
    const done = this.done
    this.done = undefined
    done?.()
  }
}

const prepare = <A>(
  response: Http.ServerResponse,
  subscription: Topic.Subscription<A>,
  options: ServeOptions<A>
) =>
  Effect.gen(function*() {
    const config = yield* StreamingConfig
    const drain = yield* GracefulShutdown.current
    const metrics = Option.getOrUndefined(yield* Effect.serviceOption(MetricsService))
    const draining = yield* Deferred.isDone(drain.draining)
    const opening = config.retry === undefined ? Sse.comment("ok") : Sse.retry(Duration.toMillis(config.retry))
    const heartbeatMillis = Math.max(1, Math.round(Duration.toMillis(config.heartbeatInterval)))
    const connection = new Connection(response, subscription, options, metrics, drain, heartbeatMillis, opening)
    return { connection, draining }
  })

/**
 * Writes the SSE head and serves `subscription` on `response` until the topic
 * ends (`event: end`), the client disconnects, draining begins (no `end`: the
 * client reconnects and resumes) or the calling fiber is interrupted.
 * Reads `StreamingConfig`, `GracefulShutdown` and, when provided, `MetricsService`.
 */
export const serve = <A>(
  response: Http.ServerResponse,
  subscription: Topic.Subscription<A>,
  options: ServeOptions<A>
): Effect.Effect<void> =>
  Effect.flatMap(prepare(response, subscription, options), ({ connection, draining }) =>
    Effect.async<void>((resume) => {
      connection.start(() => resume(Effect.void), draining)
      return Effect.sync(() => connection.stop())
    }).pipe(Effect.ensuring(connection.log)))

/**
 * Like `serve`, but returns once the answer has started: from then on the
 * response belongs to the topic, so the request's fiber, scope and context
 * are released while the subscription stays open, and an idle subscription
 * costs little more than its socket. `onStop` runs once when the
 * subscription ends, however it ends; the `stream closed` line is logged
 * with the caller's loggers.
 *
 * A server that answers the request when its handler returns (as
 * `@effect/platform`'s does) must not touch the stream: `writeHead` and
 * `end` become no-ops on this response object.
 */
export const handOver = <A>(
  response: Http.ServerResponse,
  subscription: Topic.Subscription<A>,
  options: ServeOptions<A> & { readonly onStop?: (() => void) | undefined }
): Effect.Effect<void> =>
  Effect.flatMap(prepare(response, subscription, options), ({ connection, draining }) =>
    Effect.withFiberRuntime<void>((fiber) => {
      const runtime = NodeSse.detachedRuntime(fiber)
      const serverListeners = NodeSse.closeListeners(response)
      connection.start(() => {
        options.onStop?.()
        Scheduling.runLater(runtime, connection.log)
      }, draining)
      NodeSse.disown(response, serverListeners)
      return Effect.void
    }))
