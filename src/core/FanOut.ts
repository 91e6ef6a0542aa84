/**
 * When a topic hands what was published to its subscribers (each
 * subscriber's `flush`: for a socket, one write of every value it is owed).
 *
 * Paced (the default), a hand-over to many subscribers is a *cycle* run in
 * slices of a few milliseconds, and the event loop gets a turn (reads its
 * sockets, runs its timers) between two slices and between two cycles.
 * When nothing else waits, that is all: the turn comes straight back and
 * fan-out takes the whole loop. When other work waits for the loop —
 * requests, streams' producers, anything on the requests' queue
 * (`TurnQueue`) — a cycle that kept the loop busy longer than `busyMillis`
 * (its writes' syscalls included) delays the next by as long, so fan-out
 * takes about half of the loop and a server feeding more subscribers than
 * it can still answers requests. What is published while a cycle runs or
 * waits goes out in the next, one write per subscriber of everything it is
 * owed. A topic with few subscribers hands over at once.
 *
 * Values are never lost to pacing: whenever the values appended since the
 * start of the previous cycle could fill the ring (a subscriber last served
 * early in that cycle may be owed all of them), everything owed is handed
 * over at once, before the ring overwrites any of it.
 *
 * Unpaced (`pace: false`), every publish is handed over at once.
 */

import { othersWaiting } from "./TurnQueue.ts"

/** What a cycle needs of a subscriber (a topic's subscribers are ones). */
export interface Subscriber {
  /** Owed something and waiting in a cycle: set and cleared by `FanOut` only. */
  dirty: boolean
  /** Detached subscribers are skipped. */
  readonly attached: boolean
  /** Hands over what it is owed (for a socket, one write). */
  flush(): void
}

/** A cycle that kept the loop busy longer than this (milliseconds) delays the next by as long, while other work waits. */
export const busyMillis = 2

/**
 * Longest slice of a cycle (milliseconds) before the event loop gets a turn.
 * Short: Node accepts one new connection per turn of the loop.
 */
export const sliceMillis = 1

type Process = { readonly nextTick?: (f: () => void) => void }
const nodeProcess = (globalThis as { process?: Process }).process
/** After the writes just made have reached their sockets: Node hands corked writes over on the next tick. */
const afterWrites: (f: () => void) => void = nodeProcess?.nextTick === undefined
  ? queueMicrotask
  : (f) => nodeProcess.nextTick!(f)
/** After the event loop has read its sockets. */
const afterIo: (f: () => void) => void = typeof setImmediate === "function"
  ? (f) => setImmediate(f)
  : (f) => setTimeout(f, 0)

/**
 * How late hand-overs are in this process: the longest time, over about the
 * last second, from a value being owed to subscribers to the end of the
 * cycle that handed it over. Admission control sheds new subscriptions
 * when it grows past a bound (`maxFanOutDelay`).
 */
const lateness = { millis: 0, at: -Infinity }

const recordDelay = (millis: number, now: number): void => {
  if (millis >= lateness.millis || now - lateness.at > 1000) {
    lateness.millis = millis
    lateness.at = now
  }
}

/** Milliseconds: see `lateness`; 0 when no cycle ended in the last two seconds. */
export const delay = (): number => performance.now() - lateness.at > 2000 ? 0 : lateness.millis

const flushOne = (subscriber: Subscriber): void => {
  subscriber.dirty = false
  if (subscriber.attached) subscriber.flush()
}

export class FanOut {
  /** Subscribers owed something, not yet in a cycle, and since when the first of them is. */
  private dirty: Array<Subscriber> = []
  private dirtySince = 0
  private cycleDueAt = 0
  /** The cycle under way: its subscribers, the next to serve, and the loop time it took so far. */
  private cycle: Array<Subscriber> | undefined = undefined
  private index = 0
  private busy = 0
  /** Callbacks of an earlier cycle (cut short by `now`) are ignored. */
  private cycleId = 0
  /** A cycle is due after the event loop's next turn, or after a wait (the previous one just ended). */
  private due = false
  private timer: ReturnType<typeof setTimeout> | undefined = undefined
  /** No cycle starts before this (`performance.now()`): set after a busy cycle while other work waits. */
  private nextAt = 0
  /** Values appended since the start of the previous cycle: before and since the start of this one. */
  private beforeCycle = 0
  private sinceCycle = 0

