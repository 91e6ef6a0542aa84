/**
 * The scheduler requests run on. Effect's default scheduler lets a fiber
 * that keeps yielding (a transfer producing as fast as it can, a stream
 * with a synchronous source) run up to 2,048 slices in a row on the
 * microtask queue before the event loop gets a turn; and fibers that wake
 * each other (a producer and the writer of its transfer, with a socket that
 * keeps taking bytes) can go on on the microtask and next-tick queues for
 * as long as there is work. Either way no socket is read meanwhile, not even
 * for a `503` or `/metrics`: seen as a loop held for seconds by a few
 * exports filling their sockets.
 *
 * This one hands fibers back to the event loop after a few slices of one
 * fiber in a row, and once the fibers it runs have had a few milliseconds of
 * the current turn of the loop. Fibers handed back wait in one queue, first
 * come first served, and each turn of the loop runs them for at most the
 * same few milliseconds: hundreds of busy fibers (exports filling their
 * sockets, requests arriving together) cannot hold one turn for long, so
 * the loop reads its sockets every few milliseconds and a new request,
 * a `503` or `/metrics` waits for at most one round of the queue.
 */
import type * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import * as Scheduler from "effect/Scheduler"
import { handBack, turnSpent } from "../../core/TurnQueue.ts"

/** Slices of one fiber run back to back on the microtask queue before the event loop gets a turn. */
const slicesInARow = 4

const runners = Scheduler.SchedulerRunner.cached((depth, drain) => {
  if (depth >= slicesInARow || turnSpent()) handBack(() => drain(0))
  else queueMicrotask(() => drain(depth + 1))
})

export const scheduler: Scheduler.Scheduler = Scheduler.make((task, priority, fiber) => runners(fiber).scheduleTask(task, priority))

/**
 * Runs `effect` (a closing connection's log line, say) on the runtime's
 * scheduler (a request's: this one) rather than on the caller's stack:
 * thousands of clients leaving at once are logged over several turns of the
 * loop, which reads sockets between them, instead of holding one turn for
 * all of them.
 */
export const runLater = <R>(runtime: Runtime.Runtime<R>, effect: Effect.Effect<unknown, never, R>): void => {
  Runtime.runFork(runtime)(effect, { immediate: false })
}
