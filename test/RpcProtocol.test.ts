/**
 * RpcProtocol over real loopback sockets: `RpcClient.make(group)` from
 * @effect/rpc against `HttpTransport` serving the demo contract, and against
 * raw node:http servers that misbehave on purpose.
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import * as RpcClient from "@effect/rpc/RpcClient"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Http from "node:http"
import * as RpcProtocol from "../client/effect/RpcProtocol.ts"
import { DemoApi, Order, Price, UnknownSymbol } from "../examples/demo/contract.ts"
import { AuthenticationLive, DemoHandlers, orderAt } from "../examples/demo/handlers.ts"
import * as PriceFeed from "../examples/demo/PriceFeed.ts"
import * as HttpTransport from "../src/server/HttpTransport.ts"
import * as Procedure from "../src/contract/Procedure.ts"
import { Forbidden, Unauthorized } from "../src/contract/ProtocolError.ts"
import { listen, quiet, rawServer, settled } from "./support/http.ts"

// The request scope is provided by the server for every request.
const serve = (app: HttpApp.Default<never, import("effect/Scope").Scope>) => listen(app as HttpApp.Default<never, never>)

/** The demo contract served by HttpTransport on a loopback port; its base URL (`…/rpc`). */
const demoServer = Effect.gen(function*() {
  const context = yield* Layer.build(
    Layer.mergeAll(DemoHandlers, AuthenticationLive).pipe(
      Layer.provideMerge(PriceFeed.layer({ pricesPerSecond: 1000 }))
    )
  )
  const app = yield* HttpTransport.toHttpApp(DemoApi).pipe(Effect.provide(context))
  return `${yield* serve(app)}/rpc`
})

/** `RpcClient.make(group)` over the layer of this protocol, for the lifetime of the scope. */
const clientOf = <Rpcs extends import("@effect/rpc/Rpc").Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options: RpcProtocol.Options
) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(RpcProtocol.layer(group, options))
    return yield* RpcClient.make(group).pipe(Effect.provide(context))
  })

const demoClient = (url: string, options: Partial<RpcProtocol.Options> = {}) =>
  clientOf(DemoApi, { ...options, url })

const encodePrice = Schema.encodeSync(Price)
const aPrice = (seq: number) => encodePrice(new Price({ seq, symbol: "ACME", price: 100 + seq, at: new Date(Date.UTC(2026, 0, 1)) }))

const expectProtocolError = (error: unknown, message: RegExp) => {
  expect(error).toBeInstanceOf(RpcClientError)
  const clientError = error as RpcClientError
  expect(clientError.reason).toBe("Protocol")
  expect(clientError.message).toMatch(message)
}

describe("RpcProtocol: every kind of the demo contract through RpcClient", () => {
  it.scopedLive("subscription: watchPrices streams decoded Price instances with Date fields", () =>
    quiet(Effect.gen(function*() {
      const client = yield* demoClient(yield* demoServer)
      const prices = Chunk.toReadonlyArray(
        yield* client.watchPrices({ symbols: ["ACME", "HOOLI"] }).pipe(Stream.take(50), Stream.runCollect)
      )
      expect(prices).toHaveLength(50)
      for (const price of prices) {
        expect(price).toBeInstanceOf(Price)
        expect(price.at).toBeInstanceOf(Date)
        expect(["ACME", "HOOLI"]).toContain(price.symbol)
      }
      for (let i = 1; i < prices.length; i++) expect(prices[i]!.seq).toBeGreaterThan(prices[i - 1]!.seq)
    })))

  it.scopedLive("download: downloadReport sizeMb 1 is 1 MiB whose byte at offset o is o % 251", () =>
    quiet(Effect.gen(function*() {
      const client = yield* demoClient(yield* demoServer)
      let offset = 0
      let wrong = 0
      yield* client.downloadReport({ sizeMb: 1 }).pipe(
        Stream.runForEach((bytes) =>
          Effect.sync(() => {
            expect(bytes).toBeInstanceOf(Uint8Array)
            for (let i = 0; i < bytes.byteLength; i++) {
              if (bytes[i] !== (offset + i) % 251) wrong++
            }
            offset += bytes.byteLength
          })
        )
      )
      expect(offset).toBe(1024 * 1024)
      expect(wrong).toBe(0)
    })))

  it.scopedLive("export: exportOrders count 1000 is 1000 decoded Orders, in order", () =>
    quiet(Effect.gen(function*() {
      const client = yield* demoClient(yield* demoServer)
      const orders = Chunk.toReadonlyArray(yield* client.exportOrders({ count: 1000 }).pipe(Stream.runCollect))
      expect(orders).toHaveLength(1000)
      orders.forEach((order, i) => {
        const expected = orderAt(i)
        expect(order).toBeInstanceOf(Order)
        expect(order.placedAt).toBeInstanceOf(Date)
        expect(order.placedAt.toISOString()).toBe(expected.placedAt.toISOString())
        expect({ ...order, placedAt: undefined }).toEqual({ ...expected, placedAt: undefined })
      })
    })))

  it.scopedLive("unary: getQuote answers a Price once the feed has produced one", () =>
    quiet(Effect.gen(function*() {
      const client = yield* demoClient(yield* demoServer)
      // eventually: the feed may not have ticked yet, in which case the symbol has no price
      const quote = yield* client.getQuote({ symbol: "ACME" }).pipe(
        Effect.retry({
          schedule: Schedule.spaced("10 millis"),
          times: 500,
          while: (error) => error._tag === "UnknownSymbol"
        })
      )
      expect(quote).toBeInstanceOf(Price)
      expect(quote.symbol).toBe("ACME")
      expect(quote.at).toBeInstanceOf(Date)
    })))
})

