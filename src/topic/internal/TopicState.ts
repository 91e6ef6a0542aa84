/**
 * The in-memory core of a `Topic`: the ring of values with their cursors and
 * cached frames, the subscriber index by key, resolving a resume cursor, and
 * the hooks a broker-backed topic (`RedisTopic`) uses to append values at
 * offsets assigned elsewhere.
 */
import { capacities } from "../../contract/Kinds.ts"
import { FanOut, type Subscriber as FanOutSubscriber } from "../../core/FanOut.ts"
import * as Sse from "../../protocol/Sse.ts"
import type { Entry } from "./Model.ts"
// ---------------------------------------------------------------------------
// internals
// ---------------------------------------------------------------------------

/** The sliding policy of subscriptions: what a stalled subscriber gets when it resumes. */
export const slidingCapacity = capacities.subscription
/** Frames written to a sink per `write` during a replay, so a full socket is noticed early. */
export const framesPerWrite = 64

/** Encoders whose frames a value keeps; one per procedure serving the topic is the norm. */
const maxEncodersCached = 8

const cursorPattern = /^([0-9a-z]{1,32})-(0|[1-9][0-9]{0,15})$/

export const newEpoch = (): string => {
  const bytes = new Uint8Array(8)
  globalThis.crypto.getRandomValues(bytes)
  let epoch = ""
  for (const byte of bytes) epoch += byte.toString(36).padStart(2, "0")
  return epoch
}

export type Encoder<A> = (value: A) => string

export class Node<A> implements Entry<A> {
  /** The frame for the first encoder that asked; others (rare) in `frames`. */
  encoder: Encoder<A> | undefined = undefined
  frame = ""
  frames: Map<Encoder<A>, string> | undefined = undefined
  constructor(
    readonly offset: number,
    readonly cursor: string,
    readonly value: A,
    readonly key: string | undefined,
    readonly at: number,
    /** Offset of the previous value with the same key, or -1. */
    readonly previousOfKey: number
  ) {}
  frameFor(encode: Encoder<A>): string {
    if (this.encoder === encode) return this.frame
    if (this.encoder === undefined) {
      this.encoder = encode
      this.frame = frameOf(this.cursor, encode(this.value))
      return this.frame
    }
    this.frames ??= new Map()
    let frame = this.frames.get(encode)
    if (frame === undefined) {
      frame = frameOf(this.cursor, encode(this.value))
      // A new encoder per subscriber (a closure made per request) would grow this without
      // bound: past a few, frames are encoded without being kept.
      if (this.frames.size < maxEncodersCached) this.frames.set(encode, frame)
    }
    return frame
  }
}

export const frameOf = (cursor: string, json: string): string =>
  json.includes("\n") || json.includes("\r")
    ? Sse.event({ id: cursor, data: json })
    : `id: ${cursor}\ndata: ${json}\n\n`

export const droppedFrame = (count: number | null): string => Sse.dropped(count)

/** The cursor each published object got, so it survives a handler's Stream combinators (see `cursorOf`). */
export const cursors = new WeakMap<object, string>()

/** Where a subscription starts: its first offset, and what it missed before it (null: unknown). */
export interface Start {
  readonly position: number
  readonly missed: number | null
  /** Offsets [from, to] to read from the broker first (a broker-backed topic only). */
  readonly history?: { readonly from: number; readonly to: number } | undefined
}

/** What a resuming subscriber gets from the broker's history: values, and what it missed in all. */
export interface Settled<A> {
  readonly items: ReadonlyArray<RemoteEntry<A>>
  readonly missed: number | null
}

export abstract class Subscriber implements FanOutSubscriber {
  /** Offset from which values are still owed to this subscriber. */
  position = 0
  /** Matching values published at or after `position` and not delivered yet. */
  pending = 0
  dirty = false
  attached = true
  /** A gap to announce before anything else: a count, or null when unknown. */
  gap: number | null = 0
  constructor(readonly keys: ReadonlySet<string> | undefined) {}
  /** Called once after the publishes that made it dirty. */
  abstract flush(): void
  abstract end(): void
}

/** @internal A value with an offset assigned elsewhere (a broker). */
export interface RemoteEntry<A> {
  readonly offset: number
  readonly value: A
  /** When it was published, in milliseconds. */
  readonly at: number
}

