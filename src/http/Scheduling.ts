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
 * This one hands fibers back to the event loop (`setImmediate`) after a few
 * slices of one fiber in a row, and once the fibers it runs have had a few
 * milliseconds of the current turn of the loop.
 */
import * as Scheduler from "effect/Scheduler"

/** Slices of one fiber run back to back on the microtask queue before the event loop gets a turn. */
const slicesInARow = 4

/** Milliseconds of one turn of the event loop the fibers on this scheduler may take before it gets the next. */
const turnBudgetMillis = 5

let turnStarted = -1

const endTurn = (): void => {
  turnStarted = -1
}

const turnSpent = (): boolean => {
  const now = performance.now()
  if (turnStarted < 0) {
    turnStarted = now
    // Runs once the loop has polled sockets: the next turn starts with a fresh budget.
    setImmediate(endTurn)
    return false
  }
  return now - turnStarted > turnBudgetMillis
}

const runners = Scheduler.SchedulerRunner.cached((depth, drain) => {
  if (depth >= slicesInARow || turnSpent()) setImmediate(() => drain(0))
  else queueMicrotask(() => drain(depth + 1))
})

export const scheduler: Scheduler.Scheduler = Scheduler.make((task, priority, fiber) => runners(fiber).scheduleTask(task, priority))