describe("RpcProtocol: typed failures arrive typed", () => {
  it.scopedLive("watchPrices with an unknown symbol fails the stream with UnknownSymbol", () =>
    quiet(Effect.gen(function*() {
      const client = yield* demoClient(yield* demoServer)
      const error = yield* client.watchPrices({ symbols: ["ACME", "NOPE"] }).pipe(Stream.runCollect, Effect.flip)
      expect(error._tag).toBe("UnknownSymbol")
      expect(error).toBeInstanceOf(UnknownSymbol)
      expect((error as UnknownSymbol).symbol).toBe("NOPE")
    })))

  it.scopedLive("getQuote of an unknown symbol fails with UnknownSymbol", () =>
    quiet(Effect.gen(function*() {
      const client = yield* demoClient(yield* demoServer)
      const error = yield* Effect.flip(client.getQuote({ symbol: "NOPE" }))
      expect(error._tag).toBe("UnknownSymbol")
      expect(error).toBeInstanceOf(UnknownSymbol)
    })))

  it.scopedLive("whoAmI: Unauthorized without a token, Forbidden with a wrong one, the user with demo-token", () =>
    quiet(Effect.gen(function*() {
      const url = yield* demoServer
      const client = yield* demoClient(url)

      const missing = yield* Effect.flip(client.whoAmI())
      expect(missing._tag).toBe("Unauthorized")
      expect(missing).toBeInstanceOf(Unauthorized)

      const wrong = yield* Effect.flip(client.whoAmI().pipe(RpcClient.withHeaders({ authorization: "Bearer nope" })))
      expect(wrong._tag).toBe("Forbidden")
      expect(wrong).toBeInstanceOf(Forbidden)

      expect(yield* client.whoAmI().pipe(RpcClient.withHeaders({ authorization: "Bearer demo-token" })))
        .toEqual({ name: "demo" })

      // the same through the layer's headers option (a function, called per request)
      const authenticated = yield* demoClient(url, { headers: () => ({ Authorization: "Bearer demo-token" }) })
      expect(yield* authenticated.whoAmI()).toEqual({ name: "demo" })
    })))

  it.scopedLive("an error of the transport itself (404 for an unknown procedure) is an RpcClientError", () =>
    quiet(Effect.gen(function*() {
      const url = yield* demoServer
      class Elsewhere extends RpcGroup.make(
        Procedure.unary("notServed", { success: Schema.String }),
        Procedure.subscription("notServedEither", { success: Schema.String })
      ) {}
      const client = yield* clientOf(Elsewhere, { url })
      const unary = yield* Effect.flip(client.notServed())
      expectProtocolError(unary, /Unknown procedure: notServed/)
      expect(unary.cause).toMatchObject({ _tag: "NotFound" })
      const stream = yield* client.notServedEither().pipe(Stream.runCollect, Effect.flip)
      expectProtocolError(stream, /Unknown procedure: notServedEither/)
    })))
})

