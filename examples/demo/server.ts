/**
 * The demo server: `npm start`. Serves the demo contract under /rpc on
 * 127.0.0.1:$PORT (default 3000). Rate of the price feed: PRICES_PER_SECOND
 * per symbol (default 10, at most 10,000).
 */
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"
import * as Generator from "../../src/Generator.ts"
import * as HttpTransport from "../../src/HttpTransport.ts"
import * as MetricsService from "../../src/MetricsService.ts"
import * as Prometheus from "../../src/Prometheus.ts"
import { DemoApi } from "./contract.ts"
import { AuthenticationLive, DemoHandlers } from "./handlers.ts"
import * as PriceFeed from "./PriceFeed.ts"

const port = Number(process.env["PORT"] ?? 3000)
const pricesPerSecond = Math.min(10_000, Math.max(1, Number(process.env["PRICES_PER_SECOND"] ?? 10)))

const page = `<!doctype html>
<meta charset="utf-8">
<title>effect-stream-rpc demo</title>
<h1>effect-stream-rpc demo</h1>
<ul>
  <li><a href="/rpc/watchPrices?payload=${encodeURIComponent(JSON.stringify({ symbols: ["ACME", "HOOLI"] }))}">watchPrices</a> (Server-Sent Events)</li>
  <li><a href="/rpc/downloadReport?payload=${encodeURIComponent(JSON.stringify({ sizeMb: 5 }))}">downloadReport</a> (5 MB)</li>
  <li><a href="/rpc/exportOrders?format=csv&payload=${encodeURIComponent(JSON.stringify({ count: 1000 }))}">exportOrders</a> (CSV)</li>
</ul>`

const Home = HttpLayerRouter.add("GET", "/", HttpServerResponse.html(page))
const Metrics = HttpLayerRouter.add("GET", "/metrics", Prometheus.response)
const OpenApiDocument = HttpLayerRouter.add(
  "GET",
  "/openapi.json",
  HttpServerResponse.unsafeJson(Generator.openApi(DemoApi, { title: "effect-stream-rpc demo", version: "1.0.0" }))
)

const App = Layer.mergeAll(HttpTransport.layer(DemoApi), Home, Metrics, OpenApiDocument).pipe(
  Layer.provide(DemoHandlers),
  Layer.provide(AuthenticationLive),
  Layer.provide(PriceFeed.layer({ pricesPerSecond })),
  Layer.provide(MetricsService.layer)
)

const Server = HttpLayerRouter.serve(App, { disableLogger: true }).pipe(
  Layer.provide(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" }))
)

Effect.logInfo(`effect-stream-rpc demo listening on http://127.0.0.1:${port}/`).pipe(
  Effect.zipRight(Layer.launch(Server)),
  NodeRuntime.runMain
)
