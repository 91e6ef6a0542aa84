/**
 * The two buffering policies behind every streaming procedure. Both work on
 * domain values (before encoding) and on whole chunks: a producer pushes a
 * chunk in one step and the consumer takes everything buffered in one step,
 * so the cost is per chunk, never a fiber or a queue operation per value.
 *
 * - `sliding`: the producer never waits. When the buffer is full the oldest
 *   value is overwritten and counted, so the consumer learns exactly how many
 *   values it missed (delivered + dropped = produced).
 * - `suspend`: the producer waits while the buffer holds `capacity` values,
 *   so a slow consumer holds the producer back and nothing is lost.
 */
import * as Chunk from "effect/Chunk"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { MissedValues } from "../contract/MissedValues.ts"
import { Signal } from "../core/Signal.ts"
import { endOf, forkInto, forkProducer, notified, pullInto, SuspendBuffer } from "./internal/SuspendBuffer.ts"
import { type SlidingBatch, SlidingRing } from "../core/SlidingRing.ts"

/** The policy capacities of the product (defined with the procedure kinds, `contract/Kinds.ts`). */
export { capacities } from "../contract/Kinds.ts"
/** Reporting values a subscriber missed (defined with the contract, `contract/MissedValues.ts`). */
export { MissedValues, reportMissed } from "../contract/MissedValues.ts"
/** The sliding policy's ring and what its consumer receives (plain JavaScript, `core/SlidingRing.ts`). */
export type { SlidingBatch } from "../core/SlidingRing.ts"

/**
 * Runs `self` ahead of its consumer into a ring of `capacity` values. The
 * consumer receives batches: the exact number of values overwritten since its
 * last batch, followed by the values still held, oldest first.
 */
export const sliding = <A, E, R>(
  self: Stream.Stream<A, E, R>,
  capacity: number,
  options?: {
    /**
     * A batch is also handed over every `tick` (with `ticks` counting them),
     * values or not: how an SSE response sends its heartbeat without a second
     * stream merged in.
     */
    readonly tick?: Duration.DurationInput | undefined
    /**
     * Ends the stream (after the batch in hand) when it completes, watched by one
     * fiber for the whole stream instead of `Stream.interruptWhen`, which forks a
     * fiber for every element.
     */
    readonly until?: Effect.Effect<void> | undefined
    /** Runs around the whole run of `self` (e.g. a `wrap` middleware that sees it start and end). */
    readonly around?: ((run: Effect.Effect<void, E, R>) => Effect.Effect<void, E, R>) | undefined
  }
): Stream.Stream<SlidingBatch<A>, E, R> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const ring = new SlidingRing<A>(capacity)
    const ready = new Signal()
    const readyNow = notified(ready)
    let done: Exit.Exit<void, E> | undefined
    // True from the moment the consumer asks for a batch until it has taken one: a full
    // ring then means a burst (a chunk larger than the ring), not a slow consumer, and the
    // producer hands over instead of overwriting. Only a consumer held up downstream (by
    // the socket) makes the producer slide.
    let consumerReady = false
    const offer = (values: ReadonlyArray<A>, start: number): Effect.Effect<void> =>
      Effect.suspend(() => {
        let i = start
        while (i < values.length) {
          const room = capacity - ring.size
          if (room > 0) {
            const end = Math.min(values.length, i + room)
            ring.pushAll(values.slice(i, end))
            i = end
          } else if (consumerReady) {
            ready.notify()
            const next = i
            return Effect.zipRight(Effect.yieldNow(), offer(values, next))
          } else {
            ring.pushAll(values, i)
            i = values.length
          }
        }
        ready.notify()
        return Effect.void
      })
    const taken = new Signal()
    const takenNow = notified(taken)
    // A reported gap lies between the values already held and the next ones: it waits
    // for the held values to be taken, so the `dropped` event lands where the gap is.
    const report = (count: number | undefined): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (ring.size > 0) {
          ready.notify()
          return Effect.zipRight(takenNow, report(count))
        }
        if (count === undefined) ring.unknownGap = true
        else if (count > 0) ring.dropped += count
        ready.notify()
        return Effect.void
      })
    const missed = MissedValues.of({ report })
    const run = self.pipe(
      Stream.provideService(MissedValues, missed),
      Stream.runForEachChunk((chunk) => offer(Chunk.toReadonlyArray(chunk), 0))
    )
    yield* forkProducer(run, options?.around, (exit) => {
      done = exit
      ready.notify()
    })
    if (options?.tick !== undefined) {
      yield* Effect.sync(() => {
        ring.ticks++
        ready.notify()
      }).pipe(Effect.delay(options.tick), Effect.forever, Effect.forkScoped)
    }
    let stopped = false
    if (options?.until !== undefined) {
      yield* options.until.pipe(
        Effect.zipRight(Effect.sync(() => {
          stopped = true
          ready.notify()
        })),
        Effect.forkScoped
      )
    }
    const pull: Effect.Effect<SlidingBatch<A>, Option.Option<E>> = Effect.suspend(() => {
      if (stopped) return Effect.fail(Option.none())
      consumerReady = true
      if (ring.size > 0 || ring.dropped > 0 || ring.unknownGap || ring.ticks > 0) {
        consumerReady = false
        const batch = ring.take()
        taken.notify()
        return Effect.succeed(batch)
      }
      if (done !== undefined) return endOf(done)
      return Effect.zipRight(readyNow, pull)
    })
    return Stream.repeatEffectOption(pull)
  }))

/**
 * Runs `self` ahead of its consumer by at most `capacity` values; past that
 * the producer waits for the consumer. Chunks are preserved (split only where
 * the capacity requires), so byte and row streams keep their batching.
 */
export const suspend = <A, E, R>(
  self: Stream.Stream<A, E, R>,
  capacity: number,
  options?: {
    /**
     * Most values handed to the consumer at once. A writer that writes a whole
     * pulled chunk before it waits for `drain` then queues at most this many on
     * the socket, on top of the buffer. Default: everything buffered.
     */
    readonly maxPull?: number | undefined
    /** Runs around the whole run of `self` (e.g. a `wrap` middleware that sees it start and end). */
    readonly around?: ((run: Effect.Effect<void, E, R>) => Effect.Effect<void, E, R>) | undefined
  }
): Stream.Stream<A, E, R> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const buffer = new SuspendBuffer<A, E>(capacity)
    const maxPull = options?.maxPull ?? Infinity
    yield* forkInto(buffer, pullInto(self, buffer), options?.around)
    const pull: Effect.Effect<Chunk.Chunk<A>, Option.Option<E>> = Effect.suspend(() => {
      if (buffer.size > 0) return Effect.succeed(buffer.take(maxPull))
      if (buffer.exit !== undefined) return endOf(buffer.exit)
      return Effect.zipRight(buffer.awaitReady, pull)
    })
    return Stream.repeatEffectChunkOption(pull)
  }))
