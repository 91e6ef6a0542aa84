/**
 * A subscription whose handler returned any `Stream` (not a `Topic`),
 * written straight to a `node:http` response. The same wire, policy,
 * heartbeat, metrics, cleanup and log line as `StreamingService.sse`, with
 * less held per open subscription: the request's fiber ends once the head is
 * sent (`NodeSse.disown`); the handler's stream runs in one fiber of its
 * own, which hands each chunk to a plain ring; heartbeats and the drain come
 * from timers and watchers shared by every answer.
 *
 * The sliding policy: while the socket takes what is written, values are
 * written as they come; while it is full, the newest 64 values wait in the
 * ring, older ones are overwritten and counted, and the next write starts
 * with `event: dropped` and that count.
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Stream from "effect/Stream"
import type * as Http from "node:http"
import * as BackpressurePolicy from "../BackpressurePolicy.ts"
import * as GracefulShutdown from "../GracefulShutdown.ts"
import type { Drain } from "../GracefulShutdown.ts"
import { MetricsService, type StreamMetrics } from "../MetricsService.ts"
import * as Sse from "../../protocol/Sse.ts"
import { StreamingConfig } from "../StreamingConfig.ts"
import * as StreamingService from "../StreamingService.ts"
import * as Topic from "../../topic/Topic.ts"
import * as NodeSse from "./NodeSse.ts"
import * as Scheduling from "./Scheduling.ts"

export interface Options<A, E> {
  /** Procedure name, for logs and metrics. */
  readonly name: string
  /** The handler's stream. */
  readonly stream: Stream.Stream<A, E>
  /** The context `stream` runs in; the caller's by default. */
  readonly context?: Context.Context<never> | undefined
  /** Around the run of `stream`, inside `around` (a span, for one): applied once, not per pull. */
  readonly inside?: (<X, Y>(run: Effect.Effect<X, Y>) => Effect.Effect<X, Y>) | undefined
  /** JSON text of a value for the `data:` line. */
  readonly serialize: (value: A) => string
  /** Cursor of a value, sent as `id:`. */
  readonly id?: ((value: A) => string) | undefined
  /** JSON of a typed failure for the `error` event. */
  readonly serializeError: (error: E) => string
  /** The procedure's `wrap` middlewares, around the whole run of `stream`. */
  readonly around?: ((run: Effect.Effect<void, E>) => Effect.Effect<void, E>) | undefined
  /** More headers for the answer (CORS, for one). */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Runs once when the subscription ends, however it ends. */
  readonly onStop?: (() => void) | undefined
}

/** What an open subscription keeps of its options (not the context or the stream: they belong to the run). */
type Kept<A, E> = Pick<Options<A, E>, "name" | "serialize" | "id" | "serializeError" | "headers" | "onStop">

class Connection<A, E> extends NodeSse.Connection {
  producer: Fiber.RuntimeFiber<void, E> | undefined = undefined
  private readonly ring = new BackpressurePolicy.SlidingRing<A>(BackpressurePolicy.capacities.subscription)

  constructor(
    response: Http.ServerResponse,
    readonly options: Kept<A, E>,
    metrics: StreamMetrics | undefined,
    drain: Drain,
    heartbeatMillis: number,
    readonly runtime: Runtime.Runtime<never>
  ) {
    super(response, options.name, metrics, drain, heartbeatMillis)
  }

  private frame(value: A): string {
    const id = this.options.id
    const cursor = Topic.cursorOf(value) ?? (id === undefined ? undefined : id(value))
    return Sse.event({ id: cursor, data: this.options.serialize(value) })
  }

  private write(text: string, values: number, dropped: number): void {
    const bytes = Buffer.byteLength(text)
    this.values += values
    this.bytes += bytes
    if (this.metrics !== undefined) {
      if (dropped > 0) this.metrics.dropped("subscription", this.options.name, dropped)
      this.metrics.delivered("subscription", this.options.name, values, bytes)
    }
    this.send(text)
  }

  /** Writes what the ring holds: the count it overwrote (or an unknown gap), then its values. */
  private flush(): void {
    const ring = this.ring
    if (ring.size === 0 && ring.dropped === 0 && !ring.unknownGap) return
    const batch = ring.take()
    let text = batch.unknownGap || batch.dropped > 0 ? Sse.dropped(batch.unknownGap ? null : batch.dropped) : ""
    for (let i = 0; i < batch.values.length; i++) text += this.frame(batch.values[i]!)
    this.write(text, batch.values.length, batch.dropped)
  }

  /** A chunk from the handler's stream. */
  offer(chunk: Chunk.Chunk<A>): void {
    if (this.stopped) return
    const values = Chunk.toReadonlyArray(chunk)
    if (this.blocked) {
      this.ring.pushAll(values)
      return
    }
    let text = ""
    for (let i = 0; i < values.length; i++) text += this.frame(values[i]!)
    if (text !== "") this.write(text, values.length, 0)
  }

