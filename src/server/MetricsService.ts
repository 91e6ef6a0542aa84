/**
 * Optional metrics for the streaming policies. `StreamingService` reads this
 * service with `Effect.serviceOption`: without it nothing is recorded and
 * everything works unchanged. `MetricsService.layer` records with Effect's
 * `Metric` module, labelled by `kind` and `stream`, so any Effect metrics
 * exporter (Prometheus, OpenTelemetry) can publish them.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"
import type { Kind as StreamKind, Metrics } from "../core/Metrics.ts"

export type { Kind as StreamKind, Termination } from "../core/Metrics.ts"

export interface StreamMetrics extends Metrics {
  /** A call refused with 503 because the server was past its capacity (see `HttpTransport` admission). */
  readonly shed: (kind: StreamKind | "unary", name: string, reason: string) => void
  /**
   * A multiplexed connection (wire protocol v1.1) opened (`1`) or closed
   * (`-1`). Its subscriptions are counted as subscriptions, each on its own.
   */
  readonly connection?: ((delta: 1 | -1) => void) | undefined
  /**
   * A procedure the server serves, and why its calls can be shed: its series
   * are shown at 0 from the start, so an alert on them sees a value, not
   * "no data", before the first event.
   */
  readonly declared?: ((kind: StreamKind | "unary", name: string, shedReasons: ReadonlyArray<string>) => void) | undefined
}

export class MetricsService extends Context.Tag("effect-stream-rpc/MetricsService")<
  MetricsService,
  StreamMetrics
>() {}

export const names = {
  active: "stream_active",
  values: "stream_values_total",
  bytes: "stream_bytes_total",
  dropped: "stream_dropped_total",
  failures: "stream_failures_total",
  terminations: "stream_terminations_total",
  shed: "stream_shed_total",
  connections: "stream_connections",
  duration: "stream_duration_seconds"
} as const

/** The metric definitions; their keys include the descriptions, so read them through these values. */
export const metrics = {
  active: Metric.gauge(names.active, { description: "Streams currently open" }),
  values: Metric.counter(names.values, {
    description: "Values delivered: events, rows or byte chunks",
    incremental: true
  }),
  bytes: Metric.counter(names.bytes, { description: "Bytes written to the socket", incremental: true }),
  dropped: Metric.counter(names.dropped, {
    description: "Values dropped by the sliding policy",
    incremental: true
  }),
  failures: Metric.counter(names.failures, { description: "Streams that ended in failure", incremental: true }),
  terminations: Metric.counter(names.terminations, {
    description: "Streams ended, by termination",
    incremental: true
  }),
  connections: Metric.gauge(names.connections, {
    description: "Multiplexed connections currently open (their subscriptions count in stream_active)"
  }),
  shed: Metric.counter(names.shed, {
    description: "Calls refused with 503 past capacity, by reason",
    incremental: true
  }),
  duration: Metric.histogram(
    names.duration,
    MetricBoundaries.exponential({ start: 0.01, factor: 4, count: 10 }),
    "Stream lifetime in seconds"
  )
}

/**
 * The same events under OpenTelemetry's semantic conventions, for an OTLP
 * exporter (`@effect/opentelemetry`'s `Otlp.layer` or `NodeSdk.layer` read
 * Effect's metric registry): every stream as an RPC of the server, and a
 * subscription's values as messages sent. The Prometheus `/metrics` keeps
 * the `stream_*` names above and leaves these out.
 */
export const openTelemetryNames = {
  duration: "rpc.server.duration",
  responsesPerRpc: "rpc.server.responses_per_rpc",
  sentMessages: "messaging.client.sent.messages"
} as const

export const openTelemetry = {
  duration: Metric.histogram(
    openTelemetryNames.duration,
    MetricBoundaries.fromIterable([5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000, 60000, 300000, 3600000]),
    "Duration of the calls served, streams from their start to their end (ms)"
  ),
  responsesPerRpc: Metric.histogram(
    openTelemetryNames.responsesPerRpc,
    MetricBoundaries.exponential({ start: 1, factor: 4, count: 12 }),
    "Values a stream delivered: events, rows or byte chunks ({count})"
  ),
  sentMessages: Metric.counter(openTelemetryNames.sentMessages, {
    description: "Values a subscription sent to its client ({message})",
    incremental: true
  })
}

