import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { DemoApi, type Price } from "../examples/demo/contract.ts"
import { AuthenticationLive, DemoHandlers } from "../examples/demo/handlers.ts"
import * as PriceFeed from "../examples/demo/PriceFeed.ts"
import * as HttpTransport from "../src/server/HttpTransport.ts"
import { capacities } from "../src/server/BackpressurePolicy.ts"
import * as Topic from "../src/topic/Topic.ts"
import { listen, quiet, sseCollector } from "./support/http.ts"

const symbols = ["A", "B", "C"]

/** Runs the feed for `ticks` ticks of 10 ms each (TestClock). */
const advance = (ticks: number) => TestClock.adjust(`${ticks * 10} millis`)

const encodePrice = (price: Price) => JSON.stringify({ seq: price.seq, symbol: price.symbol })

/** Attaches an in-process sink to a subscription's fast path and parses what it is given. */
const watch = (subscription: Topic.Subscription<Price>) => {
  const sse = sseCollector()
  const utf8 = new TextEncoder()
  const attachment = subscription[Topic.TypeId].attach({
    write: (text) => {
      sse.feed(utf8.encode(text))
      return true
    },
    end: () => {}
  }, encodePrice)
  const prices = () =>
    sse.events.filter((e) => e.event === "message").map((e) => ({ ...(JSON.parse(e.data) as { seq: number; symbol: string }), id: e.id! }))
  const dropped = () =>
    sse.events.filter((e) => e.event === "dropped").map((e) => (JSON.parse(e.data) as { count: number | null }).count)
  return { events: sse.events, prices, dropped, attachment }
}

describe("the demo price feed", () => {
  it.scoped("publishes the documented rate, one price per symbol per tick, numbered consecutively", () =>
    Effect.gen(function*() {
      const feed = yield* PriceFeed.make({ pricesPerSecond: 100, replay: 1000, symbols })
      const all = watch(feed.topic.subscribe())
      yield* advance(1)
      const before = all.prices().length
      yield* advance(100) // one second
      const prices = all.prices()
      expect(prices.length - before).toBe(300)
      expect(prices.slice(0, 3).map((p) => p.symbol)).toEqual(symbols)
      for (let i = 1; i < prices.length; i++) expect(prices[i]!.seq).toBe(prices[i - 1]!.seq + 1)
    }))

  it.scoped("a resume within the kept window replays exactly what followed the cursor, then goes live", () =>
    Effect.gen(function*() {
      const feed = yield* PriceFeed.make({ pricesPerSecond: 100, replay: 1000, symbols })
      yield* advance(3) // 3 ticks × 1 price × 3 symbols
      const first = yield* feed.topic.subscribe({ keys: symbols }).entries.pipe(Stream.take(3), Stream.runCollect, Effect.fork)
      while (feed.topic.subscriberCount() === 0) yield* Effect.yieldNow()
      yield* advance(1)
      const live = Chunk.toReadonlyArray(yield* Fiber.join(first))
      const cursor = live[0]!.cursor // the A of tick 4
      const resumed = yield* feed.topic.subscribe({ keys: ["A", "C"], after: cursor }).pipe(
        Stream.take(3),
        Stream.runCollect,
        Effect.fork
      )
      while (feed.topic.subscriberCount() === 0) yield* Effect.yieldNow()
      yield* advance(2)
      const replayed = Chunk.toReadonlyArray(yield* Fiber.join(resumed))
      const seqs = replayed.map((p) => p.seq)
      // the C right after the cursor is replayed; then the A and C of tick 5 follow live, without repeats
      expect(seqs).toEqual([live[0]!.value.seq + 2, live[0]!.value.seq + 3, live[0]!.value.seq + 5])
      expect(replayed.map((p) => p.symbol)).toEqual(["C", "A", "C"])
    }))

  it.scoped("a cursor older than the kept window reports exactly how many prices of its symbols are lost", () =>
    Effect.gen(function*() {
      const feed = yield* PriceFeed.make({ pricesPerSecond: 100, replay: 6, symbols })
      const witness = watch(feed.topic.subscribe())
      yield* advance(1)
      const cursor = witness.prices().filter((p) => p.symbol === "A").at(-1)!.id // the latest A, then B and C
      yield* advance(5) // 15 more prices, the newest 6 kept for replay: ticks 5 and 6
      // lost after the cursor: its tick's B and C, then A,B,C × 3 → wanted A and B: 1 + 3 + 3 = 7
      const resumed = watch(feed.topic.subscribe({ keys: ["A", "B"], after: cursor }))
      expect(resumed.events[0]!.event).toBe("dropped")
      expect(resumed.dropped()).toEqual([7])
      expect(resumed.prices().map((p) => p.symbol)).toEqual(["A", "B", "A", "B"])
    }))

  it.scoped("a cursor from a previous run, or ahead of the feed, is a gap of unknown size", () =>
    Effect.gen(function*() {
      const feed = yield* PriceFeed.make({ pricesPerSecond: 100, replay: 100, symbols })
      const previous = yield* PriceFeed.make({ pricesPerSecond: 100, replay: 100, symbols })
      yield* advance(2)
      const ahead = feed.topic.latestCursor().replace(/\d+$/, "9999999")
      for (const after of [previous.topic.latestCursor(), ahead, "12345"]) {
        const resumed = watch(feed.topic.subscribe({ keys: symbols, after }))
        expect(resumed.dropped()).toEqual([null])
        expect(resumed.prices()).toEqual([])
        resumed.attachment.detach()
      }
    }))
})

