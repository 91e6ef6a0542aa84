import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fc from "fast-check"
import * as BackpressurePolicy from "../src/server/BackpressurePolicy.ts"
import { SuspendBuffer } from "../src/server/internal/SuspendBuffer.ts"

/** A source of 0..n-1 cut into the given chunk sizes, yielding between chunks like a real source. */
const source = (sizes: ReadonlyArray<number>) => {
  const chunks: Array<Chunk.Chunk<number>> = []
  let next = 0
  for (const size of sizes) {
    chunks.push(Chunk.range(next, next + size - 1))
    next += size
  }
  return {
    total: next,
    stream: Stream.fromIterable(chunks).pipe(
      Stream.flatMap((chunk) => Stream.fromChunk(chunk), { concurrency: 1 }),
      Stream.mapChunksEffect((chunk) => Effect.as(Effect.yieldNow(), chunk))
    )
  }
}

describe("sliding policy", () => {
  it.effect("delivered + dropped = produced, in order, ending with the newest value, for any chunking and consumer pace", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 30 }),
          fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 10 }),
          async (sizes, pauses) => {
            const { stream, total } = source(sizes)
            let batch = 0
            const delivered: Array<number> = []
            let dropped = 0
            await Effect.runPromise(
              BackpressurePolicy.sliding(stream, 64).pipe(
                Stream.runForEach((b) =>
                  Effect.gen(function*() {
                    dropped += b.dropped
                    delivered.push(...b.values)
                    const pause = pauses[batch++ % pauses.length]!
                    for (let i = 0; i < pause; i++) yield* Effect.yieldNow()
                  })
                )
              )
            )
            expect(delivered.length + dropped).toBe(total)
            expect(delivered.at(-1)).toBe(total - 1)
            for (let i = 1; i < delivered.length; i++) expect(delivered[i]!).toBeGreaterThan(delivered[i - 1]!)
          }
        ),
        { numRuns: 100 }
      )
    ))

  it.effect("a burst larger than the ring is handed over, not dropped, when the consumer keeps up", () =>
    Effect.gen(function*() {
      const values = Array.from({ length: 10_000 }, (_, i) => i)
      let dropped = 0
      const delivered: Array<number> = []
      yield* BackpressurePolicy.sliding(Stream.fromIterable(values), 64).pipe(
        Stream.runForEach((b) =>
          Effect.sync(() => {
            dropped += b.dropped
            delivered.push(...b.values)
            expect(b.values.length).toBeLessThanOrEqual(64)
          })
        )
      )
      expect(dropped).toBe(0)
      expect(delivered).toEqual(values)
    }))

  it.effect("a producer can report values its consumer missed; they are announced before the next value", () =>
    Effect.gen(function*() {
      const batches = yield* BackpressurePolicy.sliding(
        Stream.make(1).pipe(
          Stream.concat(Stream.fromEffect(BackpressurePolicy.reportMissed(5)).pipe(Stream.drain)),
          Stream.concat(Stream.make(7)),
          Stream.concat(Stream.fromEffect(BackpressurePolicy.reportMissed(undefined)).pipe(Stream.drain)),
          Stream.concat(Stream.make(9))
        ),
        64
      ).pipe(Stream.runCollect)
      const flat = Chunk.toReadonlyArray(batches).flatMap((b) => [
        ...(b.unknownGap ? ["gap"] : b.dropped > 0 ? [`dropped ${b.dropped}`] : []),
        ...b.values.map(String)
      ])
      expect(flat).toEqual(["1", "dropped 5", "7", "gap", "9"])
    }))
})

describe("suspend policy", () => {
  it.effect("delivers every value in order, in pulls of at most maxPull, for any chunking", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.array(fc.integer({ min: 1, max: 500 }), { minLength: 1, maxLength: 20 }),
          fc.integer({ min: 1, max: 300 }),
          fc.integer({ min: 1, max: 64 }),
          async (sizes, capacity, maxPull) => {
            const { stream, total } = source(sizes)
            const pulls = await Effect.runPromise(
              BackpressurePolicy.suspend(stream, capacity, { maxPull }).pipe(Stream.chunks, Stream.runCollect)
            )
            const values = Chunk.toReadonlyArray(pulls).flatMap((chunk) => Chunk.toReadonlyArray(chunk))
            expect(values).toEqual(Array.from({ length: total }, (_, i) => i))
            for (const chunk of pulls) expect(Chunk.size(chunk)).toBeLessThanOrEqual(Math.min(maxPull, capacity))
          }
        ),
        { numRuns: 100 }
      )
    ))
})

describe("suspend buffer: values lent to a writer", () => {
  it.effect("count against the capacity until given back: the producer waits for them", () =>
    Effect.gen(function*() {
      const buffer = new SuspendBuffer<number>(4)
      let offered = 0
      const settle = Effect.repeatN(Effect.yieldNow(), 20)
      yield* Effect.fork(
        Effect.forEach(Chunk.range(0, 7), (n) => Effect.tap(buffer.offer(Chunk.of(n)), () => offered++), { discard: true })
      )
      yield* settle
      expect({ offered, size: buffer.size }).toEqual({ offered: 4, size: 4 })
      const out: Array<number> = []
      // Lent: the room stays taken, the producer stays where it is.
      expect(buffer.takeInto(out, 2, true)).toBe(2)
      yield* settle
      expect({ offered, size: buffer.size, lent: buffer.lent }).toEqual({ offered: 4, size: 2, lent: 2 })
      // One taken outright and one given back: room for two more.
      buffer.takeInto(out, 1)
      buffer.giveBack(1)
      yield* settle
      expect({ offered, size: buffer.size, lent: buffer.lent }).toEqual({ offered: 6, size: 3, lent: 1 })
      expect(out).toEqual([0, 1, 2])
    }))
})
