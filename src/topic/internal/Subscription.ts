/**
 * Subscriptions to a topic's state: a Stream view (`StreamSubscriber`), and
 * the `Subscription` value a handler returns, which is both that and the
 * fast-path handle a transport attaches a socket to (`SinkSubscriber.ts`).
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { pipeArguments } from "effect/Pipeable"
import * as Stream from "effect/Stream"
import { reportMissed } from "../../contract/MissedValues.ts"
import { Signal } from "../../core/Signal.ts"
import type { Attachment, Entry, Handle, Sink, SubscribeOptions, Subscription } from "./Model.ts"
import { attach } from "./SinkSubscriber.ts"
import { type Encoder, type RemoteEntry, Subscriber, type TopicState } from "./TopicState.ts"
import { TypeId } from "./TypeId.ts"

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
    return attach(this.topic, this.keys, this.after, sink, encode)
  }
  pipe() {
    // eslint-disable-next-line prefer-rest-params
    return pipeArguments(this, arguments)
  }
}

/** @internal A subscription to a topic's state (the broker-backed topics build their own state). */
export const subscription = <A>(topic: TopicState<A>, options: SubscribeOptions | undefined): Subscription<A> =>
  new SubscriptionImpl(topic, keySet(options?.keys), options?.after) as unknown as Subscription<A>

