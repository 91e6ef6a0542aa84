/**
 * The fast path of a topic's subscription: a socket (or any `Sink`) fed
 * directly by the topic, with no fiber, queue or Stream per subscriber. A
 * stalled subscriber keeps a position and a count; when it resumes it is
 * told what it missed and gets the newest values (the sliding policy).
 */
import type { Attachment, Sink } from "./Model.ts"
import {
  droppedFrame,
  type Encoder,
  frameOf,
  framesPerWrite,
  type RemoteEntry,
  slidingCapacity,
  Subscriber,
  type TopicState
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

/**
 * Starts delivering to `sink` (`Handle.attach`): first a `dropped` event if
 * the resume cursor `after` cannot be fully replayed, then the replay (the
 * broker's history first, for a broker-backed topic), then live values.
 */
export const attach = <A>(
  topic: TopicState<A>,
  keys: ReadonlySet<string> | undefined,
  after: string | undefined,
  sink: Sink,
  encode: Encoder<A>
): Attachment => {
  const subscriber = new SinkSubscriber(topic, keys, sink, encode)
  if (topic.ended) {
    subscriber.attached = false
    sink.end()
    return subscriber
  }
  const start = topic.resolve(keys, after)
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
    const settled = renewed ? { items: [], missed: null } : topic.settleHistory(keys, start, entries)
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
