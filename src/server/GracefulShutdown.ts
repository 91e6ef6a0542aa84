/**
 * Graceful shutdown for streaming servers. When draining begins:
 * - new requests are answered `503` with `Connection: close`, so clients
 *   retry on a new connection (another instance behind the load balancer);
 * - subscriptions end at once — without an `end` event, so clients reconnect
 *   elsewhere and resume with `Last-Event-ID`;
 * - downloads and exports in progress run on until they finish or the
 *   deadline passes; then they are cut (their connections destroyed), and
 *   clients see a truncated transfer.
 *
 * Each server owns its drain: `layer` makes a fresh one, and a transport
 * served without it gets its own that never drains. `layer` wraps the
 * `HttpServer` it is given, so the drain runs when the server is shut down
 * (`NodeRuntime.runMain` on SIGTERM/SIGINT) while its handler still answers,
 * before the server stops listening. Give it `stopAccepting` (e.g. the
 * node:http server's `close()`) to stop accepting connections at once, so a
 * load balancer sends new ones elsewhere.
 */
import * as HttpServer from "@effect/platform/HttpServer"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"

/** The drain state of one server. */
export interface Drain {
  /** Completes when draining begins. */
  readonly draining: Deferred.Deferred<void>
  readonly isDraining: () => boolean
  /** Transfers (downloads and exports) still running. */
  readonly transfers: () => number
  /**
   * Registers a running transfer; `cut` ends it by force when the deadline
   * passes. Returns the function that unregisters it when it ends.
   */
  readonly transferStarted: (cut: () => void) => () => void
  /** Completes when no transfer is running. */
  readonly idle: Effect.Effect<void>
  /** Cuts every transfer still running; returns how many. */
  readonly cutAll: () => number
  /** Marks the server as draining (what `drain` does first). */
  readonly begin: Effect.Effect<void>
}

export const unsafeMake = (): Drain => {
  const draining = Deferred.unsafeMake<void>(FiberId.none)
  let done = false
  const running = new Set<() => void>()
  let waiters: Array<() => void> = []
  const wakeIfIdle = () => {
    if (running.size > 0) return
    const woken = waiters
    waiters = []
    for (const wake of woken) wake()
  }
  return {
    draining,
    isDraining: () => done,
    transfers: () => running.size,
    transferStarted: (cut) => {
      // A fresh function per transfer: the same `cut` may be registered twice.
      const entry = () => cut()
      running.add(entry)
      return () => {
        if (running.delete(entry)) wakeIfIdle()
      }
    },
    idle: Effect.async<void>((resume) => {
      if (running.size === 0) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      waiters.push(wake)
      return Effect.sync(() => {
        waiters = waiters.filter((w) => w !== wake)
      })
    }),
    cutAll: () => {
      const cut = Array.from(running)
      for (const entry of cut) entry()
      return cut.length
    },
    begin: Effect.suspend(() => {
      done = true
      return Deferred.succeed(draining, undefined)
    })
  }
}

/** The drain of the server a request is served by. */
export class GracefulShutdown extends Context.Tag("effect-stream-rpc/GracefulShutdown")<GracefulShutdown, Drain>() {}

/** The drain of a stream served where no `GracefulShutdown` is provided: it never begins. */
const neverDrains: Drain = unsafeMake()

/** The drain in `context`, or one that never begins. */
export const fromContext = (context: Context.Context<never>): Drain =>
  Option.getOrElse(Context.getOption(context, GracefulShutdown), () => neverDrains)

/** The drain in the current context, or one that never begins. */
export const current: Effect.Effect<Drain> = Effect.map(Effect.context<never>(), fromContext)

export interface DrainOptions {
  /** How long transfers in progress may run on. Default 30 seconds. */
  readonly deadline?: Duration.DurationInput | undefined
  /** Stops accepting connections (e.g. `server.close()` of a node:http server). Optional. */
  readonly stopAccepting?: Effect.Effect<void> | undefined
}

/**
 * Begins draining `drain`: ends subscriptions, answers new requests 503, and
 * waits for transfers up to the deadline; then cuts those still running.
 */
export const drain = (drain: Drain, options: DrainOptions = {}): Effect.Effect<void> =>
  Effect.gen(function*() {
    if (options.stopAccepting !== undefined) yield* options.stopAccepting
    yield* drain.begin
    const deadline = Duration.decode(options.deadline ?? "30 seconds")
    yield* Effect.logInfo("draining").pipe(Effect.annotateLogs({ transfers: drain.transfers() }))
    // The drain runs as a finalizer, uninterruptibly: the wait must be interruptible for the
    // deadline to end it (else a stalled client holds the process until it leaves).
    const finished = yield* Effect.interruptible(drain.idle).pipe(
      Effect.timeoutTo({ duration: deadline, onSuccess: () => true, onTimeout: () => false })
    )
    if (finished) {
      yield* Effect.logInfo("drained")
      return
    }
    const cut = drain.cutAll()
    yield* Effect.logInfo("drain deadline passed; cut the remaining transfers").pipe(
      Effect.annotateLogs({ transfers: cut })
    )
  })

/**
 * A fresh drain for one server, run when that server shuts down. Provide it
 * to `HttpLayerRouter.serve(...)` above the platform's server layer:
 *
 * ```ts
 * HttpLayerRouter.serve(App).pipe(
 *   Layer.provide(GracefulShutdown.layer({ deadline: "30 seconds" })),
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 3000 }))
 * )
 * ```
 */
export const layer = (
  options: DrainOptions = {}
): Layer.Layer<GracefulShutdown | HttpServer.HttpServer, never, HttpServer.HttpServer> =>
  Layer.effectContext(Effect.gen(function*() {
    const server = yield* HttpServer.HttpServer
    const state = unsafeMake()
    const wrapped = HttpServer.make({
      address: server.address,
      serve: (app, middleware) =>
        Effect.gen(function*() {
          // The handler stays attached until the process ends, outside the serving scope:
          // a request that arrives after the drain, until the server stops listening, is
          // still answered (503, Connection: close) instead of waiting for a handler that
          // is gone, which would hold the server's close (and the process) forever.
          const handlerScope = yield* Scope.make()
          yield* Scope.extend(
            middleware === undefined ? server.serve(app) : server.serve(app, middleware),
            handlerScope
          )
          yield* Effect.addFinalizer(() => drain(state, options))
        })
    })
    return Context.make(GracefulShutdown, state).pipe(Context.add(HttpServer.HttpServer, wrapped))
  }))
