/**
 * The demo server: `npm start`. Serves the demo contract under /rpc on
 * 127.0.0.1:$PORT (default 3000). Rate of the price feed: PRICES_PER_SECOND
 * per symbol (default 10, at most 10,000).
 *
 * With REDIS_URL (e.g. `redis://127.0.0.1:6379`) the price feed is a
 * `RedisTopic` shared by every instance on that Redis: run several on other
 * PORTs behind a load balancer; one of them publishes (a lease in Redis), the
 * others take over when it dies. The same Redis relays changes to a page's
 * multiplexed connection (`ConnectionRelay`) to the instance holding it, so
 * no sticky sessions are needed. Redis unreachable at startup: the process
 * logs a `TopicUnavailable` error and exits 1.
 *
 * TRANSFER_STALL_TIMEOUT_MS: how long a download or export may wait on a
 * client that reads nothing before its connection is cut and its slot freed
 * (default 60,000). SHUTDOWN_DEADLINE_MS: how long a shutdown waits for
 * running transfers (default 30,000).
 *
 * OTEL_EXPORTER_OTLP_ENDPOINT (e.g. `http://127.0.0.1:4318`): traces, metrics
 * and logs exported there over OTLP/HTTP (JSON) by `@effect/opentelemetry`:
 * one span per call, subscription and transfer. OTEL_SERVICE_NAME (default
 * `effect-stream-rpc-demo`); OTEL_BSP_SCHEDULE_DELAY and
 * OTEL_METRIC_EXPORT_INTERVAL, in milliseconds, how often spans and metrics
 * are sent (default 5,000 and 10,000).
 */
import * as Otlp from "@effect/opentelemetry/Otlp"
import * as OtlpSerialization from "@effect/opentelemetry/OtlpSerialization"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as RuntimeFlags from "effect/RuntimeFlags"
import { createServer } from "node:http"
import * as Generator from "../../src/generator/Generator.ts"
import * as ConnectionRelay from "../../src/server/ConnectionRelay.ts"
import * as GracefulShutdown from "../../src/server/GracefulShutdown.ts"
import * as HttpTransport from "../../src/server/HttpTransport.ts"
import * as MetricsService from "../../src/server/MetricsService.ts"
import * as Prometheus from "../../src/server/Prometheus.ts"
import * as StreamingConfig from "../../src/server/StreamingConfig.ts"
import * as Assets from "./assets.ts"
import { DemoApi } from "./contract.ts"
import { AuthenticationLive, DemoHandlers } from "./handlers.ts"
import { health } from "./health.ts"
import * as PriceFeed from "./PriceFeed.ts"

const port = Number(process.env["PORT"] ?? 3000)
const pricesPerSecond = Math.min(10_000, Math.max(1, Number(process.env["PRICES_PER_SECOND"] ?? 10)))
const redisUrl = process.env["REDIS_URL"] || undefined
const transferStallTimeoutMs = Number(process.env["TRANSFER_STALL_TIMEOUT_MS"] ?? 60_000)
const otlpEndpoint = process.env["OTEL_EXPORTER_OTLP_ENDPOINT"] || undefined
const millisOf = (name: string, fallback: number) => Duration.millis(Number(process.env[name] || fallback))

/** OpenTelemetry, when an OTLP endpoint is set: Effect's tracer, metrics and logs exported there. */
const Telemetry = otlpEndpoint === undefined ? Layer.empty : Otlp.layer({
  baseUrl: otlpEndpoint,
  resource: { serviceName: process.env["OTEL_SERVICE_NAME"] || "effect-stream-rpc-demo" },
  tracerExportInterval: millisOf("OTEL_BSP_SCHEDULE_DELAY", 5_000),
  metricsExportInterval: millisOf("OTEL_METRIC_EXPORT_INTERVAL", 10_000)
}).pipe(Layer.provide(OtlpSerialization.layerJson), Layer.provide(FetchHttpClient.layer))

