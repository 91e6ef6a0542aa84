import * as RpcGroup from "@effect/rpc/RpcGroup"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { EventSource } from "eventsource"
import * as fc from "fast-check"
import * as Http from "node:http"
import * as Net from "node:net"
import { DemoApi } from "../examples/demo/contract.ts"
import { AuthenticationLive, DemoHandlers } from "../examples/demo/handlers.ts"
import * as PriceFeed from "../examples/demo/PriceFeed.ts"
import * as BackpressurePolicy from "../src/server/BackpressurePolicy.ts"
import * as HttpTransport from "../src/server/HttpTransport.ts"
import * as Procedure from "../src/contract/Procedure.ts"
import * as Multiplex from "../src/protocol/Multiplex.ts"
import * as StreamingConfig from "../src/server/StreamingConfig.ts"
import { listen, quiet, settled } from "./support/http.ts"

const DemoLive = Layer.mergeAll(DemoHandlers, AuthenticationLive).pipe(
  Layer.provide(PriceFeed.layer({ pricesPerSecond: 100 }))
)

/** The demo contract served on a loopback port; its services live as long as the test's scope. */
const serveDemo = Effect.gen(function*() {
  const context = yield* Layer.build(DemoLive)
  const app = yield* HttpTransport.toHttpApp(DemoApi).pipe(Effect.provide(context))
  return yield* listen(app)
})

const payloadQuery = (payload: unknown) => `payload=${encodeURIComponent(JSON.stringify(payload))}`

const expectJsonError = async (response: Response, status: number, tag: string) => {
  expect(response.status).toBe(status)
  expect(response.headers.get("content-type")).toBe("application/json")
  const body = (await response.json()) as { _tag: string; message: string }
  expect(body._tag).toBe(tag)
  expect(typeof body.message).toBe("string")
  expect(body.message.length).toBeGreaterThan(0)
  return body
}

