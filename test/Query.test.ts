/**
 * The TanStack Query adapter (`client/query.ts`) with a real `QueryClient`
 * and `QueryObserver`s of `@tanstack/query-core`, against servers on
 * loopback ports: a test group served by HttpTransport (a Topic the tests
 * publish to, a stream failing with a typed error, a finite stream), read
 * with `StreamClient`; and the demo's server, read with the generated demo
 * client.
 *
 * No timing is asserted: every wait is for a state of the cache, of the
 * server or an event.
 */
import * as RpcGroup from "@effect/rpc/RpcGroup"
import { QueryClient, type QueryKey, QueryObserver, type QueryObserverResult } from "@tanstack/query-core"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { afterAll, afterEach, beforeAll, describe, expect, expectTypeOf, it } from "vitest"
import type { ClientError } from "../client/ClientError.ts"
import * as StreamClient from "../client/effect/StreamClient.ts"
import * as Query from "../client/query.ts"
import { DemoApi } from "../examples/demo/contract.ts"
import { AuthenticationLive, DemoHandlers } from "../examples/demo/handlers.ts"
import * as PriceFeed from "../examples/demo/PriceFeed.ts"
import * as Procedure from "../src/contract/Procedure.ts"
import * as Topic from "../src/topic/Topic.ts"
import { eventually, quiet, serveGroup } from "./support/http.ts"
import { type GeneratedDemo, loadGeneratedDemo } from "./support/generatedDemo.ts"

// ---------------------------------------------------------------------------
// The servers
// ---------------------------------------------------------------------------

const Tick = Schema.Struct({ n: Schema.Int })
type Tick = typeof Tick.Type

class Nope extends Schema.TaggedError<Nope>()("Nope", { reason: Schema.String }) {}

const Api = RpcGroup.make(
  // The topic's values; resumable: a cursor older than the topic keeps is answered with `dropped`.
  Procedure.subscription("ticks", { success: Tick, cursor: (tick) => String(tick.n) }),
  // `after` values, then the typed error.
  Procedure.subscription("doomed", { payload: { after: Schema.Int }, success: Tick, error: Nope }),
  // `count` values, then the end.
  Procedure.subscription("finite", { payload: { count: Schema.Int }, success: Tick })
)



const ticksOf = (count: number) => Array.from({ length: count }, (_, i) => ({ n: i + 1 }))

/** The topic keeps 5 values for resuming clients. */
const replay = 5

const scope = Effect.runSync(Scope.make())
const inScope = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(quiet(Scope.extend(effect, scope)))

let topic: Topic.Topic<Tick>
let client: StreamClient.StreamClient<RpcGroup.Rpcs<typeof Api>>
let demoBase: string
let demo: typeof GeneratedDemo

beforeAll(async () => {
  topic = await inScope(Topic.make<Tick>({ replay: { count: replay } }))
  const handlers = Api.toLayer({
    ticks: (_, { headers }) => topic.subscribe({ after: Procedure.lastEventId(headers) }),
    doomed: ({ after }) => Stream.concat(Stream.fromIterable(ticksOf(after)), Stream.fail(new Nope({ reason: `after ${after}` }))),
    finite: ({ count }) => Stream.fromIterable(ticksOf(count))
  })
  const base = await inScope(serveGroup(Api, handlers))
  client = StreamClient.make(Api, { baseUrl: base })
  demoBase = await inScope(serveGroup(
    DemoApi,
    Layer.mergeAll(DemoHandlers, AuthenticationLive).pipe(Layer.provide(PriceFeed.layer({ pricesPerSecond: 200 })))
  ))
  demo = await loadGeneratedDemo()
})

afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const queryClients: Array<QueryClient> = []
afterEach(() => {
  for (const queryClient of queryClients.splice(0)) queryClient.clear()
})
const newQueryClient = () => {
  const queryClient = new QueryClient()
  queryClients.push(queryClient)
  return queryClient
}

/** An observer of `options`, subscribed: every result it is notified of, and its unsubscribe. */
const observe = <D, E, K extends QueryKey>(queryClient: QueryClient, options: Query.SubscriptionQueryOptions<D, E, K>) => {
  const observer = new QueryObserver(queryClient, options)
  const results: Array<QueryObserverResult<D, E | ClientError>> = []
  const unsubscribe = observer.subscribe((result) => results.push(result))
  return { observer, results, unsubscribe, current: () => observer.getCurrentResult() }
}

