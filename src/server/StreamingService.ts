/**
 * The service that owns the backpressure policies. Every streaming response
 * of the library goes through one of its three methods:
 *
 * | method     | policy (domain values, before encoding) | wire                       |
 * |------------|-----------------------------------------|----------------------------|
 * | `sse`      | sliding, 64 — stale values dropped      | Server-Sent Events         |
 * | `download` | suspend, 256 chunks                     | raw bytes                  |
 * | `export`   | suspend, 128 rows                       | json array / csv / ndjson  |
 *
 * Each is usable on its own from any `HttpRouter` route. Cleanup runs on
 * every termination (end, failure, client disconnect, interruption) and logs
 * one line; metrics are recorded when a `MetricsService` is provided.
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Tracer from "effect/Tracer"
import * as BackpressurePolicy from "./BackpressurePolicy.ts"
import * as Drains from "./internal/Drains.ts"
import type { Drain } from "./GracefulShutdown.ts"
import { MetricsService, type StreamMetrics, type Termination } from "./MetricsService.ts"
import * as Platform from "./internal/Platform.ts"
import { StreamingConfig } from "./StreamingConfig.ts"
import * as SseResponse from "./internal/SseResponse.ts"
import type { SuspendBuffer } from "./internal/SuspendBuffer.ts"
import * as Transfer from "./internal/Transfer.ts"
import * as Spans from "./internal/Spans.ts"
import * as ContentDisposition from "../protocol/ContentDisposition.ts"
import * as ExportFormat from "../protocol/ExportFormat.ts"
import * as Names from "../protocol/Names.ts"

/** What every kind's options share. */
interface CommonOptions<E, R> {
  /** Name used in logs and metrics (the procedure's tag). */
  readonly name: string
  /**
   * Runs around the whole run of the source (from its first pull to its end),
   * as a `wrap` middleware of `@effect/rpc` does around a handler.
   */
  readonly around?: ((run: Effect.Effect<void, E, R>) => Effect.Effect<void, E, R>) | undefined
  /**
   * A span (`Effect.makeSpan`) the stream ends when it ends, however it ends,
   * with what it delivered: `effect_stream_rpc.values`, `.bytes`, `.dropped`
   * (subscriptions) and `.termination`. `HttpTransport` passes each call's.
   */
  readonly span?: Tracer.Span | undefined
}

export interface SseOptions<A, E, R> extends CommonOptions<E, R> {
  readonly stream: Stream.Stream<A, E, R>
  /** JSON text of a value for the `data:` line. */
  readonly serialize: (value: A) => string
  /**
   * Cursor of a value, sent as `id:` so a client can resume with `Last-Event-ID`.
   * A value published to a `Topic` is sent with the topic's cursor instead: the topic resumes it.
   */
  readonly id?: ((value: A) => string) | undefined
  /** JSON of a typed failure for the `error` event; it must carry a `_tag`. */
  readonly serializeError?: ((error: E) => string) | undefined
  /** Frames sent once before the first value (e.g. a `dropped` count for a resume gap). */
  readonly preamble?: string | undefined
}

export interface DownloadOptions<E, R> extends Omit<CommonOptions<E, R>, "name"> {
  readonly stream: Stream.Stream<Uint8Array, E, R>
  /** Name used in logs and metrics; defaults to the file name. */
  readonly name?: string | undefined
  readonly contentType?: string | undefined
  readonly filename?: string | undefined
  readonly contentLength?: number | undefined
}

export interface ExportOptions<A, E, R> extends CommonOptions<E, R> {
  readonly stream: Stream.Stream<A, E, R>
  readonly format: ExportFormat.ExportFormat
  /** Turns a domain row into its encoded form (e.g. a Schema encode); rows as they are without it. */
  readonly serialize?: ((row: A) => unknown) | undefined
  /**
   * The JSON text of a domain row, for the `json` and `ndjson` formats (e.g. a
   * compiled encoder); without it, `JSON.stringify` of `serialize(row)`.
   */
  readonly json?: ((row: A) => string) | undefined
  /** CSV column order; without it the keys of the first row (`HttpTransport` passes the row schema's fields). */
  readonly columns?: ReadonlyArray<string> | undefined
  /** File name without extension; defaults to `name`. */
  readonly filename?: string | undefined
}

const genericErrorJson = (error: unknown): string => {
  if (typeof error === "object" && error !== null && typeof (error as { _tag?: unknown })._tag === "string") {
    const tag = (error as { _tag: string })._tag
    const message = (error as { message?: unknown }).message
    return JSON.stringify({ _tag: tag, message: typeof message === "string" && message !== "" ? message : tag })
  }
  return JSON.stringify({ _tag: "StreamFailed", message: "The stream failed" })
}

/**
 * A transfer's bookkeeping: metrics, termination, its place in the drain and
 * the cleanup log line (a subscription's is `core/SseAnswer`).
 */
