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
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { type Drain, fromContext, key, unsafeMake } from "./internal/Drains.ts"

export type { Drain } from "./internal/Drains.ts"

/** A drain of its own, for a server composed by hand (`Layer.succeed(GracefulShutdown, drain)`). */
export const make: Effect.Effect<Drain> = Effect.sync(unsafeMake)

/** The drain of the server a request is served by. */
export class GracefulShutdown extends Context.Tag(key)<GracefulShutdown, Drain>() {}

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