describe("bad input gets a 4xx with a JSON {_tag, message} body", () => {
  it.scopedLive("400 for a payload that is not JSON", () =>
    Effect.gen(function*() {
      const url = yield* serveDemo
      yield* Effect.promise(async () => {
        await expectJsonError(await fetch(`${url}/rpc/getQuote?payload=%7Bnope`), 400, "MalformedJson")
        await expectJsonError(
          await fetch(`${url}/rpc/getQuote`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: "{\"symbol\":"
          }),
          400,
          "MalformedJson"
        )
      })
    }).pipe(quiet))

  it.scopedLive("400 for a payload that does not match the schema, naming the failing path", () =>
    Effect.gen(function*() {
      const url = yield* serveDemo
      const body = yield* Effect.promise(async () =>
        expectJsonError(
          await fetch(`${url}/rpc/watchPrices?${payloadQuery({ symbols: ["ACME", 42] })}`),
          400,
          "InvalidPayload"
        )
      )
      expect(body.message).toContain("payload.symbols.1")
    }).pipe(quiet))

  it.scopedLive("404 for an unknown procedure", () =>
    Effect.gen(function*() {
      const url = yield* serveDemo
      yield* Effect.promise(async () => expectJsonError(await fetch(`${url}/rpc/dropTables`), 404, "NotFound"))
    }).pipe(quiet))

  it.scopedLive("405 for a method other than GET or POST, with Allow", () =>
    Effect.gen(function*() {
      const url = yield* serveDemo
      const response = yield* Effect.promise(() => fetch(`${url}/rpc/getQuote`, { method: "DELETE" }))
      expect(response.headers.get("allow")).toBe("GET, POST")
      yield* Effect.promise(() => expectJsonError(response, 405, "MethodNotAllowed"))
    }).pipe(quiet))

  it.scopedLive("413 for a body over the limit, refused without reading it whole", () =>
    Effect.gen(function*() {
      const url = yield* serveDemo
      yield* Effect.promise(async () => {
        await expectJsonError(
          await fetch(`${url}/rpc/getQuote`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ symbol: "x".repeat(2 * 1024 * 1024) })
          }),
          413,
          "PayloadTooLarge"
        )
      })
      // A chunked body with no Content-Length: the server stops reading at the limit.
      const status = yield* Effect.promise(() =>
        new Promise<number>((resolve, reject) => {
          const request = Http.request(`${url}/rpc/getQuote`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            agent: false
          }, (response) => {
            response.resume()
            resolve(response.statusCode ?? 0)
            request.destroy()
          })
          request.on("error", (error) => (error.message.includes("socket hang up") ? undefined : reject(error)))
          const piece = "x".repeat(64 * 1024)
          request.write("{\"symbol\":\"")
          for (let i = 0; i < 40; i++) request.write(piece)
          request.end("\"}")
        })
      )
      expect(status).toBe(413)
    }).pipe(quiet))

  it.scopedLive("415 for a body that is not JSON", () =>
    Effect.gen(function*() {
      const url = yield* serveDemo
      yield* Effect.promise(async () =>
        expectJsonError(
          await fetch(`${url}/rpc/getQuote`, {
            method: "POST",
            headers: { "content-type": "text/plain" },
            body: "symbol=ACME"
          }),
          415,
          "UnsupportedMediaType"
        )
      )
    }).pipe(quiet))

  it.scopedLive("401 without credentials and 403 with a token that is not allowed", () =>
    Effect.gen(function*() {
      const url = yield* serveDemo
      yield* Effect.promise(async () => {
        await expectJsonError(await fetch(`${url}/rpc/whoAmI`), 401, "Unauthorized")
        await expectJsonError(
          await fetch(`${url}/rpc/whoAmI`, { headers: { authorization: "Bearer stolen" } }),
          403,
          "Forbidden"
        )
        const ok = await fetch(`${url}/rpc/whoAmI`, { headers: { authorization: "Bearer demo-token" } })
        expect(await ok.json()).toEqual({ name: "demo" })
      })
    }).pipe(quiet))

  it.scopedLive("406 for an export format the procedure does not offer", () =>
    Effect.gen(function*() {
      const url = yield* serveDemo
      yield* Effect.promise(async () =>
        expectJsonError(
          await fetch(`${url}/rpc/exportOrders?format=xlsx&${payloadQuery({ count: 1 })}`),
          406,
          "NotAcceptable"
        )
      )
    }).pipe(quiet))

  it.scopedLive("a typed failure of a unary procedure carries its annotated status and its fields", () =>
    Effect.gen(function*() {
      const url = yield* serveDemo
      const response = yield* Effect.promise(() => fetch(`${url}/rpc/getQuote?${payloadQuery({ symbol: "NOPE" })}`))
      expect(response.status).toBe(404)
      expect(yield* Effect.promise(() => response.json())).toEqual({
        _tag: "UnknownSymbol",
        symbol: "NOPE",
        message: "Unknown symbol NOPE"
      })
    }).pipe(quiet))

  it.scopedLive("arbitrary paths, queries, methods and bodies never get a 5xx, and the server stays up", () =>
    Effect.gen(function*() {
      const url = yield* serveDemo
      const segment = fc.oneof(
        fc.constantFrom("rpc", "watchPrices", "getQuote", "exportOrders", "downloadReport", "whoAmI", "%", "%E0%A4%A", ".."),
        fc.webSegment()
      )
      const request = fc.record({
        path: fc.array(segment, { minLength: 0, maxLength: 4 }).map((parts) => "/" + parts.join("/")),
        query: fc.option(fc.webQueryParameters(), { nil: undefined }),
        method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"),
        body: fc.option(fc.oneof(fc.json(), fc.string(), fc.constant("{\"symbols\":[\"ACME\"]}")), { nil: undefined }),
        contentType: fc.constantFrom("application/json", "text/plain", "application/json; charset=utf-8")
      })
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(request, async ({ body, contentType, method, path, query }) => {
            const target = `${url}${path.startsWith("/rpc") ? path : `/rpc${path}`}${query === undefined ? "" : `?${query}`}`
            const withBody = body !== undefined && method !== "GET"
            const response = await fetch(target, {
              method,
              ...(withBody ? { body, headers: { "content-type": contentType } } : {})
            })
            await response.body?.cancel()
            expect(response.status).toBeLessThan(500)
          }),
          { numRuns: 300 }
        )
      )
      const alive = yield* Effect.promise(() => fetch(`${url}/rpc/whoAmI`, { headers: { authorization: "Bearer demo-token" } }))
      expect(alive.status).toBe(200)
    }).pipe(quiet))
})

