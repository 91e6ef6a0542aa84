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
 * objects per subscriber. Hand-overs to many subscribers are paced (see the
 * `pace` option and `core/FanOut.ts`): sliced, with a turn of the event
 * loop between slices, so fan-out never holds the loop for long, and takes
 * all of it only when nothing else waits.
 */
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { Options, SubscribeOptions, Subscription } from "./internal/Model.ts"
import { subscription } from "./internal/Subscription.ts"
import { settingsOf } from "./internal/Settings.ts"
import { cursors, TopicState } from "./internal/TopicState.ts"
import { TypeId } from "./internal/TypeId.ts"

// ---------------------------------------------------------------------------
// models
// ---------------------------------------------------------------------------

export { TypeId } from "./internal/TypeId.ts"
export type {
  Attachment,
  Entry,
  Handle,
  Options,
  Sink,
  SubscribeOptions,
  Subscription
} from "./internal/Model.ts"

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
// constructors
// ---------------------------------------------------------------------------

/** A topic living as long as the scope; closing the scope ends every subscription. */
export const make = <A>(options: Options<A> = {}): Effect.Effect<Topic<A>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const state = new TopicState<A>(settingsOf(options), () => clock.unsafeCurrentTimeMillis())
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

/**
 * A topic fed by an Effect `PubSub`: everything published to `pubsub` from
 * now on is published to the topic, in order, as long as the scope lives.
 * For a handler that would return `Stream.fromPubSub(pubsub)`: returning
 * `topic.subscribe()` instead serves every subscriber on the shared fast
 * path (one encoding per value, one write per subscriber per batch, the
 * sliding 64 with exact `dropped`, resumable with `Last-Event-ID`), where
 * one `Stream.fromPubSub` per subscriber is a queue and a fiber each. Values
 * are taken from the PubSub in batches, as many as are ready.
 */
export const fromPubSub = <A>(
  pubsub: PubSub.PubSub<A>,
  options: Options<A> = {}
): Effect.Effect<Topic<A>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const topic = yield* make<A>(options)
    const dequeue = yield* PubSub.subscribe(pubsub)
    yield* Queue.take(dequeue).pipe(
      Effect.flatMap((first) =>
        Effect.map(Queue.takeAll(dequeue), (rest) => {
          topic.unsafePublishAll(rest.length === 0 ? [first] : [first, ...rest])
        })
      ),
      Effect.forever,
      Effect.forkScoped
    )
    return topic
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