describe("RpcProtocol: the end of a stream reaches the server", () => {
  const ticks = Procedure.subscription("ticks", { success: Schema.Number })
  class TickApi extends RpcGroup.make(ticks) {}

  const tickServer = Effect.gen(function*() {
    const finalized = yield* Deferred.make<void>()
    const context = yield* Layer.build(TickApi.toLayer({
      ticks: () =>
        Stream.iterate(0, (n) => n + 1).pipe(
          Stream.schedule(Schedule.spaced("5 millis")),
          Stream.ensuring(Deferred.succeed(finalized, undefined))
        )
    }))
    const app = yield* HttpTransport.toHttpApp(TickApi).pipe(Effect.provide(context))
    return { url: `${yield* serve(app)}/rpc`, finalized }
  })

  it.scopedLive("a consumer done after 2 values aborts the request: the handler's finalizer runs", () =>
    quiet(Effect.gen(function*() {
      const { finalized, url } = yield* tickServer
      const client = yield* clientOf(TickApi, { url })
      const values = yield* client.ticks().pipe(Stream.take(2), Stream.runCollect)
      expect(Chunk.toReadonlyArray(values)).toEqual([0, 1])
      yield* Deferred.await(finalized).pipe(Effect.timeoutFail({
        duration: "10 seconds",
        onTimeout: () => new Error("the server handler was never finalized")
      }))
    })))

  it.scopedLive("interrupting the consuming fiber aborts the request: the handler's finalizer runs", () =>
    quiet(Effect.gen(function*() {
      const { finalized, url } = yield* tickServer
      const client = yield* clientOf(TickApi, { url })
      const first = yield* Deferred.make<void>()
      const fiber = yield* client.ticks().pipe(
        Stream.tap(() => Deferred.succeed(first, undefined)),
        Stream.runDrain,
        Effect.fork
      )
      yield* Deferred.await(first)
      yield* Fiber.interrupt(fiber)
      yield* Deferred.await(finalized).pipe(Effect.timeoutFail({
        duration: "10 seconds",
        onTimeout: () => new Error("the server handler was never finalized")
      }))
    })))
})

describe("RpcProtocol: a broken or silent server is a typed RpcClientError, never a hang", () => {
  it.scopedLive("an event stream that ends without its end event", () =>
    Effect.gen(function*() {
      const url = yield* rawServer((_request, response) => {
        response.writeHead(200, { "content-type": "text/event-stream" })
        response.write(": ok\n\n")
        response.end(`data: ${JSON.stringify(aPrice(1))}\n\n`)
      })
      const client = yield* demoClient(url)
      const received: Array<Price> = []
      const error = yield* client.watchPrices({ symbols: ["ACME"] }).pipe(
        Stream.runForEach((price) => Effect.sync(() => received.push(price))),
        Effect.flip
      )
      expectProtocolError(error, /The stream ended before its end event/)
      expect(received.map((price) => price.seq)).toEqual([1])
    }))

  it.scopedLive("a download whose connection is cut before Content-Length bytes", () =>
    Effect.gen(function*() {
      const url = yield* rawServer((_request, response) => {
        response.writeHead(200, { "content-type": "application/octet-stream", "content-length": "100000" })
        response.write(new Uint8Array(1000), () => response.socket?.destroy())
      })
      const client = yield* demoClient(url)
      const error = yield* client.downloadReport({ sizeMb: 1 }).pipe(Stream.runDrain, Effect.flip)
      expectProtocolError(error, /truncated/)
    }))

  it.scopedLive("an export whose last row has no end of line", () =>
    Effect.gen(function*() {
      const url = yield* rawServer((request, response) => {
        expect(request.url).toBe("/rpc/exportOrders?format=ndjson")
        const row = JSON.stringify(Schema.encodeSync(Order)(orderAt(0)))
        response.writeHead(200, { "content-type": "application/x-ndjson" })
        response.end(`${row}\n${row.slice(0, 10)}`)
      })
      const client = yield* demoClient(url)
      const error = yield* client.exportOrders({ count: 2 }).pipe(Stream.runDrain, Effect.flip)
      expectProtocolError(error, /truncated/)
    }))

  it.scopedLive("a subscription silent for longer than heartbeatTimeout fails and aborts the request", () =>
    Effect.gen(function*() {
      const closed = yield* Deferred.make<void>()
      const url = yield* rawServer((_request, response) => {
        response.on("close", () => Deferred.unsafeDone(closed, Effect.void))
        response.writeHead(200, { "content-type": "text/event-stream" })
        response.write(": ok\n\n")
      })
      const client = yield* demoClient(url, { heartbeatTimeout: "200 millis" })
      const error = yield* client.watchPrices({ symbols: ["ACME"] }).pipe(Stream.runDrain, Effect.flip)
      expectProtocolError(error, /No data or heartbeat for/)
      // the fetch was aborted: the server sees the connection close
      yield* Deferred.await(closed)
    }))

  it.scopedLive("dropped events go to onDropped; an error event outside the rpc's errors is an RpcClientError", () =>
    Effect.gen(function*() {
      let calls = 0
      const url = yield* rawServer((_request, response) => {
        calls++
        response.writeHead(200, { "content-type": "text/event-stream" })
        response.write(": ok\n\n")
        response.write(`event: dropped\ndata: {"count":3}\n\ndata: ${JSON.stringify(aPrice(1))}\n\n`)
        response.write(`data: ${JSON.stringify(aPrice(2))}\n\n`)
        response.end(
          calls === 1
            ? "event: end\ndata: {}\n\n"
            : `event: error\ndata: {"_tag":"InternalError","message":"Internal server error"}\n\n`
        )
      })
      const dropped: Array<[string, number]> = []
      const client = yield* demoClient(url, { onDropped: (tag, count) => dropped.push([tag, count ?? -1]) })
      const prices = yield* client.watchPrices({ symbols: ["ACME"] }).pipe(Stream.runCollect)
      expect(Chunk.toReadonlyArray(prices).map((price) => price.seq)).toEqual([1, 2])
      expect(dropped).toEqual([["watchPrices", 3]])

      const error = yield* client.watchPrices({ symbols: ["ACME"] }).pipe(Stream.runDrain, Effect.flip)
      expectProtocolError(error, /Internal server error/)
    }))
})