describe("watchPrices over SSE", () => {
  it.scopedLive("a Last-Event-ID inside the kept window resumes exactly after it: ids are the topic's cursors", () =>
    Effect.gen(function*() {
      const live = Layer.mergeAll(DemoHandlers, AuthenticationLive).pipe(
        Layer.provide(PriceFeed.layer({ pricesPerSecond: 1000 }))
      )
      const context = yield* Layer.build(live)
      const url = yield* Effect.flatMap(HttpTransport.toHttpApp(DemoApi), listen).pipe(Effect.provide(context))
      const payload = encodeURIComponent(JSON.stringify({ symbols: ["ACME"] }))
      const read = (headers: Record<string, string>, count: number) =>
        Effect.gen(function*() {
          const response = yield* Effect.promise(() => fetch(`${url}/rpc/watchPrices?payload=${payload}`, { headers }))
          const reader = response.body!.getReader()
          const sse = sseCollector()
          while (sse.events.length < count) {
            const { done, value } = yield* Effect.promise(() => reader.read())
            if (done) throw new Error("the subscription ended")
            sse.feed(value)
          }
          yield* Effect.promise(() => reader.cancel())
          return sse.events
        })
      const first = (yield* read({}, 3)).slice(0, 3)
      expect(first[0]!.id).toMatch(/^[0-9a-z]+-\d+$/)
      const resumed = (yield* read({ "last-event-id": first[0]!.id! }, 2)).slice(0, 2)
      expect(resumed.map((e) => e.event)).toEqual(["message", "message"])
      expect(resumed.map((e) => e.id)).toEqual([first[1]!.id, first[2]!.id])
      expect(resumed.map((e) => e.data)).toEqual([first[1]!.data, first[2]!.data])
    }).pipe(quiet))

  it.scopedLive("an expired Last-Event-ID gets an `event: dropped` before the first price", () =>
    Effect.gen(function*() {
      const live = Layer.mergeAll(DemoHandlers, AuthenticationLive).pipe(
        Layer.provide(PriceFeed.layer({ pricesPerSecond: 1000, replay: 50 }))
      )
      // built in the test's scope: the feed lives as long as the server
      const context = yield* Layer.build(live)
      const url = yield* Effect.flatMap(HttpTransport.toHttpApp(DemoApi), listen).pipe(Effect.provide(context))
      const payload = encodeURIComponent(JSON.stringify({ symbols: ["ACME"] }))
      // learn a cursor, then read on until it has fallen out of what the topic holds: the ids are the
      // feed's offsets (all symbols). The topic holds the replay (50) or its sliding capacity (64),
      // whichever is more: once an offset is 64 past the cursor's, the one after it is gone. (Between
      // 50 and 64 past it, the gap is still held and counted exactly: `count: 1`, not null.)
      const first = yield* Effect.promise(() => fetch(`${url}/rpc/watchPrices?payload=${payload}`))
      const reader = first.body!.getReader()
      const sse = sseCollector()
      const offsets = () => sse.events.flatMap((e) => e.id === undefined ? [] : [Number(e.id.split("-")[1])])
      while (offsets().length === 0 || offsets().at(-1)! <= offsets()[0]! + capacities.subscription) {
        const { done, value } = yield* Effect.promise(() => reader.read())
        if (done) throw new Error("the subscription ended")
        sse.feed(value)
      }
      const cursor = sse.events[0]!.id!
      yield* Effect.promise(() => reader.cancel())
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
      // ACME's prices are interleaved with the other symbols' and no longer held: the size is unknown
      expect(JSON.parse(again.events[0]!.data)).toEqual({ count: null })
      expect(again.events[1]!.event).toBe("message")
      const before = JSON.parse(sse.events[0]!.data) as { seq: number }
      const next = JSON.parse(again.events[1]!.data) as { seq: number; symbol: string }
      expect(next.symbol).toBe("ACME")
      expect(next.seq).toBeGreaterThan(before.seq)
    }).pipe(quiet))
})