/** @internal Where a broker-backed topic finds what this process's ring no longer holds. */
export interface Remote<A> {
  /** Entries with offsets in [from, to] the broker still holds, oldest first; rejects when it cannot tell. */
  readonly history: (from: number, to: number) => Promise<ReadonlyArray<RemoteEntry<A>>>
}

/** What the core needs of a topic's `Options`, in plain numbers (`Topic.settingsOf`). */
export interface Settings<A> {
  readonly key: ((value: A) => string) | undefined
  /** Values a resuming subscriber may be replayed at most (`replay.count`; 0 without `replay`). */
  readonly replayCount: number
  /** Milliseconds: the oldest value a resuming subscriber may be replayed (`replay.age`; Infinity: no limit). */
  readonly replayAgeMillis: number
  /** Fan-out pacing (`pace`). */
  readonly pace: boolean
}

/** @internal */
export class TopicState<A> {
  epoch = newEpoch()
  readonly capacity: number
  readonly replayCount: number
  readonly replayAgeMillis: number
  private readonly ring: Array<Node<A> | undefined>
  /** Offset the next value will get; offsets start at 1. */
  next = 1
  size = 0
  ended = false
  private readonly lastOfKey = new Map<string, number>()
  private readonly all = new Set<Subscriber>()
  private readonly byKey = new Map<string, Set<Subscriber>>()
  private readonly fanOut: FanOut
  count = 0

  constructor(readonly settings: Settings<A>, readonly now: () => number, readonly remote?: Remote<A>) {
    this.replayCount = settings.replayCount
    this.replayAgeMillis = settings.replayAgeMillis
    this.capacity = Math.max(this.replayCount, slidingCapacity)
    this.ring = new Array<Node<A> | undefined>(this.capacity)
    this.fanOut = new FanOut(this.capacity, settings.pace)
  }

  get oldest(): number {
    return this.next - this.size
  }

  cursorOf(offset: number): string {
    return `${this.epoch}-${offset}`
  }

  nodeAt(offset: number): Node<A> | undefined {
    if (offset < this.oldest || offset >= this.next) return undefined
    return this.ring[offset % this.capacity]
  }

  // -- publishing ---------------------------------------------------------------

  publishAll(values: Iterable<A>): void {
    if (this.ended) return
    const items = Array.isArray(values) ? (values as ReadonlyArray<A>) : Array.from(values)
    const at = this.now()
    for (let i = 0; i < items.length; i++) this.append(items[i]!, at)
    this.flush()
  }

  /**
   * Appends values whose offsets were assigned elsewhere (a broker), oldest
   * first: offsets already seen are ignored; an offset past the next one is a
   * gap, reported to subscribers (the exact count to those of every key, null
   * to those of some keys: what the gap held is unknown).
   */
  appendAt(entries: ReadonlyArray<RemoteEntry<A>>): void {
    if (this.ended) return
    for (const entry of entries) {
      if (entry.offset < this.next) continue
      if (entry.offset > this.next) this.skipTo(entry.offset)
      this.append(entry.value, entry.at)
    }
    this.flush()
  }

  /** Offsets [next, offset) will never be held: the ring restarts at `offset`, subscribers are told. */
  private skipTo(offset: number): void {
    // What subscribers are owed from the ring goes out before the ring restarts.
    this.fanOut.now()
    const from = this.next
    this.clearRing(offset)
    const report = (subscriber: Subscriber) => {
      const missing = offset - Math.max(from, subscriber.position)
      if (missing <= 0) return
      subscriber.gap = subscriber.keys === undefined && subscriber.gap !== null ? subscriber.gap + missing : null
      this.fanOut.mark(subscriber)
    }
    this.forEachSubscriber(report)
  }

  /**
   * A new incarnation of the broker's stream (it restarted empty): everything
   * before is unknown; every subscriber is told (a gap of unknown size) and
   * continues with the new values from `next`.
   */
  reset(epoch: string, next: number): void {
    if (this.ended) return
    this.fanOut.now()
    this.epoch = epoch
    this.clearRing(next)
    this.forEachSubscriber((subscriber) => {
      subscriber.gap = null
      subscriber.position = next
      subscriber.pending = 0
      this.fanOut.mark(subscriber)
    })
    this.flush()
  }

  private clearRing(next: number): void {
    this.ring.fill(undefined)
    this.lastOfKey.clear()
    this.size = 0
    this.next = next
  }

