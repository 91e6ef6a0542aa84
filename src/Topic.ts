/**
 * A live broadcast source for subscriptions: values are published once and
 * fanned out to every subscriber, each value encoded at most once per
 * encoder, with per-subscriber state no bigger than a position and a count.
 *
 * ```ts
 * class Prices extends Context.Tag("Prices")<Prices, Topic.Topic<Price>>() {}
 * const PricesLive = Topic.layer(Prices, { key: (p) => p.symbol, replay: { count: 10_000 } })
 * // in a handler of a `Procedure.subscription`:
 * watch: ({ symbols }, { headers }) =>
 *   topic.subscribe({ keys: symbols, after: Procedure.lastEventId(headers) })
 * ```
 *
 * Every value gets a cursor, `<epoch>-<offset>`: the epoch is random per
 * `make`, so a cursor of a previous incarnation (a restart) is recognised
 * and reported as a gap of unknown size instead of being resumed from.
 *
 * A `Subscription` is a `Stream` (in-process consumers, `StreamingService.sse`,
 * the RpcClient protocol) and also carries, under `TypeId`, a handle a
 * transport attaches a socket to: then no fiber, queue or Stream runs per
 * subscriber, and the sliding policy (64 values, exact `dropped` counts) is
 * applied by the topic itself when the socket stops accepting writes.
 *
 * When to use one: a Topic when many subscribers watch the same live data
 * (tickers, dashboards, notifications by user or room as keys); a Stream per
 * subscriber when each computes its own values (a query, a per-user
 * generator). Cost model: a publish appends to one ring and touches only the
 * subscribers of the value's key (an index, not a scan); each value is
 * encoded once per encoder, when the first subscriber takes it; a subscriber
 * that keeps up costs one write per batch of values, a stalled one a counter
 * increment per value until it resumes with at most 64; memory is the ring
 * (`max(replay.count, 64)` values with their frames) plus a few small
 * objects per subscriber.
 */
import * as Chunk from "effect/Chunk"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { pipeArguments } from "effect/Pipeable"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as BackpressurePolicy from "./BackpressurePolicy.ts"
import * as Sse from "./protocol/Sse.ts"

// ---------------------------------------------------------------------------
// models
// ---------------------------------------------------------------------------

export const TypeId: unique symbol = Symbol.for("effect-stream-rpc/Topic")

export type TypeId = typeof TypeId

/** A published value with the cursor the topic gave it (the SSE `id:`). */
export interface Entry<A> {
  readonly cursor: string
  readonly value: A
}

export interface Options<A> {
  /** Key of a value (e.g. its symbol): subscribers to some keys are only touched by their values. */
  readonly key?: ((value: A) => string) | undefined
  /**
   * What a resuming subscriber (`after`) can be replayed: at most `count`
   * values (default 1,000 when `replay` is given, 0 without it), none older
   * than `age` (default: no limit).
   */
  readonly replay?: {
    readonly count?: number | undefined
    readonly age?: Duration.DurationInput | undefined
  } | undefined
}

export interface SubscribeOptions {
  /** Only values with one of these keys (needs the topic's `key` option); all values without it. */
  readonly keys?: Iterable<string> | undefined
  /** Resume after this cursor (`Procedure.lastEventId(headers)`). */
  readonly after?: string | undefined
}

/**
 * Where a fast-path subscriber writes: SSE frames as text. `write` returns
 * false when the receiver's buffer is full (the text was still accepted):
 * the topic stops writing to it until `Attachment.resume()`.
 */
export interface Sink {
  /** `values` values and `dropped` missed values announced (exact counts only) are in `text`. */
  readonly write: (text: string, values: number, dropped: number) => boolean
  /** The topic has ended: no value will follow. */
  readonly end: () => void
}

export interface Attachment {
  /** The receiver accepts writes again (e.g. the socket's `drain`). */
  resume(): void
  /** Stops delivery at once and forgets the subscriber. Idempotent. */
  detach(): void
}

/** The fast-path handle of a subscription, found under `TypeId`. */
export interface Handle<A> {
  /**
   * Starts delivering to `sink`: first a `dropped` event if the resume cursor
   * cannot be fully replayed, then the replay, then live values. `encode` is
   * the JSON of a value; frames are cached per encoder function, so pass the
   * same function to every subscriber of a procedure.
   */
  attach(sink: Sink, encode: (value: A) => string): Attachment
}

export interface Subscription<A> extends Stream.Stream<A> {
  readonly [TypeId]: Handle<A>
  /** The same values with their cursors. */
  readonly entries: Stream.Stream<Entry<A>>
}