describe("RpcProtocol: requests", () => {
  it.scopedLive("carry a W3C traceparent of the caller's trace, the headers and the JSON payload", () =>
    Effect.gen(function*() {
      const seen = yield* Deferred.make<{ readonly headers: Http.IncomingHttpHeaders; readonly body: string }>()
      const url = yield* rawServer((request, response) => {
        let body = ""
        request.setEncoding("utf8")
        request.on("data", (text: string) => (body += text))
        request.on("end", () => {
          Deferred.unsafeDone(seen, Effect.succeed({ headers: request.headers, body }))
          response.writeHead(200, { "content-type": "application/json" })
          response.end(JSON.stringify(aPrice(7)))
        })
      })
      const client = yield* demoClient(url, { headers: { "x-extra": "layer" } })
      const { quote, span } = yield* Effect.gen(function*() {
        const span = yield* Effect.currentSpan
        const quote = yield* client.getQuote({ symbol: "ACME" }).pipe(RpcClient.withHeaders({ "x-call": "call" }))
        return { quote, span }
      }).pipe(Effect.withSpan("caller"))
      expect(quote).toBeInstanceOf(Price)
      expect(quote.seq).toBe(7)

      const { body, headers } = yield* Deferred.await(seen)
      expect(JSON.parse(body)).toEqual({ symbol: "ACME" })
      expect(headers["content-type"]).toBe("application/json")
      expect(headers["x-extra"]).toBe("layer")
      expect(headers["x-call"]).toBe("call")
      const traceparent = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/.exec(String(headers["traceparent"] ?? ""))
      expect(traceparent).not.toBeNull()
      expect(traceparent![1]).toBe(span.traceId)
      // the parent of the server span is the RpcClient span, a child of the caller's span
      expect(traceparent![2]).not.toBe(span.spanId)
    }))
})

describe("RpcProtocol: backpressure", () => {
  it.scopedLive("a consumer that stops reading stalls the server's writes (bounded memory on the client)", () =>
    Effect.gen(function*() {
      const total = 1024 * 1024 * 1024
      const piece = new Uint8Array(64 * 1024)
      let written = 0
      const url = yield* rawServer((_request, response) => {
        response.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(total) })
        const pump = () => {
          while (written < total) {
            written += piece.byteLength
            if (!response.write(piece)) {
              response.once("drain", pump)
              return
            }
          }
          response.end()
        }
        pump()
      })
      const client = yield* demoClient(url)
      const first = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      yield* client.downloadReport({ sizeMb: 1024 }).pipe(
        Stream.runForEach(() => Effect.zipRight(Deferred.succeed(first, undefined), Deferred.await(gate))),
        Effect.forkScoped
      )
      yield* Deferred.await(first)
      const stalledAt = yield* Effect.promise(() => settled(() => written))
      // socket buffers, fetch's queue and the RpcClient's 16-chunk buffer: a few MiB, not the whole GiB
      expect(stalledAt).toBeLessThan(64 * 1024 * 1024)
    }))
})