describe("backpressure end to end", () => {
  it.scopedLive("a client that reads 3 rows of an infinite export and stalls holds the handler to the policy plus socket buffers", () =>
    Effect.gen(function*() {
      let produced = 0
      const Row = Schema.Struct({ n: Schema.Number, text: Schema.String })
      const endless = Procedure.export("endless", { row: Row, formats: ["ndjson"] })
      const Api = RpcGroup.make(endless)
      const handlers = Api.toLayer({
        endless: () =>
          Stream.iterate(0, (n) => n + 1).pipe(
            Stream.map((n) => ({ n, text: "x".repeat(100) })),
            Stream.rechunk(16),
            Stream.mapChunksEffect((chunk) =>
              Effect.sync(() => {
                produced += chunk.length
                return chunk
              })
            )
          )
      })
      const url = yield* Effect.flatMap(HttpTransport.toHttpApp(Api), listen).pipe(Effect.provide(handlers))
      const response = yield* Effect.promise(() => fetch(`${url}/rpc/endless`))
      const reader = response.body!.getReader()
      let text = ""
      while (text.split("\n").length <= 3) {
        const { value } = yield* Effect.promise(() => reader.read())
        text += new TextDecoder().decode(value)
      }
      const lines = text.split("\n").slice(0, 3).map((line) => JSON.parse(line) as { n: number })
      expect(lines.map((row) => row.n)).toEqual([0, 1, 2])
      const stalledAt = yield* Effect.promise(() => settled(() => produced))
      const rowBytes = JSON.stringify({ n: 1_000_000, text: "x".repeat(100) }).length + 1
      const socketAllowance = Math.ceil((16 * 1024 * 1024) / rowBytes)
      expect(stalledAt).toBeLessThanOrEqual(BackpressurePolicy.capacities.export + 16 + socketAllowance)
      yield* Effect.promise(() => reader.cancel())
    }).pipe(quiet))
})

describe("resumable subscriptions", () => {
  const Tick = Schema.Struct({ n: Schema.Number })
  const ticks = Procedure.subscription("ticks", { success: Tick, cursor: (tick) => String(tick.n) })
  const Api = RpcGroup.make(ticks)
  /** Each connection sends the next 5 ticks after its cursor, then ends: clients must resume. */
  const handlers = (seen: Array<string | undefined>) =>
    Api.toLayer({
      ticks: (_, { headers }) => {
        const cursor = Procedure.lastEventId(headers)
        seen.push(cursor)
        const from = cursor === undefined ? 1 : Number(cursor) + 1
        return Stream.range(from, from + 4).pipe(Stream.map((n) => ({ n })))
      }
    })

  it.scopedLive("a native EventSource receives values through onmessage and resumes after Last-Event-ID, none lost or repeated", () =>
    Effect.gen(function*() {
      const seen: Array<string | undefined> = []
      const url = yield* Effect.flatMap(HttpTransport.toHttpApp(Api), listen).pipe(
        Effect.provide(handlers(seen)),
        Effect.provide(StreamingConfig.layer({ retry: "10 millis" }))
      )
      const received = yield* Effect.promise(() =>
        new Promise<Array<number>>((resolve, reject) => {
          const values: Array<number> = []
          const source = new EventSource(`${url}/rpc/ticks`)
          source.onmessage = (event) => {
            values.push((JSON.parse(event.data) as { n: number }).n)
            if (values.length === 23) {
              source.close()
              resolve(values.slice())
            }
          }
          source.onerror = (event) => {
            if (source.readyState === EventSource.CLOSED) reject(new Error(`EventSource closed: ${String(event.message)}`))
          }
        })
      )
      expect(received).toEqual(Array.from({ length: 23 }, (_, i) => i + 1))
      expect(seen.slice(0, 5)).toEqual([undefined, "5", "10", "15", "20"])
    }).pipe(quiet))

  it.scopedLive("?lastEventId= resumes for clients that cannot set headers", () =>
    Effect.gen(function*() {
      const seen: Array<string | undefined> = []
      const url = yield* Effect.flatMap(HttpTransport.toHttpApp(Api), listen).pipe(Effect.provide(handlers(seen)))
      const text = yield* Effect.promise(() => fetch(`${url}/rpc/ticks?lastEventId=41`).then((r) => r.text()))
      expect(seen).toEqual(["41"])
      expect(text).toContain("id: 42\ndata: {\"n\":42}\n\n")
      expect(text).toContain("id: 46\ndata: {\"n\":46}\n\n")
      expect(text).not.toContain("\"n\":41")
    }).pipe(quiet))
})

