import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricsService from "../src/server/MetricsService.ts"
import * as Prometheus from "../src/server/Prometheus.ts"

describe("Prometheus exposition", () => {
  it.effect("renders the streaming metrics with their labels, and the process figures", () =>
    Effect.gen(function*() {
      const metrics = yield* MetricsService.make
      metrics.started("subscription", "prices \"live\"")
      metrics.delivered("subscription", "prices \"live\"", 3, 120)
      metrics.dropped("subscription", "prices \"live\"", 7)
      metrics.ended("subscription", "prices \"live\"", "interrupted", 250)
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