/**
 * A broker-backed topic (`RedisTopic`) could not take a value: the broker is
 * unreachable or did not answer in time. The in-memory topic never fails.
 */
export class TopicUnavailable extends Schema.TaggedError<TopicUnavailable>()("TopicUnavailable", {
  topic: Schema.String,
  message: Schema.String
}) {}

/**
 * `E` is what publishing can fail with: `never` for the in-memory topic,
 * `TopicUnavailable` for a broker-backed one. A `Topic<A>` is also a
 * `Topic<A, TopicUnavailable>`, so code written against the latter takes both.
 */
export interface Topic<A, E = never> {
  /**
   * Publishes to every matching subscriber; does nothing once the topic's
   * scope is closed. In memory, subscribers are reached at once; through a
   * broker, when this process's reader reads the value back.
   */
  readonly publish: (value: A) => Effect.Effect<void, E>
  readonly publishAll: (values: Iterable<A>) => Effect.Effect<void, E>
  readonly unsafePublish: (value: A) => void
  readonly unsafePublishAll: (values: Iterable<A>) => void
  readonly subscribe: (options?: SubscribeOptions) => Subscription<A>
  /** Cursor of the latest value published (`<epoch>-0` before any). */
  readonly latestCursor: () => string
  /** Subscribers attached right now (fast path and Stream views): for tests and debugging. */
  readonly subscriberCount: () => number
}

// ---------------------------------------------------------------------------
// internals
// ---------------------------------------------------------------------------

/** The sliding policy of subscriptions: what a stalled subscriber gets when it resumes. */
const slidingCapacity = BackpressurePolicy.capacities.subscription
/** Frames written to a sink per `write` during a replay, so a full socket is noticed early. */
const framesPerWrite = 64

/** Encoders whose frames a value keeps; one per procedure serving the topic is the norm. */
const maxEncodersCached = 8

const cursorPattern = /^([0-9a-z]{1,32})-(0|[1-9][0-9]{0,15})$/

const newEpoch = (): string => {
  const bytes = new Uint8Array(8)
  globalThis.crypto.getRandomValues(bytes)
  let epoch = ""
  for (const byte of bytes) epoch += byte.toString(36).padStart(2, "0")
  return epoch
}

type Encoder<A> = (value: A) => string

class Node<A> implements Entry<A> {
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

const frameOf = (cursor: string, json: string): string =>
  json.includes("\n") || json.includes("\r")
    ? Sse.event({ id: cursor, data: json })
    : `id: ${cursor}\ndata: ${json}\n\n`

const droppedFrame = (count: number | null): string => Sse.dropped(count)

/** The cursor each published object got, so it survives a handler's Stream combinators (see `cursorOf`). */
const cursors = new WeakMap<object, string>()

/** Where a subscription starts: its first offset, and what it missed before it (null: unknown). */
interface Start {
  readonly position: number
  readonly missed: number | null
  /** Offsets [from, to] to read from the broker first (a broker-backed topic only). */
  readonly history?: { readonly from: number; readonly to: number } | undefined
}

/** What a resuming subscriber gets from the broker's history: values, and what it missed in all. */
interface Settled<A> {
  readonly items: ReadonlyArray<RemoteEntry<A>>
  readonly missed: number | null
}

abstract class Subscriber {
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
  private dirty: Array<Subscriber> = []
  count = 0

  constructor(readonly options: Options<A>, readonly now: () => number, readonly remote?: Remote<A>) {
    const replay = options.replay
    this.replayCount = replay === undefined ? 0 : Math.max(0, Math.floor(replay.count ?? 1000))
    this.replayAgeMillis = replay?.age === undefined ? Infinity : Duration.toMillis(Duration.decode(replay.age))
    this.capacity = Math.max(this.replayCount, slidingCapacity)
    this.ring = new Array<Node<A> | undefined>(this.capacity)
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
    // Subscribers are flushed at least once per ring's worth of values, so one
    // that keeps up receives a burst larger than the ring whole.
    for (let from = 0; from < items.length; from += this.capacity) {
      const to = Math.min(items.length, from + this.capacity)
      const at = this.now()
      for (let i = from; i < to; i++) this.append(items[i]!, at)
      this.flush()
    }
  }

