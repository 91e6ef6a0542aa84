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
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"

/** The policy capacities of the product; they are not configurable per call. */
export const capacities = {
  subscription: 64,
  download: 256,
  export: 128
} as const

/** What a sliding consumer receives: the values it missed, then the newest values. */
export interface SlidingBatch<A> {
  readonly dropped: number
  readonly values: ReadonlyArray<A>
}

/** A wake-up slot for one waiting party. */
class Signal {
  private waiter: (() => void) | undefined = undefined
  notify(): void {
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

/** Fixed-size ring that overwrites its oldest value and counts what it overwrote. */
class SlidingRing<A> {
  private readonly items: Array<A | undefined>
  private start = 0
  size = 0
  dropped = 0
  constructor(readonly capacity: number) {
    this.items = new Array<A | undefined>(capacity)
  }
  pushAll(values: ReadonlyArray<A>): void {
    const capacity = this.capacity
    let from = 0
    if (values.length > capacity) {
      // Values that cannot fit even in an empty ring are dropped without being copied.
      from = values.length - capacity
      this.dropped += from
    }
    for (let i = from; i < values.length; i++) {
      if (this.size === capacity) {
        this.items[this.start] = values[i]
        this.start = (this.start + 1) % capacity
        this.dropped++
      } else {
        this.items[(this.start + this.size) % capacity] = values[i]
        this.size++
      }
    }
  }
  take(): SlidingBatch<A> {
    const values = new Array<A>(this.size)
    for (let i = 0; i < this.size; i++) {
      const index = (this.start + i) % this.capacity
      values[i] = this.items[index] as A
      this.items[index] = undefined
    }
    const batch: SlidingBatch<A> = { dropped: this.dropped, values }
    this.start = 0
    this.size = 0
    this.dropped = 0
    return batch
  }
}

const endOf = <E>(exit: Exit.Exit<void, E>): Effect.Effect<never, Option.Option<E>> =>
  Exit.isSuccess(exit) ? Effect.fail(Option.none()) : Effect.failCause(Cause.map(exit.cause, Option.some))

/**
 * Runs `self` ahead of its consumer into a ring of `capacity` values. The
 * consumer receives batches: the exact number of values overwritten since its
 * last batch, followed by the values still held, oldest first.
 */
export const sliding = <A, E, R>(
  self: Stream.Stream<A, E, R>,
  capacity: number
): Stream.Stream<SlidingBatch<A>, E, R> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const ring = new SlidingRing<A>(capacity)
    const ready = new Signal()
    let done: Exit.Exit<void, E> | undefined
    yield* self.pipe(
      Stream.runForEachChunk((chunk) =>
        Effect.sync(() => {
          ring.pushAll(Chunk.toReadonlyArray(chunk))
          ready.notify()
        })
      ),
      Effect.onExit((exit) =>
        Effect.sync(() => {
          done = exit
          ready.notify()
        })
      ),
      Effect.forkScoped
    )
    const pull: Effect.Effect<SlidingBatch<A>, Option.Option<E>> = Effect.suspend(() => {
      if (ring.size > 0 || ring.dropped > 0) return Effect.succeed(ring.take())
      if (done !== undefined) return endOf(done)
      return Effect.zipRight(ready.await, pull)
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
  capacity: number
): Stream.Stream<A, E, R> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    let buffered: Array<Chunk.Chunk<A>> = []
    let size = 0
    const ready = new Signal()
    const space = new Signal()
    let done: Exit.Exit<void, E> | undefined
    const offer = (chunk: Chunk.Chunk<A>): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (Chunk.isEmpty(chunk)) return Effect.void
        const room = capacity - size
        if (room <= 0) return Effect.zipRight(space.await, offer(chunk))
        const length = Chunk.size(chunk)
        const head = length <= room ? chunk : Chunk.take(chunk, room)
        buffered.push(head)
        size += Chunk.size(head)
        ready.notify()
        return length <= room ? Effect.void : offer(Chunk.drop(chunk, room))
      })
    yield* self.pipe(
      Stream.runForEachChunk(offer),
      Effect.onExit((exit) =>
        Effect.sync(() => {
          done = exit
          ready.notify()
        })
      ),
      Effect.forkScoped
    )
    const pull: Effect.Effect<Chunk.Chunk<A>, Option.Option<E>> = Effect.suspend(() => {
      if (size > 0) {
        const taken = buffered.length === 1 ? buffered[0]! : Chunk.flatten(Chunk.unsafeFromArray(buffered))
        buffered = []
        size = 0
        space.notify()
        return Effect.succeed(taken)
      }
      if (done !== undefined) return endOf(done)
      return Effect.zipRight(ready.await, pull)
    })
    return Stream.repeatEffectChunkOption(pull)
  }))
