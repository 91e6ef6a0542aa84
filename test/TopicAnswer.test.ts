import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as fc from "fast-check"
import type * as Http from "node:http"
import * as GracefulShutdown from "../src/server/GracefulShutdown.ts"
import * as MetricsService from "../src/server/MetricsService.ts"
import * as StreamingConfig from "../src/server/StreamingConfig.ts"
import * as Topic from "../src/topic/Topic.ts"
import { NodeSink } from "../src/server/internal/NodePlatform.ts"
import * as SseResponse from "../src/server/internal/SseResponse.ts"
import { eventually, get, quiet, rawServer, sseCollector } from "./support/http.ts"

interface Tick {
  readonly n: number
  readonly key: string
  readonly pad?: string
}

const encodeTick = (tick: Tick) => JSON.stringify(tick)

/** A node:http client reading an SSE response; `pause()` stops reading (real socket backpressure). */
const client = async (url: string, headers: Record<string, string> = {}) => {
  const response = await get(url, headers)
  const sse = sseCollector()
  let ended = false
  response.on("data", (chunk: Buffer) => sse.feed(chunk))
  const done = new Promise<void>((resolve) => {
    response.on("end", () => {
      ended = true
      resolve()
    })
    response.on("error", () => resolve())
    response.on("close", () => resolve())
  })
  const messages = () => sse.events.filter((e) => e.event === "message").map((e) => JSON.parse(e.data) as Tick)
  const dropped = () =>
    sse.events.filter((e) => e.event === "dropped").map((e) => (JSON.parse(e.data) as { count: number | null }).count)
  return { response, sse, done, messages, dropped, ended: () => ended }
}

/**
 * A node:http server serving `/rpc/ticks?keys=a,b` from whatever topic `current()` returns,
 * run in the test's runtime (its layers) with `provide` on top.
 */
const serveTopic = <R>(current: () => Topic.Topic<Tick>, provide: Layer.Layer<R> = Layer.empty as Layer.Layer<R>) =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const context = yield* Layer.build(provide)
    const fibers = new Set<Fiber.RuntimeFiber<void>>()
    /** Each served response with its listener counts before serving. */
    const served: Array<{ readonly response: Http.ServerResponse; readonly close: number; readonly drain: number }> = []
    const url = yield* rawServer((request: Http.IncomingMessage, response: Http.ServerResponse) => {
      served.push({ response, close: response.listenerCount("close"), drain: response.listenerCount("drain") })
      const params = new URL(request.url ?? "/", "http://x").searchParams
      const keys = params.get("keys")
      const after = request.headers["last-event-id"]
      const subscription = current().subscribe({
        keys: keys === null ? undefined : keys.split(","),
        after: typeof after === "string" ? after : undefined
      })
      const fiber: Fiber.RuntimeFiber<void> = Runtime.runFork(runtime)(
        SseResponse.serve(new NodeSink(response), { name: "ticks", source: subscription, serialize: encodeTick, serializeError: String }).pipe(
          Effect.provide(context),
          Effect.ensuring(Effect.sync(() => fibers.delete(fiber)))
        )
      )
      fibers.add(fiber)
    })
    return { url: `${url}/ticks`, fibers, served }
  })

const pad = "x".repeat(1000)