  /**
   * Appends values whose offsets were assigned elsewhere (a broker), oldest
   * first: offsets already seen are ignored; an offset past the next one is a
   * gap, reported to subscribers (the exact count to those of every key, null
   * to those of some keys: what the gap held is unknown).
   */
  appendAt(entries: ReadonlyArray<RemoteEntry<A>>): void {
    if (this.ended) return
    let appended = 0
    for (const entry of entries) {
      if (entry.offset < this.next) continue
      if (entry.offset > this.next) this.skipTo(entry.offset)
      this.append(entry.value, entry.at)
      // flushed at least once per ring's worth, as in publishAll
      if (++appended % this.capacity === 0) this.flush()
    }
    this.flush()
  }

  /** Offsets [next, offset) will never be held: the ring restarts at `offset`, subscribers are told. */
  private skipTo(offset: number): void {
    const from = this.next
    this.clearRing(offset)
    const report = (subscriber: Subscriber) => {
      const missing = offset - Math.max(from, subscriber.position)
      if (missing <= 0) return
      subscriber.gap = subscriber.keys === undefined && subscriber.gap !== null ? subscriber.gap + missing : null
      this.markDirty(subscriber)
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
    this.epoch = epoch
    this.clearRing(next)
    this.forEachSubscriber((subscriber) => {
      subscriber.gap = null
      subscriber.position = next
      subscriber.pending = 0
      this.markDirty(subscriber)
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

  private markDirty(subscriber: Subscriber): void {
    if (!subscriber.dirty) {
      subscriber.dirty = true
      this.dirty.push(subscriber)
    }
  }

  private append(value: A, at: number): void {
    const offset = this.next++
    const keyOf = this.options.key
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
      if (!subscriber.dirty) {
        subscriber.dirty = true
        this.dirty.push(subscriber)
      }
    }
  }

  flush(): void {
    const dirty = this.dirty
    if (dirty.length === 0) return
    this.dirty = []
    for (let i = 0; i < dirty.length; i++) {
      const subscriber = dirty[i]!
      subscriber.dirty = false
      if (subscriber.attached) subscriber.flush()
    }
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
      // Through a broker, a cursor of this incarnation ahead of this process is one another
      // instance has already seen: the values after it are on their way.
      return this.remote === undefined ? { position: this.next, missed: null } : { position: offset + 1, missed: 0 }
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
    const keyOf = this.options.key
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

/** A socket (or any `Sink`) fed directly by the topic; its own `Attachment`. */
class SinkSubscriber<A> extends Subscriber implements Attachment {
  stalled = false
  /**
   * End of the replay this subscriber resumed with (the topic's head when it
   * attached). Until its position passes it, a stall does not slide: a reader
   * that keeps up gets everything kept, in batches as its socket drains; only
   * what the ring evicts meanwhile is lost (and counted).
   */
  replayEnd = 0
  /** Waiting for history from the broker: live values are counted, not written. */
  holding = false
  constructor(
    readonly topic: TopicState<A>,
    keys: ReadonlySet<string> | undefined,
    readonly sink: Sink,
    readonly encode: Encoder<A>
  ) {
    super(keys)
  }

  flush(): void {
    if (!this.stalled && !this.holding) this.deliver(Infinity)
  }

  detach(): void {
    this.topic.remove(this)
  }

  resume(): void {
    if (!this.attached || !this.stalled || this.holding) return
    this.stalled = false
    this.deliver(this.position < this.replayEnd ? Infinity : slidingCapacity)
  }

  end(): void {
    // What a stalled subscriber is owed is settled (the newest 64, the rest counted) before the end.
    if (this.pending > 0 || this.gap !== 0) {
      this.stalled = false
      this.holding = false
      this.deliver(slidingCapacity)
    }
    this.sink.end()
  }

  /** Writes what is owed: the newest `limit` values held, after a `dropped` event for the rest. */
  deliver(limit: number): void {
    const topic = this.topic
    const items = this.pending === 0 ? [] : topic.collect(this.keys, this.position, limit)
    const lost = this.pending - items.length
    let text = ""
    let dropped = 0
    if (this.gap !== 0 || lost > 0) {
      const count = this.gap === null ? null : this.gap + lost
      text = droppedFrame(count)
      dropped = count ?? lost
      this.gap = 0
    }
    this.position = Math.max(this.position, topic.next)
    this.pending = 0
    if (items.length === 0) {
      if (text !== "" && !this.sink.write(text, 0, dropped)) this.stalled = true
      return
    }
    const encode = this.encode
    for (let from = 0; from < items.length; from += framesPerWrite) {
      const to = Math.min(items.length, from + framesPerWrite)
      for (let i = from; i < to; i++) text += items[i]!.frameFor(encode)
      const accepted = this.sink.write(text, to - from, dropped)
      if (!this.attached) return
      text = ""
      dropped = 0
      if (!accepted) {
        this.stalled = true
        if (to < items.length) {
          this.position = items[to]!.offset
          this.pending = items.length - to
        }
        return
      }
    }
  }
}

/** The consumer of a Stream view: pulls from the ring, woken by publishes. */
class StreamSubscriber extends Subscriber {
  private waiter: (() => void) | undefined = undefined
  flush(): void {
    this.wake()
  }
  end(): void {
    this.wake()
  }
  private wake(): void {
    const waiter = this.waiter
    if (waiter !== undefined) {
      this.waiter = undefined
      waiter()
    }
  }
  readonly await: Effect.Effect<void> = Effect.async<void>((resume) => {
    this.waiter = () => resume(Effect.void)
    return Effect.sync(() => {
      this.waiter = undefined
    })
  })
}

const keySet = (keys: Iterable<string> | undefined): ReadonlySet<string> | undefined =>
  keys === undefined ? undefined : new Set(keys)

const entries = <A>(
  topic: TopicState<A>,
  keys: ReadonlySet<string> | undefined,
  after: string | undefined
): Stream.Stream<Entry<A>> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const subscriber = new StreamSubscriber(keys)
    if (topic.ended) return Stream.empty
    const start = topic.resolve(keys, after)
    topic.add(subscriber, start)
    yield* Effect.addFinalizer(() => Effect.sync(() => topic.remove(subscriber)))
    // Live values arriving meanwhile are counted by the subscriber and read from the ring after.
    const epoch = topic.epoch
    const settled = start.history === undefined || topic.remote === undefined
      ? { items: [], missed: start.missed }
      : topic.settleHistory(
        keys,
        start,
        yield* Effect.promise(() => topic.remote!.history(start.history!.from, start.history!.to).catch(() => undefined))
      )
    // An epoch change while the history was read: what it read is of the previous incarnation
    // (the subscriber's gap, null, is reported by `pull`).
    const renewed = topic.epoch !== epoch
    const history = renewed ? [] : settled.items.map((entry) => entryOf(topic, entry))
    // Reported first, so the `dropped` event precedes every value.
    if (!renewed && settled.missed !== 0) yield* BackpressurePolicy.reportMissed(settled.missed ?? undefined)
    const pull: Effect.Effect<Chunk.Chunk<Entry<A>>, Option.Option<never>> = Effect.suspend(() => {
      if (subscriber.gap !== 0) {
        const gap = subscriber.gap
        subscriber.gap = 0
        return Effect.zipRight(BackpressurePolicy.reportMissed(gap ?? undefined), pull)
      }
      if (subscriber.pending > 0) {
        const items = topic.collect(keys, subscriber.position, Infinity)
        const lost = subscriber.pending - items.length
        subscriber.position = Math.max(subscriber.position, topic.next)
        subscriber.pending = 0
        const chunk = Chunk.unsafeFromArray<Entry<A>>(items)
        return lost > 0 ? Effect.as(BackpressurePolicy.reportMissed(lost), chunk) : Effect.succeed(chunk)
      }
      if (!subscriber.attached) return Effect.fail(Option.none())
      return Effect.zipRight(subscriber.await, pull)
    })
    const live = Stream.repeatEffectChunkOption(pull)
    return history.length === 0 ? live : Stream.concat(Stream.fromIterable(history), live)
  }))

/** A broker's entry as a subscriber sees it: with the cursor of the topic's current incarnation. */
const entryOf = <A>(topic: TopicState<A>, entry: RemoteEntry<A>): Entry<A> => ({
  cursor: topic.cursorOf(entry.offset),
  value: entry.value
})

const streamVariance = (Stream.empty as unknown as Record<symbol, unknown>)[Stream.StreamTypeId]

/**
 * A Stream whose pipeline is built only when it is run: a subscription served
 * on the fast path never builds one.
 */
class SubscriptionImpl<A> implements Handle<A> {
  readonly [Stream.StreamTypeId] = streamVariance
  private entriesStream: Stream.Stream<Entry<A>> | undefined = undefined
  constructor(
    readonly topic: TopicState<A>,
    readonly keys: ReadonlySet<string> | undefined,
    readonly after: string | undefined
  ) {}
  get [TypeId](): Handle<A> {
    return this
  }
  get entries(): Stream.Stream<Entry<A>> {
    return this.entriesStream ??= entries(this.topic, this.keys, this.after)
  }
  get channel() {
    return Stream.toChannel(Stream.map(this.entries, (entry) => entry.value))
  }
  attach(sink: Sink, encode: Encoder<A>): Attachment {
    const topic = this.topic
    const subscriber = new SinkSubscriber(topic, this.keys, sink, encode)
    if (topic.ended) {
      subscriber.attached = false
      sink.end()
      return subscriber
    }
    const start = topic.resolve(this.keys, this.after)
    topic.add(subscriber, start)
    subscriber.gap = start.missed
    const remote = topic.remote
    if (start.history === undefined || remote === undefined) {
      subscriber.replayEnd = topic.next
      subscriber.deliver(Infinity)
      return subscriber
    }
    // The broker's history first; live values are counted meanwhile and delivered after it.
    subscriber.holding = true
    const range = start.history
    const epoch = topic.epoch
    const settle = (entries: ReadonlyArray<RemoteEntry<A>> | undefined) => {
      if (!subscriber.attached || !subscriber.holding) return
      subscriber.holding = false
      // An epoch change while the history was read: what it read is of the previous incarnation.
      const renewed = topic.epoch !== epoch
      const settled = renewed ? { items: [], missed: null } : topic.settleHistory(this.keys, start, entries)
      let text = ""
      if (settled.missed !== 0) text += droppedFrame(settled.missed)
      for (const item of settled.items) text += frameOf(topic.cursorOf(item.offset), encode(item.value))
      // Gaps reported while the history was read (after it, before the live values) are still owed.
      const gap = subscriber.gap
      subscriber.gap = renewed ? 0 : gap === null ? (start.missed === null ? 0 : null) : gap - (start.missed ?? 0)
      subscriber.replayEnd = topic.next
      if (text !== "" && !sink.write(text, settled.items.length, settled.missed ?? 0)) {
        subscriber.stalled = true
        return
      }
      if (subscriber.attached) subscriber.deliver(Infinity)
    }
    remote.history(range.from, range.to).then(settle, () => settle(undefined))
    return subscriber
  }
  pipe() {
    // eslint-disable-next-line prefer-rest-params
    return pipeArguments(this, arguments)
  }
}

/** @internal A subscription to a topic's state (the broker-backed topics build their own state). */
export const subscription = <A>(topic: TopicState<A>, options: SubscribeOptions | undefined): Subscription<A> =>
  new SubscriptionImpl(topic, keySet(options?.keys), options?.after) as unknown as Subscription<A>

// ---------------------------------------------------------------------------
// constructors
// ---------------------------------------------------------------------------

/** A topic living as long as the scope; closing the scope ends every subscription. */
export const make = <A>(options: Options<A> = {}): Effect.Effect<Topic<A>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const state = new TopicState<A>(options, () => clock.unsafeCurrentTimeMillis())
    yield* Effect.addFinalizer(() => Effect.sync(() => state.shutdown()))
    const unsafePublishAll = (values: Iterable<A>) => state.publishAll(values)
    const unsafePublish = (value: A) => state.publishAll([value])
    return {
      publish: (value) => Effect.sync(() => unsafePublish(value)),
      publishAll: (values) => Effect.sync(() => unsafePublishAll(values)),
      unsafePublish,
      unsafePublishAll,
      subscribe: (subscribeOptions) => subscription(state, subscribeOptions),
      latestCursor: () => state.cursorOf(state.next - 1),
      subscriberCount: () => state.count
    }
  })

// ---------------------------------------------------------------------------
// combinators
// ---------------------------------------------------------------------------

/**
 * The cursor a topic gave `value` when it was published (objects only; the
 * latest topic's if it was published to several). Lets `StreamingService.sse`
 * send the topic's cursors even when a handler's subscription reaches it
 * wrapped by Stream combinators that keep the values (`filter`, `tap`, ...).
 */
export const cursorOf = (value: unknown): string | undefined =>
  typeof value === "object" && value !== null ? cursors.get(value) : undefined

/** Whether a handler's result is a Topic subscription (and carries the fast-path handle). */
export const isSubscription: {
  <A, E, R>(stream: Stream.Stream<A, E, R>): stream is Stream.Stream<A, E, R> & Subscription<A>
  (u: unknown): u is Subscription<unknown>
} = (u: unknown): u is Subscription<unknown> => typeof u === "object" && u !== null && TypeId in u

// ---------------------------------------------------------------------------
// layers
// ---------------------------------------------------------------------------

/** A topic as a service: `Topic.layer(Prices, { key: (p) => p.symbol })`. */
export const layer = <I, A>(tag: Context.Tag<I, Topic<A>>, options?: Options<A>): Layer.Layer<I> =>
  Layer.scoped(tag, make<A>(options))
