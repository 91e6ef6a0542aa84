/**
 * The drain state of one server (what `GracefulShutdown` provides), made and
 * read by the transport; the public module is `GracefulShutdown`.
 */
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"

/** The key of the `GracefulShutdown` tag. */
export const key = "effect-stream-rpc/GracefulShutdown"

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

/** The drain of a stream served where no `GracefulShutdown` is provided: it never begins. */
const neverDrains: Drain = unsafeMake()

/** The drain in `context`, or one that never begins. */
export const fromContext = (context: Context.Context<never>): Drain =>
  (context.unsafeMap.get(key) as Drain | undefined) ?? neverDrains

