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

/** Slices of one fiber run back to back on the microtask queue before the event loop gets a turn. */
const slicesInARow = 4

/** Milliseconds of one turn of the event loop the fibers on this scheduler may take before it gets the next. */
const turnBudgetMillis = 5

let turnStarted = -1
let endArmed = false

const endTurn = (): void => {
  endArmed = false
  turnStarted = -1
}

const startTurn = (now: number): void => {
  turnStarted = now
  if (!endArmed) {
    endArmed = true
    // Runs once the loop has polled sockets: the next turn starts with a fresh budget.
    setImmediate(endTurn)
  }
}

const turnSpent = (): boolean => {
  const now = performance.now()
  if (turnStarted < 0) {
    startTurn(now)
    return false
  }
  return now - turnStarted > turnBudgetMillis
}

/** Fibers handed back to the event loop, oldest first (`head` is the next to run). */
let waiting: Array<() => void> = []
let head = 0
let armed = false

const handBack = (run: () => void): void => {
  waiting.push(run)
  if (!armed) {
    armed = true
    setImmediate(runWaiting)
  }
}

/**
 * One turn's share of the waiting fibers: those that were waiting when it
 * began, oldest first, until the budget is spent. Fibers handed back while
 * it runs wait for the next turn, after the loop has read its sockets.
 */
const runWaiting = (): void => {
  armed = false
  const started = performance.now()
  startTurn(started)
  const end = waiting.length
  while (head < end) {
    const run = waiting[head]!
    waiting[head++] = noop
    run()
    if (performance.now() - started > turnBudgetMillis) break
  }
  if (head === waiting.length) {
    waiting = []
    head = 0
  } else if (head > 1024 && head * 2 > waiting.length) {
    waiting = waiting.slice(head)
    head = 0
  }
  if (head < waiting.length && !armed) {
    armed = true
    setImmediate(runWaiting)
  }
}

const noop = (): void => {}

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
