/**
 * Wire protocol v1.1 end to end: a server composed as the README composes it
 * (`HttpTransport.layer` of a group, `group.toLayer` handlers,
 * `HttpLayerRouter.serve` on a node:http server on a loopback port), real
 * clients (`fetch` reading the body, `node:http` where reading must pause),
 * the body decoded with `Multiplex.makeDecoder`. Many subscriptions on one
 * connection, each with its own `subscribed`, values, errors and end; resume
 * with each one's cursor; changes while values flow; disconnects, drain,
 * admission, metrics and backpressure.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcMiddleware from "@effect/rpc/RpcMiddleware"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Procedure from "../src/contract/Procedure.ts"
import { Unauthorized } from "../src/contract/ProtocolError.ts"
import * as Multiplex from "../src/protocol/Multiplex.ts"
import * as GracefulShutdown from "../src/server/GracefulShutdown.ts"
import * as HttpTransport from "../src/server/HttpTransport.ts"
import * as MetricsService from "../src/server/MetricsService.ts"
import * as StreamingConfig from "../src/server/StreamingConfig.ts"
import * as Multiplexed from "../src/server/internal/Multiplexed.ts"
import * as SseResponse from "../src/server/internal/SseResponse.ts"
import * as Topic from "../src/topic/Topic.ts"
import { eventually, quiet } from "./support/http.ts"
import { change, openMux, receiver } from "./support/mux.ts"

// ---------------------------------------------------------------------------
// the contract and its handlers
// ---------------------------------------------------------------------------

const Tick = Schema.Struct({ key: Schema.String, n: Schema.Number })
type Tick = typeof Tick.Type

class Boom extends Schema.TaggedError<Boom>()("Boom", { message: Schema.String }, HttpApiSchema.annotations({ status: 409 })) {}

/** Rejects every call without `x-token: yes`; takes `x-delay` milliseconds to decide. */
class Guard extends RpcMiddleware.Tag<Guard>()("test/MuxGuard", { failure: Unauthorized }) {}

/** Topic-backed: `resume` exact. */
const ticks = Procedure.subscription("ticks", {
  payload: { keys: Schema.Array(Schema.String) },
  success: Tick,
  cursor: (tick) => String(tick.n)
})
/** Computed, with a cursor: `resume` handler. `count` 0: until interrupted. */
const counter = Procedure.subscription("counter", {
  payload: { name: Schema.String, from: Schema.Number, count: Schema.Number, everyMillis: Schema.Number },
  success: Schema.Number,
  cursor: (n) => String(n)
})
/** Computed, without a cursor: `resume` none. `count` 0: until interrupted. */
const plain = Procedure.subscription("plain", {
  payload: { label: Schema.String, count: Schema.Number, everyMillis: Schema.Number },
  success: Schema.String
})
const guarded = Procedure.subscription("guarded", { success: Schema.Number }).middleware(Guard)
const failing = Procedure.subscription("failing", {
  payload: { after: Schema.Number },
  success: Schema.Number,
  error: Boom
})
const flood = Procedure.subscription("flood", {
  payload: { name: Schema.String, count: Schema.Number, pad: Schema.Number },
  success: Schema.Struct({ n: Schema.Number, pad: Schema.String })
})
const file = Procedure.download("file", { filename: "file.bin" })
const quote = Procedure.unary("quote", { success: Schema.Number })

class Api extends RpcGroup.make(ticks, counter, plain, guarded, failing, flood, file, quote) {}

/** What the handlers did, for the test to read. */
interface State {
  /** Names of `counter` streams whose finalizer ran. */
  readonly finalized: Set<string>
  /** Values each `flood` stream emitted to the server. */
  readonly produced: Map<string, number>
  /** `flood` streams of count 0 told to complete. */
  readonly stop: Set<string>
}

const handlersOf = (topic: Topic.Topic<Tick>, state: State) =>
  Api.toLayer({
    ticks: ({ keys }, { headers }) => topic.subscribe({ keys, after: Procedure.lastEventId(headers) }),
    counter: ({ count, everyMillis, from, name }, { headers }) => {
      const last = Procedure.lastEventId(headers)
      const start = last === undefined ? from : Number(last) + 1
      const values = Stream.iterate(start, (n) => n + 1).pipe(
        Stream.takeWhile((n) => count === 0 || n < from + count)
      )
      return (everyMillis > 0 ? Stream.schedule(values, Schedule.spaced(`${everyMillis} millis`)) : values).pipe(
        Stream.ensuring(Effect.sync(() => state.finalized.add(name)))
      )
    },
    plain: ({ count, everyMillis, label }) => {
      const values = Stream.iterate(1, (n) => n + 1).pipe(
        Stream.takeWhile((n) => count === 0 || n <= count),
        Stream.map((n) => `${label}-${n}`)
      )
      return everyMillis > 0 ? Stream.schedule(values, Schedule.spaced(`${everyMillis} millis`)) : values
    },
    guarded: () => Stream.make(1, 2, 3),
    failing: ({ after }) =>
      Stream.concat(Stream.range(1, after), Stream.fail(new Boom({ message: `failed after ${after}` }))),
    flood: ({ count, name, pad }) => {
      const padding = "x".repeat(pad)
      return Stream.range(1, count > 0 ? count : Number.MAX_SAFE_INTEGER, 16).pipe(
        Stream.takeWhile(() => !state.stop.has(name)),
        Stream.mapChunksEffect((chunk) => Effect.as(Effect.yieldNow(), chunk)),
        Stream.mapChunks((chunk) => {
          state.produced.set(name, (state.produced.get(name) ?? 0) + chunk.length)
          return chunk
        }),
        Stream.map((n) => ({ n, pad: padding }))
      )
    },
    file: () => Stream.make(new Uint8Array([1, 2, 3])),
    quote: () => Effect.succeed(1)
  })