class Lifecycle {
  termination: Termination = "interrupted"
  values = 0
  bytes = 0
  /** Why it failed after it started, for its span. */
  failure: unknown = undefined
  readonly startedAt = Date.now()
  private readonly ended: () => void
  constructor(
    readonly kind: "download" | "export",
    readonly name: string,
    readonly metrics: StreamMetrics | undefined,
    shutdown: Drain,
    /** Ends the transfer by force when the drain's deadline passes. */
    cut: () => void,
    readonly span: Tracer.Span | undefined
  ) {
    metrics?.started(kind, name)
    this.ended = shutdown.transferStarted(cut)
  }
  delivered(values: number, bytes: number): void {
    this.values += values
    this.bytes += bytes
    this.metrics?.delivered(this.kind, this.name, values, bytes)
  }
  readonly cleanup: Effect.Effect<void> = Effect.clockWith((clock) => {
    const durationMillis = Date.now() - this.startedAt
    this.ended()
    this.metrics?.ended(this.kind, this.name, this.termination, durationMillis, this.values)
    if (this.span !== undefined) {
      Spans.end(this.span, clock.unsafeCurrentTimeNanos(), {
        values: this.values,
        bytes: this.bytes,
        termination: this.termination,
        failure: this.failure
      })
    }
    return Effect.logInfo("stream closed").pipe(
      Effect.annotateLogs({
        kind: this.kind,
        stream: this.name,
        termination: this.termination,
        values: this.values,
        bytes: this.bytes,
        durationMillis
      })
    )
  })
}

/**
 * Subscription over Server-Sent Events: the sliding policy (64 values,
 * oldest dropped and counted), then encoding, a heartbeat comment every
 * configured interval on a stream that wrote nothing since the last one,
 * and `end` / `error` events. A `Topic` subscription is written from the
 * topic's shared frames. The body is a web `ReadableStream`: usable from
 * any route, on any platform.
 */
export const sse = <A, E, R>(options: SseOptions<A, E, R>): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  Effect.flatMap(Effect.context<R>(), (context) =>
    SseResponse.webResponse<A, E>({
      name: options.name,
      source: options.stream as Stream.Stream<A, E>,
      serialize: options.serialize,
      id: options.id,
      serializeError: options.serializeError ?? genericErrorJson,
      run: options.around as Around<E>,
      wrapped: options.around !== undefined,
      context: context as Context.Context<never>,
      preamble: options.preamble,
      span: options.span
    }))

type Around<E> = ((run: Effect.Effect<void, E>) => Effect.Effect<void, E>) | undefined

/** The request being answered and the Node module, when Node serves it. */
const servedByNode = Effect.flatMap(
  Effect.serviceOption(HttpServerRequest.HttpServerRequest),
  (request) =>
    Option.isNone(request)
      ? Effect.succeed(undefined)
      : Effect.map(Platform.node(request.value), (node) => node === undefined ? undefined : { node, request: request.value })
)

/**
 * The response of a started transfer: its lifecycle (metrics, shutdown,
 * the cleanup line, run when the request's scope closes, whatever ends it)
 * and its body, a `Readable` on Node, a Stream elsewhere.
 */
const transferResponse = <A, E>(
  kind: "download" | "export",
  name: string,
  buffer: SuspendBuffer<A, E>,
  encoding: Transfer.Encoding<A>,
  options: { readonly contentType: string; readonly headers: Record<string, string> },
  span: Tracer.Span | undefined,
  slabs?: Transfer.Slabs | undefined
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const context = runtime.context
    const metrics = Context.getOption(context, MetricsService)
    const shutdown = Drains.fromContext(context)
    const served = yield* servedByNode
    let cut = () => {}
    const life = new Lifecycle(kind, name, Option.getOrUndefined(metrics), shutdown, () => cut(), span)
    yield* Effect.addFinalizer(() => life.cleanup)
    const observer: Transfer.Observer = {
      delivered: (values, bytes) => life.delivered(values, bytes),
      completed: () => {
        life.termination = "completed"
      },
      failed: (cause) => {
        life.termination = "failed"
        life.failure = Cause.squash(cause)
        Runtime.runSync(runtime)(Effect.logWarning("transfer failed after it started; cutting the connection", cause))
      },
      stalled: () => {
        Runtime.runSync(runtime)(
          Effect.logWarning(`transfer stalled: the client took no byte for ${Duration.format(stall)}; cutting the connection`).pipe(
            Effect.annotateLogs({ kind, stream: name })
          )
        )
        cut()
      }
    }
    const stall = Context.get(context, StreamingConfig).transferStallTimeout
    if (served !== undefined) {
      const millis = Duration.toMillis(stall)
      const body = new served.node.NodeBody(buffer, encoding, observer, slabs, Number.isFinite(millis) ? Math.max(1, millis) : Infinity)
      cut = () => {
        served.node.cut(served.request)
        body.destroy()
      }
      return HttpServerResponse.raw(body, options)
    }
    let writer: Fiber.RuntimeFiber<unknown, unknown> | undefined
    cut = () => Transfer.interruptBody(writer)
    const body = Transfer.webBody(buffer, encoding, observer, (fiber) => {
      writer = fiber
    })
    return HttpServerResponse.stream(body, options)
  })