  /** `MissedValues.report`: the gap lies after the values already held, before the next ones. */
  report(count: number | undefined): void {
    if (this.stopped) return
    this.flush()
    if (count === undefined) this.ring.unknownGap = true
    else if (count > 0) this.ring.dropped += count
    if (!this.blocked) this.flush()
  }

  protected resumeWriting(): void {
    this.flush()
  }

  /** Writes the head and the opening; false when the answer ended at once (draining, or the client gone). */
  start(opening: string, draining: boolean): boolean {
    return this.open(this.options.headers, opening, draining)
  }

  /** The handler's stream ended: what the ring holds, then `end` or `error`. */
  ended(exit: Exit.Exit<void, E>): void {
    if (this.stopped) return
    this.flush()
    if (exit._tag === "Success") {
      this.termination = "completed"
      this.endResponse.call(this.response, Sse.end)
    } else if (!Cause.isInterruptedOnly(exit.cause)) {
      this.termination = "failed"
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure)) {
        this.endResponse.call(this.response, Sse.error(this.options.serializeError(failure.value)))
      } else {
        Runtime.runFork(this.runtime)(Effect.logError("subscription defect", exit.cause))
        this.endResponse.call(this.response, Sse.error(StreamingService.internalErrorJson))
      }
    }
    this.stop()
  }

  /** Interrupts the handler's stream. */
  protected release(): void {
    this.producer?.unsafeInterruptAsFork(FiberId.none)
  }

  /** One "stream closed" line, on the request scheduler (a mass disconnect is logged over several turns). */
  protected afterStop(): void {
    this.options.onStop?.()
    Scheduling.runLater(this.runtime, this.log)
  }
}

// Built apart from `handOver`: what they close over is only the connection, not the options.

/** Pulls the handler's stream in a loop into `connection` (`Stream.run*` would fork a second fiber). */
const pullInto = <A, E>(connection: Connection<A, E>) =>
(pull: Effect.Effect<Chunk.Chunk<A>, Option.Option<E>>): Effect.Effect<void, E> => {
  const loop: Effect.Effect<void, E> = Effect.matchEffect(pull, {
    onFailure: (error) => (Option.isSome(error) ? Effect.fail(error.value) : Effect.void),
    onSuccess: (chunk) => {
      connection.offer(chunk)
      return loop
    }
  })
  return loop
}

const missedValuesOf = <A, E>(connection: Connection<A, E>) =>
  BackpressurePolicy.MissedValues.of({ report: (count) => Effect.sync(() => connection.report(count)) })

const endedOf = <A, E>(connection: Connection<A, E>) => (exit: Exit.Exit<void, E>) => connection.ended(exit)

/**
 * Serves `options.stream` as a subscription on `response` and returns once
 * the answer has started; the response belongs to the subscription from
 * then on (see `NodeSse.disown`). Reads `StreamingConfig`,
 * `GracefulShutdown` and, when provided, `MetricsService`; the stream runs
 * in the caller's context.
 */
export const handOver = <A, E>(response: Http.ServerResponse, options: Options<A, E>): Effect.Effect<void> =>
  Effect.withFiberRuntime<void>((fiber) => {
    const context = fiber.currentContext
    const config = Context.get(context, StreamingConfig)
    const drain = GracefulShutdown.fromContext(context)
    const metrics = Option.getOrUndefined(Context.getOption(context, MetricsService))
    const runtime = NodeSse.detachedRuntime(fiber)
    const heartbeatMillis = Math.max(1, Math.round(Duration.toMillis(config.heartbeatInterval)))
    const kept: Kept<A, E> = {
      name: options.name,
      serialize: options.serialize,
      id: options.id,
      serializeError: options.serializeError,
      headers: options.headers,
      onStop: options.onStop
    }
    const connection = new Connection(response, kept, metrics, drain, heartbeatMillis, runtime)
    const opening = config.retry === undefined ? Sse.comment("ok") : Sse.retry(Duration.toMillis(config.retry))
    const serverListeners = NodeSse.closeListeners(response)
    const open = connection.start(opening, drain.isDraining())
    NodeSse.disown(response, serverListeners)
    if (!open) return Effect.void
    const pulled = Effect.scoped(Effect.flatMap(Stream.toPull(options.stream), pullInto(connection)))
    const run = options.inside === undefined ? pulled : options.inside(pulled)
    // One context for the whole run: each `provide` on the way would copy it.
    const runContext = Context.add(options.context ?? context, BackpressurePolicy.MissedValues, missedValuesOf(connection))
    const producer = Runtime.runFork(NodeSse.detachedRuntime(fiber, runContext))(
      options.around === undefined ? run : options.around(run)
    )
    connection.producer = producer
    producer.addObserver(endedOf(connection))
    return Effect.void
  })