const GuardLive = Layer.succeed(
  Guard,
  Guard.of(({ headers }) =>
    Effect.zipRight(
      Effect.sleep(`${Number(headers["x-delay"] ?? 0)} millis`),
      headers["x-token"] === "yes" ? Effect.void : Effect.fail(new Unauthorized({ message: "Send x-token" }))
    )
  )
)

interface ServeOptions {
  readonly transport?: HttpTransport.Options
  /** Provided to the application (the README's place for settings and metrics). */
  readonly provide?: Layer.Layer<never>
}

/**
 * The README's composition on a node:http server of a loopback port, living
 * as long as the test's scope. Its topic keeps 10,000 values for replay.
 */
const serve = (options: ServeOptions = {}) =>
  Effect.gen(function*() {
    const state: State = { finalized: new Set(), produced: new Map(), stop: new Set() }
    const topic = yield* Topic.make<Tick>({ key: (tick) => tick.key, replay: { count: 10_000 } })
    const server = Http.createServer()
    const App = HttpTransport.layer(Api, options.transport).pipe(
      Layer.provide(handlersOf(topic, state)),
      Layer.provide(GuardLive),
      Layer.provide(options.provide ?? Layer.empty)
    )
    yield* Layer.build(
      HttpLayerRouter.serve(App, { disableLogger: true }).pipe(
        Layer.provide(NodeHttpServer.layer(() => server, { port: 0, host: "127.0.0.1" }))
      )
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => server.closeAllConnections()))
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/rpc`
    return { base, topic, state }
  })

const wait = (condition: () => boolean, what: string, timeoutMs = 8_000) =>
  Effect.promise(() => eventually(condition, timeoutMs, what))

const consecutive = (values: ReadonlyArray<number>): boolean => values.every((n, i) => i === 0 || n === values[i - 1]! + 1)

const tickN = (json: unknown) => (json as Tick).n

/** Publishes `perKey` values for each key, their `n` numbering that key's values from `from`. */
const publishRound = (topic: Topic.Topic<Tick>, keys: ReadonlyArray<string>, n: number) =>
  topic.unsafePublishAll(keys.map((key) => ({ key, n })))

/** Publishes a value of each key every few milliseconds until the scope closes; `published()` is the next `n`. */
const publishing = (topic: Topic.Topic<Tick>, keys: ReadonlyArray<string>): Effect.Effect<{ readonly next: () => number; readonly stop: () => void }, never, Scope.Scope> =>
  Effect.gen(function*() {
    let n = 1
    let stopped = false
    yield* Effect.forkScoped(
      Effect.repeat(
        Effect.sync(() => {
          if (!stopped) publishRound(topic, keys, n++)
        }),
        Schedule.spaced("2 millis")
      )
    )
    return { next: () => n, stop: () => (stopped = true) }
  })

// ---------------------------------------------------------------------------
// the tests
// ---------------------------------------------------------------------------

describe("wire protocol v1.1: multiplexed subscriptions", () => {
  it.scopedLive("12 subscriptions on one connection: each its own `subscribed` (with its resume) and its own values, in order", () =>
    Effect.gen(function*() {
      const { base, topic } = yield* serve()
      const keys = ["k0", "k1", "k2", "k3", "k4", "k5"]
      const entries: Array<Multiplex.Entry> = [
        ...keys.map((key, i) => ({ id: `t${i}`, tag: "ticks", payload: { keys: [key] } })),
        ...[0, 1, 2].map((i) => ({
          id: `c${i}`,
          tag: "counter",
          payload: { name: `c${i}`, from: 1000 * (i + 1), count: 30, everyMillis: 0 }
        })),
        ...[0, 1, 2].map((i) => ({ id: `p${i}`, tag: "plain", payload: { label: `p${i}`, count: 25, everyMillis: 1 } }))
      ]
      // interleaved, as a client would ask them
      const asked = [...entries].sort((a, b) => (a.id.slice(1) + a.id[0]).localeCompare(b.id.slice(1) + b.id[0]))
      const mux = yield* Effect.promise(() => openMux(base, asked))
      yield* Effect.addFinalizer(() => Effect.sync(mux.abort))
      expect(mux.status).toBe(200)
      yield* wait(() => asked.every((e) => mux.get(e.id).resume !== undefined), "every subscribed")
      expect(mux.state.first).toBe("Connection")
      expect(mux.state.version).toBe("1.1")
      expect(mux.state.connection).toMatch(/\S/)
      for (const entry of asked) {
        expect(mux.get(entry.id).subscribedFirst, entry.id).toBe(true)
        expect(mux.get(entry.id).resume, entry.id).toBe(
          entry.tag === "ticks" ? "exact" : entry.tag === "counter" ? "handler" : "none"
        )
      }
      // the log's `subscribed` events come in the order asked
      expect(mux.log.filter((l) => l.endsWith(" subscribed")).map((l) => l.split(" ")[0])).toEqual(asked.map((e) => e.id))
      // the topic's subscriptions are attached: publish 20 values of each key, interleaved
      for (let n = 1; n <= 20; n++) publishRound(topic, [...keys].reverse(), n)
      yield* wait(
        () =>
          keys.every((_, i) => mux.get(`t${i}`).values.length === 20) &&
          [0, 1, 2].every((i) => mux.get(`c${i}`).ended && mux.get(`p${i}`).ended),
        "every value"
      )
      keys.forEach((key, i) => {
        const received = mux.get(`t${i}`)
        expect(received.values.map((v) => v.json)).toEqual(Array.from({ length: 20 }, (_, j) => ({ key, n: j + 1 })))
        // a Topic's cursors as ids: increasing, distinct
        const ids = received.values.map((v) => v.id!)
        expect(new Set(ids).size).toBe(20)
      })
      for (const i of [0, 1, 2]) {
        const from = 1000 * (i + 1)
        expect(mux.values(`c${i}`)).toEqual(Array.from({ length: 30 }, (_, j) => from + j))
        expect(mux.get(`c${i}`).values.map((v) => v.id)).toEqual(Array.from({ length: 30 }, (_, j) => String(from + j)))
        expect(mux.values(`p${i}`)).toEqual(Array.from({ length: 25 }, (_, j) => `p${i}-${j + 1}`))
        expect(mux.get(`p${i}`).values.every((v) => v.id === undefined)).toBe(true)
      }
      for (const entry of asked) {
        const received = mux.get(entry.id)
        expect(received.dropped, entry.id).toEqual([])
        expect(received.error, entry.id).toBeUndefined()
        expect(received.afterLast, entry.id).toBe(0)
      }
      expect([...mux.subs.keys()].sort()).toEqual(asked.map((e) => e.id).sort())
      // the connection stays open after its subscriptions have ended
      expect(mux.ended()).toBe(false)
    }).pipe(quiet))

  it.scopedLive("per-subscription errors do not disturb the others: each its own `error` or `end`, another keeps delivering", () =>
    Effect.gen(function*() {
      const { base } = yield* serve()
      const mux = yield* Effect.promise(() =>
        openMux(base, [
          { id: "live", tag: "counter", payload: { name: "live", from: 1, count: 0, everyMillis: 2 } },
          { id: "unknown", tag: "dropTables" },
          { id: "download", tag: "file" },
          { id: "unary", tag: "quote" },
          { id: "invalid", tag: "plain", payload: { label: 7, count: 1, everyMillis: 0 } },
          { id: "guarded", tag: "guarded" },
          { id: "failing", tag: "failing", payload: { after: 3 } },
          { id: "finite", tag: "plain", payload: { label: "f", count: 3, everyMillis: 0 } }
        ])
      )
      yield* Effect.addFinalizer(() => Effect.sync(mux.abort))
      expect(mux.status).toBe(200)
      const over = ["unknown", "download", "unary", "invalid", "guarded", "failing", "finite"]
      yield* wait(() => over.every((id) => mux.get(id).ended || mux.get(id).error !== undefined), "every other subscription over")
      const live = mux.get("live").values.length
      yield* wait(() => mux.get("live").values.length >= live + 20, "the live subscription going on")
      const errorOf = (id: string) => mux.get(id).error as { _tag: string; message: string }
      expect(errorOf("unknown")._tag).toBe("NotFound")
      expect(errorOf("download")._tag).toBe("NotFound")
      expect(errorOf("unary")._tag).toBe("NotFound")
      expect(errorOf("invalid")._tag).toBe("InvalidPayload")
      expect(errorOf("invalid").message).toContain("label")
      expect(errorOf("guarded")).toEqual({ _tag: "Unauthorized", message: "Send x-token" })
      expect(errorOf("failing")).toEqual({ _tag: "Boom", message: "failed after 3" })
      expect(mux.values("failing")).toEqual([1, 2, 3])
      expect(mux.get("finite").ended).toBe(true)
      expect(mux.get("finite").error).toBeUndefined()
      expect(mux.values("finite")).toEqual(["f-1", "f-2", "f-3"])
      // refused subscriptions get their error instead of `subscribed`; started ones `subscribed` first
      for (const id of ["unknown", "download", "unary", "invalid", "guarded"]) {
        expect(mux.get(id).resume, id).toBeUndefined()
        expect(mux.get(id).values, id).toEqual([])
      }
      for (const id of ["live", "failing", "finite"]) expect(mux.get(id).subscribedFirst, id).toBe(true)
      for (const id of over) expect(mux.get(id).afterLast, id).toBe(0)
      // the live one: contiguous, nothing lost or repeated, no error
      const values = mux.values("live") as Array<number>
      expect(values[0]).toBe(1)
      expect(consecutive(values)).toBe(true)
      expect(mux.get("live").dropped).toEqual([])
      expect(mux.get("live").error).toBeUndefined()
      // the same guarded subscription with the header the middleware wants is served
      const allowed = yield* Effect.promise(() => openMux(base, [{ id: "g", tag: "guarded" }], { "x-token": "yes" }))
      yield* Effect.addFinalizer(() => Effect.sync(allowed.abort))
      yield* wait(() => allowed.get("g").ended, "the guarded subscription with its token")
      expect(allowed.values("g")).toEqual([1, 2, 3])
    }).pipe(quiet))

  it.scopedLive("resume is exact for Topic subscriptions: aborted and reopened with each one's last id, no value lost or repeated", () =>
    Effect.gen(function*() {
      const { base, topic } = yield* serve()
      const keys = ["a", "b", "c", "d", "e"]
      const feed = yield* publishing(topic, keys)
      const entries = keys.map((key) => ({ id: `s-${key}`, tag: "ticks", payload: { keys: [key] } }))
      // a second subscription of two keys: its cursor covers both
      entries.push({ id: "s-ab", tag: "ticks", payload: { keys: ["a", "b"] } })
      // and a computed one with the procedure's own cursor, handed to its handler
      const counted = { id: "n", tag: "counter", payload: { name: "n", from: 1, count: 0, everyMillis: 2 } }
      const first = yield* Effect.promise(() => openMux(base, [...entries, counted]))
      yield* wait(() => [...entries, counted].every((e) => first.get(e.id).values.length >= 10), "values on the first connection")
      first.abort()
      yield* Effect.promise(() => first.done)
      const cut = new Map(entries.map((e) => [e.id, first.get(e.id).values.map((v) => v.json as Tick)]))
      const resumed = entries.map((e) => ({ ...e, lastEventId: first.lastId(e.id)! }))
      // values keep being published while the client is away
      const away = feed.next()
      yield* wait(() => feed.next() >= away + 10, "values published while away")
      const countedBefore = first.values("n") as Array<number>
      const second = yield* Effect.promise(() =>
        openMux(base, [...resumed, { ...counted, lastEventId: first.lastId("n")! }])
      )
      yield* Effect.addFinalizer(() => Effect.sync(second.abort))
      yield* wait(() => entries.every((e) => second.get(e.id).resume === "exact"), "resumed subscriptions")
      yield* wait(() => second.get("n").values.length >= 5, "the counter resumed")
      expect(second.get("n").resume).toBe("handler")
      const countedAll = [...countedBefore, ...(second.values("n") as Array<number>)]
      expect(countedAll[0]).toBe(1)
      expect(consecutive(countedAll)).toBe(true)
      const target = feed.next() + 10
      yield* wait(() => keys.every((key) => second.values(`s-${key}`).some((t) => tickN(t) >= target)), "values after the resume")
      feed.stop()
      for (const entry of entries) {
        const before = cut.get(entry.id)!
        const after = second.values(entry.id) as Array<Tick>
        const all = [...before, ...after]
        // the witness: the topic's published sequence of the subscription's keys, from its first value on
        const subscribedKeys = (entry.payload as { keys: Array<string> }).keys
        const firstN = all[0]!.n
        const witness: Array<Tick> = []
        for (let n = firstN; witness.length < all.length; n++) {
          for (const key of keys) if (subscribedKeys.includes(key)) witness.push({ key, n })
        }
        expect(all, entry.id).toEqual(witness.slice(0, all.length))
        expect(after.length, entry.id).toBeGreaterThan(10)
        expect(second.get(entry.id).dropped, entry.id).toEqual([])
      }
    }).pipe(quiet))

  it.scopedLive("changes: add and remove while values flow; others untouched; 400, 404, 405 and InvalidPayload", () =>
    Effect.gen(function*() {
      const { base, state, topic } = yield* serve()
      const feed = yield* publishing(topic, ["x"])
      const mux = yield* Effect.promise(() =>
        openMux(base, [
          { id: "a", tag: "counter", payload: { name: "a", from: 1, count: 0, everyMillis: 2 } },
          { id: "t", tag: "ticks", payload: { keys: ["x"] } }
        ])
      )
      yield* Effect.addFinalizer(() => Effect.sync(mux.abort))
      yield* wait(() => mux.get("a").values.length >= 5 && mux.get("t").values.length >= 5, "values of a and t")
      const id = mux.state.connection!
      // add
      const added = yield* Effect.promise(() =>
        change(base, id, {
          add: [
            { id: "b", tag: "counter", payload: { name: "b", from: 500, count: 0, everyMillis: 2 } },
            { id: "bad", tag: "nope" }
          ]
        })
      )
      expect(added).toEqual({ status: 200, json: {} })
      yield* wait(() => mux.get("b").values.length >= 5 && mux.get("bad").error !== undefined, "the added subscriptions")
      expect(mux.get("b").resume).toBe("handler")
      expect(mux.get("b").subscribedFirst).toBe(true)
      expect((mux.get("bad").error as { _tag: string })._tag).toBe("NotFound")
      // an id already on the connection
      const taken = yield* Effect.promise(() =>
        change(base, id, { add: [{ id: "a", tag: "counter", payload: { name: "a2", from: 1, count: 0, everyMillis: 2 } }] })
      )
      expect(taken.status).toBe(400)
      expect((taken.json as { _tag: string })._tag).toBe("InvalidPayload")
      // remove: the handler stops (its finalizer runs)
      expect(state.finalized.has("b")).toBe(false)
      const removed = yield* Effect.promise(() => change(base, id, { remove: ["b", "never-there"] }))
      expect(removed).toEqual({ status: 200, json: {} })
      yield* wait(() => state.finalized.has("b"), "b's finalizer")
      const bCount = mux.get("b").values.length
      // the others go on
      const aCount = mux.get("a").values.length
      const tCount = mux.get("t").values.length
      yield* wait(() => mux.get("a").values.length >= aCount + 20 && mux.get("t").values.length >= tCount + 20, "a and t after the changes")
      expect(mux.get("b").values.length).toBe(bCount)
      expect(mux.get("b").ended).toBe(false)
      expect(state.finalized.has("a")).toBe(false)
      // other answers
      const unknown = yield* Effect.promise(() => change(base, "no.such", { add: [], remove: [] }))
      expect(unknown.status).toBe(404)
      expect((unknown.json as { _tag: string })._tag).toBe("NotFound")
      const get = yield* Effect.promise(() => change(base, id, undefined, "GET"))
      expect(get.status).toBe(405)
      const malformed = yield* Effect.promise(() => change(base, id, { add: 5 }))
      expect(malformed.status).toBe(400)
      expect((malformed.json as { _tag: string })._tag).toBe("InvalidPayload")
      const badRemove = yield* Effect.promise(() => change(base, id, { remove: [42] }))
      expect(badRemove.status).toBe(400)
      expect((badRemove.json as { _tag: string })._tag).toBe("InvalidPayload")
      const notJson = yield* Effect.promise(() => change(base, id, "{\"add\":"))
      expect(notJson.status).toBe(400)
      expect((notJson.json as { _tag: string })._tag).toBe("MalformedJson")
      feed.stop()
      // one connection all along: a and t contiguous, nothing lost or repeated, nothing dropped
      const a = mux.values("a") as Array<number>
      expect(a[0]).toBe(1)
      expect(consecutive(a)).toBe(true)
      const t = (mux.values("t") as Array<Tick>).map((tick) => tick.n)
      expect(consecutive(t)).toBe(true)
      expect(mux.get("a").dropped).toEqual([])
      expect(mux.get("t").dropped).toEqual([])
      expect(mux.ended()).toBe(false)
      expect(mux.log.filter((l) => l === "* connection")).toHaveLength(1)
      // the open endpoint: 405 for GET, 400 for a malformed body
      const openGet = yield* Effect.promise(() => fetch(Multiplex.pathOf(base)))
      expect(openGet.status).toBe(405)
      yield* Effect.promise(() => openGet.text())
      const openBad = yield* Effect.promise(() => openMux(base, [{ id: "bad id!", tag: "ticks" }]))
      expect(openBad.status).toBe(400)
      expect((openBad.body as { _tag: string })._tag).toBe("InvalidPayload")
    }).pipe(quiet))

  it.scopedLive("a client disconnect interrupts every subscription's handler and runs its finalizers; nothing stays open", () =>
    Effect.gen(function*() {
      const { base, state, topic } = yield* serve()
      const feed = yield* publishing(topic, ["y"])
      // the connections of the tests before have closed
      yield* wait(() => Multiplexed.counts().connections === 0, "no connection open before")
      const mux = yield* Effect.promise(() =>
        openMux(base, [
          { id: "c1", tag: "counter", payload: { name: "c1", from: 1, count: 0, everyMillis: 2 } },
          { id: "c2", tag: "counter", payload: { name: "c2", from: 1, count: 0, everyMillis: 0 } },
          { id: "t", tag: "ticks", payload: { keys: ["y"] } },
          { id: "p", tag: "plain", payload: { label: "p", count: 0, everyMillis: 2 } }
        ])
      )
      yield* wait(() => ["c1", "c2", "t", "p"].every((id) => mux.get(id).values.length >= 3), "values of each")
      expect(Multiplexed.counts().connections).toBe(1)
      expect(topic.subscriberCount()).toBe(1)
      expect(state.finalized.size).toBe(0)
      const id = mux.state.connection!
      mux.abort()
      yield* wait(() => state.finalized.has("c1") && state.finalized.has("c2"), "the handlers' finalizers")
      yield* wait(() => topic.subscriberCount() === 0, "the topic subscription detached")
      yield* wait(() => Multiplexed.counts().connections === 0, "no connection open")
      yield* wait(() => SseResponse.counts().answers === 0 && SseResponse.counts().timers === 0, "no answer or timer open")
      expect(SseResponse.counts()).toEqual({ answers: 0, timers: 0, drainWatchers: 0 })
      // the connection is gone: a change for it is a 404
      const late = yield* Effect.promise(() => change(base, id, { remove: ["c1"] }))
      expect(late.status).toBe(404)
      expect((late.json as { _tag: string })._tag).toBe("NotFound")
      feed.stop()
    }).pipe(quiet))

  it.scopedLive("backpressure: a paused reader; per subscription delivered + dropped = produced exactly; a flood does not starve the other", () =>
    Effect.gen(function*() {
      const { base, state, topic } = yield* serve({ transport: { admission: { maxEventLoopDelay: Infinity, maxRequestDelay: Infinity, maxFanOutDelay: Infinity } } })
      const r = receiver()
      const responses: Array<Http.IncomingMessage> = []
      const request = Http.request(Multiplex.pathOf(base), { method: "POST", headers: { "content-type": "application/json" }, agent: false }, (response) => {
        response.pause()
        responses.push(response)
        response.on("data", (bytes: Buffer) => r.decoder.feedBytes(bytes))
        response.on("error", () => {})
      })
      request.on("error", () => {})
      // "burst" floods until told to stop; "steady" produces 1,500 values and ends
      request.end(JSON.stringify({
        subscriptions: [
          { id: "burst", tag: "flood", payload: { name: "burst", count: 0, pad: 4096 } },
          { id: "steady", tag: "flood", payload: { name: "steady", count: 1500, pad: 4096 } },
          { id: "topic", tag: "ticks", payload: { keys: ["bp"] } }
        ]
      }))
      yield* Effect.addFinalizer(() => Effect.sync(() => request.destroy()))
      yield* wait(() => responses.length === 1, "the response head")
      // the reader reads nothing: steady produces all it has, burst goes on, far past what a socket holds
      yield* wait(() => state.produced.get("steady") === 1500 && (state.produced.get("burst") ?? 0) >= 10_000, "production while paused")
      expect(r.log).toEqual([])
      // the topic's subscription is held up by the same socket: 3,000 published meanwhile
      yield* wait(() => topic.subscriberCount() === 1, "the topic subscription attached")
      for (let n = 1; n <= 3000; n++) publishRound(topic, ["bp"], n)
      responses[0]!.resume()
      // steady's end arrives while burst still floods: the writer serves both in turn
      yield* wait(() => r.get("steady").ended, "steady's end while burst floods", 15_000)
      const burstAtSteadyEnd = r.get("burst").values.length
      expect(burstAtSteadyEnd).toBeGreaterThan(0)
      state.stop.add("burst")
      yield* wait(() => r.get("burst").ended, "burst's end")
      for (const name of ["burst", "steady"]) {
        const received = r.get(name)
        const dropped = received.dropped.reduce<number>((sum, count) => sum + (count ?? Number.NaN), 0)
        const produced = state.produced.get(name)!
        expect(received.values.length + dropped, name).toBe(produced)
        // it was held up: values were overwritten while the socket was full
        expect(dropped, name).toBeGreaterThan(0)
        // the values it got are in order
        const ns = received.values.map((v) => (v.json as { n: number }).n)
        expect(ns.every((n, i) => i === 0 || n > ns[i - 1]!), name).toBe(true)
        expect(ns.at(-1), name).toBe(produced)
      }
      // burst delivered after steady's end too
      expect(r.get("burst").values.length).toBeGreaterThan(burstAtSteadyEnd)
      // the topic's subscription: its last value arrives, and what it got plus what it was told it missed is all
      yield* wait(() => tickN(r.get("topic").values.at(-1)?.json ?? { n: 0 }) === 3000, "the topic's last value")
      const topicDropped = r.get("topic").dropped.reduce<number>((sum, count) => sum + (count ?? Number.NaN), 0)
      expect(r.get("topic").values.length + topicDropped).toBe(3000)
      expect(topicDropped).toBeGreaterThan(0)
      const topicNs = r.get("topic").values.map((v) => tickN(v.json))
      expect(topicNs.every((n, i) => i === 0 || n > topicNs[i - 1]!)).toBe(true)
      // a client gone while its socket was full: nothing stays open
      request.destroy()
      yield* wait(() => topic.subscriberCount() === 0 && Multiplexed.counts().connections === 0, "the connection closed")
      yield* wait(() => SseResponse.counts().answers === 0, "no answer open")
    }).pipe(quiet), 30_000)

  it.scopedLive("metrics: stream_active counts each subscription, stream_connections the connection; both back after close", () =>
    Effect.gen(function*() {
      const { base } = yield* serve({ provide: MetricsService.layer })
      const active = (name: string) =>
        Effect.runSync(Metric.value(MetricsService.labelled(MetricsService.metrics.active, "subscription", name))).value
      const connections = () => Effect.runSync(Metric.value(MetricsService.metrics.connections)).value
      const before = { plain: active("plain"), counter: active("counter"), connections: connections() }
      const mux = yield* Effect.promise(() =>
        openMux(base, [
          { id: "1", tag: "plain", payload: { label: "a", count: 0, everyMillis: 5 } },
          { id: "2", tag: "plain", payload: { label: "b", count: 0, everyMillis: 5 } },
          { id: "3", tag: "counter", payload: { name: "3", from: 1, count: 0, everyMillis: 5 } }
        ])
      )
      yield* wait(() => ["1", "2", "3"].every((id) => mux.get(id).values.length > 0), "values of each")
      expect(active("plain") - before.plain).toBe(2)
      expect(active("counter") - before.counter).toBe(1)
      expect(connections() - before.connections).toBe(1)
      // a subscription removed by a change is no longer counted
      const removed = yield* Effect.promise(() => change(base, mux.state.connection!, { remove: ["2"] }))
      expect(removed.status).toBe(200)
      yield* wait(() => active("plain") - before.plain === 1, "the removed subscription uncounted")
      expect(active("counter") - before.counter).toBe(1)
      expect(connections() - before.connections).toBe(1)
      mux.abort()
      yield* wait(
        () => active("plain") === before.plain && active("counter") === before.counter && connections() === before.connections,
        "the gauges back"
      )
    }).pipe(quiet))

  it.scopedLive("admission per subscription: past maxSubscriptions a subscription gets ServiceUnavailable; only refused ones: 503", () =>
    Effect.gen(function*() {
      const { base } = yield* serve({ transport: { admission: { maxSubscriptions: 2 } } })
      const entries = ["1", "2", "3"].map((id) => ({ id, tag: "plain", payload: { label: id, count: 0, everyMillis: 5 } }))
      const mux = yield* Effect.promise(() => openMux(base, entries))
      yield* Effect.addFinalizer(() => Effect.sync(mux.abort))
      expect(mux.status).toBe(200)
      yield* wait(() => entries.every((e) => mux.get(e.id).resume !== undefined || mux.get(e.id).error !== undefined), "each answered")
      expect(entries.map((e) => mux.get(e.id).resume)).toEqual(["none", "none", undefined])
      expect((mux.get("3").error as { _tag: string })._tag).toBe("ServiceUnavailable")
      // a connection asking only for refused ones
      const refused = yield* Effect.promise(() => openMux(base, [{ id: "x", tag: "plain", payload: { label: "x", count: 0, everyMillis: 5 } }]))
      expect(refused.status).toBe(503)
      expect((refused.body as { _tag: string })._tag).toBe("ServiceUnavailable")
      // the slots come back with the connection's close
      mux.abort()
      yield* wait(() => Multiplexed.counts().connections === 0, "the first connection closed")
      const again = yield* Effect.promise(() => openMux(base, entries.slice(0, 2)))
      yield* Effect.addFinalizer(() => Effect.sync(again.abort))
      yield* wait(() => again.get("1").resume !== undefined && again.get("2").resume !== undefined, "both admitted again")
      expect([again.get("1").error, again.get("2").error]).toEqual([undefined, undefined])
    }).pipe(quiet))

  it.scopedLive("drain: starting it ends the connection's body without `end` for any subscription", () =>
    Effect.gen(function*() {
      const drain = yield* GracefulShutdown.make
      const { base, topic } = yield* serve({
        provide: Layer.merge(
          Layer.succeed(GracefulShutdown.GracefulShutdown, drain),
          StreamingConfig.layer({ heartbeatInterval: "1 second" })
        )
      })
      const feed = yield* publishing(topic, ["z"])
      const mux = yield* Effect.promise(() =>
        openMux(base, [
          { id: "t", tag: "ticks", payload: { keys: ["z"] } },
          { id: "c", tag: "counter", payload: { name: "c", from: 1, count: 0, everyMillis: 2 } },
          { id: "p", tag: "plain", payload: { label: "p", count: 0, everyMillis: 2 } }
        ])
      )
      yield* wait(() => ["t", "c", "p"].every((id) => mux.get(id).values.length >= 3), "values of each")
      yield* drain.begin
      yield* Effect.promise(() => mux.done)
      expect(mux.ended()).toBe(true)
      for (const id of ["t", "c", "p"]) {
        expect(mux.get(id).ended, id).toBe(false)
        expect(mux.get(id).error, id).toBeUndefined()
      }
      expect(mux.log.filter((l) => l.endsWith(" end") || l.endsWith(" error"))).toEqual([])
      // a new connection is refused while draining
      const refused = yield* Effect.promise(() => openMux(base, [{ id: "t", tag: "ticks", payload: { keys: ["z"] } }]))
      expect(refused.status).toBe(503)
      feed.stop()
      yield* wait(() => Multiplexed.counts().connections === 0, "no connection open")
    }).pipe(quiet))

  it.scopedLive("an empty connection: heartbeats while idle, then subscriptions added by changes", () =>
    Effect.gen(function*() {
      const { base } = yield* serve({ provide: StreamingConfig.layer({ heartbeatInterval: "20 millis" }) })
      const mux = yield* Effect.promise(() => openMux(base, []))
      yield* Effect.addFinalizer(() => Effect.sync(mux.abort))
      expect(mux.status).toBe(200)
      yield* wait(() => mux.state.connection !== undefined && mux.text().includes(": heartbeat"), "the connection event and a heartbeat")
      const added = yield* Effect.promise(() =>
        change(base, mux.state.connection!, { add: [{ id: "p", tag: "plain", payload: { label: "p", count: 3, everyMillis: 0 } }] })
      )
      expect(added.status).toBe(200)
      yield* wait(() => mux.get("p").ended, "the added subscription's end")
      expect(mux.values("p")).toEqual(["p-1", "p-2", "p-3"])
      expect(mux.get("p").subscribedFirst).toBe(true)
    }).pipe(quiet))

  it.scopedLive("a connection carries at most 256 subscriptions, those added by changes included", () =>
    Effect.gen(function*() {
      const { base } = yield* serve()
      const entries = Array.from({ length: Multiplex.maxSubscriptions }, (_, i) => ({ id: `s${i}`, tag: "ticks", payload: { keys: [`k${i}`] } }))
      const tooMany = yield* Effect.promise(() => openMux(base, [...entries, { id: "one-more", tag: "ticks", payload: { keys: ["x"] } }]))
      expect(tooMany.status).toBe(400)
      const mux = yield* Effect.promise(() => openMux(base, entries))
      yield* Effect.addFinalizer(() => Effect.sync(mux.abort))
      yield* wait(() => entries.every((e) => mux.get(e.id).resume === "exact"), "256 subscribed")
      const added = yield* Effect.promise(() =>
        change(base, mux.state.connection!, { add: [{ id: "one-more", tag: "ticks", payload: { keys: ["x"] } }] })
      )
      expect(added.status).toBe(400)
      expect((added.json as { _tag: string })._tag).toBe("InvalidPayload")
    }).pipe(quiet))

  it.scopedLive("connection ids cannot be guessed from one another (a change needs nothing but the id)", () =>
    Effect.gen(function*() {
      const { base } = yield* serve()
      const ids: Array<string> = []
      for (let i = 0; i < 3; i++) {
        const mux = yield* Effect.promise(() => openMux(base, []))
        yield* Effect.addFinalizer(() => Effect.sync(mux.abort))
        yield* wait(() => mux.state.connection !== undefined, "the connection event")
        ids.push(mux.state.connection!)
      }
      // whatever prefix they share (an instance's, say), the rest is at least 16 characters of each its own
      let common = 0
      while (ids.every((id) => id[common] !== undefined && id[common] === ids[0]![common])) common++
      for (const id of ids) expect(id.slice(common).length, `${id} after the common prefix ${ids[0]!.slice(0, common)}`).toBeGreaterThanOrEqual(16)
    }).pipe(quiet))

  it.scopedLive("two changes adding the same id at once: one is applied, the other is a 400 (not a silent 200)", () =>
    Effect.gen(function*() {
      const { base } = yield* serve()
      const mux = yield* Effect.promise(() => openMux(base, []))
      yield* Effect.addFinalizer(() => Effect.sync(mux.abort))
      yield* wait(() => mux.state.connection !== undefined, "the connection event")
      const add = () =>
        change(base, mux.state.connection!, { add: [{ id: "g", tag: "guarded" }] }, "POST", { "x-token": "yes", "x-delay": "50" })
      const answers = yield* Effect.promise(() => Promise.all([add(), add()]))
      expect(answers.map((a) => a.status).sort()).toEqual([200, 400])
      yield* wait(() => mux.get("g").ended, "g's end")
      // and the id is not reused on the connection: one `subscribed`, nothing after its `end`
      expect(mux.log.filter((l) => l === "g subscribed")).toHaveLength(1)
      expect(mux.get("g").afterLast).toBe(0)
      expect(mux.values("g")).toEqual([1, 2, 3])
    }).pipe(quiet))
})