describe("authentication middleware", () => {
  it.scopedLive("denies before the handler runs", () =>
    Effect.gen(function*() {
      const { Authentication } = yield* Effect.promise(() => import("../examples/demo/contract.ts"))
      const called = yield* Deferred.make<void>()
      const secret = Procedure.unary("secret", { success: Schema.String }).middleware(Authentication)
      const Api = RpcGroup.make(secret)
      const url = yield* Effect.flatMap(HttpTransport.toHttpApp(Api), listen).pipe(
        Effect.provide(Api.toLayer({ secret: () => Effect.as(Deferred.succeed(called, undefined), "s3cr3t") })),
        Effect.provide(AuthenticationLive)
      )
      const denied = yield* Effect.promise(() => fetch(`${url}/rpc/secret`, { headers: { authorization: "Bearer x" } }))
      expect(denied.status).toBe(403)
      expect(yield* Deferred.isDone(called)).toBe(false)
      const allowed = yield* Effect.promise(() =>
        fetch(`${url}/rpc/secret`, { headers: { authorization: "Bearer demo-token" } })
      )
      expect(yield* Effect.promise(() => allowed.json())).toBe("s3cr3t")
      expect(yield* Deferred.isDone(called)).toBe(true)
    }).pipe(quiet))
})

describe("web-standard handler", () => {
  it.live("serves the same protocol as (Request) => Promise<Response>", () =>
    Effect.gen(function*() {
      const { dispose, handler } = HttpTransport.toWebHandler(DemoApi, DemoLive)
      const quote = yield* Effect.promise(() =>
        handler(new Request(`http://localhost/rpc/exportOrders?format=ndjson&${payloadQuery({ count: 3 })}`))
      )
      expect(quote.headers.get("content-type")).toBe("application/x-ndjson")
      const rows = (yield* Effect.promise(() => quote.text())).trim().split("\n").map((line) => JSON.parse(line))
      expect(rows.map((row: { id: number }) => row.id)).toEqual([1, 2, 3])
      const missing = yield* Effect.promise(() => handler(new Request("http://localhost/rpc/nothing")))
      expect(missing.status).toBe(404)
      yield* Effect.promise(dispose)
    }).pipe(quiet))
})

describe("an absolute-form request target", () => {
  it.scopedLive("is routed by the path it names", () =>
    Effect.gen(function*() {
      const services = yield* Layer.build(DemoLive)
      const url = yield* Effect.flatMap(HttpTransport.toHttpApp(DemoApi), listen).pipe(Effect.provide(services))
      const { port } = new URL(url)
      const answer = yield* Effect.promise(() =>
        new Promise<string>((resolve, reject) => {
          const socket = Net.connect(Number(port), "127.0.0.1", () => {
            socket.write(
              `GET http://example.test/rpc/exportOrders?format=ndjson&${payloadQuery({ count: 1 })} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n`
            )
          })
          let text = ""
          socket.on("data", (bytes) => (text += bytes.toString("utf8")))
          socket.on("close", () => resolve(text))
          socket.on("error", reject)
        })
      )
      expect(answer.startsWith("HTTP/1.1 200")).toBe(true)
      expect(answer).toContain("\"customer\":\"Ada Lovelace\"")
    }).pipe(quiet))
})