const assets = await Assets.load()
const Page = Layer.mergeAll(
  HttpLayerRouter.add("GET", "/", HttpServerResponse.html(assets.html)),
  HttpLayerRouter.add("GET", "/style.css", HttpServerResponse.text(assets.css, { contentType: "text/css; charset=utf-8" })),
  HttpLayerRouter.add(
    "GET",
    "/app.js",
    HttpServerResponse.text(assets.js, { contentType: "text/javascript; charset=utf-8" })
  )
)
const Metrics = HttpLayerRouter.add("GET", "/metrics", Prometheus.response)
// For load balancers and orchestrators: 200 while serving, 503 once draining for shutdown.
const Health = HttpLayerRouter.add("GET", "/health", health)
const OpenApiDocument = HttpLayerRouter.add(
  "GET",
  "/openapi.json",
  HttpServerResponse.unsafeJson(Generator.openApi(DemoApi, { title: "effect-stream-rpc demo", groupName: "DemoApi", version: "1.0.0" }))
)

// Admission by harm, the library's defaults: a new subscription is refused (503) when the live
// ones already get their prices late (fan-out delay past 1 s) or the event loop is late by a
// second, not because the loop is busy accepting a burst of returning clients or feeding one
// client's export. One client cannot hold more than 32 of the 256 downloads and exports.
const App = Layer.mergeAll(
  // The front door: subscriptions by GET (EventSource, curl, services) are answered before the router, so a
  // reconnect storm gets in about as fast as a hand-written node:http server lets it; every other request
  // (a page's multiplexed connection among them) goes through the router.
  HttpTransport.layer(DemoApi, { admission: { maxTransfersPerClient: 32 }, frontDoor: true }),
  Page,
  Metrics,
  Health,
  OpenApiDocument
).pipe(
  Layer.provide(DemoHandlers),
  Layer.provide(AuthenticationLive),
  Layer.provide(StreamingConfig.layer({ transferStallTimeout: Duration.millis(transferStallTimeoutMs) })),
  Layer.provide(
    redisUrl === undefined
      ? PriceFeed.layer({ pricesPerSecond })
      : Layer.merge(PriceFeed.redisLayer(redisUrl, { pricesPerSecond }), ConnectionRelay.redis({ url: redisUrl }))
  )
)

/**
 * On SIGINT/SIGTERM the drain runs first: new requests get 503, subscriptions
 * end (clients reconnect elsewhere and resume), downloads and exports finish
 * up to the deadline and are cut after it; then the server closes and the
 * process exits 0.
 */
const httpServer = createServer()

const Server = HttpLayerRouter.serve(App, { disableLogger: true }).pipe(
  Layer.provide(GracefulShutdown.layer({
    deadline: Duration.millis(Number(process.env["SHUTDOWN_DEADLINE_MS"] ?? 30_000)),
    // Stop accepting at once: a load balancer sends new connections to another instance.
    stopAccepting: Effect.sync(() => httpServer.close())
  })),
  Layer.provide(MetricsService.layer),
  // A listen backlog past Node's 511: after a deploy or a blip every client comes back at once, and a
  // SYN dropped past the backlog is retried by the client's kernel only after 1, 3, 7 s (the kernel
  // caps the backlog at net.core.somaxconn).
  Layer.provide(NodeHttpServer.layer(() => httpServer, { port, host: "127.0.0.1", backlog: 4096 })),
  Layer.provide(Telemetry)
)

// HttpLayerRouter.serve logs "Listening on http://127.0.0.1:<port>" once the port is bound.
// A topic that cannot start (REDIS_URL not a Redis URL, or no Redis there) is one line and exit code 1.
// Effect 3 counts every fiber in its metric registry by default (effect_fiber_*, a cost per fiber
// and 40 lines of /metrics without help text): off for the whole process.
Layer.launch(Layer.provide(Server, RuntimeFlags.disableRuntimeMetrics)).pipe(
  Effect.catchTag("TopicUnavailable", (error) =>
    Effect.sync(() => {
      console.error(`cannot start the price feed: ${error.message}`)
      process.exitCode = 1
    })),
  NodeRuntime.runMain
)