  private forEachSubscriber(f: (subscriber: Subscriber) => void): void {
    const seen = new Set<Subscriber>()
    for (const subscriber of this.all) f(subscriber)
    for (const set of this.byKey.values()) {
      for (const subscriber of set) {
        if (seen.has(subscriber)) continue
        seen.add(subscriber)
        f(subscriber)
      }
    }
  }

  private append(value: A, at: number): void {
    // Subscribers are flushed at least once per ring's worth of values, so one
    // that keeps up receives a burst larger than the ring whole.
    this.fanOut.appending()
    const offset = this.next++
    const keyOf = this.settings.key
    const key = keyOf === undefined ? undefined : keyOf(value)
    let previousOfKey = -1
    if (key !== undefined) {
      previousOfKey = this.lastOfKey.get(key) ?? -1
      this.lastOfKey.set(key, offset)
    }
    const index = offset % this.capacity
    const evicted = this.ring[index]
    if (evicted !== undefined && evicted.key !== undefined && this.lastOfKey.get(evicted.key) === evicted.offset) {
      this.lastOfKey.delete(evicted.key)
    }
    const cursor = this.cursorOf(offset)
    if (typeof value === "object" && value !== null) cursors.set(value, cursor)
    this.ring[index] = new Node(offset, cursor, value, key, at, previousOfKey)
    if (this.size < this.capacity) this.size++
    this.visit(this.all, offset)
    if (key !== undefined) {
      const subscribers = this.byKey.get(key)
      if (subscribers !== undefined) this.visit(subscribers, offset)
    }
  }

  private visit(subscribers: Set<Subscriber>, offset: number): void {
    for (const subscriber of subscribers) {
      // a subscriber resuming from a cursor this process has not read yet (another instance's)
      if (offset < subscriber.position) continue
      subscriber.pending++
      if (!subscriber.dirty) this.fanOut.mark(subscriber)
    }
  }

  /** Hands what was published to the subscribers owed something: at once, or as pacing allows (see `FanOut`). */
  flush(): void {
    this.fanOut.request()
  }

  // -- reading -------------------------------------------------------------------

  /** The newest `limit` values at or after `from` still held that match `keys`, oldest first. */
  collect(keys: ReadonlySet<string> | undefined, from: number, limit: number): Array<Node<A>> {
    const low = Math.max(from, this.oldest)
    const out: Array<Node<A>> = []
    if (low >= this.next || limit <= 0) return out
    if (keys === undefined) {
      for (let offset = Math.max(low, this.next - limit); offset < this.next; offset++) out.push(this.nodeAt(offset)!)
      return out
    }
    for (const key of keys) {
      let offset = this.lastOfKey.get(key) ?? -1
      let taken = 0
      while (offset >= low && taken < limit) {
        const node = this.nodeAt(offset)
        if (node === undefined) break
        out.push(node)
        taken++
        offset = node.previousOfKey
      }
    }
    if (keys.size === 1) out.reverse()
    else out.sort((a, b) => a.offset - b.offset)
    return out.length > limit ? out.slice(out.length - limit) : out
  }

  /** How many held values in [from, to) match `keys`. */
  countHeld(keys: ReadonlySet<string> | undefined, from: number, to: number): number {
    const low = Math.max(from, this.oldest)
    if (low >= to) return 0
    if (keys === undefined) return to - low
    let count = 0
    for (const key of keys) {
      let offset = this.lastOfKey.get(key) ?? -1
      while (offset >= low) {
        const node = this.nodeAt(offset)
        if (node === undefined) break
        if (offset < to) count++
        offset = node.previousOfKey
      }
    }
    return count
  }

  /** First offset a resuming subscriber may be replayed (the replay window by count and age). */
  private windowStart(): number {
    let low = Math.max(this.oldest, this.next - this.replayCount)
    if (this.replayAgeMillis !== Infinity && low < this.next) {
      const limit = this.now() - this.replayAgeMillis
      let high = this.next
      // values are appended in time order: binary search for the first young enough
      while (low < high) {
        const middle = (low + high) >>> 1
        if (this.nodeAt(middle)!.at >= limit) high = middle
        else low = middle + 1
      }
    }
    return low
  }