/**
 * A transfer that fails (or is interrupted) before its response exists never
 * gets a lifecycle: its span ends here, with nothing delivered.
 */
const endSpanUnstarted = (span: Tracer.Span | undefined) =>
<A, E, R>(transfer: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  span === undefined ? transfer : Effect.onExit(transfer, (exit) =>
    exit._tag === "Success" ? Effect.void : Effect.clockWith((clock) =>
      Effect.sync(() =>
        Spans.endUnstarted(span, clock.unsafeCurrentTimeNanos(), {
          termination: Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "failed",
          failure: Cause.squash(exit.cause)
        })
      )
    ))

/** Chunks of a download pass as they are, 16 per write before waiting for `drain`. */
const downloadEncoding: Transfer.Encoding<Uint8Array> = {
  batch: 16,
  header: "",
  encode: (chunks) => chunks,
  footer: () => ""
}

/**
 * Binary download: the suspend policy (256 chunks) holds the producer back
 * while the client reads slowly. Fails with the stream's error when it fails
 * before its first chunk (answer it as an HTTP error); after that, a failure
 * aborts the transfer. The stream may be `fromReadable(...)` of a Node
 * `Readable` or a web `ReadableStream`: it is then read directly.
 */
export const download = <E, R>(
  options: DownloadOptions<E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | Scope.Scope> =>
  Effect.gen(function*() {
    const filename = options.filename
    const name = options.name ?? filename ?? "download"
    // Served by Node, the chunks wait in reusable slabs (see `Transfer.Slabs`).
    const slabs = (yield* servedByNode) !== undefined ? new Transfer.Slabs() : undefined
    const buffer = yield* Transfer.start(options.stream, BackpressurePolicy.capacities.download, options.around, slabs)
    const headers: Record<string, string> = {}
    if (filename !== undefined) headers[Names.headers.contentDisposition] = ContentDisposition.attachment(filename)
    if (options.contentLength !== undefined) headers[Names.headers.contentLength] = String(options.contentLength)
    return yield* transferResponse("download", name, buffer, downloadEncoding, {
      contentType: options.contentType ?? Names.contentTypes.octetStream,
      headers
    }, options.span, slabs)
  }).pipe(endSpanUnstarted(options.span))

/**
 * Export of rows: the suspend policy (128 rows), then `json` (a streamed
 * array), `csv` (RFC 4180, formula-injection safe) or `ndjson`, every
 * buffered row written as one text. Failures as for `download`.
 */
const exportRows = <A, E, R>(
  options: ExportOptions<A, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | Scope.Scope> =>
  Effect.gen(function*() {
    const { format, json, serialize } = options
    const buffer = yield* Transfer.start(options.stream, BackpressurePolicy.capacities.export, options.around)
    // The JSON formats take each row's text from `json` when given: no encoded copy of the row in between.
    const direct = format !== "csv" && json !== undefined
    const encoder = ExportFormat.encoder(format, options.columns, direct ? (json as (row: unknown) => string) : undefined)
    const encoding: Transfer.Encoding<A> = {
      batch: BackpressurePolicy.capacities.export,
      header: encoder.header,
      encode: direct || serialize === undefined
        ? (rows) => encoder.rows(rows)
        : (rows) => encoder.rows(rows.map(serialize)),
      footer: () => encoder.footer
    }
    return yield* transferResponse("export", options.name, buffer, encoding, {
      contentType: ExportFormat.contentTypes[format],
      headers: {
        [Names.headers.contentDisposition]: ContentDisposition.attachment(
          `${options.filename ?? options.name}.${ExportFormat.extensions[format]}`
        )
      }
    }, options.span)
  }).pipe(endSpanUnstarted(options.span))

export { exportRows as export }

/**
 * A Node `Readable` (e.g. `fs.createReadStream(path)`) or a web
 * `ReadableStream` of bytes as the Stream a download handler returns; served
 * as a download it is read directly, paused while the policy's 256 chunks are
 * held, destroyed (cancelled) when the transfer ends early.
 */
export const fromReadable = Transfer.fromReadable

/**
 * The three methods as a service, for code that takes them from its context
 * (and a test that swaps them); they are this module's `sse`, `download` and
 * `export`.
 */
export class StreamingService extends Effect.Service<StreamingService>()("effect-stream-rpc/StreamingService", {
  succeed: { sse, download, export: exportRows }
}) {}
