/**
 * The one way a subscription is answered: an `SseAnswer` (the lifecycle,
 * in core/) over a sink — a Node response handed over by the server
 * (`handOver`), or a web `ReadableStream` (`webResponse`) — fed by a Topic's
 * shared frames or by a stream of values pulled in a loop by one fiber.
 * This module is the Effect side of it: the configuration, the drain, the
 * metrics, the fiber that runs a handler's stream, and the "stream closed"
 * line.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import type * as Clock from "effect/Clock"
import type * as Tracer from "effect/Tracer"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Stream from "effect/Stream"
import * as SseAnswer from "../../core/SseAnswer.ts"
import { WebSink } from "../../core/WebSink.ts"
import * as Errors from "../../protocol/Errors.ts"
import * as Names from "../../protocol/Names.ts"
import * as Sse from "../../protocol/Sse.ts"
import * as Topic from "../../topic/Topic.ts"
import { capacities, MissedValues } from "../BackpressurePolicy.ts"
import * as Drains from "./Drains.ts"
import type { Drain } from "./Drains.ts"
import { MetricsService } from "../MetricsService.ts"
import { StreamingConfig } from "../StreamingConfig.ts"
import * as Scheduling from "./Scheduling.ts"
import * as Spans from "./Spans.ts"

export interface Options<A, E> {
  /** Procedure name, for logs and metrics. */
  readonly name: string
  /** What feeds the answer: a `Topic` subscription is attached to its topic, any other stream is pulled. */
  readonly source: Stream.Stream<A, E>
  /** JSON text of a value for the `data:` line. */
  readonly serialize: (value: A) => string
  /** Cursor of a value, sent as `id:` (a Topic's values carry the topic's cursor instead). */
  readonly id?: ((value: A) => string) | undefined
  /** JSON of a typed failure for the `error` event. */
  readonly serializeError: (error: E) => string
  /**
   * Around the whole run of the source, from its first pull to its end (the
   * handler's context, its span, `wrap` middlewares). A Topic is attached
   * without a fiber when `wrapped` is false.
   */
  readonly run?: ((run: Effect.Effect<void, E>) => Effect.Effect<void, E>) | undefined
  /** `run` holds `wrap` middlewares: a Topic's delivery must stay inside it too. */
  readonly wrapped?: boolean | undefined
  /** The context the source runs in; the caller's by default. */
  readonly context?: Context.Context<never> | undefined
  /** Headers besides the SSE head (CORS, for one). */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Frames sent once after the opening line (e.g. a `dropped` count for a resume gap). */
  readonly preamble?: string | undefined
  /** Runs once when the answer stops, however it stops. */
  readonly onStop?: (() => void) | undefined
  /**
   * A subscription on a multiplexed connection: its first event (instead of
   * the `: ok` or `retry:` line) — and no heartbeat of its own.
   */
  readonly multiplexed?: { readonly opening: string } | undefined
  /** The call's span (`Spans`), ended with the answer's figures when it stops. */
  readonly span?: Tracer.Span | undefined
}

// ---------------------------------------------------------------------------
// what every answer shares
// ---------------------------------------------------------------------------

/** One fiber per `Drain` awaiting the start of draining, interrupted with its last answer. */
const drainWatchers = new Map<Drain, { readonly fiber: Fiber.RuntimeFiber<void>; readonly callbacks: Set<() => void> }>()

const watch = (drain: Drain, callback: () => void): void => {
  let watcher = drainWatchers.get(drain)
  if (watcher === undefined) {
    const callbacks = new Set<() => void>()
    const fiber = Effect.runFork(Deferred.await(drain.draining))
    fiber.addObserver((exit) => {
      if (exit._tag === "Failure") return
      drainWatchers.delete(drain)
      for (const c of [...callbacks]) c()
    })
    watcher = { fiber, callbacks }
    drainWatchers.set(drain, watcher)
  }
  watcher.callbacks.add(callback)
}

const unwatch = (drain: Drain, callback: () => void): void => {
  const watcher = drainWatchers.get(drain)
  if (watcher === undefined) return
  watcher.callbacks.delete(callback)
  if (watcher.callbacks.size === 0) {
    drainWatchers.delete(drain)
    watcher.fiber.unsafeInterruptAsFork(FiberId.none)
  }
}

const drainings = new WeakMap<Drain, SseAnswer.Draining>()

export const drainingOf = (drain: Drain): SseAnswer.Draining => {
  let draining = drainings.get(drain)
  if (draining === undefined) {
    draining = {
      isDraining: () => drain.isDraining(),
      watch: (callback) => watch(drain, callback),
      unwatch: (callback) => unwatch(drain, callback)
    }
    drainings.set(drain, draining)
  }
  return draining
}

