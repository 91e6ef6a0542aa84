/**
 * StreamClient over real loopback sockets: the demo contract served by
 * HttpTransport, small test-local groups where a test needs control, raw
 * node:http servers that misbehave on purpose, and a TCP proxy that cuts
 * connections in the middle of a subscription.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import type * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as fc from "fast-check"
import { expectTypeOf } from "vitest"
import { mkdtemp, readFile, rm, stat } from "node:fs/promises"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { saveToFile } from "../client/saveToFile.ts"
import * as StreamClient from "../client/effect/StreamClient.ts"
import { DemoApi, Order, orderColumns, Price, UnknownSymbol } from "../examples/demo/contract.ts"
import { AuthenticationLive, DemoHandlers, orderAt } from "../examples/demo/handlers.ts"
import * as PriceFeed from "../examples/demo/PriceFeed.ts"
import * as Procedure from "../src/contract/Procedure.ts"
import { Forbidden, Unauthorized } from "../src/contract/ProtocolError.ts"
import * as GeneratedClient from "./support/generatedClient.ts"
import { eventually, quiet, rawServer, serveGroup, settled } from "./support/http.ts"

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------



const demoServer = serveGroup(
  DemoApi,
  Layer.mergeAll(DemoHandlers, AuthenticationLive).pipe(Layer.provide(PriceFeed.layer({ pricesPerSecond: 200 })))
)

/**
 * A TCP proxy in front of `target` that lets the response headers and then
 * `budget` more bytes through on each connection, then closes both sides: a
 * connection cut in the middle of a body, as a load balancer or a flaky
 * network would.
 */
