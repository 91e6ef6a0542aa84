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
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as BackpressurePolicy from "./BackpressurePolicy.ts"
import * as GracefulShutdown from "./GracefulShutdown.ts"
import type { Drain } from "./GracefulShutdown.ts"
import { MetricsService, type StreamKind, type StreamMetrics, type Termination } from "./MetricsService.ts"
import * as Scheduling from "./internal/Scheduling.ts"
import { StreamingConfig } from "./StreamingConfig.ts"
import * as Topic from "../topic/Topic.ts"
import * as Transfer from "./internal/Transfer.ts"
import * as ContentDisposition from "../protocol/ContentDisposition.ts"
import * as ExportFormat from "../protocol/ExportFormat.ts"
import * as Names from "../protocol/Names.ts"
import * as Sse from "../protocol/Sse.ts"

/** What every kind's options share. */
interface CommonOptions<E, R> {
  /** Name used in logs and metrics (the procedure's tag). */
  readonly name: string
  /**
   * Runs around the whole run of the source (from its first pull to its end),
   * as a `wrap` middleware of `@effect/rpc` does around a handler.
   */
  readonly around?: ((run: Effect.Effect<void, E, R>) => Effect.Effect<void, E, R>) | undefined
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
  /** CSV column order; without it the keys of the first row. */
  readonly columns?: ReadonlyArray<string> | undefined
  /** File name without extension; defaults to `name`. */
  readonly filename?: string | undefined
}

/** The body of the `error` event for a defect: no message, no stack. */
export const internalErrorJson = JSON.stringify({ _tag: "InternalError", message: "Internal server error" })

const genericErrorJson = (error: unknown): string => {
  if (typeof error === "object" && error !== null && typeof (error as { _tag?: unknown })._tag === "string") {
    const tag = (error as { _tag: string })._tag
    const message = (error as { message?: unknown }).message
    return JSON.stringify({ _tag: tag, message: typeof message === "string" && message !== "" ? message : tag })
  }
  return JSON.stringify({ _tag: "StreamFailed", message: "The stream failed" })
}

const utf8 = new TextEncoder()