describe("A Topic answered over SSE on a real socket", () => {
  it.scopedLive("wire protocol v1: headers, the opening line, ids as cursors, heartbeats, and `end` when the topic ends", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const topic = yield* Topic.make<Tick>().pipe(Scope.extend(scope))
      const { url } = yield* serveTopic(
        () => topic,
        StreamingConfig.layer({ heartbeatInterval: "10 millis", retry: "2 seconds" })
      )
      const c = yield* Effect.promise(() => client(url))
      expect(c.response.headers["content-type"]).toBe("text/event-stream")
      expect(c.response.headers["cache-control"]).toBe("no-cache, no-transform")
      expect(c.response.headers["x-accel-buffering"]).toBe("no")
      yield* Effect.promise(() => eventually(() => topic.subscriberCount() === 1))
      yield* Effect.promise(() => eventually(() => c.sse.comments.includes("heartbeat")))
      yield* topic.publishAll([{ n: 1, key: "a" }, { n: 2, key: "a" }])
      yield* Effect.promise(() => eventually(() => c.messages().length === 2))
      expect(c.sse.events[0]!.id).toBe(topic.latestCursor().replace(/\d+$/, "1"))
      expect(c.sse.events[1]!.id).toBe(topic.latestCursor())
      yield* Scope.close(scope, Exit.void)
      yield* Effect.promise(() => c.done)
      expect(c.ended()).toBe(true)
      expect(c.sse.events.at(-1)!.event).toBe("end")
      expect(SseResponse.counts()).toEqual({ answers: 0, timers: 0, drainWatchers: 0 })
    }).pipe(quiet))

  it.scopedLive("metrics: started, delivered, dropped and ended, labelled subscription and the procedure name", () =>
    Effect.gen(function*() {
      const recorded: Array<string> = []
      const metrics: MetricsService.StreamMetrics = {
        started: (kind, name) => recorded.push(`started ${kind} ${name}`),
        delivered: (kind, name, values) => {
          if (values > 0) recorded.push(`delivered ${kind} ${name} ${values}`)
        },
        dropped: (kind, name, count) => recorded.push(`dropped ${kind} ${name} ${count}`),
        ended: (kind, name, termination) => recorded.push(`ended ${kind} ${name} ${termination}`),
        shed: (kind, name, reason) => recorded.push(`shed ${kind} ${name} ${reason}`)
      }
      const scope = yield* Scope.make()
      const topic = yield* Topic.make<Tick>({ replay: { count: 2 } }).pipe(Scope.extend(scope))
      yield* topic.publishAll([1, 2, 3, 4, 5].map((n) => ({ n, key: "a" })))
      const { url } = yield* serveTopic(() => topic, Layer.succeed(MetricsService.MetricsService, metrics))
      const c = yield* Effect.promise(() => client(url, { "last-event-id": topic.latestCursor().replace(/\d+$/, "1") }))
      yield* Effect.promise(() => eventually(() => c.messages().length === 2))
      expect(c.dropped()).toEqual([2])
      yield* Scope.close(scope, Exit.void)
      yield* Effect.promise(() => c.done)
      expect(recorded).toEqual([
        "started subscription ticks",
        "dropped subscription ticks 2",
        "delivered subscription ticks 2",
        "ended subscription ticks completed"
      ])
    }).pipe(quiet))

  it.scopedLive("draining ends the subscription without `end`, so the client reconnects and resumes", () =>
    Effect.gen(function*() {
      const drain = yield* GracefulShutdown.make
      const topic = yield* Topic.make<Tick>()
      const { url } = yield* serveTopic(() => topic, Layer.succeed(GracefulShutdown.GracefulShutdown, drain))
      const c = yield* Effect.promise(() => client(url))
      yield* Effect.promise(() => eventually(() => topic.subscriberCount() === 1))
      yield* topic.publish({ n: 1, key: "a" })
      yield* Effect.promise(() => eventually(() => c.messages().length === 1))
      yield* Deferred.succeed(drain.draining, undefined)
      yield* Effect.promise(() => c.done)
      expect(c.sse.events.map((e) => e.event)).toEqual(["message"])
      expect(topic.subscriberCount()).toBe(0)
      expect(SseResponse.counts()).toEqual({ answers: 0, timers: 0, drainWatchers: 0 })
    }).pipe(quiet))

  it.scopedLive("a client disconnect, or the serving fiber's interruption, detaches at once", () =>
    Effect.gen(function*() {
      const topic = yield* Topic.make<Tick>()
      const { fibers, url } = yield* serveTopic(() => topic)
      const gone = yield* Effect.promise(() => client(url))
      const interrupted = yield* Effect.promise(() => client(url))
      yield* Effect.promise(() => eventually(() => topic.subscriberCount() === 2))
      gone.response.destroy()
      yield* Effect.promise(() => eventually(() => topic.subscriberCount() === 1))
      yield* Fiber.interruptAll([...fibers])
      yield* Effect.promise(() => interrupted.done)
      expect(topic.subscriberCount()).toBe(0)
      expect(SseResponse.counts()).toEqual({ answers: 0, timers: 0, drainWatchers: 0 })
    }).pipe(quiet))

  it.scopedLive("for any interleaving of publishes, stalls and reads: delivered + dropped = published of the keys, in order, none repeated", () =>
    Effect.gen(function*() {
      let current: Topic.Topic<Tick> | undefined
      const { url } = yield* serveTopic(() => current!)
      const keySets = [undefined, ["k0"], ["k1", "k2"]] as const
      const command = fc.oneof(
        fc.record({
          op: fc.constant("publish" as const),
          key: fc.integer({ min: 0, max: 3 }),
          count: fc.integer({ min: 1, max: 3000 })
        }),
        fc.record({ op: fc.constant("pause" as const), client: fc.integer({ min: 0, max: 2 }) }),
        fc.record({ op: fc.constant("read" as const), client: fc.integer({ min: 0, max: 2 }) }),
        fc.record({ op: fc.constant("wait" as const) })
      )
      let stalls = 0
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 25 }), async (commands) => {
            const scope = Effect.runSync(Scope.make())
            const topic = Effect.runSync(Topic.make<Tick>({ key: (t) => t.key }).pipe(Scope.extend(scope)))
            current = topic
            const clients = await Promise.all(keySets.map((keys) =>
              client(keys === undefined ? url : `${url}?keys=${keys.join(",")}`)
            ))
            await eventually(() => topic.subscriberCount() === 3)
            let n = 0
            const published: Array<Tick> = []
            for (const c of commands) {
              if (c.op === "publish") {
                const batch = Array.from({ length: c.count }, () => ({ n: n++, key: `k${c.key}`, pad }))
                published.push(...batch)
                topic.unsafePublishAll(batch)
              } else if (c.op === "pause") {
                clients[c.client]!.response.pause()
              } else if (c.op === "read") {
                clients[c.client]!.response.resume()
              }
              await new Promise((resolve) => setImmediate(resolve))
            }
            for (const c of clients) c.response.resume()
            Effect.runSync(Scope.close(scope, Exit.void))
            await Promise.all(clients.map((c) => c.done))
            for (const [i, c] of clients.entries()) {
              const keys = keySets[i] as ReadonlyArray<string> | undefined
              const matching = published.filter((t) => keys === undefined || keys.includes(t.key))
              const values = c.messages().map((t) => t.n)
              for (let j = 1; j < values.length; j++) expect(values[j]!).toBeGreaterThan(values[j - 1]!)
              expect(c.messages().every((t) => keys === undefined || keys.includes(t.key))).toBe(true)
              const dropped = c.dropped()
              expect(dropped.every((d) => d !== null && d > 0)).toBe(true)
              if (dropped.length > 0) stalls++
              expect(values.length + dropped.reduce<number>((sum, d) => sum + d!, 0)).toBe(matching.length)
              expect(c.sse.events.at(-1)!.event).toBe("end")
            }
            expect(topic.subscriberCount()).toBe(0)
          }),
          { numRuns: 25 }
        )
      )
      // the runs did stall real sockets (otherwise the property says little)
      expect(stalls).toBeGreaterThan(0)
    }).pipe(quiet), 120_000)

  it.scopedLive("resume over a socket: inside the window exactly the suffix; outside, the gap first; another incarnation, null", () =>
    Effect.gen(function*() {
      let current: Topic.Topic<Tick> | undefined
      const { url } = yield* serveTopic(() => current!)
      const replay = 100
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(
            fc.integer({ min: 0, max: 299 }),
            fc.constantFrom(undefined, ["a"], ["a", "b"]),
            fc.boolean(),
            async (at, keys, otherIncarnation) => {
              const scope = Effect.runSync(Scope.make())
              const topic = Effect.runSync(
                Topic.make<Tick>({ key: (t) => t.key, replay: { count: replay } }).pipe(Scope.extend(scope))
              )
              current = topic
              topic.unsafePublishAll(Array.from({ length: 300 }, (_, i) => ({ n: i, key: i % 2 === 0 ? "a" : "b" })))
              const cursor = topic.latestCursor().replace(/\d+$/, String(at + 1)) // offsets start at 1
              const c = await client(keys === undefined ? url : `${url}?keys=${keys.join(",")}`, {
                "last-event-id": otherIncarnation ? `zz${cursor}` : cursor
              })
              await eventually(() => topic.subscriberCount() === 1)
              topic.unsafePublish({ n: 300, key: "a" })
              await eventually(() => c.messages().some((t) => t.n === 300))
              c.response.destroy()
              Effect.runSync(Scope.close(scope, Exit.void))
              const wanted = (t: { key: string }) => keys === undefined || keys.includes(t.key)
              const all = Array.from({ length: 300 }, (_, i) => ({ n: i, key: i % 2 === 0 ? "a" : "b" }))
              if (otherIncarnation) {
                expect(c.sse.events[0]!.event).toBe("dropped")
                expect(c.dropped()).toEqual([null])
                expect(c.messages().map((t) => t.n)).toEqual([300])
                return
              }
              const first = Math.max(at + 1, 300 - replay)
              const expected = all.filter((t) => t.n >= first && wanted(t)).map((t) => t.n)
              expect(c.messages().map((t) => t.n)).toEqual([...expected, 300])
              const missed = all.filter((t) => t.n > at && t.n < first && wanted(t)).length
              // Values after the cursor the ring no longer holds, of any key.
              const gone = first - (at + 1)
              if (gone === 0) {
                expect(c.dropped()).toEqual([])
              } else {
                expect(c.sse.events[0]!.event).toBe("dropped")
                // unkeyed: exact; keyed: null, the keys of values no longer held being unknown (even
                // when none of them was the subscriber's: at 198 with keys ["a"], the gap is n 199, a "b")
                expect(c.dropped()).toEqual([keys === undefined ? missed : null])
              }
            }
          ),
          // The edge found by a CI run: a gap of one value, not of the subscriber's key, no longer held.
          { numRuns: 40, examples: [[198, ["a"], false]] }
        )
      )
    }).pipe(quiet), 120_000)

  it.scopedLive("hundreds of subscribe/disconnect cycles over sockets leave no subscriber, timer, watcher or listener", () =>
    Effect.gen(function*() {
      const topic = yield* Topic.make<Tick>({ key: (t) => t.key, replay: { count: 10 } })
      const { served, url } = yield* serveTopic(() => topic, MetricsService.layer)
      for (let round = 0; round < 6; round++) {
        const clients = yield* Effect.promise(() =>
          Promise.all(Array.from({ length: 50 }, (_, i) => client(i % 2 === 0 ? url : `${url}?keys=k${i % 5}`)))
        )
        yield* Effect.promise(() => eventually(() => topic.subscriberCount() === 50))
        topic.unsafePublishAll(Array.from({ length: 20 }, (_, i) => ({ n: i, key: `k${i % 5}` })))
        for (const c of clients) c.response.destroy()
        yield* Effect.promise(() => eventually(() => topic.subscriberCount() === 0))
      }
      expect(served).toHaveLength(300)
      for (const { close, drain, response } of served) {
        expect(response.listenerCount("close")).toBe(close)
        expect(response.listenerCount("drain")).toBe(drain)
      }
      expect(SseResponse.counts()).toEqual({ answers: 0, timers: 0, drainWatchers: 0 })
    }).pipe(quiet), 60_000)
})