/** Heartbeat timers on `clock`: one fiber per interval, whatever the number of answers. */
const everies = new WeakMap<Clock.Clock, SseAnswer.Every>()

export const everyOf = (clock: Clock.Clock): SseAnswer.Every => {
  let every = everies.get(clock)
  if (every === undefined) {
    every = (millis, tick) => {
      const fiber = Effect.runFork(
        Effect.forever(Effect.zipRight(Effect.sleep(millis), Effect.sync(tick))).pipe(Effect.withClock(clock))
      )
      return () => fiber.unsafeInterruptAsFork(FiberId.none)
    }
    everies.set(clock, every)
  }
  return every
}

/** The heartbeat interval of the configuration, in whole milliseconds. */
export const heartbeatMillisOf = (config: StreamingConfig["Type"]): number =>
  Math.max(1, Math.round(Duration.toMillis(config.heartbeatInterval)))

/** The first line of an answer: `: ok`, or `retry:` when the configuration sets a reconnection delay. */
export const openingOf = (config: StreamingConfig["Type"]): string =>
  config.retry === undefined ? Sse.comment("ok") : Sse.retry(Duration.toMillis(config.retry))

/** Open answers, the timers they share and drain watchers: for leak tests. */
export const counts = (): { readonly answers: number; readonly timers: number; readonly drainWatchers: number } => ({
  ...SseAnswer.counts(),
  drainWatchers: drainWatchers.size
})

/** What a fiber started for an answer runs with: Effect's fiber metrics off (a tagged registry update at its start and end). */
const detachedFlags = RuntimeFlags.disable(Runtime.defaultRuntimeFlags, RuntimeFlags.RuntimeMetrics)

/**
 * A runtime with the loggers, log annotations and settings of `fiberRefs`
 * (a fiber's, its scheduler among them) and no context: for what runs after
 * the request's fiber has ended.
 */
const detachedRuntime = (fiberRefs: FiberRefs.FiberRefs): Runtime.Runtime<never> =>
  Runtime.make({
    context: Context.empty(),
    fiberRefs: FiberRefs.delete(fiberRefs, FiberRef.currentContext),
    runtimeFlags: detachedFlags
  })

/** The last runtime `sharedRuntime` made, and the references it holds. */
let lastShared: Runtime.Runtime<never> | undefined = undefined

/** `refs` hold the same values as `detached` (which has no context), but for the context. */
const sameButContext = (refs: FiberRefs.FiberRefs, detached: FiberRefs.FiberRefs): boolean => {
  const context = FiberRef.currentContext as FiberRef.FiberRef<unknown>
  if (refs.locals.size - (refs.locals.has(context) ? 1 : 0) !== detached.locals.size) return false
  for (const [ref, stack] of refs.locals) {
    if (ref === context) continue
    const other = detached.locals.get(ref)
    if (other === undefined || other[0][1] !== stack[0][1]) return false
  }
  return true
}

/**
 * `detachedRuntime` of a fiber's references, shared by the answers of every request whose
 * fiber holds the same references (loggers, log level and annotations,
 * scheduler, …), as requests served by one router do: an open answer then
 * holds no copy of them. Compared value by value, so a request whose
 * middleware annotated its logs gets its own.
 */
const sharedRuntime = (fiber: Fiber.RuntimeFiber<unknown, unknown>): Runtime.Runtime<never> => {
  const fiberRefs = fiber.getFiberRefs()
  if (lastShared !== undefined && sameButContext(fiberRefs, lastShared.fiberRefs)) return lastShared
  return lastShared = detachedRuntime(fiberRefs)
}

const logClosed = <A>(answer: SseAnswer.SseAnswer<A>): Effect.Effect<void> =>
  Effect.logInfo("stream closed").pipe(
    Effect.annotateLogs({
      kind: "subscription",
      stream: answer.options.name,
      termination: answer.termination,
      values: answer.values,
      bytes: answer.bytes,
      durationMillis: answer.durationMillis
    })
  )

// ---------------------------------------------------------------------------
// feeding an answer
// ---------------------------------------------------------------------------

/** Pulls the source in a loop into `answer` (`Stream.run*` would fork a second fiber). */
const pullInto = <A, E>(answer: SseAnswer.SseAnswer<A>, source: Stream.Stream<A, E>): Effect.Effect<void, E> =>
  Effect.scoped(Effect.flatMap(Stream.toPull(source), (pull) => {
    const loop: Effect.Effect<void, E> = Effect.matchEffect(pull, {
      onFailure: (error) => (Option.isSome(error) ? Effect.fail(error.value) : Effect.void),
      onSuccess: (chunk) => {
        answer.offer(Chunk.toReadonlyArray(chunk))
        return loop
      }
    })
    return loop
  }))

