import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as PubSub from "effect/PubSub"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as fc from "fast-check"
import * as TurnQueue from "../src/core/TurnQueue.ts"
import * as StreamingService from "../src/server/StreamingService.ts"
import { settingsOf } from "../src/topic/internal/Settings.ts"
import { subscription } from "../src/topic/internal/Subscription.ts"
import { type RemoteEntry, TopicState } from "../src/topic/internal/TopicState.ts"
import * as Topic from "../src/topic/Topic.ts"
import { costlySink } from "./support/costlySink.ts"
import { eventually, type ParsedEvent, sseCollector } from "./support/http.ts"

interface Tick {
  readonly n: number
  readonly key: string
}

const encodeTick = (tick: Tick) => JSON.stringify(tick)
const utf8 = new TextEncoder()

/** An in-process sink: parses what it is given; `full` makes `write` report a full buffer. */
const recorder = () => {
  const sse = sseCollector()
  const state = { full: false, ended: false, writes: 0 }
  const sink: Topic.Sink = {
    write: (text) => {
      state.writes++
      sse.feed(utf8.encode(text))
      return !state.full
    },
    end: () => {
      state.ended = true
    }
  }
  const values = () => sse.events.filter((e) => e.event === "message").map((e) => (JSON.parse(e.data) as Tick).n)
  const dropped = () =>
    sse.events.filter((e) => e.event === "dropped").map((e) => (JSON.parse(e.data) as { count: number | null }).count)
  return { sink, state, events: sse.events, values, dropped }
}

/** Deliveries checked right after each publish: no fan-out pacing (see the pacing tests). */
const synchronous = { pace: false } as const

const ticks = (from: number, count: number, keys: ReadonlyArray<string> = ["a"]): Array<Tick> =>
  Array.from({ length: count }, (_, i) => ({ n: from + i, key: keys[(from + i) % keys.length]! }))

/** Lets forked Stream views start until the topic counts `n` subscribers. */
const subscribed = (topic: Topic.Topic<Tick>, n: number) =>
  Effect.gen(function*() {
    while (topic.subscriberCount() < n) yield* Effect.yieldNow()
  })

/** Reads the first events of an `StreamingService.sse` response body. */
const firstEvents = (response: HttpServerResponse.HttpServerResponse, count: number) =>
  Effect.gen(function*() {
    if (response.body._tag !== "Stream") throw new Error("not a streamed body")
    const sse = sseCollector()
    yield* response.body.stream.pipe(
      Stream.takeUntil((bytes) => {
        sse.feed(bytes)
        return sse.events.length >= count
      }),
      Stream.runDrain,
      Effect.orDie
    )
    return sse.events as ReadonlyArray<ParsedEvent>
  })

