/**
 * Prometheus text exposition (format 0.0.4) of Effect's metric registry —
 * the `MetricsService` figures among them — plus the usual process figures
 * (`process_resident_memory_bytes`, heap, CPU seconds, start time).
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as MetricPair from "effect/MetricPair"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"
import { openTelemetryNames } from "./MetricsService.ts"

const openTelemetryOnly: ReadonlySet<string> = new Set(Object.values(openTelemetryNames))

export const contentType = "text/plain; version=0.0.4; charset=utf-8"

const metricName = (name: string): string => {
  const cleaned = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return /^[a-zA-Z_:]/.test(cleaned) ? cleaned : `_${cleaned}`
}

const labelName = (name: string): string => {
  const cleaned = name.replace(/[^a-zA-Z0-9_]/g, "_")
  return /^[a-zA-Z_]/.test(cleaned) ? cleaned : `_${cleaned}`
}

const escapeLabel = (value: string): string => value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

const escapeHelp = (value: string): string => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

const labels = (pairs: ReadonlyArray<readonly [string, string]>): string =>
  pairs.length === 0 ? "" : `{${pairs.map(([k, v]) => `${labelName(k)}="${escapeLabel(v)}"`).join(",")}}`

const number = (n: number | bigint): string => {
  if (typeof n === "bigint") return n.toString()
  if (Number.isNaN(n)) return "NaN"
  if (n === Infinity) return "+Inf"
  if (n === -Infinity) return "-Inf"
  return String(n)
}

/**
 * Help text for Effect's own runtime metrics, which have none (on by default
 * in Effect 3; `RuntimeFlags.disableRuntimeMetrics` turns them off).
 */
const effectRuntimeHelp: Record<string, string> = {
  effect_fiber_started: "Fibers started (Effect runtime metrics).",
  effect_fiber_active: "Fibers running now (Effect runtime metrics; a counter that goes down).",
  effect_fiber_successes: "Fibers that succeeded (Effect runtime metrics).",
  effect_fiber_failures: "Fibers that failed (Effect runtime metrics).",
  effect_fiber_lifetimes: "Fiber lifetimes in milliseconds (Effect runtime metrics)."
}

interface Family {
  type: "counter" | "gauge" | "histogram" | "summary"
  help: string | undefined
  readonly lines: Array<string>
}

/** Renders metric pairs (e.g. `Metric.snapshot`) in the Prometheus text format. */
export const render = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, Family>()
  const family = (name: string, type: Family["type"], help: string | undefined): Family => {
    let found = families.get(name)
    if (found === undefined) {
      found = { type, help, lines: [] }
      families.set(name, found)
    }
    return found
  }
  for (const pair of pairs) {
    // Exported under OpenTelemetry's names by an OTLP exporter; here they are the `stream_*` series.
    if (openTelemetryOnly.has(pair.metricKey.name)) continue
    const name = metricName(pair.metricKey.name)
    const help = Option.getOrUndefined(pair.metricKey.description) ?? effectRuntimeHelp[name]
    const tags = pair.metricKey.tags.map((tag) => [tag.key, tag.value] as const)
    const state = pair.metricState
    if (MetricState.isCounterState(state)) {
      family(name, "counter", help).lines.push(`${name}${labels(tags)} ${number(state.count)}`)
    } else if (MetricState.isGaugeState(state)) {
      family(name, "gauge", help).lines.push(`${name}${labels(tags)} ${number(state.value)}`)
    } else if (MetricState.isHistogramState(state)) {
      const f = family(name, "histogram", help)
      let sawInfinity = false
      for (const [bound, count] of state.buckets) {
        if (!Number.isFinite(bound)) sawInfinity = true
        f.lines.push(`${name}_bucket${labels([...tags, ["le", number(bound)]])} ${count}`)
      }
      if (!sawInfinity) f.lines.push(`${name}_bucket${labels([...tags, ["le", "+Inf"]])} ${state.count}`)
      f.lines.push(`${name}_sum${labels(tags)} ${number(state.sum)}`, `${name}_count${labels(tags)} ${state.count}`)
    } else if (MetricState.isFrequencyState(state)) {
      const f = family(name, "counter", help)
      for (const [key, count] of state.occurrences) {
        f.lines.push(`${name}${labels([...tags, ["key", key]])} ${count}`)
      }
    } else if (MetricState.isSummaryState(state)) {
      const f = family(name, "summary", help)
      for (const [quantile, value] of state.quantiles) {
        f.lines.push(`${name}${labels([...tags, ["quantile", number(quantile)]])} ${number(Option.getOrElse(value, () => NaN))}`)
      }
      f.lines.push(`${name}_sum${labels(tags)} ${number(state.sum)}`, `${name}_count${labels(tags)} ${state.count}`)
    }
  }
  let out = ""
  for (const [name, f] of families) {
    if (f.help !== undefined) out += `# HELP ${name} ${escapeHelp(f.help)}\n`
    out += `# TYPE ${name} ${f.type}\n`
    out += f.lines.join("\n") + "\n"
  }
  return out
}

const startTimeSeconds = Date.now() / 1000 - (typeof process === "undefined" ? 0 : process.uptime())

/** The process figures every Prometheus dashboard expects. */
export const processMetrics = (): string => {
  if (typeof process === "undefined") return ""
  const memory = process.memoryUsage()
  const cpu = process.cpuUsage()
  const gauge = (name: string, help: string, value: number, type: "gauge" | "counter" = "gauge") =>
    `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${number(value)}\n`
  return gauge("process_resident_memory_bytes", "Resident memory size in bytes.", memory.rss) +
    gauge("process_heap_bytes", "V8 heap used in bytes.", memory.heapUsed) +
    gauge("process_cpu_seconds_total", "User and system CPU time spent in seconds.", (cpu.user + cpu.system) / 1e6, "counter") +
    gauge("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.", startTimeSeconds)
}

/** `GET /metrics`: the registry and the process figures. */
export const response: Effect.Effect<HttpServerResponse.HttpServerResponse> = Effect.map(
  Metric.snapshot,
  (pairs) => HttpServerResponse.text(render(pairs) + processMetrics(), { contentType })
)
