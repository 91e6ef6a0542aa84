/**
 * The demo with OTEL_EXPORTER_OTLP_ENDPOINT set, as an operator runs it:
 * `npm start`'s server exports over OTLP/HTTP (JSON) to a collector, here a
 * node:http server on loopback that keeps what it receives. A subscription
 * with a `traceparent` arrives as one server span of the caller's trace,
 * with its figures; the RPC instruments arrive under OpenTelemetry's names.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { type DemoProcess, startDemo } from "./support/demoProcess.ts"
import { eventually, get, sseCollector } from "./support/http.ts"

interface OtlpValue {
  readonly stringValue?: string
  readonly intValue?: string | number
}
interface OtlpSpan {
  readonly traceId: string
  readonly parentSpanId?: string
  readonly name: string
  readonly kind: number
  readonly attributes: ReadonlyArray<{ readonly key: string; readonly value: OtlpValue }>
}

const received: Record<string, Array<unknown>> = {}
const collector = Http.createServer((request, response) => {
  let body = ""
  request.setEncoding("utf8")
  request.on("data", (chunk: string) => (body += chunk))
  request.on("end", () => {
    ;(received[request.url ?? ""] ??= []).push(JSON.parse(body))
    response.writeHead(200, { "content-type": "application/json" }).end("{}")
  })
})

let demo: DemoProcess

beforeAll(async () => {
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve))
  demo = await startDemo({
    pricesPerSecond: 100,
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`,
      OTEL_SERVICE_NAME: "demo-under-test",
      OTEL_BSP_SCHEDULE_DELAY: "200",
      OTEL_METRIC_EXPORT_INTERVAL: "200"
    }
  })
})

afterAll(async () => {
  await demo?.stop()
  collector.closeAllConnections()
  collector.close()
})

const spans = (): Array<OtlpSpan> =>
  (received["/v1/traces"] ?? []).flatMap((body) =>
    (body as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<OtlpSpan> }> }> }).resourceSpans
      .flatMap((r) => r.scopeSpans.flatMap((s) => s.spans))
  )

const attribute = (span: OtlpSpan, key: string): string | number | undefined => {
  const value = span.attributes.find((a) => a.key === key)?.value
  return value?.stringValue ?? (value?.intValue === undefined ? undefined : Number(value.intValue))
}

const traceId = "0af7651916cd43dd8448eb211c80319c"
const parentId = "b7ad6b7169203331"

describe("the demo with OTEL_EXPORTER_OTLP_ENDPOINT", () => {
  // First, before any call: what an operator's alerts see of a fresh instance.
  it("a fresh demo's /metrics, before any call: every procedure's series at 0, each family with its help", async () => {
    const text = await fetch(`${demo.url}/metrics`).then((r) => r.text())
    const families = Array.from(text.matchAll(/^# TYPE (\S+) /gm), (m) => m[1]!)
    const helped = new Set(Array.from(text.matchAll(/^# HELP (\S+) /gm), (m) => m[1]!))
    expect(families.filter((name) => !helped.has(name))).toEqual([])
    for (const [kind, stream] of [["subscription", "watchPrices"], ["download", "downloadReport"], ["export", "exportOrders"]]) {
      const labels = `kind="${kind}",stream="${stream}"`
      for (const name of ["stream_active", "stream_values_total", "stream_bytes_total", "stream_failures_total"]) {
        expect(text, `${name}{${labels}}`).toContain(`${name}{${labels}} 0\n`)
      }
      for (const termination of ["completed", "failed", "interrupted"]) {
        expect(text).toContain(`stream_terminations_total{${labels},termination="${termination}"} 0\n`)
      }
    }
    expect(text).toContain(`stream_dropped_total{kind="subscription",stream="watchPrices"} 0\n`)
    for (const reason of ["event_loop_delay", "request_delay", "fan_out_delay", "subscriptions"]) {
      expect(text).toContain(`stream_shed_total{kind="subscription",stream="watchPrices",reason="${reason}"} 0\n`)
    }
    expect(text).toContain(`stream_shed_total{kind="export",stream="exportOrders",reason="client_transfers"} 0\n`)
    expect(text).toContain("stream_connections 0\n")
  })

  it("exports a subscription's span, in the caller's trace, with what it delivered", async () => {
    const payload = encodeURIComponent(JSON.stringify({ symbols: ["ACME"] }))
    const response = await get(`${demo.url}/rpc/watchPrices?payload=${payload}`, {
      traceparent: `00-${traceId}-${parentId}-01`
    })
    const sse = sseCollector()
    response.on("data", (bytes: Buffer) => sse.feed(bytes))
    await eventually(() => sse.events.filter((e) => e.event === "message").length >= 3)
    response.destroy()
    await eventually(() => spans().some((s) => s.name === "RpcServer.watchPrices"), 20_000, "the subscription's span at the collector")
    const span = spans().find((s) => s.name === "RpcServer.watchPrices")!
    expect(span.traceId).toBe(traceId)
    expect(span.parentSpanId).toBe(parentId)
    expect(attribute(span, "rpc.method")).toBe("watchPrices")
    expect(attribute(span, "effect_stream_rpc.termination")).toBe("interrupted")
    expect(attribute(span, "effect_stream_rpc.values")).toBeGreaterThanOrEqual(3)
  })

  it("exports the RPC instruments under OpenTelemetry's names", async () => {
    await eventually(
      () => JSON.stringify(received["/v1/metrics"] ?? []).includes("\"rpc.server.duration\""),
      20_000,
      "rpc.server.duration at the collector"
    )
    expect(JSON.stringify(received["/v1/metrics"])).toContain("\"messaging.client.sent.messages\"")
  })
})
