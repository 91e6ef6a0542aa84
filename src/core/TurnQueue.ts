/**
 * The queue behind the requests' scheduler (`server/internal/Scheduling.ts`):
 * fibers handed back to the event loop wait here, first come first served,
 * and each turn of the loop runs them for at most a few milliseconds; the
 * same budget bounds how long fibers may run on the microtask queue within
 * one turn. Hundreds of busy fibers cannot hold one turn for long, so the
 * loop reads its sockets every few milliseconds.
 */

/**
 * Milliseconds of one turn of the event loop the fibers may take before the
 * loop gets the next turn. Short: Node accepts one new connection per turn,
 * so the turn's length bounds how fast a storm of returning clients gets in.
 */
const turnBudgetMillis = 1

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

/** Whether the fibers run in this turn of the loop have had their budget (the first call starts the turn's). */
export const turnSpent = (): boolean => {
  const now = performance.now()
  if (turnStarted < 0) {
    startTurn(now)
    return false
  }
  return now - turnStarted > turnBudgetMillis
}

/** Fibers handed back to the event loop, oldest first (`head` is the next to run), and since when each waits. */
let waiting: Array<() => void> = []
let since: Array<number> = []
let head = 0
let armed = false

/** Whether fibers wait for a turn of the loop: requests, streams' producers, … (fan-out paces itself then). */
export const othersWaiting = (): boolean => head < waiting.length

/**
 * How long fibers waited for their turn: the longest wait of a fiber run
 * in about the last second (milliseconds). A queue this late answers every
 * request that late: admission refuses new calls past a bound.
 */
const late = { millis: 0, at: -Infinity }

/** Milliseconds: see `late`; 0 when no fiber ran after a wait in the last two seconds. */
export const queueDelay = (): number => performance.now() - late.at > 2000 ? 0 : late.millis

/** Runs `run` in a later turn of the loop, after the fibers handed back before it. */
export const handBack = (run: () => void): void => {
  waiting.push(run)
  since.push(performance.now())
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
  if (head < end) {
    // The oldest waiter is first: its wait is this turn's longest.
    const waited = started - since[head]!
    if (waited >= late.millis || started - late.at > 1000) {
      late.millis = waited
      late.at = started
    }
  }
  while (head < end) {
    const run = waiting[head]!
    waiting[head++] = noop
    run()
    if (performance.now() - started > turnBudgetMillis) break
  }
  if (head === waiting.length) {
    waiting = []
    since = []
    head = 0
  } else if (head > 1024 && head * 2 > waiting.length) {
    waiting = waiting.slice(head)
    since = since.slice(head)
    head = 0
  }
  if (head < waiting.length && !armed) {
    armed = true
    setImmediate(runWaiting)
  }
}

const noop = (): void => {}