describe("Topic as a Stream", () => {
  it.scoped("replays exactly what followed the cursor, then goes live, filtered by key", () =>
    Effect.gen(function*() {
      const topic = yield* Topic.make<Tick>({ key: (t) => t.key, replay: { count: 100 } })
      const live = yield* topic.subscribe().entries.pipe(Stream.take(4), Stream.runCollect, Effect.fork)
      yield* subscribed(topic, 1)
      yield* topic.publishAll(ticks(0, 4, ["a", "b"])) // a0 b1 a2 b3
      const seen = Chunk.toReadonlyArray(yield* Fiber.join(live))
      expect(seen.map((e) => e.value.n)).toEqual([0, 1, 2, 3])
      expect(new Set(seen.map((e) => e.cursor)).size).toBe(4)
      const resumed = yield* topic.subscribe({ keys: ["a"], after: seen[0]!.cursor }).pipe(
        Stream.take(3),
        Stream.runCollect,
        Effect.fork
      )
      yield* subscribed(topic, 1)
      yield* topic.publishAll(ticks(4, 4, ["a", "b"])) // a4 b5 a6 b7
      expect(Chunk.toReadonlyArray(yield* Fiber.join(resumed)).map((t) => t.n)).toEqual([2, 4, 6])
      expect(topic.subscriberCount()).toBe(0)
    }))

  it.scoped("a resume gap reaches StreamingService.sse as `dropped` before the first value, and ids are cursors", () =>
    Effect.gen(function*() {
      const topic = yield* Topic.make<Tick>({ replay: { count: 5 } })
      const first = yield* topic.subscribe().entries.pipe(Stream.take(1), Stream.runCollect, Effect.fork)
      yield* subscribed(topic, 1)
      yield* topic.publishAll(ticks(0, 20))
      const cursor = Chunk.unsafeHead(yield* Fiber.join(first)).cursor // of value 0
      const response = yield* StreamingService.sse({ name: "ticks", stream: topic.subscribe({ after: cursor }), serialize: encodeTick })
      const events = yield* firstEvents(response, 3)
      // 19 values followed the cursor; the newest 5 are kept
      expect(events[0]).toMatchObject({ event: "dropped", data: JSON.stringify({ count: 14 }) })
      expect(JSON.parse(events[1]!.data)).toEqual({ n: 15, key: "a" })
      expect(events[1]!.id).toMatch(/^[0-9a-z]+-\d+$/)
      const otherIncarnation = events[1]!.id!.replace(/^[0-9a-z]+/, "zz")
      const unknown = yield* firstEvents(
        yield* StreamingService.sse({ name: "ticks", stream: topic.subscribe({ after: otherIncarnation }), serialize: encodeTick }),
        1
      )
      expect(unknown[0]).toMatchObject({ event: "dropped", data: JSON.stringify({ count: null }) })
    }))

  it.scoped("ids stay the topic's cursors when a handler filters its subscription", () =>
    Effect.gen(function*() {
      const topic = yield* Topic.make<Tick>()
      const filtered = topic.subscribe().pipe(Stream.filter((t) => t.n % 2 === 1))
      const response = yield* StreamingService.sse({ name: "ticks", stream: filtered, serialize: encodeTick, id: (t) => `own-${t.n}` })
      const reading = yield* firstEvents(response, 2).pipe(Effect.fork)
      while (topic.subscriberCount() === 0) yield* Effect.yieldNow()
      yield* topic.publishAll(ticks(0, 4))
      const events = yield* Fiber.join(reading)
      expect(events.map((e) => (JSON.parse(e.data) as Tick).n)).toEqual([1, 3])
      expect(events.map((e) => e.id)).toEqual([2, 4].map((offset) => topic.latestCursor().replace(/\d+$/, String(offset))))
    }))

  it.scoped("values older than the replay age are not replayed, and are counted", () =>
    Effect.gen(function*() {
      const topic = yield* Topic.make<Tick>({ replay: { count: 100, age: "10 seconds" } })
      yield* topic.publishAll(ticks(0, 3))
      yield* TestClock.adjust("20 seconds")
      yield* topic.publishAll(ticks(3, 2))
      const first = `${topic.latestCursor().split("-")[0]}-1` // value 0
      const response = yield* StreamingService.sse({ name: "ticks", stream: topic.subscribe({ after: first }), serialize: encodeTick })
      const events = yield* firstEvents(response, 3)
      expect(events.map((e) => e.event)).toEqual(["dropped", "message", "message"])
      expect(JSON.parse(events[0]!.data)).toEqual({ count: 2 })
      expect(events.slice(1).map((e) => (JSON.parse(e.data) as Tick).n)).toEqual([3, 4])
    }))

  it.scoped("closing the topic's scope ends its subscriptions", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const topic = yield* Topic.make<Tick>().pipe(Scope.extend(scope))
      const all = yield* topic.subscribe().pipe(Stream.runCollect, Effect.fork)
      yield* subscribed(topic, 1)
      yield* topic.publishAll(ticks(0, 3))
      yield* Scope.close(scope, Exit.void)
      expect(Chunk.toReadonlyArray(yield* Fiber.join(all)).map((t) => t.n)).toEqual([0, 1, 2])
      expect(topic.subscriberCount()).toBe(0)
    }))

  it.scoped("fromPubSub: what is published to the PubSub reaches the topic's subscribers in order; the scope ends the feed and the subscriptions", () =>
    Effect.gen(function*() {
      const pubsub = yield* PubSub.unbounded<Tick>()
      const scope = yield* Scope.make()
      const topic = yield* Topic.fromPubSub(pubsub).pipe(Scope.extend(scope))
      const first = yield* topic.subscribe().pipe(Stream.take(50), Stream.runCollect, Effect.fork)
      const all = yield* topic.subscribe().pipe(Stream.runCollect, Effect.fork)
      yield* subscribed(topic, 2)
      // 50 at once (within a subscriber's 64): the feed takes what is ready as one batch.
      yield* PubSub.publishAll(pubsub, ticks(0, 50))
      expect(Chunk.toReadonlyArray(yield* Fiber.join(first)).map((t) => t.n)).toEqual(ticks(0, 50).map((t) => t.n))
      yield* PubSub.publish(pubsub, { n: 50, key: "a" })
      yield* Effect.promise(() => eventually(() => topic.latestCursor().endsWith("-51")))
      yield* Scope.close(scope, Exit.void)
      expect(Chunk.toReadonlyArray(yield* Fiber.join(all)).map((t) => t.n)).toEqual(ticks(0, 51).map((t) => t.n))
      expect(topic.subscriberCount()).toBe(0)
      // The feed ended with the scope: what the PubSub gets now reaches no topic.
      yield* PubSub.publish(pubsub, { n: 51, key: "a" })
      yield* Effect.yieldNow()
      expect(topic.latestCursor().endsWith("-51")).toBe(true)
    }))
})