const observeStatus = (queryClient: QueryClient, queryKey: QueryKey) => {
  const observer = new QueryObserver(queryClient, Query.statusQueryOptions(queryKey))
  const states: Array<string> = []
  const unsubscribe = observer.subscribe((result) => {
    const state = result.data?.state
    if (state !== undefined && states.at(-1) !== state) states.push(state)
  })
  return { states, unsubscribe, current: () => observer.getCurrentResult().data }
}

const ticks = (queryKey: QueryKey, lastEventId?: string) =>
  Query.liveQueryOptions({
    queryKey,
    subscribe: (callbacks) => client.subscribe("ticks", undefined, lastEventId === undefined ? callbacks : { ...callbacks, lastEventId })
  })

const subscribers = (n: number, what: string) => eventually(() => topic.subscriberCount() === n, 20_000, what)

let next = 1
/** Publishes `count` ticks numbered on from the last; the last one's number. */
const publish = (count: number): number => {
  topic.unsafePublishAll(Array.from({ length: count }, () => ({ n: next++ })))
  return next - 1
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

describe("liveQueryOptions", () => {
  it("types the data and the error by the procedure", () => {
    const options = Query.liveQueryOptions({
      queryKey: ["typed", 1],
      subscribe: (callbacks) => client.subscribe("ticks", undefined, callbacks)
    })
    expectTypeOf(options.queryKey).toExtend<readonly ["typed", 1]>()
    const observer = new QueryObserver(newQueryClient(), options)
    expectTypeOf(observer.getCurrentResult().data).toEqualTypeOf<Tick | undefined>()
    const generated = demo.makeDemoApiClient({ baseUrl: demoBase })
    const prices = Query.liveQueryOptions({
      queryKey: ["prices", "ACME"],
      subscribe: (callbacks) => generated.watchPrices({ symbols: ["ACME"] }, callbacks)
    })
    const result = new QueryObserver(newQueryClient(), prices).getCurrentResult()
    expectTypeOf(result.data).toEqualTypeOf<GeneratedDemo.Price | undefined>()
    expectTypeOf(result.error).toEqualTypeOf<GeneratedDemo.UnknownSymbol | ClientError | null>()
    expectTypeOf(newQueryClient().getQueryData(prices.queryKey)).toEqualTypeOf<GeneratedDemo.Price | undefined>()
    const window = Query.streamedQueryOptions({ queryKey: ["w"], subscribe: (callbacks) => generated.watchPrices({ symbols: [] }, callbacks) })
    expectTypeOf(new QueryObserver(newQueryClient(), window).getCurrentResult().data).toEqualTypeOf<ReadonlyArray<GeneratedDemo.Price> | undefined>()
  })

  it("puts the latest value in the cache as values arrive, and the state in the status query", async () => {
    const queryClient = newQueryClient()
    const key = ["ticks", "live"] as const
    const status = observeStatus(queryClient, key)
    const live = observe(queryClient, ticks(key))
    // Pending until the first value, the subscription open meanwhile.
    expect(live.current().status).toBe("pending")
    await subscribers(1, "the subscription on the server")
    await eventually(() => status.current()?.state === "open", 20_000, "the status to say open")
    expect(live.current().status).toBe("pending")

    const first = publish(1)
    await eventually(() => live.current().data?.n === first, 20_000, "the first value")
    const last = publish(3)
    await eventually(() => live.current().data?.n === last, 20_000, "the latest value")
    expect(queryClient.getQueryData(ticks(key).queryKey)).toEqual({ n: last })
    const result = live.current()
    expect({ status: result.status, fetchStatus: result.fetchStatus, isStale: result.isStale }).toEqual({
      status: "success",
      fetchStatus: "idle",
      isStale: false
    })
    // The data went from the first value to the last, never back.
    const seen = live.results.flatMap((r) => (r.data === undefined ? [] : [r.data.n]))
    expect(seen[0]).toBe(first)
    expect(seen.every((n, i) => i === 0 || n >= seen[i - 1]!)).toBe(true)
    expect(status.states).toEqual(["connecting", "open"])
    expect(status.current()).toEqual({ state: "open", dropped: 0, gaps: 0 })

    // A second observer shares the subscription.
    const second = observe(queryClient, ticks(key))
    expect(second.current().data).toEqual({ n: last })
    const later = publish(1)
    await eventually(() => second.current().data?.n === later, 20_000, "the value in both")
    expect(topic.subscriberCount()).toBe(1)

    live.unsubscribe()
    second.unsubscribe()
    status.unsubscribe()
    await subscribers(0, "the subscription closed")
  })

  it("closes the subscription once the last observer leaves; the data stays, and the next observer opens a new one", async () => {
    const queryClient = newQueryClient()
    const key = ["ticks", "lifecycle"] as const
    const status = observeStatus(queryClient, key)
    const one = observe(queryClient, ticks(key))
    const two = observe(queryClient, ticks(key))
    await subscribers(1, "one subscription for both observers")
    const value = publish(1)
    await eventually(() => two.current().data?.n === value, 20_000, "a value")

    one.unsubscribe()
    // One observer left: the subscription goes on.
    const more = publish(1)
    await eventually(() => two.current().data?.n === more, 20_000, "the next value")
    expect(topic.subscriberCount()).toBe(1)

    two.unsubscribe()
    await subscribers(0, "the subscription closed on the server")
    await eventually(() => status.current()?.state === "closed", 20_000, "the status to say closed")
    const query = queryClient.getQueryCache().find<Tick, unknown>({ queryKey: key, exact: true })!
    expect(query.state.data).toEqual({ n: more })
    // Stale once closed (fresh while open): the next observer fetches, which opens a subscription.
    expect(ticks(key).staleTime(query)).toBe(0)

    // Nothing of the closed subscription reaches the cache.
    publish(1)
    const three = observe(queryClient, ticks(key))
    expect(three.current()).toMatchObject({ data: { n: more }, fetchStatus: "fetching" })
    await subscribers(1, "a new subscription")
    await eventually(() => status.current()?.state === "open", 20_000, "open again")
    const after = publish(1)
    await eventually(() => three.current().data?.n === after, 20_000, "a value of the new subscription")
    expect(status.states).toEqual(["connecting", "open", "closed", "connecting", "open"])
    three.unsubscribe()
    status.unsubscribe()
    await subscribers(0, "closed again")
  })

  it("an observer leaving before the first value cancels the fetch and closes the subscription", async () => {
    const queryClient = newQueryClient()
    const key = ["ticks", "left early"] as const
    const live = observe(queryClient, ticks(key))
    await subscribers(1, "the subscription")
    live.unsubscribe()
    await subscribers(0, "the subscription closed")
    const query = queryClient.getQueryCache().find({ queryKey: key, exact: true })!
    expect(query.state).toMatchObject({ status: "pending", fetchStatus: "idle", data: undefined, error: null })
  })

  it("fetchQuery gets the first value, and the subscription closes with no observer to keep it", async () => {
    const queryClient = newQueryClient()
    const key = ["ticks", "fetched"] as const
    const fetched = queryClient.fetchQuery(ticks(key))
    await subscribers(1, "the subscription")
    const value = publish(1)
    expect(await fetched).toEqual({ n: value })
    await subscribers(0, "the subscription closed")
  })

  it("a query removed from the cache closes its subscription", async () => {
    const queryClient = newQueryClient()
    const key = ["ticks", "removed"] as const
    const live = observe(queryClient, ticks(key))
    await subscribers(1, "the subscription")
    queryClient.removeQueries({ queryKey: key, exact: true })
    await subscribers(0, "the subscription closed")
    live.unsubscribe()
  })

  it("invalidating or refetching an open live query keeps its subscription", async () => {
    const queryClient = newQueryClient()
    const key = ["ticks", "invalidated"] as const
    const live = observe(queryClient, ticks(key))
    await subscribers(1, "the subscription")
    const value = publish(1)
    await eventually(() => live.current().data?.n === value, 20_000, "a value")
    await queryClient.invalidateQueries({ queryKey: key })
    await live.observer.refetch()
    expect(live.current()).toMatchObject({ status: "success", fetchStatus: "idle", data: { n: value } })
    const later = publish(1)
    await eventually(() => live.current().data?.n === later, 20_000, "a later value")
    expect(topic.subscriberCount()).toBe(1)
    live.unsubscribe()
    await subscribers(0, "closed")
  })

  it("counts what the subscription lost: dropped values, and gaps of unknown size", async () => {
    const queryClient = newQueryClient()
    publish(1)
    const cursor = topic.latestCursor()
    const last = publish(20)
    const resumed = ["ticks", "resumed"] as const
    const status = observeStatus(queryClient, resumed)
    const live = observe(queryClient, ticks(resumed, cursor))
    await eventually(() => live.current().data?.n === last, 20_000, "the values kept for the resume")
    // 20 published after the cursor, the last 5 kept: 15 dropped, told before the first value replayed.
    expect(status.current()).toEqual({ state: "open", dropped: 20 - replay, gaps: 0 })

    const foreign = ["ticks", "foreign"] as const
    const gapStatus = observeStatus(queryClient, foreign)
    const gapped = observe(queryClient, ticks(foreign, "abc-3"))
    await eventually(() => gapStatus.current()?.gaps === 1, 20_000, "a gap of unknown size")
    expect(gapStatus.current()).toMatchObject({ dropped: 0, gaps: 1 })
    for (const observer of [live, gapped, status, gapStatus]) observer.unsubscribe()
    await subscribers(0, "closed")
  })

  it("a typed error before the first value is the query's error", async () => {
    const queryClient = newQueryClient()
    const key = ["doomed", 0] as const
    const status = observeStatus(queryClient, key)
    const live = observe(queryClient, Query.liveQueryOptions({
      queryKey: key,
      subscribe: (callbacks) => client.subscribe("doomed", { after: 0 }, callbacks)
    }))
    await eventually(() => live.current().status === "error", 20_000, "the error")
    const { data, error, fetchStatus } = live.current()
    expect(error).toBeInstanceOf(Nope)
    expect(error).toMatchObject({ _tag: "Nope", reason: "after 0" })
    expect({ data, fetchStatus }).toEqual({ data: undefined, fetchStatus: "idle" })
    await eventually(() => status.current()?.state === "closed", 20_000, "closed")
    // Not retried: one attempt.
    expect(live.current().failureCount).toBe(1)
    live.unsubscribe()
    status.unsubscribe()
  })

  it("a typed error after values: the data stays and the error shows, through a failed fetch", async () => {
    const queryClient = newQueryClient()
    const errors: Array<unknown> = []
    queryClient.getQueryCache().config.onError = (error) => errors.push(error)
    const key = ["doomed", 3] as const
    const live = observe(queryClient, Query.liveQueryOptions({
      queryKey: key,
      subscribe: (callbacks) => client.subscribe("doomed", { after: 3 }, callbacks)
    }))
    await eventually(() => live.current().status === "error", 20_000, "the error")
    expect(live.current().data).toEqual({ n: 3 })
    expect(live.current().error).toBeInstanceOf(Nope)
    expect(errors).toHaveLength(1)
    expect(errors[0]).toBeInstanceOf(Nope)
    // The data went to n = 3 before the error came: the values before a failure all land.
    expect(live.results.map((r) => r.status).filter((s, i, all) => s !== all[i - 1])).toEqual(["pending", "success", "error"])
    live.unsubscribe()
  })

  it("a subscription that ends keeps its last value; one that ends with none fails the query", async () => {
    const queryClient = newQueryClient()
    const finite = (count: number) =>
      observe(queryClient, Query.liveQueryOptions({
        queryKey: ["finite", count],
        subscribe: (callbacks) => client.subscribe("finite", { count }, callbacks)
      }))
    const three = finite(3)
    const none = finite(0)
    await eventually(() => three.current().data?.n === 3, 20_000, "the last value")
    await eventually(() => none.current().status === "error", 20_000, "the failure")
    expect(none.current().error).toMatchObject({ _tag: "ClientError", reason: "Protocol" })
    await eventually(() => queryClient.getQueryData(Query.statusKey(["finite", 3])) !== undefined, 20_000, "a status")
    await eventually(() => queryClient.getQueryData(Query.statusKey(["finite", 3]))?.state === "closed", 20_000, "closed")
    expect(three.current().status).toBe("success")
    three.unsubscribe()
    none.unsubscribe()
  })

  it("with the generated demo client: prices land as instances of its class, and its typed error shows", async () => {
    const queryClient = newQueryClient()
    const api = demo.makeDemoApiClient({ baseUrl: demoBase })
    const acme = observe(queryClient, Query.liveQueryOptions({
      queryKey: ["prices", ["ACME"]],
      subscribe: (callbacks) => api.watchPrices({ symbols: ["ACME"] }, callbacks)
    }))
    const unknown = observe(queryClient, Query.liveQueryOptions({
      queryKey: ["prices", ["NOPE"]],
      subscribe: (callbacks) => api.watchPrices({ symbols: ["NOPE"] }, callbacks)
    }))
    await eventually(() => acme.current().data !== undefined, 20_000, "a price")
    const first = acme.current().data!
    expect(first).toBeInstanceOf(demo.Price)
    expect(first.symbol).toBe("ACME")
    await eventually(() => (acme.current().data?.seq ?? 0) > first.seq, 20_000, "a later price")
    await eventually(() => unknown.current().status === "error", 20_000, "the typed error")
    expect(unknown.current().error).toBeInstanceOf(demo.UnknownSymbol)
    expect(unknown.current().error).toMatchObject({ symbol: "NOPE" })
    acme.unsubscribe()
    unknown.unsubscribe()
  })
})

describe("streamedQueryOptions", () => {
  it("keeps the last `max` values, oldest first, and counts what was dropped", async () => {
    const queryClient = newQueryClient()
    const key = ["ticks", "window"] as const
    const status = observeStatus(queryClient, key)
    const window = observe(queryClient, Query.streamedQueryOptions({
      queryKey: key,
      max: 4,
      subscribe: (callbacks) => client.subscribe("ticks", undefined, callbacks)
    }))
    expectTypeOf(window.current().data).toEqualTypeOf<ReadonlyArray<Tick> | undefined>()
    // Data once open: no value yet.
    await eventually(() => window.current().status === "success", 20_000, "the query open")
    expect(window.current().data).toEqual([])
    await subscribers(1, "the subscription")
    const first = publish(2)
    await eventually(() => window.current().data?.at(-1)?.n === first, 20_000, "two values")
    expect(window.current().data?.map((t) => t.n)).toEqual([first - 1, first])
    let last = first
    for (let round = 0; round < 5; round++) {
      last = publish(3)
      await eventually(() => window.current().data?.at(-1)?.n === last, 20_000, "the next values")
      expect(window.current().data!.length).toBeLessThanOrEqual(4)
    }
    expect(window.current().data?.map((t) => t.n)).toEqual([last - 3, last - 2, last - 1, last])
    // Never more than `max`, at any notification.
    expect(Math.max(...window.results.map((r) => r.data?.length ?? 0))).toBe(4)
    expect(status.current()).toEqual({ state: "open", dropped: 0, gaps: 0 })
    window.unsubscribe()
    status.unsubscribe()
    await subscribers(0, "closed")
  })

  it("a resume that lost values: the window holds what was kept, the status what was dropped", async () => {
    const queryClient = newQueryClient()
    publish(1)
    const cursor = topic.latestCursor()
    const last = publish(30)
    const key = ["ticks", "window", "resumed"] as const
    const status = observeStatus(queryClient, key)
    const window = observe(queryClient, Query.streamedQueryOptions({
      queryKey: key,
      max: 3,
      subscribe: (callbacks) => client.subscribe("ticks", undefined, { ...callbacks, lastEventId: cursor })
    }))
    await eventually(() => window.current().data?.at(-1)?.n === last, 20_000, "the kept values")
    expect(window.current().data?.map((t) => t.n)).toEqual([last - 2, last - 1, last])
    expect(status.current()).toMatchObject({ dropped: 30 - replay, gaps: 0 })
    window.unsubscribe()
    status.unsubscribe()
    await subscribers(0, "closed")
  })

  it("refuses a `max` that is not a positive integer", () => {
    const subscribe = (callbacks: Query.Callbacks) => client.subscribe("ticks", undefined, callbacks)
    expect(() => Query.streamedQueryOptions({ queryKey: ["x"], max: 0, subscribe })).toThrow(RangeError)
    expect(() => Query.streamedQueryOptions({ queryKey: ["x"], max: 1.5, subscribe })).toThrow(RangeError)
  })
})
