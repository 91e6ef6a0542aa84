/**
 * OpenTelemetry through Effect's own integration: the demo's procedures
 * served as the README composes them, `@effect/opentelemetry`'s `NodeSdk`
 * provided with an in-memory span exporter and metric exporter, real
 * clients over loopback. One server span per subscription and per
 * transfer, the child of the client's `traceparent`, ended with what the
 * stream delivered; the RPC and messaging instruments under
 * OpenTelemetry's names.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { SpanKind, SpanStatusCode } from "@opentelemetry/api"
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader
} from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
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
import { eventually, get, quiet, sseCollector } from "./support/http.ts"

const spans = new InMemorySpanExporter()
const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
// Exported only when a test flushes it.
const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 3_600_000 })

// One SDK for the file, as a process has one (OpenTelemetry's API registers its providers globally).
const Telemetry = NodeSdk.layer(() => ({
  resource: { serviceName: "telemetry-test" },
  spanProcessor: new SimpleSpanProcessor(spans),
  metricReader: reader
}))

const server = Http.createServer()
const scope = Effect.runSync(Scope.make())
let base = ""

beforeAll(async () => {
  const App = HttpTransport.layer(DemoApi).pipe(
    Layer.provide(DemoHandlers),
    Layer.provide(AuthenticationLive),
    Layer.provide(PriceFeed.layer({ pricesPerSecond: 200 }))
  )
  await Effect.runPromise(Layer.buildWithScope(
    HttpLayerRouter.serve(App, { disableLogger: true }).pipe(
      Layer.provide(MetricsService.layer),
      Layer.provide(NodeHttpServer.layer(() => server, { port: 0, host: "127.0.0.1" })),
      Layer.provide(Telemetry)
    ),
    scope
  ).pipe(quiet))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  server.closeAllConnections()
  await Effect.runPromise(Scope.close(scope, Exit.void))
})

const payload = (value: unknown) => encodeURIComponent(JSON.stringify(value))

const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
const parentId = "00f067aa0ba902b7"
const traceparent = `00-${traceId}-${parentId}-01`

const finished = (name: string) => spans.getFinishedSpans().filter((span) => span.name === name)

describe("OpenTelemetry", () => {
  it.live("a subscription is one server span, the child of the caller's traceparent, ended with its figures when the client leaves", () =>
    Effect.gen(function*() {
      spans.reset()
      const response = yield* Effect.promise(() =>
        get(`${base}/rpc/watchPrices?payload=${payload({ symbols: ["ACME"] })}`, { traceparent })
      )
      const sse = sseCollector()
      response.on("data", (bytes: Buffer) => sse.feed(bytes))
      yield* Effect.promise(() => eventually(() => sse.events.filter((e) => e.event === "message").length >= 5))
      // Open: not ended yet.
      expect(finished("RpcServer.watchPrices")).toEqual([])
      response.destroy()
      yield* Effect.promise(() => eventually(() => finished("RpcServer.watchPrices").length === 1))
      const [span] = finished("RpcServer.watchPrices")
      expect(span!.kind).toBe(SpanKind.SERVER)
      expect(span!.spanContext().traceId).toBe(traceId)
      expect(span!.parentSpanContext?.spanId).toBe(parentId)
      expect(span!.attributes["rpc.system"]).toBe("effect-stream-rpc")
      expect(span!.attributes["rpc.method"]).toBe("watchPrices")
      expect(span!.attributes["effect_stream_rpc.termination"]).toBe("interrupted")
      expect(span!.attributes["effect_stream_rpc.values"]).toBeGreaterThanOrEqual(5)
      expect(span!.attributes["effect_stream_rpc.bytes"]).toBeGreaterThan(0)
      expect(span!.attributes["effect_stream_rpc.dropped"]).toBe(0)
    }).pipe(quiet))

  it.live("a failed subscription's span has the error status; a download's span counts its bytes", () =>
    Effect.gen(function*() {
      spans.reset()
      const failed = yield* Effect.promise(() => fetch(`${base}/rpc/watchPrices?payload=${payload({ symbols: ["NOPE"] })}`).then((r) => r.text()))
      expect(failed).toContain("event: error")
      yield* Effect.promise(() => eventually(() => finished("RpcServer.watchPrices").length === 1))
      const [subscription] = finished("RpcServer.watchPrices")
      expect(subscription!.attributes["effect_stream_rpc.termination"]).toBe("failed")
      expect(subscription!.status.code).toBe(SpanStatusCode.ERROR)

      const bytes = yield* Effect.promise(() =>
        fetch(`${base}/rpc/downloadReport?payload=${payload({ sizeMb: 0.5 })}`).then((r) => r.arrayBuffer())
      )
      expect(bytes.byteLength).toBe(524_288)
      yield* Effect.promise(() => eventually(() => finished("RpcServer.downloadReport").length === 1))
      const [download] = finished("RpcServer.downloadReport")
      expect(download!.attributes["rpc.kind"]).toBe("download")
      expect(download!.attributes["effect_stream_rpc.termination"]).toBe("completed")
      expect(download!.attributes["effect_stream_rpc.bytes"]).toBe(524_288)
      expect(download!.status.code).toBe(SpanStatusCode.OK)
      // The span lasts as long as the transfer, not only the handler's call.
      expect(download!.duration[0] * 1e9 + download!.duration[1]).toBeGreaterThan(0)
    }).pipe(quiet))

  it.live("an export is one span with its rows and bytes; the RPC and messaging instruments are exported under OpenTelemetry's names", () =>
    Effect.gen(function*() {
      const text = yield* Effect.promise(() =>
        fetch(`${base}/rpc/exportOrders?format=ndjson&payload=${payload({ count: 10 })}`).then((r) => r.text())
      )
      expect(text.trim().split("\n")).toHaveLength(10)
      yield* Effect.promise(() => eventually(() => finished("RpcServer.exportOrders").length >= 1))
      const [exported] = finished("RpcServer.exportOrders")
      expect(exported!.attributes["rpc.kind"]).toBe("export")
      expect(exported!.attributes["effect_stream_rpc.termination"]).toBe("completed")
      expect(exported!.attributes["effect_stream_rpc.values"]).toBe(10)
      expect(exported!.attributes["effect_stream_rpc.bytes"]).toBe(Buffer.byteLength(text))
      yield* Effect.promise(() =>
        eventually(async () => {
          metrics.reset()
          await reader.forceFlush()
          const names = metrics.getMetrics().flatMap((m) => m.scopeMetrics.flatMap((s) => s.metrics))
          const duration = names.find((m) => m.descriptor.name === "rpc.server.duration")
          return duration?.dataPoints.some((p) => p.attributes["rpc.method"] === "exportOrders") === true &&
            names.some((m) => m.descriptor.name === "rpc.server.responses_per_rpc") &&
            names.some((m) => m.descriptor.name === "messaging.client.sent.messages")
        })
      )
    }).pipe(quiet))
})