/** A Topic's delivery as an effect that lasts as long as the answer (for `wrap` middlewares). */
const attached = <A>(
  answer: SseAnswer.SseAnswer<A>,
  topic: Topic.Subscription<A>,
  encode: (value: A) => string,
  stopped: { callback: (() => void) | undefined }
): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    stopped.callback = () => resume(Effect.void)
    answer.attach(topic[Topic.TypeId], encode)
    return Effect.sync(() => answer.stop())
  })

/** How the source's run ended, told to the answer. */
const endedWith = <A, E>(
  answer: SseAnswer.SseAnswer<A>,
  serializeError: (error: E) => string,
  runtime: Runtime.Runtime<never>
) =>
(exit: Exit.Exit<void, E>): void => {
  if (answer.isStopped) return
  if (exit._tag === "Success") return answer.finish({ _tag: "completed" })
  if (Cause.isInterruptedOnly(exit.cause)) return answer.stop()
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) return answer.finish({ _tag: "failed", errorJson: serializeError(failure.value) })
  Runtime.runFork(runtime)(Effect.logError("subscription defect", exit.cause))
  answer.finish({ _tag: "failed", errorJson: Errors.internalError })
}

// Built apart from `start`: a closure made there would keep all of `start`'s scope
// (the options, whose `run` holds the request's context) for as long as the answer is open.

const frameOf = <A>(id: ((value: A) => string) | undefined, serialize: (value: A) => string) => (value: A): string =>
  Sse.event({ id: Topic.cursorOf(value) ?? (id === undefined ? undefined : id(value)), data: serialize(value) })

const stoppedOf = <A>(
  hook: { callback: (() => void) | undefined },
  onStop: (() => void) | undefined,
  runtime: Runtime.Runtime<never>,
  span: Tracer.Span | undefined,
  clock: Clock.Clock
) =>
(answer: SseAnswer.SseAnswer<A>): void => {
  hook.callback?.()
  onStop?.()
  if (span !== undefined) {
    Spans.end(span, clock.unsafeCurrentTimeNanos(), {
      values: answer.values,
      bytes: answer.bytes,
      dropped: answer.dropped,
      termination: answer.termination,
      failure: answer.errorJson
    })
  }
  Scheduling.runLater(runtime, logClosed(answer))
}

const missedValuesOf = <A>(answer: SseAnswer.SseAnswer<A>) =>
  MissedValues.of({ report: (count) => Effect.sync(() => answer.report(count)) })

const interrupterOf = (fiber: Fiber.RuntimeFiber<unknown, unknown>) => (): void => fiber.unsafeInterruptAsFork(FiberId.none)

/** What starting an answer takes from the fiber (or the server) that starts it. */
export interface Starter {
  /** Where `StreamingConfig`, `GracefulShutdown` and `MetricsService` are read; the source runs in it by default. */
  readonly context: Context.Context<never>
  readonly clock: Clock.Clock
  /**
   * Without a context: the answer's log lines run on it, and a producer
   * fiber starts with its references.
   */
  readonly runtime: Runtime.Runtime<never>
}

/** A starter for what runs outside any request's fiber: it runs and logs with `fiberRefs`, and reads `context`. */
export const starterOf = (fiberRefs: FiberRefs.FiberRefs, context: Context.Context<never>): Starter => {
  const runtime = detachedRuntime(fiberRefs)
  return { context, clock: Runtime.runSync(runtime)(Effect.clock), runtime }
}

/**
 * Starts an answer on `sink` and whatever feeds it. Reads `StreamingConfig`,
 * `GracefulShutdown` and, when provided, `MetricsService`; the source runs
 * in `options.context`, else the caller's.
 */
export const start = <A, E>(sink: SseAnswer.SseSink, options: Options<A, E>): Effect.Effect<SseAnswer.SseAnswer<A>> =>
  Effect.clockWith((clock) =>
    Effect.withFiberRuntime<SseAnswer.SseAnswer<A>>((fiber) =>
      // Shared with the answers of other requests whose fiber holds the same references.
      Effect.succeed(begin({ context: fiber.currentContext, clock, runtime: sharedRuntime(fiber) }, sink, options))
    )
  )

