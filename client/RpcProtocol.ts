/**
 * An `RpcClient.Protocol` for wire protocol v1, so `RpcClient.make(group)`
 * from @effect/rpc calls every procedure of a group served by
 * `HttpTransport`:
 *
 * ```ts
 * const client = yield* RpcClient.make(DemoApi).pipe(
 *   Effect.provide(RpcProtocol.layer(DemoApi, { url: "http://127.0.0.1:3000/rpc" }))
 * )
 * ```
 *
 * Each request is one `POST <url>/<Tag>` with the encoded payload as JSON;
 * the kind of the procedure (`Procedure.specOf`) says how its response body is
 * read: SSE events (subscription), raw bytes (download), NDJSON rows (export)
 * or one JSON value (unary). Typed failures come back as the rpc's typed
 * errors; anything the client cannot take for a typed answer — a transport
 * error (404, 400 …), a truncated body, a silent connection — is an
 * `RpcClientError` with reason `"Protocol"`, never a hang.
 *
 * Bodies are read with a reader loop that hands each network chunk to the
 * RpcClient before reading the next one, so a slow consumer (the client's
 * stream buffer is 16 values) slows the TCP stream instead of piling up
 * memory. Closing a stream early, or interrupting a call, aborts its fetch:
 * the server sees the disconnect and interrupts the handler.
 *
 * Browser-safe: only `fetch`, `AbortController`, `TextDecoder` and
 * `ReadableStream`; no Node built-ins.
 */
import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcClient from "@effect/rpc/RpcClient"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import type * as RpcMessage from "@effect/rpc/RpcMessage"
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Procedure from "../src/Procedure.ts"
import { makeSseParser, SseEventTooLarge } from "./SseParser.ts"

export interface Options {
  /** Base URL of the procedures, e.g. `"http://127.0.0.1:3000/rpc"`. */
  readonly url: string
  /** The fetch to use. Default `globalThis.fetch`. */
  readonly fetch?: typeof globalThis.fetch
  /** Extra headers on every request (e.g. `Authorization`); a function is called per request. */
  readonly headers?: Record<string, string> | (() => Record<string, string>)
  /**
   * Longest silence (no byte, not even a heartbeat comment) a subscription
   * tolerates before it fails with an `RpcClientError`. Default 60 seconds,
   * twice the server's 30-second heartbeat.
   */
  readonly heartbeatTimeout?: Duration.DurationInput
  /**
   * Called when the server reports that a subscription dropped values
   * (`event: dropped`). RpcClient streams cannot carry that information, so
   * this is the only place it surfaces.
   */
  readonly onDropped?: (tag: string, count: number | null) => void
  /** Largest SSE event accepted, in characters. Default 1 MiB (see `SseParser`). */
  readonly maxEventSize?: number
}

export const defaultHeartbeatTimeout: Duration.DurationInput = Duration.seconds(60)

/** `_tag`s of the errors `HttpTransport` answers itself, before or instead of a handler. */
export const transportErrorTags: ReadonlySet<string> = new Set([
  "MalformedJson",
  "InvalidPayload",
  "NotFound",
  "MethodNotAllowed",
  "NotAcceptable",
  "PayloadTooLarge",
  "UnsupportedMediaType",
  "ServiceUnavailable",
  "InternalError"
])

/** The abort reason of a request the RpcClient let go of (an `Interrupt` message). */
const interruptedByClient: unique symbol = Symbol.for("effect-stream-rpc/RpcProtocol/interrupted")

type Write = (message: RpcMessage.FromServerEncoded) => Effect.Effect<void>

type Reader = ReadableStreamDefaultReader<Uint8Array>

const protocolError = (message: string, cause?: unknown): RpcClientError =>
  new RpcClientError({ reason: "Protocol", message, ...(cause === undefined ? {} : { cause }) })

const isTagged = (u: unknown): u is { readonly _tag: string; readonly message?: unknown } =>
  typeof u === "object" && u !== null && typeof (u as { _tag?: unknown })._tag === "string"

const messageOf = (u: unknown, fallback: string): string =>
  isTagged(u) && typeof u.message === "string" && u.message !== "" ? u.message : fallback

/** The failure schema a typed answer of `rpc` must decode with: its errors and its middlewares' errors. */
const failureSchemaOf = (rpc: Rpc.AnyWithProps): Schema.Schema<unknown, unknown, never> =>
  Schema.Union(
    Procedure.schemasOf(rpc).failure,
    ...Array.from(rpc.middlewares, (middleware) => middleware.failure)
  ) as unknown as Schema.Schema<unknown, unknown, never>