describe("a request body that trickles in", () => {
  it.scopedLive("is answered 408 RequestTimeout past the body timeout, and its connection closed", () =>
    Effect.gen(function*() {
      const services = yield* Layer.build(DemoLive)
      const url = yield* Effect.flatMap(HttpTransport.toHttpApp(DemoApi, { bodyTimeout: "200 millis" }), listen).pipe(
        Effect.provide(services)
      )
      const { port } = new URL(url)
      const answer = yield* Effect.promise(() =>
        new Promise<string>((resolve, reject) => {
          const socket = Net.connect(Number(port), "127.0.0.1", () => {
            socket.write(
              "POST /rpc/getQuote HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
          })
          let text = ""
          socket.on("data", (bytes) => (text += bytes.toString("utf8")))
          socket.on("close", () => resolve(text))
          socket.on("error", reject)
        })
      )
      expect(answer.startsWith("HTTP/1.1 408")).toBe(true)
      expect(answer.toLowerCase()).toContain("connection: close")
      expect(answer).toContain("\"_tag\":\"RequestTimeout\"")
    }).pipe(quiet))
})

describe("web-standard handler: a Topic subscription", () => {
  it.live("is served as a Stream, with the topic's cursors as ids", () =>
    Effect.gen(function*() {
      const { dispose, handler } = HttpTransport.toWebHandler(DemoApi, DemoLive)
      const controller = new AbortController()
      const response = yield* Effect.promise(() =>
        handler(new Request(`http://localhost/rpc/watchPrices?${payloadQuery({ symbols: ["ACME"] })}`, { signal: controller.signal }))
      )
      expect(response.headers.get("content-type")).toBe("text/event-stream")
      const reader = response.body!.getReader()
      const decoder = new TextDecoder()
      let text = ""
      while ((text.match(/^id: /gm) ?? []).length < 2) {
        const { done, value } = yield* Effect.promise(() => reader.read())
        if (done) break
        text += decoder.decode(value, { stream: true })
      }
      const ids = Array.from(text.matchAll(/^id: (.+)$/gm), (m) => m[1]!)
      expect(ids.length).toBeGreaterThanOrEqual(2)
      for (const id of ids) expect(id).toMatch(/^[0-9a-z]+-\d+$/)
      yield* Effect.promise(() => reader.cancel())
      yield* Effect.promise(dispose)
    }).pipe(quiet))
})

describe("web-standard handler: a multiplexed connection (wire protocol v1.1)", () => {
  it.live("carries several subscriptions on one body, each routed by its `sub:`", () =>
    Effect.gen(function*() {
      const { dispose, handler } = HttpTransport.toWebHandler(DemoApi, DemoLive)
      const response = yield* Effect.promise(() =>
        handler(
          new Request("http://localhost/rpc/_mux", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              subscriptions: [
                { id: "a", tag: "watchPrices", payload: { symbols: ["ACME"] } },
                { id: "g", tag: "watchPrices", payload: { symbols: ["GLOBEX"] } },
                { id: "x", tag: "nothing" }
              ]
            })
          })
        )
      )
      expect(response.status).toBe(200)
      expect(response.headers.get("content-type")).toBe("text/event-stream")
      const events: Array<Multiplex.MultiplexEvent> = []
      const decoder = Multiplex.makeDecoder({ onEvent: (event) => events.push(event) })
      const symbolsOf = (sub: string) =>
        events.flatMap((e) =>
          e._tag === "Event" && e.sub === sub && e.event._tag === "Value" ? [(e.event.json as { symbol: string }).symbol] : []
        )
      const reader = response.body!.getReader()
      while (symbolsOf("a").length < 2 || symbolsOf("g").length < 2) {
        const { done, value } = yield* Effect.promise(() => reader.read())
        if (done) break
        decoder.feedBytes(value)
      }
      expect(events[0]).toMatchObject({ _tag: "Connection", version: "1.1" })
      expect(events).toContainEqual({ _tag: "Subscribed", sub: "a", resume: "exact" })
      expect(events).toContainEqual({
        _tag: "Event",
        sub: "x",
        event: { _tag: "Failure", error: { _tag: "NotFound", message: "Unknown procedure: nothing" } },
        id: undefined
      })
      expect(new Set(symbolsOf("a"))).toEqual(new Set(["ACME"]))
      expect(new Set(symbolsOf("g"))).toEqual(new Set(["GLOBEX"]))
      yield* Effect.promise(() => reader.cancel())
      yield* Effect.promise(dispose)
    }).pipe(quiet))
})

