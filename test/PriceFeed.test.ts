import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { DemoApi } from "../examples/demo/contract.ts"
import { AuthenticationLive, DemoHandlers } from "../examples/demo/handlers.ts"
import * as PriceFeed from "../examples/demo/PriceFeed.ts"
import * as HttpTransport from "../src/HttpTransport.ts"
import { listen, quiet, sseCollector } from "./support/http.ts"

const symbols = ["A", "B", "C"]

/** Runs the feed for `ticks` ticks of 10 ms each (TestClock) and returns every price it kept. */
const advance = (ticks: number) => TestClock.adjust(`${ticks * 10} millis`)

describe("the demo price feed", () => {
  it.scoped("a resume within the kept window replays exactly what followed the cursor, then goes live", () =>
    Effect.gen(function*() {
      const feed = yield* PriceFeed.make({ pricesPerSecond: 100, replay: 1000, symbols })
      yield* advance(3) // 3 ticks × 1 price × 3 symbols
      const first = yield* feed.subscribe(symbols, undefined)
      const firstPrices = yield* Stream.runCollect(Stream.take(first.prices, 3)).pipe(Effect.fork)
      yield* advance(1)
      const live = Chunk.toReadonlyArray(yield* Effect.flatten(firstPrices.await))
      const cursor = live[0]!.seq
      const resumed = yield* feed.subscribe(["A", "C"], cursor)
      expect(resumed.missed).toBe(0)
      const collecting = yield* Stream.runCollect(Stream.take(resumed.prices, 3)).pipe(Effect.fork)
      yield* advance(2)
      const replayed = yield* Effect.flatten(collecting.await)
      const seqs = Chunk.toReadonlyArray(replayed).map((p) => p.seq)
      expect(seqs.every((seq) => seq > cursor)).toBe(true)
      // the C right after the cursor is replayed; then ticks 5 and 6 follow live, without repeats
      expect(new Set(seqs).size).toBe(3)
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
      expect(Chunk.toReadonlyArray(replayed).every((p) => p.symbol !== "B")).toBe(true)
    }))

  it.scoped("a cursor older than the kept window reports exactly how many prices of its symbols are lost", () =>
    Effect.gen(function*() {
      const feed = yield* PriceFeed.make({ pricesPerSecond: 100, replay: 6, symbols })
      yield* advance(1)
      const latest = feed.latest("A")
      if (latest._tag === "None") throw new Error("no price yet")
      const cursor = latest.value.seq // the A of tick 1: seqs so far are A, B, C
      yield* advance(5) // 15 more prices, the newest 6 kept: ticks 5 and 6
      // lost after the cursor: ticks 1–4 after A, i.e. B,C of tick 1 and A,B,C × 3 → wanted A and B: 1 + 3 + 3 = 7
      const resumed = yield* feed.subscribe(["A", "B"], cursor)
      expect(resumed.missed).toBe(7)
    }))

  it.scoped("a cursor from a previous run, or ahead of the feed, is a gap of unknown size", () =>
    Effect.gen(function*() {
      const feed = yield* PriceFeed.make({ pricesPerSecond: 100, replay: 100, symbols })
      yield* advance(2)
      expect((yield* feed.subscribe(symbols, 12345)).missed).toBe(undefined)
      expect((yield* feed.subscribe(symbols, Number.MAX_SAFE_INTEGER)).missed).toBe(undefined)
    }))
})

describe("watchPrices over SSE", () => {
  it.scopedLive("an expired Last-Event-ID gets an `event: dropped` with the count, then the oldest kept price", () =>
    Effect.gen(function*() {
      const live = Layer.mergeAll(DemoHandlers, AuthenticationLive).pipe(
        Layer.provide(PriceFeed.layer({ pricesPerSecond: 1000, replay: 50 }))
      )
      // built in the test's scope: the feed lives as long as the server
      const context = yield* Layer.build(live)
      const url = yield* Effect.flatMap(HttpTransport.toHttpApp(DemoApi), listen).pipe(Effect.provide(context))
      const payload = encodeURIComponent(JSON.stringify({ symbols: ["ACME"] }))
      // learn a cursor, then wait until it has fallen out of the kept window
      const first = yield* Effect.promise(() => fetch(`${url}/rpc/watchPrices?payload=${payload}`))
      const reader = first.body!.getReader()
      const sse = sseCollector()
      while (sse.events.length === 0) {
        const { done, value } = yield* Effect.promise(() => reader.read())
        if (done) throw new Error("the subscription ended")
        sse.feed(value)
      }
      const cursor = sse.events[0]!.id!
      yield* Effect.promise(() => reader.cancel())
      yield* Effect.sleep("300 millis")
      const resumed = yield* Effect.promise(() =>
        fetch(`${url}/rpc/watchPrices?payload=${payload}`, { headers: { "last-event-id": cursor } })
      )
      const resumedReader = resumed.body!.getReader()
      const again = sseCollector()
      while (again.events.length < 2) {
        const { done, value } = yield* Effect.promise(() => resumedReader.read())
        if (done) throw new Error("the subscription ended")
        again.feed(value)
      }
      yield* Effect.promise(() => resumedReader.cancel())
      expect(again.events[0]!.event).toBe("dropped")
      const { count } = JSON.parse(again.events[0]!.data) as { count: number }
      const next = JSON.parse(again.events[1]!.data) as { seq: number }
      // ACME is one of five round-robin symbols: every fifth seq between the cursor and the next delivered price
      expect(count).toBe((next.seq - Number(cursor)) / 5 - 1)
    }).pipe(quiet))
})
