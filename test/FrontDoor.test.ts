/**
 * The front door (`HttpTransport` option `frontDoor`): the demo's procedures
 * served as the README composes them, over loopback. Plain subscriptions
 * are answered before the router (a middleware at the router counts what it
 * sees), with everything a subscription has through the router: values,
 * resume, CORS, admission, metrics, cleanup on disconnect; every other
 * request goes through the router unchanged.
 */
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import type { AddressInfo } from "node:net"
import * as Http from "node:http"
import { DemoApi } from "../examples/demo/contract.ts"
import { AuthenticationLive, DemoHandlers } from "../examples/demo/handlers.ts"
import * as PriceFeed from "../examples/demo/PriceFeed.ts"
import * as HttpTransport from "../src/server/HttpTransport.ts"
import * as MetricsService from "../src/server/MetricsService.ts"
import * as Prometheus from "../src/server/Prometheus.ts"
import { eventually, get, quiet, sseCollector } from "./support/http.ts"

/** Requests the router saw, by path. */
const routed: Array<string> = []

const server = Http.createServer()
const scope = Effect.runSync(Scope.make())
let base = ""

beforeAll(async () => {
  const App = Layer.mergeAll(
    HttpTransport.layer(DemoApi, {
      frontDoor: true,
      cors: { origins: ["https://app.example"] },
      admission: { maxSubscriptions: 3 }
    }),
    HttpLayerRouter.add("GET", "/metrics", Prometheus.response)
  ).pipe(
    Layer.provide(DemoHandlers),
    Layer.provide(AuthenticationLive),
    Layer.provide(PriceFeed.layer({ pricesPerSecond: 200 }))
  )
  await Effect.runPromise(Layer.buildWithScope(
    HttpLayerRouter.serve(App, {
      disableLogger: true,
      middleware: (app) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
          routed.push(request.url.split("?")[0]!)
          return app
        })
    }).pipe(
      Layer.provide(MetricsService.layer),
      Layer.provide(NodeHttpServer.layer(() => server, { port: 0, host: "127.0.0.1" }))
    ),
    scope
  ).pipe(quiet))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  // The first call of a procedure goes through the router and puts the door in place.
  await fetch(`${base}/rpc/getQuote?payload=${encodeURIComponent(JSON.stringify({ symbol: "ACME" }))}`).then((r) => r.text())
})

afterAll(async () => {
  server.closeAllConnections()
  await Effect.runPromise(Scope.close(scope, Exit.void))
})

const watch = (payload: unknown = { symbols: ["ACME"] }) =>
  `${base}/rpc/watchPrices?payload=${encodeURIComponent(JSON.stringify(payload))}`

const metric = (text: string, name: string, labels: string) =>
  Number(text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels))?.split(" ").pop() ?? NaN)

const metrics = () => fetch(`${base}/metrics`).then((r) => r.text())

const open = async (url: string, headers: Record<string, string> = {}) => {
  const response = await get(url, headers)
  const sse = sseCollector()
  response.on("data", (bytes: Buffer) => sse.feed(bytes))
  return { response, sse, messages: () => sse.events.filter((e) => e.event === "message") }
}

describe("the front door", () => {
  it.live("answers a plain subscription before the router, with values, CORS, cursors, and cleanup when the client leaves", () =>
    Effect.gen(function*() {
      routed.length = 0
      const first = yield* Effect.promise(() => open(watch(), { origin: "https://app.example" }))
      expect(first.response.statusCode).toBe(200)
      expect(first.response.headers["content-type"]).toContain("text/event-stream")
      expect(first.response.headers["access-control-allow-origin"]).toBe("https://app.example")
      yield* Effect.promise(() => eventually(() => first.messages().length >= 5))
      expect(routed).toEqual([])
      expect(metric(yield* Effect.promise(metrics), "stream_active", "stream=\"watchPrices\"")).toBe(1)

      // Resumed from the third value's cursor: the fourth is the first sent again, none lost or repeated.
      const third = first.messages()[2]!
      const resumed = yield* Effect.promise(() => open(watch(), { "last-event-id": third.id! }))
      yield* Effect.promise(() => eventually(() => resumed.messages().length >= 3))
      expect(resumed.messages()[0]!.data).toBe(first.messages()[3]!.data)
      expect(resumed.messages()[0]!.id).toBe(first.messages()[3]!.id)

      first.response.destroy()
      resumed.response.destroy()
      yield* Effect.promise(() =>
        eventually(async () => metric(await metrics(), "stream_active", "stream=\"watchPrices\"") === 0)
      )
      expect(routed.filter((path) => path.startsWith("/rpc/"))).toEqual([])
    }).pipe(quiet))

  it.live("leaves every other request to the router, answered as before: bad input, unary calls, the shed", () =>
    Effect.gen(function*() {
      routed.length = 0
      const bad = yield* Effect.promise(() => fetch(watch({ symbols: 42 })))
      expect(bad.status).toBe(400)
      expect((yield* Effect.promise(() => bad.json())) as { _tag: string }).toMatchObject({ _tag: "InvalidPayload" })
      const quote = yield* Effect.promise(() =>
        fetch(`${base}/rpc/getQuote?payload=${encodeURIComponent(JSON.stringify({ symbol: "ACME" }))}`)
      )
      expect(quote.status).toBe(200)
      yield* Effect.promise(() => quote.text())
      expect(routed).toEqual(["/rpc/watchPrices", "/rpc/getQuote"])

      // Past maxSubscriptions (3): the fourth goes to the router, which answers 503 and counts it
      // (once: the registry is the process's, so counted from what it was).
      const shedBefore = metric(yield* Effect.promise(metrics), "stream_shed_total", "stream=\"watchPrices\",reason=\"subscriptions\"")
      const held = yield* Effect.promise(() => Promise.all([open(watch()), open(watch()), open(watch())]))
      yield* Effect.gen(function*() {
        yield* Effect.promise(() => eventually(() => held.every((h) => h.messages().length > 0)))
        const shed = yield* Effect.promise(() => fetch(watch()))
        expect(shed.status).toBe(503)
        expect(shed.headers.get("retry-after")).toBe("1")
        yield* Effect.promise(() => shed.text())
        expect(routed.at(-1)).toBe("/rpc/watchPrices")
        expect(metric(yield* Effect.promise(metrics), "stream_shed_total", "stream=\"watchPrices\",reason=\"subscriptions\"")).toBe(shedBefore + 1)
      }).pipe(Effect.ensuring(Effect.sync(() => {
        for (const h of held) h.response.destroy()
      })))
      yield* Effect.promise(() =>
        eventually(async () => metric(await metrics(), "stream_active", "stream=\"watchPrices\"") === 0)
      )
    }).pipe(quiet))

  it.live("a typed failure of the handler's stream is its error event", () =>
    Effect.gen(function*() {
      const text = yield* Effect.promise(() => fetch(watch({ symbols: ["NOPE"] })).then((r) => r.text()))
      expect(text).toContain("event: error")
      expect(text).toContain("UnknownSymbol")
    }).pipe(quiet))
})
