/**
 * One server span per subscription and per transfer, through Effect's own
 * tracer: with `@effect/opentelemetry` (`NodeSdk.layer`, `Otlp.layer`, …)
 * provided, they are OpenTelemetry spans. The span starts when the call is
 * invoked (the child of the caller's `traceparent`, else of the current
 * span), the handler's stream runs under it, and the answer ends it when the
 * stream ends, however it ends, with what it delivered: values, dropped
 * values, bytes and termination. Its duration is the stream's lifetime.
 *
 * With no tracer provided (Effect's default one records nothing anywhere) a
 * Topic subscription, which runs no fiber, gets no span: it would only cost
 * memory for as long as it is open.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import type * as Tracer from "effect/Tracer"
import type { Termination } from "../../core/Metrics.ts"

/** The tracer a program has when none is provided. */
const defaultTracer = Effect.runSync(Effect.tracer)

/** True when a tracer other than Effect's default is provided. */
export const enabled: Effect.Effect<boolean> = Effect.map(Effect.tracer, (tracer) => tracer !== defaultTracer)

/** The attribute names of a stream's span, beside OpenTelemetry's `rpc.*`. */
export const attributes = {
  values: "effect_stream_rpc.values",
  dropped: "effect_stream_rpc.dropped",
  bytes: "effect_stream_rpc.bytes",
  termination: "effect_stream_rpc.termination"
} as const

/** What a stream delivered, for its span. */
export interface Delivered {
  readonly values: number
  readonly bytes: number
  /** Exact missed values announced (subscriptions only). */
  readonly dropped?: number | undefined
  readonly termination: Termination
  /** The failure sent to the client, when the stream failed. */
  readonly failure?: unknown
}

const failed = (failure: unknown) => Exit.fail(failure ?? "The stream failed")

/** Ends `span` with what the stream delivered, at `nanos` (the clock's current time). */
export const end = (span: Tracer.Span, nanos: bigint, delivered: Delivered): void => {
  span.attribute(attributes.values, delivered.values)
  span.attribute(attributes.bytes, delivered.bytes)
  if (delivered.dropped !== undefined) span.attribute(attributes.dropped, delivered.dropped)
  span.attribute(attributes.termination, delivered.termination)
  span.end(
    nanos,
    delivered.termination === "completed"
      ? Exit.void
      : delivered.termination === "failed"
      ? failed(delivered.failure)
      : Exit.interrupt(FiberId.none)
  )
}

/** Ends `span` of a stream that never started: nothing delivered. */
export const endUnstarted = (span: Tracer.Span, nanos: bigint, ending: Omit<Delivered, "values" | "bytes">): void =>
  end(span, nanos, { ...ending, values: 0, bytes: 0 })