describe("web-standard handler: a transfer that fails after its first byte", () => {
  it.live("errors the response body instead of ending it cleanly", () =>
    Effect.gen(function*() {
      const broken = Procedure.download("broken", { filename: "broken.bin" })
      const Api = RpcGroup.make(broken)
      const handlers = Api.toLayer({
        broken: () => Stream.make(new Uint8Array(1024)).pipe(Stream.concat(Stream.dieMessage("disk gone")))
      })
      const { dispose, handler } = HttpTransport.toWebHandler(Api, handlers)
      const response = yield* Effect.promise(() => handler(new Request("http://localhost/rpc/broken")))
      expect(response.status).toBe(200)
      const outcome = yield* Effect.promise(() => response.arrayBuffer().then(() => "complete", () => "errored"))
      expect(outcome).toBe("errored")
      yield* Effect.promise(dispose)
    }).pipe(quiet))
})

describe("trace context", () => {
  it.scopedLive("the server span of a call is a child of the caller's span (traceparent)", () =>
    Effect.gen(function*() {
      const Span = Schema.Struct({ traceId: Schema.String, parentSpanId: Schema.String })
      const traced = Procedure.unary("traced", { success: Span })
      const Api = RpcGroup.make(traced)
      const handlers = Api.toLayer({
        traced: () =>
          Effect.map(Effect.orDie(Effect.currentSpan), (span) => ({
            traceId: span.traceId,
            parentSpanId: span.parent._tag === "Some" ? span.parent.value.spanId : "none"
          }))
      })
      const url = yield* Effect.flatMap(HttpTransport.toHttpApp(Api), listen).pipe(Effect.provide(handlers))
      const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
      const spanId = "00f067aa0ba902b7"
      const response = yield* Effect.promise(() =>
        fetch(`${url}/rpc/traced`, { headers: { traceparent: `00-${traceId}-${spanId}-01` } }).then((r) => r.json())
      )
      expect(response).toEqual({ traceId, parentSpanId: spanId })
    }).pipe(quiet))
})