/** Reads the protocol v1 wire format into RpcClient messages. */
export const make = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options: Options
): Effect.Effect<RpcClient.Protocol["Type"], never, Scope.Scope> =>
  RpcClient.Protocol.make((writeResponse: Write) =>
    Effect.gen(function*() {
      const base = options.url.replace(/\/+$/, "")
      const fetchImpl: typeof globalThis.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init))
      const heartbeatTimeout = Duration.decode(options.heartbeatTimeout ?? defaultHeartbeatTimeout)
      const onDropped = options.onDropped
      const sseOptions = options.maxEventSize === undefined ? undefined : { maxEventSize: options.maxEventSize }

      /** One AbortController per request in flight, by request id. */
      const controllers = new Map<string, AbortController>()
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          for (const controller of controllers.values()) controller.abort()
          controllers.clear()
        })
      )

      const failureSchemas = new Map<string, (u: unknown) => boolean>()
      /** Whether `error` decodes as a typed failure of `rpc` (so RpcClient can decode its Exit). */
      const isTypedFailure = (rpc: Rpc.AnyWithProps, error: unknown): boolean => {
        if (!isTagged(error)) return false
        let check = failureSchemas.get(rpc._tag)
        if (check === undefined) {
          const decode = Schema.decodeUnknownEither(failureSchemaOf(rpc))
          check = (u) => {
            try {
              return Either.isRight(decode(u))
            } catch {
              // A schema that cannot decode synchronously: only the transport's own tags are not typed.
              return !transportErrorTags.has((u as { _tag: string })._tag)
            }
          }
          failureSchemas.set(rpc._tag, check)
        }
        return check(error)
      }

      const exitSuccess = (requestId: string, value: unknown) =>
        writeResponse({ _tag: "Exit", requestId, exit: { _tag: "Success", value } })

      /** A typed failure of the rpc as its Exit; anything else fails `send` with an RpcClientError. */
      const failWith = (
        rpc: Rpc.AnyWithProps,
        requestId: string,
        error: unknown,
        fallback: string
      ): Effect.Effect<void, RpcClientError> =>
        isTypedFailure(rpc, error)
          ? writeResponse({ _tag: "Exit", requestId, exit: { _tag: "Failure", cause: { _tag: "Fail", error } } })
          : Effect.fail(protocolError(messageOf(error, fallback), error))

      const chunk = (requestId: string, values: Array<unknown>) =>
        writeResponse({ _tag: "Chunk", requestId, values: values as unknown as NonEmptyReadonlyArray<unknown> })

      const read = (reader: Reader, what: string): Effect.Effect<ReadableStreamReadResult<Uint8Array>, RpcClientError> =>
        Effect.tryPromise({
          try: () => reader.read(),
          catch: (cause) => protocolError(`The ${what} was truncated: the connection failed before its end`, cause)
        })

      const readText = (response: Response): Effect.Effect<string, RpcClientError> =>
        Effect.tryPromise({
          try: () => response.text(),
          catch: (cause) => protocolError("The response body was truncated", cause)
        })

      const silence = (): RpcClientError =>
        protocolError(
          `No data or heartbeat for ${Duration.format(heartbeatTimeout)}`,
          new Cause.TimeoutException(`No data or heartbeat for ${Duration.format(heartbeatTimeout)}`)
        )

      const withHeartbeat = <A>(effect: Effect.Effect<A, RpcClientError>): Effect.Effect<A, RpcClientError> =>
        Effect.timeoutFail(effect, { duration: heartbeatTimeout, onTimeout: silence })

      const bodyOf = (response: Response): Effect.Effect<Reader, RpcClientError> =>
        response.body === null
          ? Effect.fail(protocolError("The response has no body"))
          : Effect.succeed(response.body.getReader())

      const subscription = (
        rpc: Rpc.AnyWithProps,
        requestId: string,
        response: Response
      ): Effect.Effect<void, RpcClientError> =>
        Effect.gen(function*() {
          const contentType = (response.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase()
          if (contentType !== "text/event-stream") {
            return yield* protocolError(`Expected text/event-stream, got ${contentType === "" ? "no content type" : contentType}`)
          }
          const reader = yield* bodyOf(response)
          let values: Array<unknown> = []
          let terminal: { readonly _tag: "end" } | { readonly _tag: "error"; readonly error: unknown } | undefined
          let invalid: RpcClientError | undefined
          const parser = makeSseParser({
            onEvent: (event) => {
              if (terminal !== undefined || invalid !== undefined) return
              switch (event.type) {
                case "message": {
                  try {
                    values.push(JSON.parse(event.data))
                  } catch (cause) {
                    invalid = protocolError("An event of the subscription is not valid JSON", cause)
                  }
                  return
                }
                case "dropped": {
                  if (onDropped === undefined) return
                  try {
                    const count = (JSON.parse(event.data) as { count?: unknown }).count
                    if (typeof count === "number" || count === null) onDropped(rpc._tag, count)
                  } catch {
                    // a malformed count or a throwing callback must not break the stream
                  }
                  return
                }
                case "end": {
                  terminal = { _tag: "end" }
                  return
                }
                case "error": {
                  try {
                    terminal = { _tag: "error", error: JSON.parse(event.data) }
                  } catch (cause) {
                    invalid = protocolError("The error event of the subscription is not valid JSON", cause)
                  }
                  return
                }
              }
            }
          }, sseOptions)
          while (true) {
            const result = yield* withHeartbeat(read(reader, "subscription"))
            if (result.done) break
            try {
              parser.feedBytes(result.value)
            } catch (cause) {
              return yield* protocolError(
                cause instanceof SseEventTooLarge ? cause.message : "The subscription could not be parsed",
                cause
              )
            }
            if (values.length > 0) {
              const batch = values
              values = []
              yield* chunk(requestId, batch)
            }
            if (invalid !== undefined) return yield* invalid
            if (terminal !== undefined) {
              if (terminal._tag === "end") return yield* exitSuccess(requestId, undefined)
              return yield* failWith(rpc, requestId, terminal.error, "The subscription failed")
            }
          }
          return yield* protocolError("The stream ended before its end event")
        })

      const download = (requestId: string, response: Response): Effect.Effect<void, RpcClientError> =>
        Effect.gen(function*() {
          const reader = yield* bodyOf(response)
          const encoding = response.headers.get("content-encoding")
          const declared = response.headers.get("content-length")
          // fetch decodes a compressed body: its length is then not the declared one.
          const expected = declared !== null && (encoding === null || encoding === "identity")
            ? Number(declared)
            : undefined
          let received = 0
          while (true) {
            const result = yield* read(reader, "download")
            if (result.done) break
            const bytes = result.value
            if (bytes.byteLength === 0) continue
            received += bytes.byteLength
            yield* chunk(requestId, [bytes])
          }
          if (expected !== undefined && Number.isFinite(expected) && received < expected) {
            return yield* protocolError(`The download was truncated: ${received} of ${expected} bytes received`)
          }
          return yield* exitSuccess(requestId, undefined)
        })

      const exportRows = (requestId: string, response: Response): Effect.Effect<void, RpcClientError> =>
        Effect.gen(function*() {
          const reader = yield* bodyOf(response)
          const decoder = new TextDecoder()
          // The line not yet terminated, as fragments (joined once its end arrives).
          let pending: Array<string> = []
          const rows = (text: string): Either.Either<Array<unknown>, RpcClientError> => {
            const values: Array<unknown> = []
            let start = 0
            let lf = text.indexOf("\n")
            while (lf !== -1) {
              let line = text.slice(start, lf)
              if (pending.length > 0) {
                pending.push(line)
                line = pending.join("")
                pending = []
              }
              if (line.endsWith("\r")) line = line.slice(0, -1)
              if (line.trim() !== "") {
                try {
                  values.push(JSON.parse(line))
                } catch (cause) {
                  return Either.left(protocolError("A row of the export is not valid JSON", cause))
                }
              }
              start = lf + 1
              lf = text.indexOf("\n", start)
            }
            if (start < text.length) pending.push(text.slice(start))
            return Either.right(values)
          }
          while (true) {
            const result = yield* read(reader, "export")
            if (result.done) break
            const values = yield* rows(decoder.decode(result.value, { stream: true }))
            if (values.length > 0) yield* chunk(requestId, values)
          }
          const rest = pending.join("") + decoder.decode()
          if (rest.trim() !== "") {
            return yield* protocolError("The export was truncated: its last row has no end of line")
          }
          return yield* exitSuccess(requestId, undefined)
        })

      const unary = (requestId: string, response: Response): Effect.Effect<void, RpcClientError> =>
        Effect.flatMap(readText(response), (text) => {
          if (text === "") return exitSuccess(requestId, undefined)
          let value: unknown
          try {
            value = JSON.parse(text)
          } catch (cause) {
            return Effect.fail(protocolError("The response is not valid JSON", cause))
          }
          return exitSuccess(requestId, value)
        })

      /** A non-2xx answer: a typed failure of the rpc, or an RpcClientError. */
      const failed = (
        rpc: Rpc.AnyWithProps,
        requestId: string,
        response: Response
      ): Effect.Effect<void, RpcClientError> =>
        Effect.flatMap(readText(response), (text) => {
          let body: unknown
          try {
            body = JSON.parse(text)
          } catch {
            body = undefined
          }
          const fallback = `HTTP ${response.status}${response.statusText === "" ? "" : ` ${response.statusText}`}`
          if (body === undefined) return Effect.fail(protocolError(fallback, { status: response.status, body: text.slice(0, 1000) }))
          return failWith(rpc, requestId, body, fallback)
        })

      const headersOf = (request: RpcMessage.RequestEncoded, accept: string): Record<string, string> => {
        const extra = typeof options.headers === "function" ? options.headers() : options.headers
        const headers: Record<string, string> = {}
        if (extra !== undefined) {
          for (const [key, value] of Object.entries(extra)) headers[key.toLowerCase()] = value
        }
        for (const [key, value] of request.headers) headers[key.toLowerCase()] = value
        headers["content-type"] = "application/json"
        headers["accept"] = accept
        if (request.traceId !== undefined && request.spanId !== undefined) {
          headers["traceparent"] = `00-${request.traceId}-${request.spanId}-${request.sampled ? "01" : "00"}`
        }
        return headers
      }

      const acceptOf = (spec: Procedure.ProcedureSpec): string => {
        switch (spec._tag) {
          case "subscription":
            return "text/event-stream"
          case "download":
            return spec.contentType === "" ? "*/*" : `${spec.contentType}, */*;q=0.1`
          case "export":
            return "application/x-ndjson"
          case "unary":
            return "application/json"
        }
      }

      const request = (request: RpcMessage.RequestEncoded): Effect.Effect<void, RpcClientError> =>
        Effect.suspend(() => {
          const rpc = group.requests.get(request.tag) as Rpc.AnyWithProps | undefined
          if (rpc === undefined) return Effect.fail(protocolError(`Unknown procedure: ${request.tag}`))
          const spec = Procedure.specOf(rpc)
          const controller = new AbortController()
          controllers.get(request.id)?.abort()
          controllers.set(request.id, controller)
          const url = `${base}/${encodeURIComponent(request.tag)}${spec._tag === "export" ? "?format=ndjson" : ""}`
          const init: RequestInit = {
            method: "POST",
            headers: headersOf(request, acceptOf(spec)),
            signal: controller.signal,
            ...(request.payload === undefined ? {} : { body: JSON.stringify(request.payload) })
          }
          const fetched = Effect.tryPromise({
            try: () => fetchImpl(url, init),
            catch: (cause) => protocolError("Failed to send HTTP request", cause)
          })
          return Effect.gen(function*() {
            const response = yield* (spec._tag === "subscription" ? withHeartbeat(fetched) : fetched)
            if (!response.ok) return yield* failed(rpc, request.id, response)
            switch (spec._tag) {
              case "subscription":
                return yield* subscription(rpc, request.id, response)
              case "download":
                return yield* download(request.id, response)
              case "export":
                return yield* exportRows(request.id, response)
              case "unary":
                return yield* unary(request.id, response)
            }
          }).pipe(
            // Aborted by an Interrupt message: the RpcClient has already let go of this request.
            Effect.catchAll((error) =>
              controller.signal.reason === interruptedByClient ? Effect.void : Effect.fail(error)
            ),
            // On every exit (end, failure, timeout, interruption of the caller) the fetch is aborted,
            // so the server sees the disconnect; after a complete body this does nothing.
            Effect.ensuring(Effect.sync(() => {
              if (controllers.get(request.id) === controller) controllers.delete(request.id)
              controller.abort()
            }))
          )
        })

      const send = (message: RpcMessage.FromClientEncoded): Effect.Effect<void, RpcClientError> => {
        switch (message._tag) {
          case "Request":
            return request(message)
          case "Interrupt":
            return Effect.sync(() => {
              const controller = controllers.get(message.requestId)
              if (controller === undefined) return
              controllers.delete(message.requestId)
              controller.abort(interruptedByClient)
            })
          default:
            return Effect.void
        }
      }

      return { send, supportsAck: false, supportsTransferables: false }
    })
  )

/** The `RpcClient.Protocol` of wire protocol v1 for the procedures of `group`. */
export const layer = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options: Options
): Layer.Layer<RpcClient.Protocol> =>
  Layer.scoped(RpcClient.Protocol, make(group, options))