describe("resume over a real socket", () => {
  const resumeAfter = (kept: number, total: number, reader: "fast" | "stalled") =>
    Effect.gen(function*() {
      const topic = yield* Topic.make<Tick>({ replay: { count: kept } })
      const { url } = yield* serveTopic(() => topic)
      const values = Array.from({ length: total }, (_, n) => ({ n, key: "a", pad: "x".repeat(100) }))
      // The cursor of value 0 (offset 1); every value after it is kept when total ≤ kept + 1.
      yield* topic.publishAll(values)
      const cursor = `${topic.latestCursor().split("-")[0]}-1`
      const c = yield* Effect.promise(() => client(url, { "last-event-id": cursor }))
      if (reader === "stalled") {
        c.response.pause()
        // Values published while the reader stalls push the oldest kept ones out of the ring; it
        // reads again once they are in it.
        yield* topic.publishAll(values.map((v) => ({ ...v, n: v.n + total })))
        c.response.resume()
      }
      yield* Effect.promise(() => eventually(() => c.messages().at(-1)?.n === (reader === "fast" ? total - 1 : 2 * total - 1)))
      c.response.destroy()
      return c
    })

  it.scopedLive.each([1_000, 9_000])("a reader that keeps up gets all %d kept values after its cursor, and no `dropped`", (count) =>
    Effect.gen(function*() {
      const c = yield* resumeAfter(10_000, count + 1, "fast")
      expect(c.dropped()).toEqual([])
      expect(c.messages().map((t) => t.n)).toEqual(Array.from({ length: count }, (_, i) => i + 1))
    }).pipe(quiet))

  it.scopedLive("a stalled reader is told exactly how many it lost, and gets the rest in order", () =>
    Effect.gen(function*() {
      const total = 9_001
      const c = yield* resumeAfter(10_000, total, "stalled")
      const received = c.messages().map((t) => t.n)
      const dropped = c.dropped().reduce((sum, n) => sum! + (n ?? NaN), 0)!
      // values 1 .. 2 * total - 1 were owed after the cursor: each one is delivered or counted, once, in order
      expect(received.length + dropped).toBe(2 * total - 1)
      expect(dropped).toBeGreaterThan(0)
      for (let i = 1; i < received.length; i++) expect(received[i]!).toBeGreaterThan(received[i - 1]!)
    }).pipe(quiet))
})