  resolve(keys: ReadonlySet<string> | undefined, after: string | undefined): Start {
    if (after === undefined) return { position: this.next, missed: 0 }
    const parsed = cursorPattern.exec(after)
    const offset = parsed === null ? NaN : Number(parsed[2])
    // Malformed, another incarnation's, or ahead of this one: nothing is known of what was missed.
    if (parsed === null || parsed[1] !== this.epoch) return { position: this.next, missed: null }
    if (offset >= this.next) {
      // Through a broker, a cursor of this incarnation a little ahead of this process is one
      // another instance has already seen: the values after it are on their way. Further ahead
      // than this process's ring holds, no instance can have seen it (a forged or corrupt
      // cursor): a gap of unknown size, then live values, as without a broker.
      return this.remote !== undefined && offset < this.next + this.capacity
        ? { position: offset + 1, missed: 0 }
        : { position: this.next, missed: null }
    }
    const window = this.windowStart()
    if (offset + 1 >= window) return { position: offset + 1, missed: 0 }
    const countStart = this.next - this.replayCount
    if (this.remote !== undefined && window === this.oldest && countStart < window) {
      // Older than this process holds but within the replay window: the broker may hold it.
      const from = Math.max(offset + 1, countStart)
      const before = from - offset - 1
      return {
        position: window,
        missed: before === 0 ? 0 : keys === undefined ? before : null,
        history: { from, to: window - 1 }
      }
    }
    const missed = keys === undefined
      ? window - offset - 1
      : offset + 1 >= this.oldest
      ? this.countHeld(keys, offset + 1, window)
      : null
    return { position: window, missed }
  }

  /**
   * What the broker's `entries` for `start.history` give a subscriber of
   * `keys`: the matching values young enough, and everything missed (counted
   * exactly when known; entries the broker no longer held are unknown to
   * subscribers of some keys). `undefined`: the broker could not be read.
   */
  settleHistory(
    keys: ReadonlySet<string> | undefined,
    start: Start,
    entries: ReadonlyArray<RemoteEntry<A>> | undefined
  ): Settled<A> {
    const range = start.history
    if (range === undefined) return { items: [], missed: start.missed }
    if (entries === undefined) return { items: [], missed: null }
    let missed = start.missed
    const add = (n: number, exact: boolean) => {
      if (n <= 0 || missed === null) return
      missed = exact ? missed + n : null
    }
    const oldestAllowed = this.replayAgeMillis === Infinity ? -Infinity : this.now() - this.replayAgeMillis
    const keyOf = this.settings.key
    const items: Array<RemoteEntry<A>> = []
    let expected = range.from
    for (const entry of entries) {
      if (entry.offset < expected) continue
      if (entry.offset > range.to) break
      add(entry.offset - expected, keys === undefined)
      expected = entry.offset + 1
      const matches = keys === undefined || (keyOf !== undefined && keys.has(keyOf(entry.value)))
      if (!matches) continue
      if (entry.at < oldestAllowed) add(1, true)
      else items.push(entry)
    }
    add(range.to + 1 - expected, keys === undefined)
    return { items, missed }
  }

  // -- subscribers ---------------------------------------------------------------

  add(subscriber: Subscriber, start: Start): void {
    subscriber.position = start.position
    subscriber.pending = this.countHeld(subscriber.keys, start.position, this.next)
    this.count++
    if (subscriber.keys === undefined) {
      this.all.add(subscriber)
      return
    }
    for (const key of subscriber.keys) {
      let set = this.byKey.get(key)
      if (set === undefined) {
        set = new Set()
        this.byKey.set(key, set)
      }
      set.add(subscriber)
    }
  }

  remove(subscriber: Subscriber): void {
    if (!subscriber.attached) return
    subscriber.attached = false
    this.count--
    if (subscriber.keys === undefined) {
      this.all.delete(subscriber)
      return
    }
    for (const key of subscriber.keys) {
      const set = this.byKey.get(key)
      if (set === undefined) continue
      set.delete(subscriber)
      if (set.size === 0) this.byKey.delete(key)
    }
  }

  shutdown(): void {
    if (this.ended) return
    // Values published before the end are handed over first.
    this.fanOut.close()
    this.ended = true
    const subscribers = [...this.all]
    for (const set of this.byKey.values()) for (const subscriber of set) subscribers.push(subscriber)
    for (const subscriber of subscribers) {
      if (!subscriber.attached) continue
      subscriber.end()
      this.remove(subscriber)
    }
  }
}

