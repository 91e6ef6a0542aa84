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
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as BackpressurePolicy from "./BackpressurePolicy.ts"
import * as ContentDisposition from "./ContentDisposition.ts"
import * as ExportFormat from "./ExportFormat.ts"
import { type Drain, GracefulShutdown } from "./GracefulShutdown.ts"
import { MetricsService, type StreamKind, type StreamMetrics, type Termination } from "./MetricsService.ts"
import { StreamingConfig } from "./StreamingConfig.ts"
import * as SseFraming from "./SseFraming.ts"
import * as Topic from "./Topic.ts"

export interface SseOptions<A, E> {
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

export interface DownloadConfig {
  readonly contentType?: string | undefined
  readonly filename?: string | undefined
  readonly contentLength?: number | undefined
  /** Name used in logs and metrics; defaults to the file name. */
  readonly name?: string | undefined
}

export interface ExportOptions {
  /** CSV column order; without it the keys of the first row. */
  readonly columns?: ReadonlyArray<string> | undefined
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

/** Lifecycle bookkeeping shared by the three kinds: metrics, termination and the cleanup log line. */
class Lifecycle {
  termination: Termination = "interrupted"
  values = 0
  bytes = 0
  readonly startedAt = Date.now()
  constructor(
    readonly kind: StreamKind,
    readonly name: string,
    readonly metrics: StreamMetrics | undefined,
    readonly shutdown: Drain
  ) {
    metrics?.started(kind, name)
    if (kind !== "subscription") shutdown.transferStarted()
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
    if (this.kind !== "subscription") this.shutdown.transferEnded()
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

const lifecycle = (kind: StreamKind, name: string): Effect.Effect<Lifecycle> =>
  Effect.zipWith(
    Effect.serviceOption(MetricsService),
    GracefulShutdown,
    (metrics, shutdown) => new Lifecycle(kind, name, Option.getOrUndefined(metrics), shutdown)
  )

/**
 * Once bytes have been sent, a failure must not look like a clean end of body:
 * the connection is destroyed so the client sees a truncated transfer.
 */
const abortConnection: Effect.Effect<void> = Effect.flatMap(
  Effect.serviceOption(HttpServerRequest.HttpServerRequest),
  (request) =>
    Effect.sync(() => {
      if (Option.isNone(request)) return
      const source = request.value.source as { readonly socket?: { destroy?: () => void } | null } | null
      source?.socket?.destroy?.()
    })
)

/**
 * Byte stream of a transfer (download or export): counted, aborted on failure,
 * cleaned up always. `chunksAreValues`: each byte chunk is one delivered value
 * (downloads); otherwise the caller counts its values (export rows) itself.
 */
const transfer = <E>(
  life: Lifecycle,
  body: Stream.Stream<Uint8Array, E>,
  chunksAreValues: boolean
): Stream.Stream<Uint8Array, E> =>
  body.pipe(
    Stream.mapChunks((chunk) => {
      let bytes = 0
      Chunk.forEach(chunk, (bytesOf) => {
        bytes += bytesOf.byteLength
      })
      life.delivered(chunksAreValues ? Chunk.size(chunk) : 0, bytes)
      return chunk
    }),
    Stream.onEnd(Effect.sync(() => {
      life.termination = "completed"
    })),
    Stream.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Stream.failCause(cause)
        : Stream.fromEffect(
          Effect.sync(() => {
            life.termination = "failed"
          }).pipe(
            Effect.zipRight(Effect.logWarning("transfer failed after it started; aborting the connection", cause)),
            Effect.zipRight(abortConnection),
            Effect.zipRight(Effect.failCause(cause))
          )
        )
    ),
    Stream.ensuring(life.cleanup)
  )

/**
 * Subscription over Server-Sent Events: the sliding policy (64 values,
 * oldest dropped and counted), then encoding, a heartbeat comment every
 * configured interval, and `end` / `error` events.
 */
export const sse = <A, E, R>(
  name: string,
  events: Stream.Stream<A, E, R>,
  serialize: (value: A) => string,
  options?: SseOptions<A, E>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  Effect.gen(function*() {
    const config = yield* StreamingConfig
    const context = yield* Effect.context<R>()
    const id = options?.id
    const serializeError = options?.serializeError ?? genericErrorJson
    let opening = config.retry === undefined ? SseFraming.comment("ok") : SseFraming.retry(config.retry)
    if (options?.preamble !== undefined) opening += options.preamble
    // A Topic subscription carries its own cursors: they are the `id:`, whatever `options.id` says.
    const fromTopic = Topic.isSubscription(events)
    const items: Stream.Stream<A | Topic.Entry<A>, E, R> = fromTopic ? events.entries : events
    const frame = fromTopic
      ? (item: A | Topic.Entry<A>) => {
        const entry = item as Topic.Entry<A>
        return SseFraming.event({ id: entry.cursor, data: serialize(entry.value) })
      }
      : (item: A | Topic.Entry<A>) => {
        const value = item as A
        const cursor = Topic.cursorOf(value) ?? (id === undefined ? undefined : id(value))
        return SseFraming.event({ id: cursor, data: serialize(value) })
      }

    const body = Stream.unwrap(Effect.map(lifecycle("subscription", name), (life) => {
      const encodeBatch = (batch: BackpressurePolicy.SlidingBatch<A | Topic.Entry<A>>): Uint8Array => {
        let text = ""
        // One heartbeat however many intervals passed while the socket held the writer up.
        if (batch.ticks > 0) text += SseFraming.heartbeat
        if (batch.unknownGap || batch.dropped > 0) {
          text += SseFraming.dropped(batch.unknownGap ? null : batch.dropped)
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
      const values = BackpressurePolicy.sliding(items, BackpressurePolicy.capacities.subscription, {
        tick: config.heartbeatInterval,
        until: Effect.tap(Deferred.await(life.shutdown.draining), () => {
          drained = true
        })
      }).pipe(
        Stream.map(encodeBatch),
        Stream.concat(Stream.suspend(() => (drained ? Stream.empty : finish(SseFraming.end, "completed")))),
        Stream.catchAllCause((cause) => {
          if (Cause.isInterruptedOnly(cause)) return Stream.failCause(cause)
          const failure = Cause.failureOption(cause)
          if (Option.isSome(failure)) return finish(SseFraming.error(serializeError(failure.value)), "failed")
          return Stream.fromEffect(Effect.logError("subscription defect", cause)).pipe(
            Stream.drain,
            Stream.concat(finish(SseFraming.error(internalErrorJson), "failed"))
          )
        })
      )
      return Stream.make(utf8.encode(opening)).pipe(
        Stream.concat(values),
        Stream.provideContext(context),
        Stream.ensuring(life.cleanup)
      )
    }))

    return HttpServerResponse.stream(body, {
      contentType: "text/event-stream",
      headers: {
        "cache-control": "no-cache, no-transform",
        "x-accel-buffering": "no",
        "connection": "keep-alive"
      }
    })
  })

/**
 * Binary download: the suspend policy (256 chunks) holds the producer back
 * while the client reads slowly. Synchronous — the body runs when the
 * response is written.
 */
export const download = <E>(
  stream: Stream.Stream<Uint8Array, E>,
  config: DownloadConfig = {}
): HttpServerResponse.HttpServerResponse => {
  const filename = config.filename
  const name = config.name ?? filename ?? "download"
  const body = Stream.unwrap(Effect.map(
    lifecycle("download", name),
    (life) => transfer(
      life,
      // 16 chunks per pull: the writer then queues at most 16 chunks on the socket beyond the buffer
      BackpressurePolicy.suspend(stream, BackpressurePolicy.capacities.download, { maxPull: 16 }),
      true
    )
  ))
  const headers: Record<string, string> = {}
  if (filename !== undefined) headers["content-disposition"] = ContentDisposition.attachment(filename)
  if (config.contentLength !== undefined) headers["content-length"] = String(config.contentLength)
  return HttpServerResponse.stream(body, {
    contentType: config.contentType ?? "application/octet-stream",
    headers
  })
}

/**
 * Export of rows: the suspend policy (128 rows), then `json` (a streamed
 * array), `csv` (RFC 4180, formula-injection safe) or `ndjson`.
 * `serialize` turns a domain row into its encoded form (e.g. a Schema encode).
 */
const exportRows = <A, E, R>(
  name: string,
  stream: Stream.Stream<A, E, R>,
  format: ExportFormat.ExportFormat,
  serialize?: ((row: A) => unknown) | undefined,
  options?: ExportOptions
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<R>()
    const body = Stream.unwrap(Effect.map(lifecycle("export", name), (life) => {
      const encoder = ExportFormat.encoder(format, options?.columns)
      const rows = BackpressurePolicy.suspend(stream, BackpressurePolicy.capacities.export).pipe(
        Stream.mapChunks((chunk) => {
          const values = Chunk.toReadonlyArray(chunk)
          life.delivered(values.length, 0)
          const text = encoder.rows(serialize === undefined ? values : values.map(serialize))
          return Chunk.of(utf8.encode(text))
        }),
        Stream.provideContext(context)
      )
      const framed = Stream.make(utf8.encode(encoder.header)).pipe(
        Stream.concat(rows),
        Stream.concat(Stream.suspend(() => Stream.make(utf8.encode(encoder.footer)))),
        Stream.filter((bytes) => bytes.byteLength > 0)
      )
      return transfer(life, framed, false)
    }))
    return HttpServerResponse.stream(body, {
      contentType: ExportFormat.contentTypes[format],
      headers: {
        "content-disposition": ContentDisposition.attachment(`${name}.${ExportFormat.extensions[format]}`)
      }
    })
  })

export { exportRows as export }

export class StreamingService extends Effect.Service<StreamingService>()("effect-stream-rpc/StreamingService", {
  succeed: { sse, download, export: exportRows }
}) {
  /** Subscription over SSE with the sliding policy (64). */
  static readonly sse = sse
  /** Binary download with the suspend policy (256 chunks). */
  static readonly download = download
  /** Export as json / csv / ndjson with the suspend policy (128 rows). */
  static readonly export = exportRows
}