  constructor(readonly capacity: number, readonly paced: boolean) {}

  /** `subscriber` is owed something (its `pending` or `gap` changed). */
  mark(subscriber: Subscriber): void {
    if (!subscriber.dirty) {
      subscriber.dirty = true
      if (this.dirty.length === 0 && this.paced) this.dirtySince = performance.now()
      this.dirty.push(subscriber)
    }
  }

  /** A value is about to take a place in the ring. */
  appending(): void {
    if (this.beforeCycle + this.sinceCycle >= this.capacity) this.now()
    this.sinceCycle++
  }

  /** Something was published: hands it over now, or when pacing allows. */
  request(): void {
    if (!this.paced) {
      this.now()
      return
    }
    if (this.dirty.length === 0 || this.cycle !== undefined || this.due) return
    const wait = this.nextAt - performance.now()
    if (wait > 0) {
      this.due = true
      this.timer = setTimeout(this.onDue, wait)
      return
    }
    this.startCycle()
  }

  /** Hands over everything owed, synchronously: the cycle under way, and what waits for the next. */
  now(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
      this.due = false
    }
    const cycle = this.cycle
    // How late this hand-over is: since the oldest value it hands over was owed.
    const owedSince = cycle !== undefined ? this.cycleDueAt : this.dirty.length > 0 ? this.dirtySince : undefined
    if (cycle !== undefined) {
      this.cycle = undefined
      this.cycleId++
      while (this.index < cycle.length) flushOne(cycle[this.index++]!)
    }
    this.beforeCycle = 0
    this.sinceCycle = 0
    while (this.dirty.length > 0) {
      const dirty = this.dirty
      this.dirty = []
      for (let i = 0; i < dirty.length; i++) flushOne(dirty[i]!)
    }
    if (this.paced && owedSince !== undefined) {
      const now = performance.now()
      recordDelay(now - owedSince, now)
    }
  }

  /** Stops pacing: no timer or slice is left waiting (the topic has ended). */
  close(): void {
    this.now()
    this.cycleId++
  }

  private readonly onDue = (): void => {
    this.due = false
    this.timer = undefined
    this.request()
  }

  private startCycle(): void {
    if (this.dirty.length === 0) return
    this.cycle = this.dirty
    this.dirty = []
    this.cycleDueAt = this.dirtySince
    this.index = 0
    this.busy = 0
    this.beforeCycle = this.sinceCycle
    this.sinceCycle = 0
    this.slice(++this.cycleId)
  }

  private slice(id: number): void {
    const cycle = this.cycle
    if (id !== this.cycleId || cycle === undefined) return
    const started = performance.now()
    while (this.index < cycle.length) {
      flushOne(cycle[this.index++]!)
      if ((this.index & 15) === 0 && performance.now() - started > sliceMillis) break
    }
    afterWrites(() => {
      if (id !== this.cycleId) return
      this.busy += performance.now() - started
      if (this.index < cycle.length) {
        afterIo(() => this.slice(id))
        return
      }
      this.cycle = undefined
      const now = performance.now()
      recordDelay(now - this.cycleDueAt, now)
      // What was published during the cycle goes out in the next: after the loop's turn, or,
      // while other work waits for the loop, once as long as this busy cycle took has passed.
      this.nextAt = this.busy > busyMillis && othersWaiting() ? now + this.busy : 0
      if (this.dirty.length > 0 && !this.due) {
        this.due = true
        if (this.nextAt > 0) this.timer = setTimeout(this.onDue, this.busy)
        else afterIo(this.onDue)
      }
    })
  }
}