describe("CORS", () => {
  const serveWith = (cors: HttpTransport.CorsOptions | undefined) =>
    Effect.gen(function*() {
      const context = yield* Layer.build(DemoLive)
      const app = yield* HttpTransport.toHttpApp(DemoApi, cors === undefined ? {} : { cors }).pipe(
        Effect.provide(context)
      )
      return yield* listen(app)
    })

  it.scopedLive("by default no CORS header is sent: only same-origin pages can read responses", () =>
    Effect.gen(function*() {
      const url = yield* serveWith(undefined)
      const response = yield* Effect.promise(() =>
        fetch(`${url}/rpc/getQuote?payload=${encodeURIComponent("{\"symbol\":\"X\"}")}`, {
          headers: { origin: "https://evil.example" }
        })
      )
      expect(response.headers.get("access-control-allow-origin")).toBe(null)
    }).pipe(quiet))

  it.scopedLive("listed origins get a preflight answer and credentials; others get nothing", () =>
    Effect.gen(function*() {
      const url = yield* serveWith({ origins: ["https://app.example"], credentials: true })
      const preflight = yield* Effect.promise(() =>
        fetch(`${url}/rpc/whoAmI`, {
          method: "OPTIONS",
          headers: {
            origin: "https://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type"
          }
        })
      )
      expect(preflight.status).toBe(204)
      expect(preflight.headers.get("access-control-allow-origin")).toBe("https://app.example")
      expect(preflight.headers.get("access-control-allow-credentials")).toBe("true")
      expect(preflight.headers.get("access-control-allow-headers")).toContain("authorization")
      const allowed = yield* Effect.promise(() =>
        fetch(`${url}/rpc/whoAmI`, { headers: { origin: "https://app.example", authorization: "Bearer demo-token" } })
      )
      expect(allowed.headers.get("access-control-allow-origin")).toBe("https://app.example")
      expect(allowed.headers.get("vary")).toBe("Origin")
      // a subscription served by its Topic carries them too
      const watch = new AbortController()
      const subscription = yield* Effect.promise(() =>
        fetch(`${url}/rpc/watchPrices?payload=${encodeURIComponent("{\"symbols\":[\"ACME\"]}")}`, {
          headers: { origin: "https://app.example" },
          signal: watch.signal
        })
      )
      expect(subscription.headers.get("content-type")).toContain("text/event-stream")
      expect(subscription.headers.get("access-control-allow-origin")).toBe("https://app.example")
      expect(subscription.headers.get("access-control-allow-credentials")).toBe("true")
      watch.abort()
      const other = yield* Effect.promise(() =>
        fetch(`${url}/rpc/whoAmI`, { headers: { origin: "https://evil.example", authorization: "Bearer demo-token" } })
      )
      expect(other.headers.get("access-control-allow-origin")).toBe(null)
      const otherPreflight = yield* Effect.promise(() =>
        fetch(`${url}/rpc/whoAmI`, {
          method: "OPTIONS",
          headers: { origin: "https://evil.example", "access-control-request-method": "POST" }
        })
      )
      expect(otherPreflight.status).toBe(405)
    }).pipe(quiet))

  it.scopedLive("a wildcard with credentials is refused when the server is built", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(serveWith({ origins: "*", credentials: true }))
      expect(exit._tag).toBe("Failure")
    }).pipe(quiet))
})

describe("request targets", () => {
  it.scopedLive("a target that parses as a protocol-relative URL (//…) is a 404, not a 500", () =>
    Effect.gen(function*() {
      const url = yield* serveDemo
      const port = new URL(url).port
      const status = yield* Effect.promise(() =>
        new Promise<number>((resolve, reject) => {
          const request = Http.request({ host: "127.0.0.1", port, path: "//", method: "GET", agent: false }, (response) => {
            response.resume()
            resolve(response.statusCode ?? 0)
          })
          request.on("error", reject)
          request.end()
        })
      )
      expect(status).toBe(404)
      const other = yield* Effect.promise(() =>
        new Promise<number>((resolve, reject) => {
          const request = Http.request({ host: "127.0.0.1", port, path: "//evil.example/rpc/getQuote", method: "GET", agent: false }, (response) => {
            response.resume()
            resolve(response.statusCode ?? 0)
          })
          request.on("error", reject)
          request.end()
        })
      )
      expect(other).toBe(404)
    }).pipe(quiet))
})

describe("the fibers a request starts", () => {
  it.scopedLive("are not counted in Effect's runtime metrics (a tagged registry lookup per fiber start and end)", () =>
    Effect.gen(function*() {
      const flags = Procedure.unary("flags", { success: Schema.Boolean })
      const Api = RpcGroup.make(flags)
      const url = yield* Effect.flatMap(HttpTransport.toHttpApp(Api), listen).pipe(
        Effect.provide(Api.toLayer({
          flags: () => Effect.map(Effect.getRuntimeFlags, (current) => RuntimeFlags.runtimeMetrics(current))
        }))
      )
      const counted = yield* Effect.promise(async () => (await fetch(`${url}/rpc/flags`)).json())
      expect(counted).toBe(false)
    }).pipe(quiet))
})