describe("Topic fast path (in-process sinks)", () => {
  it.scoped("a stalled subscriber keeps a position; on resume it is told what it missed, then gets the newest 64", () =>
    Effect.gen(function*() {
      const topic = yield* Topic.make<Tick>(synchronous)
      const slow = recorder()
      const attachment = topic.subscribe()[Topic.TypeId].attach(slow.sink, encodeTick)
      slow.state.full = true
      topic.unsafePublish({ n: 0, key: "a" }) // written; the buffer is now full
      topic.unsafePublishAll(ticks(1, 1000))
      expect(slow.values()).toEqual([0])
      slow.state.full = false
      attachment.resume()
      expect(slow.dropped()).toEqual([1000 - 64])
      expect(slow.values()).toEqual([0, ...ticks(1000 - 64 + 1, 64).map((t) => t.n)])
      attachment.detach()
      expect(topic.subscriberCount()).toBe(0)
    }))

  it.scoped("each value is encoded at most once per encoder, lazily: values every subscriber drops never are", () =>
    Effect.gen(function*() {
      const topic = yield* Topic.make<Tick>(synchronous)
      const encoded = new Map<number, number>()
      const encode = (tick: Tick) => {
        encoded.set(tick.n, (encoded.get(tick.n) ?? 0) + 1)
        return encodeTick(tick)
      }
      const sinks = Array.from({ length: 100 }, () => recorder())
      const attachments = sinks.map((r) => topic.subscribe()[Topic.TypeId].attach(r.sink, encode))
      topic.unsafePublishAll(ticks(0, 10))
      for (const r of sinks) r.state.full = true
      topic.unsafePublish({ n: 10, key: "a" }) // accepted by all; now every buffer is full
      topic.unsafePublishAll(ticks(11, 10_000))
      for (const [i, r] of sinks.entries()) {
        r.state.full = false
        attachments[i]!.resume()
      }
      expect([...encoded.values()].every((times) => times === 1)).toBe(true)
      expect(encoded.size).toBe(11 + 64)
      for (const r of sinks) expect(r.values().length + r.dropped()[0]!).toBe(10_011)
    }))

  it.scoped("key filtering: a subscriber is touched only by its keys' values", () =>
    Effect.gen(function*() {
      const topic = yield* Topic.make<Tick>({ ...synchronous, key: (t) => t.key })
      const a = recorder()
      const bc = recorder()
      topic.subscribe({ keys: ["a"] })[Topic.TypeId].attach(a.sink, encodeTick)
      topic.subscribe({ keys: ["b", "c"] })[Topic.TypeId].attach(bc.sink, encodeTick)
      topic.unsafePublishAll(ticks(0, 9, ["a", "b", "c"]))
      expect(a.values()).toEqual([0, 3, 6])
      expect(bc.values()).toEqual([1, 2, 4, 5, 7, 8])
      topic.unsafePublish({ n: 9, key: "d" })
      expect(a.state.writes).toBe(1)
      expect(bc.state.writes).toBe(1)
    }))

  it.scoped("resume: a cursor inside the window yields exactly the suffix; before it, the exact count; other incarnations, null", () =>
    Effect.gen(function*() {
      const replay = 50
      const topic = yield* Topic.make<Tick>({ ...synchronous, key: (t) => t.key, replay: { count: replay } })
      const witness = recorder()
      topic.subscribe()[Topic.TypeId].attach(witness.sink, encodeTick)
      topic.unsafePublishAll(ticks(0, 200, ["a", "b"]))
      const cursors = witness.events.map((e) => e.id!)
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 199 }), fc.constantFrom(undefined, ["a"], ["a", "b"]), (at, keys) => {
          const r = recorder()
          const attachment = topic.subscribe({ keys, after: cursors[at] })[Topic.TypeId].attach(r.sink, encodeTick)
          attachment.detach()
          const wanted = (n: number) => keys === undefined || keys.includes(n % 2 === 0 ? "a" : "b")
          const expected = ticks(Math.max(at + 1, 200 - replay), 200).filter((t) => t.n < 200 && wanted(t.n)).map((t) => t.n)
          expect(r.values()).toEqual(expected)
          const missed = ticks(at + 1, Math.max(0, 200 - replay - at - 1)).filter((t) => wanted(t.n)).length
          // the ring holds max(replay, 64) values: a keyed count is exact while the gap is still held
          const held = at + 1 >= 200 - Math.max(replay, 64)
          expect(r.dropped()).toEqual(missed === 0 ? [] : [keys === undefined || held ? missed : null])
          if (r.events.length > 0 && r.dropped().length > 0) expect(r.events[0]!.event).toBe("dropped")
        })
      )
      const other = recorder()
      topic.subscribe({ after: "abc-3" })[Topic.TypeId].attach(other.sink, encodeTick)
      const ahead = recorder()
      topic.subscribe({ after: cursors[0]!.replace(/-\d+$/, "-9999") })[Topic.TypeId].attach(ahead.sink, encodeTick)
      const malformed = recorder()
      topic.subscribe({ after: "not a cursor" })[Topic.TypeId].attach(malformed.sink, encodeTick)
      for (const r of [other, ahead, malformed]) {
        expect(r.dropped()).toEqual([null])
        topic.unsafePublish({ n: 200, key: "a" })
        expect(r.values().at(-1)).toBe(200)
      }
    }))

  it.scoped("for any interleaving of publishes, stalls and resumes: delivered + dropped = published, in order, none repeated", () =>
    Effect.gen(function*() {
      const keySets = [undefined, ["k0"], ["k1", "k2"]] as const
      const command = fc.oneof(
        fc.record({ op: fc.constant("publish" as const), key: fc.integer({ min: 0, max: 3 }), count: fc.integer({ min: 1, max: 150 }) }),
        fc.record({ op: fc.constant("stall" as const), sub: fc.integer({ min: 0, max: 2 }) }),
        fc.record({ op: fc.constant("resume" as const), sub: fc.integer({ min: 0, max: 2 }) })
      )
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(fc.array(command, { maxLength: 60 }), async (commands) => {
            await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
              const topic = yield* Topic.make<Tick>({ ...synchronous, key: (t) => t.key })
              const subs = keySets.map((keys) => {
                const r = recorder()
                return { r, keys, attachment: topic.subscribe({ keys })[Topic.TypeId].attach(r.sink, encodeTick) }
              })
              let n = 0
              for (const c of commands) {
                if (c.op === "publish") {
                  const key = `k${c.key}`
                  topic.unsafePublishAll(Array.from({ length: c.count }, () => ({ n: n++, key })))
                } else if (c.op === "stall") {
                  subs[c.sub]!.r.state.full = true
                } else {
                  subs[c.sub]!.r.state.full = false
                  subs[c.sub]!.attachment.resume()
                }
              }
              const published = n
              const all = commands.flatMap((c) => c.op === "publish" ? [c] : [])
              for (const s of subs) {
                s.r.state.full = false
                s.attachment.resume()
                const matching = all.reduce((sum, c) =>
                  s.keys === undefined || (s.keys as ReadonlyArray<string>).includes(`k${c.key}`) ? sum + c.count : sum, 0)
                const values = s.r.values()
                for (let i = 1; i < values.length; i++) expect(values[i]!).toBeGreaterThan(values[i - 1]!)
                const dropped = s.r.dropped().reduce<number>((sum, d) => sum + (d ?? NaN), 0)
                expect(values.length + dropped).toBe(matching)
                expect(values.every((v) => v < published)).toBe(true)
                s.attachment.detach()
              }
              expect(topic.subscriberCount()).toBe(0)
            })))
          }),
          { numRuns: 200 }
        )
      )
    }))

  it.scoped("values published during a busy cycle go out together in the next, one turn of the loop later: no pause when nothing else waits", () =>
    Effect.gen(function*() {
      const topic = yield* Topic.make<Tick>()
      const fast = recorder()
      // A subscriber whose writes take 30 ms of the loop (many sockets, in effect): a busy cycle.
      topic.subscribe()[Topic.TypeId].attach(costlySink(30).sink, encodeTick)
      topic.subscribe()[Topic.TypeId].attach(fast.sink, encodeTick)
      topic.unsafePublish({ n: 0, key: "a" })
      expect(fast.state.writes).toBe(1)
      // published while the cycle is still under way (its writes' callbacks come after this tick)
      for (const tick of ticks(1, 40)) topic.unsafePublish(tick)
      expect(fast.state.writes).toBe(1)
      // The next cycle waits for one turn of the loop only, not for as long as the busy one took
      // (what pacing did before): it has written before a timer of half that fires.
      const writesAtTimer = yield* Effect.promise(() =>
        new Promise<number>((resolve) => setTimeout(() => resolve(fast.state.writes), 15))
      )
      expect(writesAtTimer).toBe(2)
      expect(fast.values()).toEqual(ticks(0, 41).map((t) => t.n))
      expect(fast.dropped()).toEqual([])
    }))

  it.scoped("while other work waits for the loop (the requests' queue), a busy cycle delays the next by as long", () =>
    Effect.gen(function*() {
      const topic = yield* Topic.make<Tick>()
      const fast = recorder()
      topic.subscribe()[Topic.TypeId].attach(costlySink(30).sink, encodeTick)
      topic.subscribe()[Topic.TypeId].attach(fast.sink, encodeTick)
      // Other work on the requests' queue for as long as the test runs: a fiber handed back turn after turn.
      let working = true
      const work = (): void => {
        if (working) TurnQueue.handBack(work)
      }
      TurnQueue.handBack(work)
      yield* Effect.addFinalizer(() => Effect.sync(() => (working = false)))
      topic.unsafePublish({ n: 0, key: "a" })
      for (const tick of ticks(1, 40)) topic.unsafePublish(tick)
      const writesAtTimer = yield* Effect.promise(() =>
        new Promise<number>((resolve) => setTimeout(() => resolve(fast.state.writes), 15))
      )
      // held back: fan-out yields the loop to the waiting work for as long as its busy cycle took
      expect(writesAtTimer).toBe(1)
      yield* Effect.promise(() => eventually(() => fast.state.writes >= 2))
      expect(fast.values()).toEqual(ticks(0, 41).map((t) => t.n))
      expect(fast.dropped()).toEqual([])
    }))

  it.scoped("handing a value to many costly subscribers is done in slices: the event loop gets turns in between", () =>
    Effect.gen(function*() {
      const topic = yield* Topic.make<Tick>()
      const { sink: costly, written } = costlySink(1)
      for (let i = 0; i < 64; i++) topic.subscribe()[Topic.TypeId].attach(costly, encodeTick)
      let writtenAtTurn = -1
      setImmediate(() => {
        writtenAtTurn = written()
      })
      topic.unsafePublish({ n: 0, key: "a" })
      yield* Effect.promise(() => eventually(() => written() >= 64))
      expect(writtenAtTurn).toBeGreaterThan(0)
      expect(writtenAtTurn).toBeLessThan(64)
    }))

  it.scoped("while flushes are spaced, a subscriber that keeps up still gets everything, however much is published", () =>
    Effect.gen(function*() {
      const topic = yield* Topic.make<Tick>() // a ring of 64: a burst must be handed over before it is overwritten
      const fast = recorder()
      topic.subscribe()[Topic.TypeId].attach(costlySink(3).sink, encodeTick)
      topic.subscribe()[Topic.TypeId].attach(fast.sink, encodeTick)
      topic.unsafePublish({ n: 0, key: "a" })
      yield* Effect.promise(() => Promise.resolve())
      for (const tick of ticks(1, 1000)) topic.unsafePublish(tick)
      topic.unsafePublishAll(ticks(1001, 500))
      yield* Effect.promise(() => eventually(() => fast.values().length >= 1501))
      expect(fast.values()).toEqual(ticks(0, 1501).map((t) => t.n))
      expect(fast.dropped()).toEqual([])
    }))

  it.scoped("10,000 subscribe/detach cycles leave no subscriber behind", () =>
    Effect.gen(function*() {
      const topic = yield* Topic.make<Tick>({ ...synchronous, key: (t) => t.key, replay: { count: 100 } })
      for (let i = 0; i < 10_000; i++) {
        const r = recorder()
        const keys = i % 2 === 0 ? undefined : [`k${i % 7}`]
        const attachment = topic.subscribe({ keys, after: topic.latestCursor() })[Topic.TypeId].attach(r.sink, encodeTick)
        if (i % 3 === 0) r.state.full = true
        topic.unsafePublish({ n: i, key: `k${i % 7}` })
        attachment.detach()
        attachment.detach()
      }
      expect(topic.subscriberCount()).toBe(0)
      const streams = yield* Effect.forEach(
        Array.from({ length: 1000 }, (_, i) => i),
        () => topic.subscribe().pipe(Stream.take(1), Stream.runDrain, Effect.fork)
      )
      yield* subscribed(topic, 1000)
      expect(topic.subscriberCount()).toBe(1000)
      topic.unsafePublish({ n: -1, key: "k0" })
      yield* Fiber.joinAll(streams)
      expect(topic.subscriberCount()).toBe(0)
    }))
})