/** `start`, given what it reads of the starting fiber. */
export const begin = <A, E>(starter: Starter, sink: SseAnswer.SseSink, options: Options<A, E>): SseAnswer.SseAnswer<A> => {
  const { clock, context, runtime } = starter
  const config = Context.get(context, StreamingConfig)
  const metrics = Option.getOrUndefined(Context.getOption(context, MetricsService))
  // What an open answer keeps: not `options` (its `run` holds the request's context).
  const { id, onStop, serialize } = options
  const source = options.source
  const topic = Topic.isSubscription(source) ? (source as unknown as Topic.Subscription<A>) : undefined
  const stopped: { callback: (() => void) | undefined } = { callback: undefined }
  let opening = options.multiplexed !== undefined ? options.multiplexed.opening : openingOf(config)
  if (options.preamble !== undefined) opening += options.preamble
  const answer = new SseAnswer.SseAnswer<A>(sink, {
    name: options.name,
    headers: options.headers,
    opening,
    heartbeatMillis: options.multiplexed !== undefined ? 0 : heartbeatMillisOf(config),
    every: everyOf(clock),
    draining: drainingOf(Drains.fromContext(context)),
    metrics,
    capacity: capacities.subscription,
    frame: topic !== undefined ? undefined : frameOf(id, serialize),
    stopped: stoppedOf(stopped, onStop, runtime, options.span, clock)
  })
  if (!answer.start()) return answer
  if (topic !== undefined && options.wrapped !== true) {
    // The topic writes to the sink itself: no fiber, no ring.
    answer.attach(topic[Topic.TypeId], serialize)
    return answer
  }
  const feed = topic !== undefined ? attached(answer, topic, serialize, stopped) : pullInto(answer, source)
  // One context for the whole run: each `provide` on the way would copy it.
  const runContext = Context.add(options.context ?? context, MissedValues, missedValuesOf(answer))
  const producer = Runtime.runFork(withContext(runtime, runContext))(options.run === undefined ? feed : options.run(feed))
  answer.release = interrupterOf(producer)
  producer.addObserver(endedWith(answer, options.serializeError, runtime))
  return answer
}

/** `runtime`'s references (shared, not copied) with `context`. */
const withContext = (runtime: Runtime.Runtime<never>, context: Context.Context<never>): Runtime.Runtime<never> =>
  Runtime.make({ context, fiberRefs: runtime.fiberRefs, runtimeFlags: detachedFlags })

/**
 * Serves the answer on `sink` until it stops (the source ends, the client
 * goes, the server drains), or until the calling fiber is interrupted.
 */
export const serve = <A, E>(sink: SseAnswer.SseSink, options: Options<A, E>): Effect.Effect<void> =>
  Effect.flatMap(Deferred.make<void>(), (stopped) =>
    Effect.flatMap(
      start(sink, {
        ...options,
        onStop: () => {
          options.onStop?.()
          Deferred.unsafeDone(stopped, Exit.void)
        }
      }),
      (answer) => Effect.onInterrupt(Deferred.await(stopped), () => Effect.sync(() => answer.stop()))
    ))

// ---------------------------------------------------------------------------
// the two sinks
// ---------------------------------------------------------------------------

/**
 * Serves the answer on a `node:http` response and returns once it has
 * started: the response belongs to the answer from then on, and the
 * request's fiber, scope and context are released while it stays open.
 */
export const handOver = <A, E>(
  node: typeof import("./NodePlatform.ts"),
  response: import("node:http").ServerResponse,
  options: Options<A, E>
): Effect.Effect<HttpServerResponse.HttpServerResponse> => handOverTo(node, response, (sink) => start(sink, options))

/** Hands `response` over to what `begin` starts on its sink (an answer, a multiplexed connection). */
export const handOverTo = <R>(
  node: typeof import("./NodePlatform.ts"),
  response: import("node:http").ServerResponse,
  begin: (sink: SseAnswer.SseSink) => Effect.Effect<unknown, never, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  Effect.suspend(() => {
    const sink = new node.NodeSink(response)
    return begin(sink).pipe(
      Effect.ensuring(Effect.sync(() => node.handOver(response, sink.listeners))),
      Effect.as(HttpServerResponse.empty({ status: 200 }))
    )
  })

const { [Names.headers.contentType]: _contentType, ...webHeaders } = SseAnswer.headers

/** Serves the answer as the body of a response, a web `ReadableStream`: for web runtimes and any route. */
export const webResponse = <A, E>(options: Options<A, E>): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  webResponseOf((sink) => start(sink, options), options.headers)

/** The body of a response, a web `ReadableStream`, written by what `begin` starts on its sink. */
export const webResponseOf = <R>(
  begin: (sink: SseAnswer.SseSink) => Effect.Effect<unknown, never, R>,
  headers: Readonly<Record<string, string>> | undefined
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  Effect.suspend(() => {
    const sink = new WebSink()
    return Effect.as(
      begin(sink),
      HttpServerResponse.stream(
        Stream.fromReadableStream({ evaluate: () => sink.readable, onError: (error) => error }),
        {
          contentType: Names.contentTypes.eventStream,
          headers: headers === undefined ? webHeaders : { ...webHeaders, ...headers }
        }
      )
    )
  })