const cuttingProxy = (target: string, budget: number) => {
  const open = new Set<() => void>()
  return Effect.acquireRelease(
    Effect.async<Net.Server>((resume) => {
      const port = Number(new URL(target).port)
      const server = Net.createServer((client) => {
        const upstream = Net.connect(port, "127.0.0.1")
        const close = () => {
          client.destroy()
          upstream.destroy()
          open.delete(close)
        }
        open.add(close)
        client.on("error", close).on("close", close)
        upstream.on("error", close).on("close", close)
        client.pipe(upstream)
        let head = Buffer.alloc(0)
        let limit: number | undefined
        let sent = 0
        upstream.on("data", (data: Buffer) => {
          if (limit === undefined) {
            head = Buffer.concat([head, data])
            const end = head.indexOf("\r\n\r\n")
            if (end !== -1) limit = end + 4 + budget
          }
          const room = (limit ?? Infinity) - sent
          if (data.length < room) {
            sent += data.length
            client.write(data)
          } else {
            sent += room
            upstream.destroy()
            client.end(data.subarray(0, room))
          }
        })
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        for (const close of open) close()
      })
  ).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as Net.AddressInfo).port}/rpc`))
}

const collect = async <A>(iterable: AsyncIterable<A>): Promise<Array<A>> => {
  const out: Array<A> = []
  for await (const a of iterable) out.push(a)
  return out
}

const failureOf = async (promise: Promise<unknown>): Promise<unknown> =>
  promise.then((value) => {
    throw new Error(`expected a failure, got ${String(value)}`)
  }, (error: unknown) => error)

const expectClientError = (error: unknown, reason: StreamClient.ClientErrorReason): StreamClient.ClientError => {
  expect(error).toBeInstanceOf(StreamClient.ClientError)
  const clientError = error as StreamClient.ClientError
  expect(clientError.reason, clientError.message).toBe(reason)
  return clientError
}

// ---------------------------------------------------------------------------
// Test-local contracts
// ---------------------------------------------------------------------------

class Nope extends Schema.TaggedError<Nope>()(
  "Nope",
  { reason: Schema.String },
  HttpApiSchema.annotations({ status: 409 })
) {}

const Tick = Schema.Struct({ n: Schema.Number, at: Schema.Date })

const failingDownload = Procedure.download("failingDownload", { filename: "never.bin", error: Nope })
const failingExport = Procedure.export("failingExport", { row: Tick, error: Nope, formats: ["ndjson", "json"] })
const forever = Procedure.subscription("forever", { success: Tick })
const ticks = Procedure.subscription("ticks", {
  payload: { last: Schema.Number },
  success: Tick,
  cursor: (tick) => String(tick.n)
})
const firehose = Procedure.subscription("firehose", {
  success: Schema.Struct({ n: Schema.Number, text: Schema.String })
})
const TestApi = RpcGroup.make(failingDownload, failingExport, forever, ticks, firehose)

const Row = Schema.Struct({ id: Schema.Int, text: Schema.String, flag: Schema.Boolean, when: Schema.Date })
const echoRows = Procedure.export("echoRows", {
  payload: { rows: Schema.Array(Row) },
  row: Row,
  columns: ["id", "text", "flag", "when"]
})
const EchoApi = RpcGroup.make(echoRows)

const tickOf = (n: number) => ({ n, at: new Date(Date.UTC(2026, 0, 1) + n * 1000) })

interface TestState {
  /** Completed when the `forever` handler's stream ends, for whatever reason. */
  readonly finalized: Deferred.Deferred<void>
  /** The `Last-Event-ID` each `ticks` connection was asked to resume after. */
  readonly resumedAfter: Array<string | undefined>
  produced: number
}

const testHandlers = (state: TestState) =>
  TestApi.toLayer({
    failingDownload: () => Stream.fail(new Nope({ reason: "no bytes for you" })),
    failingExport: () => Stream.fail(new Nope({ reason: "no rows for you" })),
    forever: () =>
      Stream.iterate(0, (n) => n + 1).pipe(
        Stream.map(tickOf),
        Stream.schedule(Schedule.spaced("5 millis")),
        Stream.ensuring(Deferred.succeed(state.finalized, undefined))
      ),
    ticks: ({ last }, { headers }) => {
      const cursor = Procedure.lastEventId(headers)
      state.resumedAfter.push(cursor)
      const from = cursor === undefined ? 1 : Number(cursor) + 1
      return from > last ? Stream.empty : Stream.range(from, last).pipe(Stream.map(tickOf))
    },
    firehose: () =>
      Stream.iterate(0, (n) => n + 1).pipe(
        Stream.map((n) => ({ n, text: "x".repeat(1000) })),
        Stream.rechunk(64),
        Stream.mapChunksEffect((chunk) =>
          Effect.as(
            Effect.zipRight(
              Effect.sync(() => {
                state.produced += Chunk.size(chunk)
              }),
              Effect.sleep("1 millis")
            ),
            chunk
          )
        )
      )
  })

const testServer = Effect.gen(function*() {
  const state: TestState = { finalized: yield* Deferred.make<void>(), resumedAfter: [], produced: 0 }
  const url = yield* serveGroup(TestApi, testHandlers(state))
  return { state, url }
})

const awaitFinalized = (state: TestState) =>
  Deferred.await(state.finalized).pipe(
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("the handler's finalizer never ran") })
  )

// ---------------------------------------------------------------------------
// Both clients: the Effect-flavoured StreamClient (the contract's Schemas, and
// `.stream`) and the client the generator writes (compiled codecs, no Effect)
// ---------------------------------------------------------------------------

interface Flavour {
  readonly name: string
  readonly make: typeof StreamClient.make
  /** The class this client decodes the contract's class into. */
  readonly classOf: (Class: { readonly name: string }) => Function
  /** Subscriptions are also Effect Streams. */
  readonly effect: boolean
}

const generated = new Map<RpcGroup.RpcGroup<Rpc.Any>, GeneratedClient.GeneratedClient>([
  [DemoApi as unknown as RpcGroup.RpcGroup<Rpc.Any>, await GeneratedClient.load(DemoApi, "DemoApi")],
  [TestApi as unknown as RpcGroup.RpcGroup<Rpc.Any>, await GeneratedClient.load(TestApi, "TestApi")],
  [EchoApi as unknown as RpcGroup.RpcGroup<Rpc.Any>, await GeneratedClient.load(EchoApi, "EchoApi")]
])

const flavours: ReadonlyArray<Flavour> = [
  { name: "StreamClient", make: StreamClient.make, classOf: (Class) => Class as unknown as Function, effect: true },
  {
    name: "generated client",
    make: GeneratedClient.asStreamClient(generated),
    classOf: GeneratedClient.classOf(generated),
    effect: false
  }
]

for (const flavour of flavours) {
  // ---------------------------------------------------------------------------
  // The demo contract
  // ---------------------------------------------------------------------------

  describe(`${flavour.name} against the demo server`, () => {
    it.scopedLive("subscribe: watchPrices gives Price instances with Date fields, in order, through for await", () =>
      Effect.gen(function*() {
        const url = yield* demoServer
        const client = flavour.make(DemoApi, { baseUrl: url })
        const states: Array<StreamClient.ConnectionState> = []
        const subscription = client.subscribe("watchPrices", { symbols: ["ACME", "HOOLI"] }, {
          onState: (state) => states.push(state)
        })
        const prices: Array<Price> = []
        yield* Effect.promise(async () => {
          for await (const price of subscription) {
            prices.push(price)
            if (prices.length === 10) break
          }
        })
        expect(prices).toHaveLength(10)
        for (const price of prices) {
          expect(price).toBeInstanceOf(flavour.classOf(Price))
          expect(price.at).toBeInstanceOf(Date)
          expect(["ACME", "HOOLI"]).toContain(price.symbol)
        }
        const seqs = prices.map((price) => price.seq)
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
        expect(subscription.state).toBe("closed")
        expect(states).toEqual(["connecting", "open", "closed"])
        // lastEventId is the cursor of the last price taken: a new subscription resumes right after it
        const resumed = client.subscribe("watchPrices", { symbols: ["ACME", "HOOLI"] }, {
          lastEventId: subscription.lastEventId!
        })
        const next = yield* Effect.promise(async () => {
          for await (const price of resumed) return price
          throw new Error("the subscription ended")
        })
        resumed.unsubscribe()
        // ACME and HOOLI are the first and last of five round-robin symbols: the next of them is 1 or 4 seqs later
        expect([1, 4]).toContain(next.seq - prices[9]!.seq)
      }).pipe(quiet))

    if (flavour.effect) it.scopedLive("subscribe: onData sees every value and the subscription is also an Effect Stream", () =>
      Effect.gen(function*() {
        const url = yield* demoServer
        const client = flavour.make(DemoApi, { baseUrl: url })
        const seen: Array<Price> = []
        const subscription = client.subscribe("watchPrices", { symbols: ["ACME"] }, { onData: (price) => seen.push(price) })
        const taken = yield* subscription.stream.pipe(Stream.take(5), Stream.runCollect)
        expect(Chunk.size(taken)).toBe(5)
        for (const price of taken) expect(price).toBeInstanceOf(flavour.classOf(Price))
        expect(seen.slice(0, 5)).toEqual(Chunk.toReadonlyArray(taken))
        expect(subscription.state).toBe("closed")
      }).pipe(quiet))

    it.scopedLive("subscribe: an unknown symbol is the typed UnknownSymbol, to onError and the iterator, with no reconnect", () =>
      Effect.gen(function*() {
        const url = yield* demoServer
        const client = flavour.make(DemoApi, { baseUrl: url })
        const errors: Array<unknown> = []
        const states: Array<StreamClient.ConnectionState> = []
        const subscription = client.subscribe("watchPrices", { symbols: ["ACME", "NOPE"] }, {
          onError: (error) => errors.push(error),
          onState: (state) => states.push(state)
        })
        const thrown = yield* Effect.promise(() => failureOf(collect(subscription)))
        expect(thrown).toBeInstanceOf(flavour.classOf(UnknownSymbol))
        expect((thrown as UnknownSymbol).symbol).toBe("NOPE")
        expect(errors).toEqual([thrown])
        expect(states).not.toContain("reconnecting")
        expect(subscription.state).toBe("closed")
      }).pipe(quiet))

    it.scopedLive("subscribe: a payload off the contract fails at once with a Protocol ClientError", () =>
      Effect.gen(function*() {
        const url = yield* demoServer
        const client = flavour.make(DemoApi, { baseUrl: url })
        const tooMany = Array.from({ length: 51 }, () => "ACME")
        const thrown = yield* Effect.promise(() => failureOf(collect(client.subscribe("watchPrices", { symbols: tooMany }))))
        expectClientError(thrown, "Protocol")
      }).pipe(quiet))

    it.scopedLive("call: getQuote resolves a Price; an unknown symbol rejects with the typed UnknownSymbol", () =>
      Effect.gen(function*() {
        const url = yield* demoServer
        const client = flavour.make(DemoApi, { baseUrl: url })
        const quote = yield* Effect.promise(async () => {
          // ACME is unknown until the feed has published its first price (within a tick of starting).
          let quote: Awaited<ReturnType<typeof client.call<"getQuote">>> | undefined
          await eventually(async () => {
            quote = await client.call("getQuote", { symbol: "ACME" }).catch((error: unknown) => {
              if (error instanceof flavour.classOf(UnknownSymbol)) return undefined
              throw error
            })
            return quote !== undefined
          }, 20_000, "ACME's first price")
          return quote!
        })
        expect(quote).toBeInstanceOf(flavour.classOf(Price))
        expect(quote.symbol).toBe("ACME")
        expect(quote.at).toBeInstanceOf(Date)
        const error = yield* Effect.promise(() => failureOf(client.call("getQuote", { symbol: "NOPE" })))
        expect(error).toBeInstanceOf(flavour.classOf(UnknownSymbol))
        expect(error).toMatchObject({ _tag: "UnknownSymbol", symbol: "NOPE", message: "Unknown symbol NOPE" })
      }).pipe(quiet))

    it.scopedLive("call: whoAmI fails with the middleware's typed Unauthorized and Forbidden; headers() runs per request", () =>
      Effect.gen(function*() {
        const url = yield* demoServer
        const anonymous = flavour.make(DemoApi, { baseUrl: url })
        const unauthorized = yield* Effect.promise(() => failureOf(anonymous.call("whoAmI", undefined)))
        expect(unauthorized).toBeInstanceOf(flavour.classOf(Unauthorized))
        const wrong = flavour.make(DemoApi, { baseUrl: url, headers: { authorization: "Bearer stolen" } })
        const forbidden = yield* Effect.promise(() => failureOf(wrong.call("whoAmI", undefined)))
        expect(forbidden).toBeInstanceOf(flavour.classOf(Forbidden))
        let calls = 0
        const client = flavour.make(DemoApi, {
          baseUrl: url,
          headers: async () => {
            calls++
            return { authorization: "Bearer demo-token" }
          }
        })
        expect(yield* Effect.promise(() => client.call("whoAmI", undefined))).toEqual({ name: "demo" })
        expect(yield* Effect.promise(() => client.call("whoAmI", undefined))).toEqual({ name: "demo" })
        expect(calls).toBe(2)
      }).pipe(quiet))

    it.scopedLive("download: the report's bytes (o % 251), its name and size, with progress up to the total", () =>
      Effect.gen(function*() {
        const url = yield* demoServer
        const client = flavour.make(DemoApi, { baseUrl: url })
        const progress: Array<StreamClient.DownloadProgress> = []
        const download = yield* Effect.promise(() =>
          client.download("downloadReport", { sizeMb: 1 }, { onProgress: (p) => progress.push(p) })
        )
        const size = 1024 * 1024
        expect(download.filename).toBe("report-1MB.bin")
        expect(download.contentType).toBe("application/octet-stream")
        expect(download.size).toBe(size)
        const bytes = new Uint8Array(yield* Effect.promise(async () => (await download.blob()).arrayBuffer()))
        expect(bytes.byteLength).toBe(size)
        let mismatches = 0
        for (let o = 0; o < size; o++) if (bytes[o] !== o % 251) mismatches++
        expect(mismatches).toBe(0)
        expect(progress.length).toBeGreaterThan(1)
        expect(progress.at(-1)).toEqual({ received: size, total: size })
        const received = progress.map((p) => p.received)
        expect(received).toEqual([...received].sort((a, b) => a - b))
      }).pipe(quiet))

    it.scopedLive("download: aborting the signal mid-body errors the body with an Aborted ClientError", () =>
      Effect.gen(function*() {
        const url = yield* demoServer
        const client = flavour.make(DemoApi, { baseUrl: url })
        const controller = new AbortController()
        const download = yield* Effect.promise(() =>
          client.download("downloadReport", { sizeMb: 100 }, { signal: controller.signal })
        )
        const reader = download.body.getReader()
        const first = yield* Effect.promise(() => reader.read())
        expect(first.done).toBe(false)
        controller.abort()
        const error = yield* Effect.promise(async () => {
          try {
            for (;;) if ((await reader.read()).done) return undefined
          } catch (error) {
            return error
          }
        })
        expectClientError(error, "Aborted")
        const early = yield* Effect.promise(() =>
          failureOf(client.call("getQuote", { symbol: "ACME" }, { signal: AbortSignal.abort() }))
        )
        expectClientError(early, "Aborted")
      }).pipe(quiet))

    it.scopedLive("saveToFile writes the download to disk", () =>
      Effect.gen(function*() {
        const url = yield* demoServer
        const client = flavour.make(DemoApi, { baseUrl: url })
        const dir = yield* Effect.acquireRelease(
          Effect.promise(() => mkdtemp(join(tmpdir(), "stream-client-"))),
          (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
        )
        const path = join(dir, "report.bin")
        const download = yield* Effect.promise(() => client.download("downloadReport", { sizeMb: 0.5 }))
        yield* Effect.promise(() => saveToFile(download, path))
        const bytes = yield* Effect.promise(() => readFile(path))
        expect(bytes.byteLength).toBe(512 * 1024)
        expect(bytes.every((byte, o) => byte === o % 251)).toBe(true)
      }).pipe(quiet))

    it.scopedLive("export: csv, json and ndjson decode to the same Orders (commas, quotes, newlines, unicode, formulas, optional notes)", () =>
      Effect.gen(function*() {
        const url = yield* demoServer
        const client = flavour.make(DemoApi, { baseUrl: url })
        const count = 300
        const byFormat = yield* Effect.promise(() =>
          Promise.all((["ndjson", "json", "csv"] as const).map(async (format) => {
            const exported = await client.export("exportOrders", { count }, { format })
            expect(exported.filename).toBe(`orders.${format}`)
            return collect(exported)
          }))
        )
        const [ndjson, json, csv] = byFormat
        expect(ndjson).toHaveLength(count)
        for (const order of ndjson!) {
          expect(order).toBeInstanceOf(flavour.classOf(Order))
          expect(order.placedAt).toBeInstanceOf(Date)
        }
        expect(ndjson).toEqual(Array.from({ length: count }, (_, i) => orderAt(i)))
        expect(json).toEqual(ndjson)
        expect(csv).toEqual(ndjson)
        for (const order of csv!) expect(order).toBeInstanceOf(flavour.classOf(Order))
        // The cells that make CSV hard are there.
        const customers = new Set(ndjson!.map((order) => order.customer))
        expect(customers).toContain("=cmd|'/C calc'!A0")
        expect(customers).toContain("Smith, Jones & Partners")
        expect(customers).toContain("Grace \"Amazing\" Hopper")
        expect(ndjson!.some((order) => order.note === undefined)).toBe(true)
        expect(ndjson!.some((order) => order.note === "gift wrap,\nplease")).toBe(true)
        expect([...orderColumns]).toEqual(["id", "customer", "total", "placedAt", "note"])
      }).pipe(quiet), 30_000)

    it.scopedLive("export: the default format (csv) and an empty export", () =>
      Effect.gen(function*() {
        const url = yield* demoServer
        const client = flavour.make(DemoApi, { baseUrl: url })
        const exported = yield* Effect.promise(() => client.export("exportOrders", { count: 3 }))
        expect(exported.contentType).toBe("text/csv; charset=utf-8")
        expect(yield* Effect.promise(() => collect(exported))).toEqual([orderAt(0), orderAt(1), orderAt(2)])
        for (const format of ["csv", "json", "ndjson"] as const) {
          const empty = yield* Effect.promise(() => client.export("exportOrders", { count: 0 }, { format }))
          expect(yield* Effect.promise(() => collect(empty))).toEqual([])
        }
      }).pipe(quiet))

    it.scopedLive("an HTTP error that is not a typed error (404 for a procedure the server lacks) is a Protocol ClientError with its status", () =>
      Effect.gen(function*() {
        const url = yield* demoServer
        const client = flavour.make(TestApi, { baseUrl: url })
        const error = yield* Effect.promise(() => failureOf(client.download("failingDownload", undefined)))
        expect(expectClientError(error, "Protocol").status).toBe(404)
        const subscriptionError = yield* Effect.promise(() => failureOf(collect(client.subscribe("forever", undefined))))
        expect(expectClientError(subscriptionError, "Protocol").status).toBe(404)
      }).pipe(quiet))
  })

  // ---------------------------------------------------------------------------
  // Test-local contracts: typed failures, cancellation, reconnection
  // ---------------------------------------------------------------------------

  describe(`${flavour.name} typed failures of downloads and exports`, () => {
    it.scopedLive("a download or export whose handler fails before the first byte rejects with the typed error", () =>
      Effect.gen(function*() {
        const { url } = yield* testServer
        const client = flavour.make(TestApi, { baseUrl: url })
        const downloadError = yield* Effect.promise(() => failureOf(client.download("failingDownload", undefined)))
        expect(downloadError).toBeInstanceOf(flavour.classOf(Nope))
        expect((downloadError as Nope).reason).toBe("no bytes for you")
        for (const format of ["ndjson", "json"] as const) {
          const exportError = yield* Effect.promise(() => failureOf(client.export("failingExport", undefined, { format })))
          expect(exportError).toBeInstanceOf(flavour.classOf(Nope))
          expect((exportError as Nope).reason).toBe("no rows for you")
        }
      }).pipe(quiet))
  })

  describe(`${flavour.name} cancellation reaches the server`, () => {
    it.scopedLive("aborting the AbortSignal closes the request and the handler's stream ends", () =>
      Effect.gen(function*() {
        const { state, url } = yield* testServer
        const client = flavour.make(TestApi, { baseUrl: url })
        const controller = new AbortController()
        const values: Array<number> = []
        const states: Array<StreamClient.ConnectionState> = []
        const subscription = client.subscribe("forever", undefined, {
          signal: controller.signal,
          onData: (tick) => {
            values.push(tick.n)
            if (values.length === 3) controller.abort()
          },
          onState: (s) => states.push(s)
        })
        yield* awaitFinalized(state)
        expect(values).toEqual([0, 1, 2])
        expect(subscription.state).toBe("closed")
        expect(states).toEqual(["connecting", "open", "closed"])
      }).pipe(quiet))

    it.scopedLive("breaking out of for await closes the request and the handler's stream ends", () =>
      Effect.gen(function*() {
        const { state, url } = yield* testServer
        const client = flavour.make(TestApi, { baseUrl: url })
        const subscription = client.subscribe("forever", undefined)
        const values: Array<number> = []
        yield* Effect.promise(async () => {
          for await (const tick of subscription) {
            expect(tick.at).toBeInstanceOf(Date)
            values.push(tick.n)
            if (values.length === 2) break
          }
        })
        yield* awaitFinalized(state)
        expect(values).toEqual([0, 1])
        expect(subscription.state).toBe("closed")
      }).pipe(quiet))

    if (flavour.effect) it.scopedLive("interrupting the Effect Stream closes the request and the handler's stream ends", () =>
      Effect.gen(function*() {
        const { state, url } = yield* testServer
        const client = flavour.make(TestApi, { baseUrl: url })
        const subscription = client.subscribe("forever", undefined)
        const taken = yield* subscription.stream.pipe(Stream.take(4), Stream.runCollect)
        expect(Chunk.toReadonlyArray(taken).map((tick) => tick.n)).toEqual([0, 1, 2, 3])
        yield* awaitFinalized(state)
        expect(subscription.state).toBe("closed")
      }).pipe(quiet))

    it.scopedLive("unsubscribe() closes the request and the handler's stream ends", () =>
      Effect.gen(function*() {
        const { state, url } = yield* testServer
        const client = flavour.make(TestApi, { baseUrl: url })
        const subscription = client.subscribe("forever", undefined)
        const iterator = subscription[Symbol.asyncIterator]()
        expect((yield* Effect.promise(() => iterator.next())).value).toMatchObject({ n: 0 })
        subscription.unsubscribe()
        expect(subscription.state).toBe("closed")
        expect((yield* Effect.promise(() => iterator.next())).done).toBe(true)
        yield* awaitFinalized(state)
      }).pipe(quiet))
  })

  describe(`${flavour.name} reconnection`, () => {
    it.scopedLive("resumes after connections cut mid-stream: 1..N in order exactly once, Last-Event-ID right, fresh headers each time", () =>
      Effect.gen(function*() {
        const { state, url } = yield* testServer
        const proxy = yield* cuttingProxy(url, 300)
        let headerCalls = 0
        const client = flavour.make(TestApi, {
          baseUrl: proxy,
          headers: () => {
            headerCalls++
            return { "x-attempt": String(headerCalls) }
          }
        })
        const last = 40
        const states: Array<StreamClient.ConnectionState> = []
        const idsAtReconnect: Array<string | undefined> = []
        const dropped: Array<number> = []
        let subscription: StreamClient.Subscription<typeof Tick.Type, never> | undefined
        subscription = client.subscribe("ticks", { last }, {
          reconnect: { initialDelayMs: 1, maxDelayMs: 5 },
          onDropped: (count) => dropped.push(count ?? -1),
          onState: (s) => {
            states.push(s)
            if (s === "reconnecting") idsAtReconnect.push(subscription?.lastEventId)
          }
        })
        const values = yield* Effect.promise(() => collect(subscription))
        expect(values.map((tick) => tick.n)).toEqual(Array.from({ length: last }, (_, i) => i + 1))
        for (const tick of values) expect(tick.at).toEqual(tickOf(tick.n).at)
        expect(dropped).toEqual([])
        // Every connection reached the handler with the cursor the client had when it reconnected.
        expect(idsAtReconnect.length).toBeGreaterThanOrEqual(3)
        expect(state.resumedAfter).toEqual([undefined, ...idsAtReconnect])
        const cursors = idsAtReconnect.map(Number)
        expect(cursors).toEqual([...cursors].sort((a, b) => a - b))
        expect(headerCalls).toBe(state.resumedAfter.length)
        expect(states.slice(0, 4)).toEqual(["connecting", "open", "reconnecting", "open"])
        expect(states.at(-1)).toBe("closed")
        expect(subscription.state).toBe("closed")
        expect(subscription.lastEventId).toBe(String(last))
      }).pipe(quiet), 30_000)

    it.scopedLive("starts after options.lastEventId", () =>
      Effect.gen(function*() {
        const { state, url } = yield* testServer
        const client = flavour.make(TestApi, { baseUrl: url })
        const values = yield* Effect.promise(() => collect(client.subscribe("ticks", { last: 10 }, { lastEventId: "7" })))
        expect(values.map((tick) => tick.n)).toEqual([8, 9, 10])
        expect(state.resumedAfter).toEqual(["7"])
      }).pipe(quiet))

    it.scopedLive("heartbeat watchdog: a server that goes silent is reconnected to; after maxAttempts the Timeout is reported", () =>
      Effect.gen(function*() {
        let connections = 0
        const url = yield* rawServer((_, response) => {
          connections++
          response.writeHead(200, { "content-type": "text/event-stream" })
          response.write(": ok\n\n")
        })
        const client = flavour.make(TestApi, { baseUrl: url })
        const errors: Array<unknown> = []
        const states: Array<StreamClient.ConnectionState> = []
        const subscription = client.subscribe("forever", undefined, {
          // the watchdog runs from the request on: room for a loaded machine to get the response's head
          heartbeatTimeoutMs: 250,
          reconnect: { initialDelayMs: 1, maxAttempts: 2 },
          onError: (error) => errors.push(error),
          onState: (s) => states.push(s)
        })
        const thrown = yield* Effect.promise(() => failureOf(collect(subscription)))
        expectClientError(thrown, "Timeout")
        expect(errors).toEqual([thrown])
        expect(connections).toBe(3)
        expect(states).toEqual(["connecting", "open", "reconnecting", "open", "reconnecting", "open", "closed"])
      }).pipe(quiet))

    it.scopedLive("heartbeat comments keep a quiet subscription alive; the server's retry: sets the backoff base", () =>
      Effect.gen(function*() {
        let connections = 0
        const url = yield* rawServer((_, response) => {
          connections++
          response.writeHead(200, { "content-type": "text/event-stream" })
          // A retry: far too large for a timer is clamped to maxDelayMs.
          response.write("retry: 99999999999999999999999999999999\n\n: ok\n\n")
          const timer = setInterval(() => response.write(": heartbeat\n\n"), 10)
          let sent = 0
          const values = setInterval(() => {
            sent++
            response.write(`data: ${JSON.stringify({ n: sent, at: new Date(0).toISOString() })}\n\n`)
            if (sent === 3) {
              clearInterval(values)
              clearInterval(timer)
              response.end() // no end event: the client reconnects
            }
          }, 250)
          response.on("close", () => {
            clearInterval(timer)
            clearInterval(values)
          })
        })
        const client = flavour.make(TestApi, { baseUrl: url })
        const values: Array<number> = []
        const subscription = client.subscribe("forever", undefined, {
          // far more than the heartbeat interval (a loaded machine delays timers), less than the values'
          // (a late timer only widens the gap between values)
          heartbeatTimeoutMs: 200,
          reconnect: { initialDelayMs: 1, maxDelayMs: 1 },
          onData: (tick) => values.push(tick.n)
        })
        yield* Effect.promise(() => eventually(() => values.length >= 6))
        subscription.unsubscribe()
        // Each connection delivered its 3 values although each came after more than heartbeatTimeoutMs.
        expect(values.slice(0, 6)).toEqual([1, 2, 3, 1, 2, 3])
        expect(connections).toBeGreaterThanOrEqual(2)
      }).pipe(quiet))

    it.scopedLive("a server that refuses every connection: maxAttempts reconnects, then a Transport ClientError", () =>
      Effect.gen(function*() {
        let connections = 0
        const url = yield* rawServer((request) => {
          connections++
          request.socket.destroy()
        })
        const client = flavour.make(TestApi, { baseUrl: url })
        const errors: Array<unknown> = []
        const subscription = client.subscribe("forever", undefined, {
          reconnect: { initialDelayMs: 1, maxAttempts: 3 },
          onError: (error) => errors.push(error)
        })
        const thrown = yield* Effect.promise(() => failureOf(collect(subscription)))
        expectClientError(thrown, "Transport")
        expect(errors).toEqual([thrown])
        expect(connections).toBe(4)
        expect(subscription.state).toBe("closed")
      }).pipe(quiet))

    it.scopedLive("a 503 is retried; a 400 that is not a typed error is not", () =>
      Effect.gen(function*() {
        let connections = 0
        const url = yield* rawServer((request, response) => {
          connections++
          const status = request.url?.endsWith("/forever") ? 503 : 400
          response.writeHead(status, { "content-type": "application/json" })
          response.end(JSON.stringify({ _tag: "Whatever", message: "busy" }))
        })
        const client = flavour.make(TestApi, { baseUrl: url })
        const busy = yield* Effect.promise(() =>
          failureOf(collect(client.subscribe("forever", undefined, { reconnect: { initialDelayMs: 1, maxAttempts: 2 } })))
        )
        expect(expectClientError(busy, "Protocol").status).toBe(503)
        expect(connections).toBe(3)
        connections = 0
        const bad = yield* Effect.promise(() =>
          failureOf(collect(client.subscribe("firehose", undefined, { reconnect: { initialDelayMs: 1, maxAttempts: 2 } })))
        )
        expect(expectClientError(bad, "Protocol").status).toBe(400)
        expect(connections).toBe(1)
      }).pipe(quiet))
  })

  describe(`${flavour.name} backpressure`, () => {
    it.scopedLive("a consumer that stops pulling stops the client reading; the server drops and counts, the client reports it", () =>
      Effect.gen(function*() {
        const { state, url } = yield* testServer
        let bytesRead = 0
        const countingFetch: typeof globalThis.fetch = async (input, init) => {
          const response = await globalThis.fetch(input, init)
          const counted = response.body!.pipeThrough(
            new TransformStream<Uint8Array, Uint8Array>({
              transform(chunk, controller) {
                bytesRead += chunk.byteLength
                controller.enqueue(chunk)
              }
            })
          )
          return new Response(counted, { status: response.status, headers: response.headers })
        }
        const client = flavour.make(TestApi, { baseUrl: url, fetch: countingFetch })
        const dropped: Array<number> = []
        const subscription = client.subscribe("firehose", undefined, { onDropped: (count) => dropped.push(count ?? -1) })
        const iterator = subscription[Symbol.asyncIterator]()
        expect((yield* Effect.promise(() => iterator.next())).value).toMatchObject({ n: 0 })
        // The consumer stalls; the producer runs on (the sliding policy drops for it).
        yield* Effect.promise(() => eventually(() => state.produced > 20_000))
        const stalledAt = yield* Effect.promise(() => settled(() => bytesRead))
        // 20,000 values are over 20 MB; the client read only what its queue and the stream buffers hold.
        expect(stalledAt).toBeLessThan(4 * 1024 * 1024)
        // Pulling again resumes reading, and the gap is reported.
        yield* Effect.promise(async () => {
          while (dropped.length === 0) await iterator.next()
        })
        expect(dropped[0]).toBeGreaterThan(0)
        yield* Effect.promise(async () => {
          await iterator.return?.()
        })
        expect(subscription.state).toBe("closed")
      }).pipe(quiet), 30_000)
  })

  // ---------------------------------------------------------------------------
  // Truncation
  // ---------------------------------------------------------------------------

  describe(`${flavour.name} truncated transfers`, () => {
    const truncatingServer = rawServer((_, response) => {
      response.writeHead(200, {
        "content-type": "application/octet-stream",
        "content-length": "100000",
        "content-disposition": "attachment; filename=\"cut.bin\"; filename*=UTF-8''cut%E2%9C%82.bin"
      })
      response.write(new Uint8Array(40_000), () => response.socket?.destroy())
    })

    it.scopedLive("a body cut before Content-Length errors with a Truncated ClientError", () =>
      Effect.gen(function*() {
        const url = yield* truncatingServer
        const client = flavour.make(TestApi, { baseUrl: url })
        const progress: Array<StreamClient.DownloadProgress> = []
        const download = yield* Effect.promise(() =>
          client.download("failingDownload", undefined, { onProgress: (p) => progress.push(p) })
        )
        expect(download.filename).toBe("cut✂.bin")
        expect(download.size).toBe(100_000)
        const error = yield* Effect.promise(() => failureOf(download.blob()))
        expectClientError(error, "Truncated")
        expect(progress.at(-1)?.received).toBeLessThan(100_000)
        expect(progress.at(-1)?.total).toBe(100_000)
      }).pipe(quiet))

    it.scopedLive("saveToFile rejects with the Truncated ClientError and leaves no partial file", () =>
      Effect.gen(function*() {
        const url = yield* truncatingServer
        const client = flavour.make(TestApi, { baseUrl: url })
        const dir = yield* Effect.acquireRelease(
          Effect.promise(() => mkdtemp(join(tmpdir(), "stream-client-"))),
          (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
        )
        const path = join(dir, "cut.bin")
        const download = yield* Effect.promise(() => client.download("failingDownload", undefined))
        const error = yield* Effect.promise(() => failureOf(saveToFile(download, path)))
        expectClientError(error, "Truncated")
        expect(yield* Effect.promise(() => stat(path).then(() => true, () => false))).toBe(false)
      }).pipe(quiet))

    it("a body that ends cleanly short of Content-Length errors with a Truncated ClientError", async () => {
      const shortFetch: typeof globalThis.fetch = async () =>
        new Response(new Uint8Array(10), { headers: { "content-length": "20", "content-type": "application/x-test" } })
      const client = flavour.make(TestApi, { baseUrl: "http://example.invalid/rpc", fetch: shortFetch })
      const download = await client.download("failingDownload", undefined)
      expect(download.contentType).toBe("application/x-test")
      expectClientError(await failureOf(download.blob()), "Truncated")
    })

    it("an export body cut in the middle of the rows fails the iteration", async () => {
      const body = "{\"n\":1,\"at\":\"2026-01-01T00:00:00.000Z\"}\n{\"n\":2,"
      let pulls = 0
      const cut: typeof globalThis.fetch = async () =>
        new Response(
          new ReadableStream<Uint8Array>({
            pull(controller) {
              if (pulls++ === 0) controller.enqueue(new TextEncoder().encode(body))
              else controller.error(new TypeError("terminated"))
            }
          }),
          { headers: { "content-type": "application/x-ndjson" } }
        )
      const client = flavour.make(TestApi, { baseUrl: "http://example.invalid/rpc", fetch: cut })
      const exported = await client.export("failingExport", undefined, { format: "ndjson" })
      const rows: Array<unknown> = []
      const error = await failureOf((async () => {
        for await (const row of exported) rows.push(row)
      })())
      expectClientError(error, "Truncated")
      expect(rows).toHaveLength(1)
    })
  })

  // ---------------------------------------------------------------------------
  // Round trip property, and the incremental parsers at every split
  // ---------------------------------------------------------------------------

  describe(`${flavour.name} export round trip`, () => {

    const text = fc.oneof(
      fc.string(),
      fc.fullUnicodeString(),
      fc.stringOf(fc.constantFrom("'", "=", "+", "-", "@", "\t", "\r", "\n", "\r\n", "\"", ",", "a", " ", "é", "1")),
      fc.constantFrom("", "=SUM(A1)", "'=x", "-1", "+1", "@me", "\ttab", "\rcr", "null", "true", "123")
    )
    const row = fc.record({
      id: fc.oneof(fc.integer(), fc.maxSafeInteger()),
      text,
      flag: fc.boolean(),
      when: fc.date({ noInvalidDate: true })
    })

    it.scopedLive("rows of {id: Int, text: String, flag: Boolean, when: Date} come back equal in csv, json and ndjson", () =>
      Effect.gen(function*() {
        const url = yield* serveGroup(EchoApi, EchoApi.toLayer({ echoRows: ({ rows }) => Stream.fromIterable(rows) }))
        const client = flavour.make(EchoApi, { baseUrl: url })
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(fc.array(row, { maxLength: 12 }), async (rows) => {
              for (const format of ["csv", "json", "ndjson"] as const) {
                const exported = await client.export("echoRows", { rows }, { format })
                expect(await collect(exported)).toEqual(rows)
              }
            }),
            { numRuns: 100 }
          )
        )
      }).pipe(quiet), 60_000)
  })
}

// ---------------------------------------------------------------------------
// CSV of an export that declares no columns: the header row names them
// ---------------------------------------------------------------------------

const Note = Schema.Struct({
  id: Schema.Int,
  text: Schema.String,
  at: Schema.Date,
  note: Schema.optional(Schema.String)
})
type Note = typeof Note.Type
const echoNotes = Procedure.export("echoNotes", { payload: { rows: Schema.Array(Note) }, row: Note })
const NoColumnsApi = RpcGroup.make(echoNotes)
/** The same procedure as a newer server serves it: its rows have a field the client's contract does not know. */
const NoteWithTag = Schema.Struct({ ...Note.fields, tag: Schema.String })
const NewerNoColumnsApi = RpcGroup.make(
  Procedure.export("echoNotes", { payload: { rows: Schema.Array(Note) }, row: NoteWithTag })
)

const notesServer = serveGroup(NoColumnsApi, NoColumnsApi.toLayer({ echoNotes: ({ rows }) => Stream.fromIterable(rows) }))

const noteAt = (id: number, text: string, note?: string): Note => ({
  id,
  text,
  at: new Date(Date.UTC(2026, 0, 1) + id * 60_000),
  ...(note === undefined ? {} : { note })
})

describe("StreamClient: CSV of an export without columns", () => {
  it.scopedLive("decodes by the header row to the same rows as json and ndjson (Date, optional field, commas, quotes, newlines)", () =>
    Effect.gen(function*() {
      const url = yield* notesServer
      const client = StreamClient.make(NoColumnsApi, { baseUrl: url })
      const rows = [
        noteAt(1, "plain", "first"),
        noteAt(2, "Smith, Jones & Partners"),
        noteAt(3, "Grace \"Amazing\" Hopper", "gift wrap,\nplease"),
        noteAt(4, "line one\r\nline two", ""),
        noteAt(5, "=cmd|'/C calc'!A0", "'=already guarded"),
        noteAt(6, "", "-1"),
        noteAt(7, "  spaced  , ünïcödé ✓ 𝄞", "null")
      ]
      const byFormat = yield* Effect.promise(() =>
        Promise.all((["csv", "json", "ndjson"] as const).map(async (format) => {
          const exported = await client.export("echoNotes", { rows }, { format })
          expect(exported.filename).toBe(`echoNotes.${format}`)
          return collect(exported)
        }))
      )
      const [csv, json, ndjson] = byFormat
      expect(json).toEqual(rows)
      expect(ndjson).toEqual(rows)
      expect(csv).toEqual(rows)
      for (const note of csv!) expect(note.at).toBeInstanceOf(Date)
      expect(csv!.filter((note) => !("note" in note)).map((note) => note.id)).toEqual([2])
    }).pipe(quiet))

  it.scopedLive("the header names every field of the row schema, so a first row without the optional field loses nothing later", () =>
    Effect.gen(function*() {
      const url = yield* notesServer
      const rows = [noteAt(1, "no note"), noteAt(2, "noted", "kept")]
      const response = yield* Effect.promise(() =>
        fetch(`${url}/echoNotes?format=csv&payload=${encodeURIComponent(JSON.stringify({ rows: rows.map((row) => ({ ...row, at: row.at.toISOString() })) }))}`)
      )
      const text = yield* Effect.promise(() => response.text())
      expect(text.split("\r\n")[0]).toBe("id,text,at,note")
      const client = StreamClient.make(NoColumnsApi, { baseUrl: url })
      const csv = yield* Effect.promise(async () => collect(await client.export("echoNotes", { rows }, { format: "csv" })))
      expect(csv).toEqual(rows)
    }).pipe(quiet))

  it.scopedLive("round trip property: csv rows equal the json rows", () =>
    Effect.gen(function*() {
      const url = yield* notesServer
      const client = StreamClient.make(NoColumnsApi, { baseUrl: url })
      const text = fc.oneof(
        fc.string(),
        fc.stringOf(fc.constantFrom("'", "=", "+", "-", "@", "\t", "\r", "\n", "\r\n", "\"", ",", "a", " ", "é")),
        fc.constantFrom("", "=SUM(A1)", "'=x", "-1", "null", "true", "123")
      )
      const note = fc.record({
        id: fc.integer(),
        text,
        at: fc.date({ noInvalidDate: true }),
        note: fc.option(text, { nil: undefined })
      }).map(({ note, ...rest }): Note => (note === undefined ? rest : { ...rest, note }))
      // The first row carries the optional field, so that the header names it.
      const rows = fc.tuple(note, text, fc.array(note, { maxLength: 8 })).map(([first, text, rest]) => [
        { ...first, note: first.note ?? text },
        ...rest
      ])
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(rows, async (rows) => {
            for (const format of ["csv", "json"] as const) {
              expect(await collect(await client.export("echoNotes", { rows }, { format }))).toEqual(rows)
            }
          }),
          { numRuns: 50 }
        )
      )
    }).pipe(quiet), 60_000)

  it.scopedLive("an empty export, with no body or a header only, yields no rows", () =>
    Effect.gen(function*() {
      const url = yield* notesServer
      const client = StreamClient.make(NoColumnsApi, { baseUrl: url })
      const empty = yield* Effect.promise(() => client.export("echoNotes", { rows: [] }, { format: "csv" }))
      expect(yield* Effect.promise(() => collect(empty))).toEqual([])
      const headerOnly = yield* rawServer((_, response) => {
        response.writeHead(200, { "content-type": "text/csv; charset=utf-8" })
        response.end("id,text,at,note\r\n")
      })
      const raw = StreamClient.make(NoColumnsApi, { baseUrl: headerOnly })
      const exported = yield* Effect.promise(() => raw.export("echoNotes", { rows: [] }, { format: "csv" }))
      expect(yield* Effect.promise(() => collect(exported))).toEqual([])
    }).pipe(quiet))

  it.scopedLive("a row that takes any key (an index signature) takes every header column", () =>
    Effect.gen(function*() {
      const Tags = Schema.Record({ key: Schema.String, value: Schema.String })
      const echoTags = Procedure.export("echoTags", { payload: { rows: Schema.Array(Tags) }, row: Tags })
      const TagsApi = RpcGroup.make(echoTags)
      const url = yield* serveGroup(TagsApi, TagsApi.toLayer({ echoTags: ({ rows }) => Stream.fromIterable(rows) }))
      const client = StreamClient.make(TagsApi, { baseUrl: url })
      const rows = [{ a: "1", "b, c": "two\nlines" }, { a: "", "b, c": "=3" }]
      const exported = yield* Effect.promise(() => client.export("echoTags", { rows }, { format: "csv" }))
      expect(yield* Effect.promise(() => collect(exported))).toEqual(rows)
    }).pipe(quiet))

  it.scopedLive("a header column the row schema does not know fails with a Protocol ClientError, not dropped", () =>
    Effect.gen(function*() {
      const url = yield* serveGroup(
        NewerNoColumnsApi,
        NewerNoColumnsApi.toLayer({ echoNotes: ({ rows }) => Stream.fromIterable(rows.map((row) => ({ ...row, tag: "new" }))) })
      )
      const client = StreamClient.make(NoColumnsApi, { baseUrl: url })
      const rows = [noteAt(1, "one"), noteAt(2, "two")]
      // The server's rows carry a tag the client's contract lacks: json drops it, as Schema does.
      const json = yield* Effect.promise(() => client.export("echoNotes", { rows }, { format: "json" }))
      expect(yield* Effect.promise(() => collect(json))).toEqual(rows)
      // CSV fails on the header: the column the schema does not know is reported, not dropped.
      const csv = yield* Effect.promise(() => client.export("echoNotes", { rows }, { format: "csv" }))
      const taken: Array<Note> = []
      const error = yield* Effect.promise(() =>
        failureOf((async () => {
          for await (const row of csv) taken.push(row)
        })())
      )
      expect(expectClientError(error, "Protocol").message).toContain("tag")
      expect(taken).toEqual([])
    }).pipe(quiet))
})

/** `text` cut into pieces at the given (sorted, deduplicated) offsets. */
describe("StreamClient types", () => {
  it("are the contract's types, not any", () => {
    type Demo = RpcGroup.Rpcs<typeof DemoApi>
    type Of<Tag extends string> = Rpc.ExtractTag<Demo, Tag>
    expectTypeOf<StreamClient.SuccessOf<Of<"watchPrices">>>().toEqualTypeOf<Price>()
    expectTypeOf<StreamClient.ErrorOf<Of<"watchPrices">>>().toEqualTypeOf<UnknownSymbol>()
    expectTypeOf<StreamClient.SuccessOf<Of<"exportOrders">>>().toEqualTypeOf<Order>()
    expectTypeOf<StreamClient.SuccessOf<Of<"downloadReport">>>().toEqualTypeOf<Uint8Array>()
    expectTypeOf<StreamClient.SuccessOf<Of<"getQuote">>>().toEqualTypeOf<Price>()
    expectTypeOf<StreamClient.ErrorOf<Of<"getQuote">>>().toEqualTypeOf<UnknownSymbol>()
    expectTypeOf<StreamClient.ErrorOf<Of<"whoAmI">>>().toEqualTypeOf<Unauthorized | Forbidden>()
    expectTypeOf<StreamClient.PayloadOf<Of<"watchPrices">>>().toEqualTypeOf<{ readonly symbols: ReadonlyArray<string> }>()
    const client = StreamClient.make(DemoApi, { baseUrl: "/rpc" })
    expectTypeOf(client.subscribe<"watchPrices">).returns.toEqualTypeOf<StreamClient.Subscription<Price, UnknownSymbol>>()
    expectTypeOf(client.export<"exportOrders">).returns.toEqualTypeOf<Promise<StreamClient.Export<Order>>>()
    expectTypeOf(client.call<"whoAmI">).returns.toEqualTypeOf<Promise<{ readonly name: string }>>()
    expectTypeOf(client.subscribe<"watchPrices">).parameter(2).toEqualTypeOf<
      StreamClient.SubscribeOptions<Price, UnknownSymbol> | undefined
    >()
  })
})
