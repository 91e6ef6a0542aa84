/**
 * What the Server-Sent Events answers written straight to a `node:http`
 * response share (`TopicResponse`, `StreamResponse`): the head, one
 * heartbeat timer per interval for all of them, one watcher per `Drain`,
 * the hand-over of a response from `@effect/platform`'s server, so an open
 * subscription holds no request fiber, scope or context, and the lifecycle
 * of one answer (`Connection`).
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as Runtime from "effect/Runtime"
import type * as Http from "node:http"
import type { Drain } from "../GracefulShutdown.ts"
import type { StreamMetrics, Termination } from "../MetricsService.ts"
import * as Names from "../../protocol/Names.ts"
import * as Sse from "../../protocol/Sse.ts"

/** The head of an SSE answer, as `StreamingService.sse` sends it. */
export const headers: Readonly<Record<string, string>> = {
  [Names.headers.contentType]: Names.contentTypes.eventStream,
  [Names.headers.cacheControl]: "no-cache, no-transform",
  [Names.headers.accelBuffering]: "no"
}

/** The SSE head plus `extra` (CORS, for one). */
export const headersWith = (extra: Readonly<Record<string, string>> | undefined): Readonly<Record<string, string>> =>
  extra === undefined ? headers : { ...headers, ...extra }

export interface Beating {
  beat(): void
}

/** One timer per heartbeat interval, removed with its last response. */
const heartbeatGroups = new Map<number, { readonly timer: ReturnType<typeof setInterval>; readonly members: Set<Beating> }>()

export const joinHeartbeat = (millis: number, member: Beating): void => {
  let group = heartbeatGroups.get(millis)
  if (group === undefined) {
    const members = new Set<Beating>()
    const timer = setInterval(() => {
      for (const m of members) m.beat()
    }, millis)
    timer.unref()
    group = { timer, members }
    heartbeatGroups.set(millis, group)
  }
  group.members.add(member)
}

export const leaveHeartbeat = (millis: number, member: Beating): void => {
  const group = heartbeatGroups.get(millis)
  if (group === undefined) return
  group.members.delete(member)
  if (group.members.size === 0) {
    clearInterval(group.timer)
    heartbeatGroups.delete(millis)
  }
}

/** One fiber per `Drain` awaiting the start of draining, interrupted with its last response. */
const drainWatchers = new Map<Drain, { readonly fiber: Fiber.RuntimeFiber<void>; readonly callbacks: Set<() => void> }>()

