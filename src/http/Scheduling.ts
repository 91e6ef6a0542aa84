/**
 * The scheduler requests run on. Effect's default scheduler lets a fiber
 * that keeps yielding (a transfer producing as fast as it can, a stream
 * with a synchronous source) run up to 2,048 slices in a row on the
 * microtask queue before the event loop gets a turn: a few busy fibers can
 * then hold the loop for seconds, and no socket is read meanwhile, not even
 * for a `503` or `/metrics`. This one hands a fiber back to the event loop
 * (`setImmediate`) after a few slices in a row, so sockets are read between.
 */
import * as Scheduler from "effect/Scheduler"

/** Slices of one fiber run back to back on the microtask queue before the event loop gets a turn. */
const slicesInARow = 4

const runners = Scheduler.SchedulerRunner.cached((depth, drain) => {
  if (depth >= slicesInARow) setImmediate(() => drain(0))
  else queueMicrotask(() => drain(depth + 1))
})

export const scheduler: Scheduler.Scheduler = Scheduler.make((task, priority, fiber) => runners(fiber).scheduleTask(task, priority))
