import * as RpcGroup from "@effect/rpc/RpcGroup"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Procedure from "../src/contract/Procedure.ts"
import * as HttpTransport from "../src/server/HttpTransport.ts"
import * as MetricsService from "../src/server/MetricsService.ts"
import * as Prometheus from "../src/server/Prometheus.ts"

describe("Prometheus exposition", () => {
  it.effect("renders the streaming metrics with their labels, and the process figures", () =>
    Effect.gen(function*() {
      const metrics = yield* MetricsService.make
      metrics.started("subscription", "prices \"live\"")
      metrics.delivered("subscription", "prices \"live\"", 3, 120)
      metrics.dropped("subscription", "prices \"live\"", 7)
      metrics.ended("subscription", "prices \"live\"", "interrupted", 250, 3)
      const response = yield* Prometheus.response
      expect(response.headers["content-type"]).toBe(Prometheus.contentType)
      const text = Prometheus.render(yield* Metric.snapshot) + Prometheus.processMetrics()
      const labels = "kind=\"subscription\",stream=\"prices \\\"live\\\"\""
      expect(text).toContain("# TYPE stream_active gauge\n")
      expect(text).toContain(`stream_active{${labels}} 0\n`)
      expect(text).toContain(`stream_values_total{${labels}} 3\n`)
      expect(text).toContain(`stream_bytes_total{${labels}} 120\n`)
      expect(text).toContain(`stream_dropped_total{${labels}} 7\n`)
      expect(text).toContain(`stream_terminations_total{${labels},termination="interrupted"} 1\n`)
      expect(text).toContain("# TYPE stream_duration_seconds histogram\n")
      // The OpenTelemetry-named instruments are for an OTLP exporter, not this exposition.
      expect(text).not.toMatch(/rpc_server|rpc\.server|messaging/)
      const otel = (yield* Metric.snapshot).filter((pair) => pair.metricKey.name.startsWith("rpc.server.") || pair.metricKey.name.startsWith("messaging."))
      expect(otel.map((pair) => pair.metricKey.name).sort()).toEqual(
        expect.arrayContaining(["messaging.client.sent.messages", "rpc.server.duration", "rpc.server.responses_per_rpc"])
      )
      expect(text).toContain(`stream_duration_seconds_bucket{${labels},le="+Inf"} 1\n`)
      expect(text).toContain(`stream_duration_seconds_sum{${labels}} 0.25\n`)
      expect(text).toMatch(/^process_resident_memory_bytes \d+$/m)
      // every sample line is "name{labels} value"
      for (const line of text.split("\n")) {
        if (line === "" || line.startsWith("#")) continue
        expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/)
      }
    }))
})

describe("series shown before their first event", () => {
  it.scoped("a served procedure's counters are at 0 from the start, with a shed series per reason its admission can give", () =>
    Effect.gen(function*() {
      const quietFeed = Procedure.subscription("quietFeedNeverCalled", { success: Schema.Number })
      const quietExport = Procedure.export("quietExportNeverCalled", { row: Schema.Struct({ n: Schema.Number }) })
      const Api = RpcGroup.make(quietFeed, quietExport)
      yield* HttpTransport.toHttpApp(Api).pipe(
        Effect.provide(Api.toLayer({ quietFeedNeverCalled: () => Stream.never, quietExportNeverCalled: () => Stream.never })),
        Effect.provide(MetricsService.layer)
      )
      const lines = Prometheus.render(yield* Metric.snapshot).split("\n")
      const value = (series: string) => lines.find((line) => line.startsWith(`${series} `))?.split(" ").pop()
      const feed = `kind="subscription",stream="quietFeedNeverCalled"`
      const rows = `kind="export",stream="quietExportNeverCalled"`
      expect(value(`stream_dropped_total{${feed}}`)).toBe("0")
      expect(value(`stream_failures_total{${feed}}`)).toBe("0")
      expect(value(`stream_active{${feed}}`)).toBe("0")
      expect(value(`stream_terminations_total{${feed},termination="failed"}`)).toBe("0")
      expect(value(`stream_failures_total{${rows}}`)).toBe("0")
      expect(value(`stream_dropped_total{${rows}}`)).toBeUndefined() // exports never drop
      for (const reason of ["event_loop_delay", "request_delay", "fan_out_delay", "subscriptions"]) {
        expect(value(`stream_shed_total{${feed},reason="${reason}"}`)).toBe("0")
      }
      for (const reason of ["event_loop_delay", "request_delay", "transfers"]) {
        expect(value(`stream_shed_total{${rows},reason="${reason}"}`)).toBe("0")
      }
      // off by default: no series for what cannot happen
      expect(value(`stream_shed_total{${feed},reason="event_loop_utilization"}`)).toBeUndefined()
      expect(value(`stream_shed_total{${rows},reason="client_transfers"}`)).toBeUndefined()
    }))
})