describe("Topic core hooks for a broker (offsets assigned elsewhere)", () => {
  const remoteState = () => {
    let pending: Array<(entries: ReadonlyArray<RemoteEntry<Tick>>) => void> = []
    const requests: Array<readonly [number, number]> = []
    const state = new TopicState<Tick>(
      settingsOf({ ...synchronous, key: (tick) => tick.key, replay: { count: 1_000 } }),
      () => 0,
      {
        history: (from, to) => {
          requests.push([from, to])
          return new Promise((resolve) => {
            pending.push(resolve)
          })
        }
      }
    )
    const at = (offsets: ReadonlyArray<number>): Array<RemoteEntry<Tick>> =>
      offsets.map((offset) => ({ offset, value: { n: offset, key: offset % 2 === 0 ? "a" : "b" }, at: 0 }))
    const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)
    const sub = (options?: Topic.SubscribeOptions) => {
      const r = recorder()
      subscription(state, options)[Topic.TypeId].attach(r.sink, encodeTick)
      return r
    }
    return { state, at, range, sub, requests, settle: (entries: ReadonlyArray<RemoteEntry<Tick>>) => {
      for (const resolve of pending) resolve(entries)
      pending = []
    } }
  }

  it("a resume older than the ring reads the broker first; values arriving meanwhile follow it, none twice", async () => {
    const { at, range, requests, settle, state, sub } = remoteState()
    state.reset("e", 101)
    const resumed = sub({ after: "e-50" })
    const keyed = sub({ after: "e-50", keys: ["a"] })
    expect(requests).toEqual([[51, 100], [51, 100]])
    state.appendAt(at(range(101, 105)))
    expect(resumed.values()).toEqual([])
    // the broker's answer may overlap what arrived live: by offset, each once
    settle(at(range(51, 103)))
    await Promise.resolve()
    expect(resumed.values()).toEqual(range(51, 105))
    expect(resumed.events.map((e) => e.id)).toEqual(range(51, 105).map((o) => `e-${o}`))
    expect(keyed.values()).toEqual(range(51, 105).filter((n) => n % 2 === 0))
    expect([...resumed.dropped(), ...keyed.dropped()]).toEqual([])
  })

  it("what the broker no longer holds is a gap: exact for every key, null for some keys", async () => {
    const { at, range, settle, state, sub } = remoteState()
    state.reset("e", 101)
    const resumed = sub({ after: "e-50" })
    settle(at(range(91, 100)))
    await Promise.resolve()
    expect(resumed.dropped()).toEqual([40])
    expect(resumed.values()).toEqual(range(91, 100))
    const keyed = sub({ after: "e-50", keys: ["a"] })
    settle(at(range(91, 100)))
    await Promise.resolve()
    expect(keyed.dropped()).toEqual([null])
  })

  it("a cursor ahead of this process (another instance's newest) waits for the values after it", () => {
    const { at, range, state, sub } = remoteState()
    state.reset("e", 101)
    const ahead = sub({ after: "e-103" })
    state.appendAt(at(range(101, 106)))
    expect(ahead.values()).toEqual([104, 105, 106])
    expect(ahead.dropped()).toEqual([])
  })

  it("an offset jump is a gap (exact for every key, null for some keys); a new epoch is a gap of unknown size for all", () => {
    const { at, range, state, sub } = remoteState()
    state.reset("e", 1)
    const all = sub()
    const keyed = sub({ keys: ["a"] })
    state.appendAt(at(range(1, 3)))
    state.appendAt(at(range(8, 9)))
    expect(all.values()).toEqual([1, 2, 3, 8, 9])
    expect(all.dropped()).toEqual([4])
    expect(keyed.values()).toEqual([2, 8])
    expect(keyed.dropped()).toEqual([null])
    state.reset("f", 1)
    state.appendAt(at(range(1, 2)))
    expect(all.dropped()).toEqual([4, null])
    expect(all.events.slice(-2).map((e) => e.id)).toEqual(["f-1", "f-2"])
    expect(keyed.dropped()).toEqual([null, null])
    // a cursor of the previous incarnation
    expect(sub({ after: "e-9" }).dropped()).toEqual([null])
  })
})