/** Lifecycle bookkeeping shared by the three kinds: metrics, termination, shutdown and the cleanup log line. */
class Lifecycle {
  termination: Termination = "interrupted"
  values = 0
  bytes = 0
  readonly startedAt = Date.now()
  private readonly ended: (() => void) | undefined
  constructor(
    readonly kind: StreamKind,
    readonly name: string,
    readonly metrics: StreamMetrics | undefined,
    readonly shutdown: Drain,
    /** Ends the transfer by force (see `cutter`). */
    readonly cut: () => void
  ) {
    metrics?.started(kind, name)
    this.ended = kind === "subscription" ? undefined : shutdown.transferStarted(cut)
  }
  delivered(values: number, bytes: number): void {
    this.values += values
    this.bytes += bytes
    this.metrics?.delivered(this.kind, this.name, values, bytes)
  }
  dropped(count: number): void {
    this.metrics?.dropped(this.kind, this.name, count)
  }
  readonly cleanup: Effect.Effect<void> = Effect.suspend(() => {
    const durationMillis = Date.now() - this.startedAt
    this.ended?.()
    this.metrics?.ended(this.kind, this.name, this.termination, durationMillis)
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
 * Ends a transfer whose bytes have started by force: the connection is
 * destroyed (Node would otherwise end a failed body cleanly) and the fiber
 * writing the body is interrupted, which errors a web `ReadableStream` body
 * (`toWebHandler`). Either way the client sees a truncated transfer.
 */
const cutter = (request: Option.Option<HttpServerRequest.HttpServerRequest>, writer: Fiber.RuntimeFiber<unknown, unknown>) => () => {
  if (Option.isSome(request)) {
    const source = request.value.source as { readonly socket?: { destroy?: () => void } | null } | null
    source?.socket?.destroy?.()
  }
  writer.unsafeInterruptAsFork(FiberId.none)
}

/**
 * The body of a response: `make` builds it from the stream's lifecycle when
 * the body starts, in the context of the request that asked for it (the
 * services the application provided reach the body, whichever runtime runs it).
 */
const body = <A>(
  kind: StreamKind,
  name: string,
  context: Context.Context<never>,
  make: (life: Lifecycle) => Stream.Stream<Uint8Array, A>
): Stream.Stream<Uint8Array, A> =>
  // The server's fiber runs the body: it gives the event loop a turn often (see `Scheduling`).
  Stream.unwrap(Effect.zipRight(FiberRef.set(FiberRef.currentScheduler, Scheduling.scheduler), Effect.withFiberRuntime<Stream.Stream<Uint8Array, A>>((fiber) => {
    const metrics = Context.getOption(context, MetricsService)
    const shutdown = GracefulShutdown.fromContext(context)
    const request = Context.getOption(context, HttpServerRequest.HttpServerRequest)
    const life = new Lifecycle(kind, name, Option.getOrUndefined(metrics), shutdown, cutter(request, fiber))
    return Effect.succeed(make(life).pipe(Stream.ensuring(life.cleanup)))
  }))).pipe(Stream.provideContext(context))

/**
 * Subscription over Server-Sent Events: the sliding policy (64 values,
 * oldest dropped and counted), then encoding, a heartbeat comment every
 * configured interval, and `end` / `error` events.
 */
export const sse = <A, E, R>(options: SseOptions<A, E, R>): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  Effect.gen(function*() {
    const config = yield* StreamingConfig
    const context = yield* Effect.context<R>()
    const { id, serialize } = options
    const serializeError = options.serializeError ?? genericErrorJson
    let opening = config.retry === undefined ? Sse.comment("ok") : Sse.retry(Duration.toMillis(config.retry))
    if (options.preamble !== undefined) opening += options.preamble

    // A Topic subscription carries its own cursors: they are the `id:`, whatever `options.id` says.
    const fromTopic = Topic.isSubscription(options.stream)
    const items: Stream.Stream<A | Topic.Entry<A>, E, R> = fromTopic
      ? (options.stream as unknown as Topic.Subscription<A>).entries
      : options.stream
    const frame = fromTopic
      ? (item: A | Topic.Entry<A>) => {
        const entry = item as Topic.Entry<A>
        return Sse.event({ id: entry.cursor, data: serialize(entry.value) })
      }
      : (item: A | Topic.Entry<A>) => {
        const value = item as A
        const cursor = Topic.cursorOf(value) ?? (id === undefined ? undefined : id(value))
        return Sse.event({ id: cursor, data: serialize(value) })
      }

    const events = body("subscription", options.name, context as Context.Context<never>, (life) => {
      const encodeBatch = (batch: BackpressurePolicy.SlidingBatch<A | Topic.Entry<A>>): Uint8Array => {
        let text = ""
        // One heartbeat however many intervals passed while the socket held the writer up.
        if (batch.ticks > 0) text += Sse.heartbeat
        if (batch.unknownGap || batch.dropped > 0) {
          text += Sse.dropped(batch.unknownGap ? null : batch.dropped)
          if (batch.dropped > 0) life.dropped(batch.dropped)
        }
        const values = batch.values
        for (let i = 0; i < values.length; i++) text += frame(values[i]!)
        const bytes = utf8.encode(text)
        life.delivered(values.length, bytes.byteLength)
        return bytes
      }
      const finish = (frame: string, termination: Termination) =>
        Stream.sync(() => {
          life.termination = termination
          return utf8.encode(frame)
        })
      // Draining ends subscriptions without `end`: clients reconnect elsewhere and resume.
      let drained = false
      const values = BackpressurePolicy.sliding(
        items as Stream.Stream<A | Topic.Entry<A>, E>,
        BackpressurePolicy.capacities.subscription,
        {
          tick: config.heartbeatInterval,
          until: Effect.tap(Deferred.await(life.shutdown.draining), () => {
            drained = true
          }),
          around: options.around as Around<E>
        }
      ).pipe(
        Stream.map(encodeBatch),
        Stream.concat(Stream.suspend(() => (drained ? Stream.empty : finish(Sse.end, "completed")))),
        Stream.catchAllCause((cause) => {
          if (Cause.isInterruptedOnly(cause)) return Stream.failCause(cause)
          const failure = Cause.failureOption(cause)
          if (Option.isSome(failure)) return finish(Sse.error(serializeError(failure.value)), "failed")
          return Stream.fromEffect(Effect.logError("subscription defect", cause)).pipe(
            Stream.drain,
            Stream.concat(finish(Sse.error(internalErrorJson), "failed"))
          )
        })
      )
      return Stream.concat(Stream.make(utf8.encode(opening)), values)
    })

    return HttpServerResponse.stream(events, {
      contentType: Names.contentTypes.eventStream,
      headers: {
        [Names.headers.cacheControl]: "no-cache, no-transform",
        [Names.headers.accelBuffering]: "no"
      }
    })
  })

type Around<E> = ((run: Effect.Effect<void, E>) => Effect.Effect<void, E>) | undefined

/** A request served by Node (its source is a node:http request with a socket). */
const isNodeRequest = (request: Option.Option<HttpServerRequest.HttpServerRequest>): boolean =>
  Option.isSome(request) &&
  typeof (request.value.source as { readonly socket?: unknown } | null)?.socket === "object"

/**
 * The response of a started transfer: its lifecycle (metrics, shutdown,
 * the cleanup line, run when the request's scope closes, whatever ends it)
 * and its body, a `Readable` on Node, a Stream elsewhere.
 */
const transferResponse = <A, E>(
  kind: "download" | "export",
  name: string,
  buffer: BackpressurePolicy.SuspendBuffer<A, E>,
  encoding: Transfer.Encoding<A>,
  options: { readonly contentType: string; readonly headers: Record<string, string> },
  slabs?: Transfer.Slabs | undefined
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const context = runtime.context
    const metrics = Context.getOption(context, MetricsService)
    const shutdown = GracefulShutdown.fromContext(context)
    const request = Context.getOption(context, HttpServerRequest.HttpServerRequest)
    let cut = () => {}
    const life = new Lifecycle(kind, name, Option.getOrUndefined(metrics), shutdown, () => cut())
    yield* Effect.addFinalizer(() => life.cleanup)
    const observer: Transfer.Observer = {
      delivered: (values, bytes) => life.delivered(values, bytes),
      completed: () => {
        life.termination = "completed"
      },
      failed: (cause) => {
        life.termination = "failed"
        Runtime.runSync(runtime)(Effect.logWarning("transfer failed after it started; cutting the connection", cause))
      }
    }
    if (isNodeRequest(request)) {
      const body = new Transfer.NodeBody(buffer, encoding, observer, slabs)
      const socket = (request as Option.Some<HttpServerRequest.HttpServerRequest>).value.source as {
        readonly socket?: { destroy?: () => void } | null
      }
      cut = () => {
        socket.socket?.destroy?.()
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
    const slabs = isNodeRequest(yield* Effect.serviceOption(HttpServerRequest.HttpServerRequest))
      ? new Transfer.Slabs()
      : undefined
    const buffer = yield* Transfer.start(options.stream, BackpressurePolicy.capacities.download, options.around, slabs)
    const headers: Record<string, string> = {}
    if (filename !== undefined) headers[Names.headers.contentDisposition] = ContentDisposition.attachment(filename)
    if (options.contentLength !== undefined) headers[Names.headers.contentLength] = String(options.contentLength)
    return yield* transferResponse("download", name, buffer, downloadEncoding, {
      contentType: options.contentType ?? Names.contentTypes.octetStream,
      headers
    }, slabs)
  })

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
    })
  })

export { exportRows as export }

/**
 * A Node `Readable` (e.g. `fs.createReadStream(path)`) or a web
 * `ReadableStream` of bytes as the Stream a download handler returns; served
 * as a download it is read directly, paused while the policy's 256 chunks are
 * held, destroyed (cancelled) when the transfer ends early.
 */
export const fromReadable = Transfer.fromReadable

export class StreamingService extends Effect.Service<StreamingService>()("effect-stream-rpc/StreamingService", {
  succeed: { sse, download, export: exportRows }
}) {
  /** Subscription over SSE with the sliding policy (64). */
  static readonly sse = sse
  /** Binary download with the suspend policy (256 chunks). */
  static readonly download = download
  /** Export as json / csv / ndjson with the suspend policy (128 rows). */
  static readonly export = exportRows
  /** A Node `Readable` or web `ReadableStream` of bytes as a download's Stream. */
  static readonly fromReadable = Transfer.fromReadable
}
