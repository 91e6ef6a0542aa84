/**
 * Subscribers of a topic's state: a socket fed directly (the fast path,
 * `SinkSubscriber`), a Stream view (`StreamSubscriber`), and the
 * `Subscription` value a handler returns, which is both.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { pipeArguments } from "effect/Pipeable"
import * as Stream from "effect/Stream"
import { reportMissed } from "../../contract/MissedValues.ts"
import { Signal } from "../../core/Signal.ts"
import type { Attachment, Entry, Handle, Sink, SubscribeOptions, Subscription } from "./Model.ts"
import { TypeId } from "./TypeId.ts"
import {
  droppedFrame,
  type Encoder,
  frameOf,
  framesPerWrite,
  type RemoteEntry,
  slidingCapacity,
  Subscriber,
  TopicState
} from "./TopicState.ts"
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
  private readonly signal = new Signal()
  /** Completes at the next publish (or the end); interrupted, it stops waiting. */
  readonly await: Effect.Effect<void> = Effect.async<void>((resume) => {
    this.signal.once(() => resume(Effect.void))
    return Effect.sync(() => this.signal.clear())
  })
  flush(): void {
    this.signal.notify()
  }
  end(): void {
    this.signal.notify()
  }
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
    if (!renewed && settled.missed !== 0) yield* reportMissed(settled.missed ?? undefined)
    const pull: Effect.Effect<Chunk.Chunk<Entry<A>>, Option.Option<never>> = Effect.suspend(() => {
      if (subscriber.gap !== 0) {
        const gap = subscriber.gap
        subscriber.gap = 0
        return Effect.zipRight(reportMissed(gap ?? undefined), pull)
      }
      if (subscriber.pending > 0) {
        const items = topic.collect(keys, subscriber.position, Infinity)
        const lost = subscriber.pending - items.length
        subscriber.position = Math.max(subscriber.position, topic.next)
        subscriber.pending = 0
        const chunk = Chunk.unsafeFromArray<Entry<A>>(items)
        return lost > 0 ? Effect.as(reportMissed(lost), chunk) : Effect.succeed(chunk)
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

