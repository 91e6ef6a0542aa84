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

export interface Topic<A> {
  /** Publishes to every matching subscriber at once; does nothing once the topic's scope is closed. */
  readonly publish: (value: A) => Effect.Effect<void>
  readonly publishAll: (values: Iterable<A>) => Effect.Effect<void>
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
}

abstract class Subscriber {
  /** Offset from which values are still owed to this subscriber. */
  position = 0
  /** Matching values published at or after `position` and not delivered yet. */
  pending = 0
  dirty = false
  attached = true
  constructor(readonly keys: ReadonlySet<string> | undefined) {}
  /** Called once after the publishes that made it dirty. */
  abstract flush(): void
  abstract end(): void
}

class TopicState<A> {
  readonly epoch = newEpoch()
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

  constructor(readonly options: Options<A>, readonly now: () => number) {
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
    this.visit(this.all)
    if (key !== undefined) {
      const subscribers = this.byKey.get(key)
      if (subscribers !== undefined) this.visit(subscribers)
    }
  }

  private visit(subscribers: Set<Subscriber>): void {
    for (const subscriber of subscribers) {
      subscriber.pending++
      if (!subscriber.dirty) {
        subscriber.dirty = true
        this.dirty.push(subscriber)
      }
    }
  }

  private flush(): void {
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
    if (parsed === null || parsed[1] !== this.epoch || offset >= this.next) {
      return { position: this.next, missed: null }
    }
    const window = this.windowStart()
    if (offset + 1 >= window) return { position: offset + 1, missed: 0 }
    const missed = keys === undefined
      ? window - offset - 1
      : offset + 1 >= this.oldest
      ? this.countHeld(keys, offset + 1, window)
      : null
    return { position: window, missed }
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
  /** A gap to announce before anything else: a count, or null when unknown. */
  gap: number | null = 0
  constructor(
    readonly topic: TopicState<A>,
    keys: ReadonlySet<string> | undefined,
    readonly sink: Sink,
    readonly encode: Encoder<A>
  ) {
    super(keys)
  }

  flush(): void {
    if (!this.stalled) this.deliver(Infinity)
  }

  detach(): void {
    this.topic.remove(this)
  }

  resume(): void {
    if (!this.attached || !this.stalled) return
    this.stalled = false
    this.deliver(this.position < this.replayEnd ? Infinity : slidingCapacity)
  }

  end(): void {
    // What a stalled subscriber is owed is settled (the newest 64, the rest counted) before the end.
    if (this.pending > 0 || this.gap !== 0) {
      this.stalled = false
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
    this.position = topic.next
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
    // Reported first, so the `dropped` event precedes every value.
    if (start.missed !== 0) yield* BackpressurePolicy.reportMissed(start.missed ?? undefined)
    const pull: Effect.Effect<Chunk.Chunk<Entry<A>>, Option.Option<never>> = Effect.suspend(() => {
      if (subscriber.pending > 0) {
        const items = topic.collect(keys, subscriber.position, Infinity)
        const lost = subscriber.pending - items.length
        subscriber.position = topic.next
        subscriber.pending = 0
        const chunk = Chunk.unsafeFromArray<Entry<A>>(items)
        return lost > 0 ? Effect.as(BackpressurePolicy.reportMissed(lost), chunk) : Effect.succeed(chunk)
      }
      if (!subscriber.attached) return Effect.fail(Option.none())
      return Effect.zipRight(subscriber.await, pull)
    })
    return Stream.repeatEffectChunkOption(pull)
  }))

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
    subscriber.replayEnd = topic.next
    subscriber.deliver(Infinity)
    return subscriber
  }
  pipe() {
    // eslint-disable-next-line prefer-rest-params
    return pipeArguments(this, arguments)
  }
}

const subscription = <A>(topic: TopicState<A>, options: SubscribeOptions | undefined): Subscription<A> =>
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