/** One of the metrics above, narrowed to a kind and a stream name. */
export const labelled = <Type, In, Out>(
  metric: Metric.Metric<Type, In, Out>,
  kind: StreamKind,
  name: string
): Metric.Metric<Type, In, Out> => metric.pipe(Metric.tagged("kind", kind), Metric.tagged("stream", name))

/** Builds metrics backed by Effect's `Metric` registry. */
export const make: Effect.Effect<StreamMetrics> = Effect.sync(() => {
  const { active, bytes, connections, dropped, duration, failures, shed, terminations, values } = metrics
  // Metric updates happen once per chunk on the hot path: use the synchronous
  // entry points with labels instead of running an Effect each time.
  // Shown at 0 before the first connection, so a dashboard sees the series from the start.
  connections.unsafeModify(0, [])
  const labels = (kind: StreamKind, name: string) => [MetricLabel.make("kind", kind), MetricLabel.make("stream", name)]
  const rpcLabels = (kind: StreamKind, name: string) => [
    MetricLabel.make("rpc.system", "effect-stream-rpc"),
    MetricLabel.make("rpc.method", name),
    MetricLabel.make("effect_stream_rpc.kind", kind)
  ]
  const messagingLabels = (name: string) => [
    MetricLabel.make("messaging.system", "effect-stream-rpc"),
    MetricLabel.make("messaging.destination.name", name),
    MetricLabel.make("messaging.operation.name", "send"),
    MetricLabel.make("messaging.operation.type", "send")
  ]
  return {
    started: (kind, name) => active.unsafeModify(1, labels(kind, name)),
    delivered: (kind, name, count, size) => {
      const tags = labels(kind, name)
      values.unsafeUpdate(count, tags)
      bytes.unsafeUpdate(size, tags)
      if (kind === "subscription") openTelemetry.sentMessages.unsafeUpdate(count, messagingLabels(name))
    },
    dropped: (kind, name, count) => dropped.unsafeUpdate(count, labels(kind, name)),
    ended: (kind, name, termination, durationMillis, delivered) => {
      const rpc = rpcLabels(kind, name)
      openTelemetry.duration.unsafeUpdate(durationMillis, rpc)
      openTelemetry.responsesPerRpc.unsafeUpdate(delivered, rpc)
      const tags = labels(kind, name)
      active.unsafeModify(-1, tags)
      terminations.unsafeUpdate(1, [...tags, MetricLabel.make("termination", termination)])
      if (termination === "failed") failures.unsafeUpdate(1, tags)
      duration.unsafeUpdate(durationMillis / 1000, tags)
    },
    shed: (kind, name, reason) =>
      shed.unsafeUpdate(1, [MetricLabel.make("kind", kind), MetricLabel.make("stream", name), MetricLabel.make("reason", reason)]),
    connection: (delta) => connections.unsafeModify(delta, []),
    declared: (kind, name, shedReasons) => {
      for (const reason of shedReasons) {
        shed.unsafeUpdate(0, [MetricLabel.make("kind", kind), MetricLabel.make("stream", name), MetricLabel.make("reason", reason)])
      }
      if (kind === "unary") return
      const tags = labels(kind, name)
      active.unsafeModify(0, tags)
      values.unsafeUpdate(0, tags)
      bytes.unsafeUpdate(0, tags)
      failures.unsafeUpdate(0, tags)
      if (kind === "subscription") dropped.unsafeUpdate(0, tags)
      for (const termination of ["completed", "failed", "interrupted"] as const) {
        terminations.unsafeUpdate(0, [...tags, MetricLabel.make("termination", termination)])
      }
    }
  }
})

export const layer: Layer.Layer<MetricsService> = Layer.effect(MetricsService, make)