export const watchDraining = (drain: Drain, callback: () => void): void => {
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

export const unwatchDraining = (drain: Drain, callback: () => void): void => {
  const watcher = drainWatchers.get(drain)
  if (watcher === undefined) return
  watcher.callbacks.delete(callback)
  if (watcher.callbacks.size === 0) {
    drainWatchers.delete(drain)
    watcher.fiber.unsafeInterruptAsFork(FiberId.none)
  }
}

/** Open answers (members of a heartbeat group), heartbeat timers and drain watchers: for leak tests. */
export const counts = (): { readonly responses: number; readonly timers: number; readonly drainWatchers: number } => {
  let responses = 0
  for (const group of heartbeatGroups.values()) responses += group.members.size
  return { responses, timers: heartbeatGroups.size, drainWatchers: drainWatchers.size }
}

/**
 * A runtime with `fiber`'s loggers, log annotations and settings, and
 * `context` (nothing of the request's by default): for what runs after the
 * request's fiber has ended.
 */
export const detachedRuntime = (
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  context: Context.Context<never> = Context.empty()
): Runtime.Runtime<never> =>
  Runtime.make({
    context,
    fiberRefs: FiberRefs.delete(fiber.getFiberRefs(), FiberRef.currentContext),
    runtimeFlags: Runtime.defaultRuntimeFlags
  })

function returnThis<T>(this: T): T {
  return this
}

/** The `close` listeners a response has before it is handed over: the server's, for the request's fiber. */
export const closeListeners = (response: Http.ServerResponse): ReadonlyArray<(...args: Array<unknown>) => void> =>
  response.listeners("close") as Array<(...args: Array<unknown>) => void>

/**
 * Takes `response` from the server that will answer its request when the
 * handler returns (as `@effect/platform`'s does): its own `writeHead` and
 * `end` become no-ops (a callback given to `end` is still called), so that
 * answer does not touch the stream. Call it after writing the head.
 * `serverListeners` (see `closeListeners`) are removed: they would interrupt
 * the request's fiber, which has ended by then, and keep it reachable for as
 * long as the subscription is open.
 */
export const disown = (
  response: Http.ServerResponse,
  serverListeners: ReadonlyArray<(...args: Array<unknown>) => void> = []
): void => {
  for (const listener of serverListeners) response.off("close", listener)
  const own = response as unknown as Record<"writeHead" | "end", unknown>
  own.writeHead = returnThis
  own.end = function(this: Http.ServerResponse, ...args: ReadonlyArray<unknown>) {
    const callback = args.find((arg) => typeof arg === "function") as (() => void) | undefined
    if (callback !== undefined) process.nextTick(callback)
    return this
  }
}

/** `end` of a response as Node defines it, whatever `disown` did to the instance. */
export type End = (this: Http.ServerResponse, chunk?: string) => unknown

export const endOf = (response: Http.ServerResponse): End => response.end as End

// ---------------------------------------------------------------------------
// one answer
// ---------------------------------------------------------------------------

/**
 * The lifecycle every SSE answer written straight to a response shares: the
 * head and opening line, the shared heartbeat, ending without `end` when
 * draining begins, stopping when the client goes, the metrics of its start
 * and end, and the "stream closed" line. A subclass writes the values (with
 * `send`), says what a drained socket resumes, and what stopping releases.
 */
export abstract class Connection implements Beating {
  termination: Termination = "interrupted"
  values = 0
  bytes = 0
  readonly startedAt = Date.now()
  /** Set by `stop`. */
  durationMillis = 0
  protected stopped = false
  /** The socket's buffer is full: nothing is written until `drain`. */
  protected blocked = false
  /** Something was written since the last heartbeat tick: no heartbeat needed. */
  private active = true
  /** `end` of the response as Node defines it (`disown` replaces the instance's own). */
  protected readonly endResponse: End

  constructor(
    readonly response: Http.ServerResponse,
    /** Procedure name, for logs and metrics. */
    readonly name: string,
    readonly metrics: StreamMetrics | undefined,
    readonly drain: Drain,
    readonly heartbeatMillis: number
  ) {
    this.endResponse = endOf(response)
  }

  /** The socket takes writes again (its `drain`). */
  protected abstract resumeWriting(): void
  /** First step of `stop`: detach from what feeds the answer. */
  protected abstract release(): void
  /** Last step of `stop`, once the response has ended and the metrics know. */
  protected abstract afterStop(): void

  /** Before `metrics.ended` (e.g. handing over tallied deliveries). */
  protected beforeEnded(): void {}

  /** Writes `text`; false once the socket's buffer is full. */
  protected send(text: string): boolean {
    this.active = true
    if (this.response.write(text)) return true
    this.blocked = true
    return false
  }

  private readonly onDrain = (): void => {
    this.blocked = false
    this.resumeWriting()
  }

  /** Client gone, or the response finished. */
  private readonly onClose = (): void => this.stop()

  /** Draining: end without `event: end`, so the client reconnects and resumes. */
  private readonly onDraining = (): void => {
    if (this.stopped) return
    this.endResponse.call(this.response)
    this.stop()
  }

  beat(): void {
    if (!this.active && !this.blocked && !this.stopped) {
      if (!this.response.write(Sse.heartbeat)) this.blocked = true
    }
    this.active = false
  }

  /** Writes the head and `opening`; false when the answer ended at once (draining, or the client gone). */
  protected open(headers: Readonly<Record<string, string>> | undefined, opening: string, draining: boolean): boolean {
    const response = this.response
    response.writeHead(200, headersWith(headers))
    this.metrics?.started("subscription", this.name)
    if (!response.write(opening)) this.blocked = true
    if (draining || response.destroyed) {
      this.onDraining()
      return false
    }
    response.on("close", this.onClose)
    response.on("drain", this.onDrain)
    joinHeartbeat(this.heartbeatMillis, this)
    watchDraining(this.drain, this.onDraining)
    return true
  }

  /** Idempotent: releases the source, leaves every shared resource, ends the response. */
  stop(): void {
    if (this.stopped) return
    this.stopped = true
    this.release()
    const response = this.response
    response.off("close", this.onClose)
    response.off("drain", this.onDrain)
    leaveHeartbeat(this.heartbeatMillis, this)
    unwatchDraining(this.drain, this.onDraining)
    if (!response.writableEnded) this.endResponse.call(response)
    this.durationMillis = Date.now() - this.startedAt
    this.beforeEnded()
    this.metrics?.ended("subscription", this.name, this.termination, this.durationMillis)
    this.afterStop()
  }

  /** The one line logged when the answer ends. */
  readonly log: Effect.Effect<void> = Effect.suspend(() =>
    Effect.logInfo("stream closed").pipe(
      Effect.annotateLogs({
        kind: "subscription",
        stream: this.name,
        termination: this.termination,
        values: this.values,
        bytes: this.bytes,
        durationMillis: this.stopped ? this.durationMillis : Date.now() - this.startedAt
      })
    )
  )
}
