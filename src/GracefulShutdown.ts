/**
 * Graceful shutdown for streaming servers. When draining begins:
 * - subscriptions end at once — without an `end` event, so clients reconnect
 *   (to another instance) and resume with `Last-Event-ID`;
 * - downloads and exports in progress run on until they finish or a deadline
 *   passes (then they are cut, and clients see a truncated transfer).
 *
 * `StreamingService` reads this service itself; `layer` runs the drain as a
 * finalizer, so on SIGTERM/SIGINT (`NodeRuntime.runMain` interrupts the main
 * fiber) it runs before the HTTP server interrupts the requests in flight.
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"

export interface Drain {
  /** Completes when draining begins. */
  readonly draining: Deferred.Deferred<void>
  /** Transfers (downloads and exports) still running. */
  readonly transfers: () => number
  readonly transferStarted: () => void
  readonly transferEnded: () => void
  /** Completes when no transfer is running. */
  readonly idle: Effect.Effect<void>
}

export const unsafeMake = (): Drain => {
  const draining = Deferred.unsafeMake<void>(FiberId.none)
  let transfers = 0
  let waiters: Array<() => void> = []
  return {
    draining,
    transfers: () => transfers,
    transferStarted: () => {
      transfers++
    },
    transferEnded: () => {
      transfers--
      if (transfers === 0) {
        const woken = waiters
        waiters = []
        for (const wake of woken) wake()
      }
    },
    idle: Effect.async<void>((resume) => {
      if (transfers === 0) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      waiters.push(wake)
      return Effect.sync(() => {
        waiters = waiters.filter((w) => w !== wake)
      })
    })
  }
}

export class GracefulShutdown extends Context.Reference<GracefulShutdown>()("effect-stream-rpc/GracefulShutdown", {
  defaultValue: unsafeMake
}) {}

export interface DrainOptions {
  /** How long transfers in progress may run on. Default 30 seconds. */
  readonly deadline?: Duration.DurationInput | undefined
  /** Stops accepting connections (e.g. `server.close()` of a node:http server). */
  readonly stopAccepting?: Effect.Effect<void> | undefined
}

/** Stops accepting, ends subscriptions, and waits for transfers up to the deadline. */
export const drain = (options: DrainOptions = {}): Effect.Effect<void> =>
  Effect.gen(function*() {
    const shutdown = yield* GracefulShutdown
    if (options.stopAccepting !== undefined) yield* options.stopAccepting
    yield* Deferred.succeed(shutdown.draining, undefined)
    const deadline = Duration.decode(options.deadline ?? "30 seconds")
    const running = shutdown.transfers()
    yield* Effect.logInfo("draining").pipe(Effect.annotateLogs({ transfers: running }))
    const finished = yield* shutdown.idle.pipe(Effect.timeoutTo({ duration: deadline, onSuccess: () => true, onTimeout: () => false }))
    yield* Effect.logInfo(finished ? "drained" : "drain deadline passed; cutting the remaining transfers").pipe(
      Effect.annotateLogs({ transfers: shutdown.transfers() })
    )
  })

/** Runs `drain` when the layer is released: place it above the server layer. */
export const layer = (options: DrainOptions = {}): Layer.Layer<never> =>
  Layer.scopedDiscard(Effect.addFinalizer(() => drain(options)))
