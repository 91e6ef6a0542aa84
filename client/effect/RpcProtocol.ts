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
 * Each request is one `POST <baseUrl>/<Tag>` with the encoded payload as JSON;
 * the kind of the procedure (`Procedure.specOf`) says how its response body is
 * read: SSE events (subscription), raw bytes (download), NDJSON rows (export)
 * or one JSON value (unary), with the same decoders as `StreamClient`
 * (`src/protocol`). Typed failures come back as the rpc's typed errors;
 * anything the client cannot take for a typed answer — a transport error
 * (404, 400 …), a truncated body, a silent connection — is an
 * `RpcClientError` with reason `"Protocol"`, never a hang. Its `cause` is the
 * error body of an HTTP error, else a `ClientError` with the reason
 * `StreamClient` reports for the same failure (`Truncated`, `Timeout`, …).
 *
 * The options are `StreamClient`'s (`baseUrl`, `headers`, `fetch`,
 * `heartbeatTimeoutMs`, `maxEventSize`, `onDropped`); a subscription is not
 * reconnected: it fails, and the RpcClient's caller decides.
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
import * as Procedure from "../../src/contract/Procedure.ts"
import * as Errors from "../../src/protocol/Errors.ts"
import * as Names from "../../src/protocol/Names.ts"
import * as Ndjson from "../../src/protocol/Ndjson.ts"
import * as Rows from "../../src/protocol/Rows.ts"
import * as Sse from "../../src/protocol/Sse.ts"
import * as SseParser from "../../src/protocol/SseParser.ts"
import { ClientError, type ClientErrorReason, ofRows } from "../ClientError.ts"
import * as ClientProcedure from "../ClientProcedure.ts"
import { defaults } from "../Subscription.ts"
import { sizeOf } from "../Transfer.ts"

export interface Options {
  /** Where the procedures are mounted, e.g. `"http://127.0.0.1:3000/rpc"`. */
  readonly baseUrl?: string
  /** @deprecated The former name of `baseUrl`. */
  readonly url?: string
  /** The fetch to use. Default `globalThis.fetch`. */
  readonly fetch?: typeof globalThis.fetch
  /** Headers of every request (e.g. `Authorization`); a function is called again for every request. */
  readonly headers?: ClientProcedure.HeadersOption
  /**
   * Longest silence (no byte, not even a heartbeat comment) a subscription
   * tolerates before it fails with an `RpcClientError`. Default 60 s, twice
   * the server's 30-second heartbeat.
   */
  readonly heartbeatTimeoutMs?: number
  /** @deprecated The former form of `heartbeatTimeoutMs`; used only when that is absent. */
  readonly heartbeatTimeout?: Duration.DurationInput
  /**
   * Called when the server reports that a subscription dropped values
   * (`event: dropped`), with a positive count or `null` for a gap of unknown
   * size. RpcClient streams cannot carry that information, so this is the
   * only place it surfaces.
   */
  readonly onDropped?: (tag: string, count: number | null) => void
  /** Largest SSE event accepted, in characters. Default 1 MiB. */
  readonly maxEventSize?: number
}

export const defaultHeartbeatTimeout: Duration.DurationInput = Duration.millis(defaults.heartbeatTimeoutMs)

/** `_tag`s of the errors `HttpTransport` answers itself, before or instead of a handler. */
export const transportErrorTags: ReadonlySet<string> = Errors.transportTags

/** The abort reason of a request the RpcClient let go of (an `Interrupt` message). */
const interruptedByClient: unique symbol = Symbol.for("effect-stream-rpc/RpcProtocol/interrupted")

type Write = (message: RpcMessage.FromServerEncoded) => Effect.Effect<void>

type Reader = ReadableStreamDefaultReader<Uint8Array>

const protocolError = (message: string, cause?: unknown): RpcClientError =>
  new RpcClientError({ reason: "Protocol", message, ...(cause === undefined ? {} : { cause }) })

/** An RpcClientError whose cause is the `ClientError` StreamClient reports for the same failure. */
const clientError = (reason: ClientErrorReason, message: string, cause?: unknown): RpcClientError =>
  protocolError(message, new ClientError(reason, message, cause === undefined ? undefined : { cause }))

/** A row decoder's error, classified as StreamClient classifies it. */
const rowsError = (what: string, error: unknown): RpcClientError => {
  const classified = ofRows(what, error)
  return classified instanceof ClientError
    ? protocolError(classified.message, classified)
    : clientError("Protocol", `The ${what} could not be read`, error)
}

/** Reads the protocol v1 wire format into RpcClient messages. */
export const make = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options: Options
): Effect.Effect<RpcClient.Protocol["Type"], never, Scope.Scope> =>
  RpcClient.Protocol.make((writeResponse: Write) =>
    Effect.gen(function*() {
      const base = options.baseUrl ?? options.url ?? Names.basePath
      const transport = ClientProcedure.transport(options)
      const heartbeatTimeout = options.heartbeatTimeoutMs !== undefined
        ? Duration.millis(options.heartbeatTimeoutMs)
        : Duration.decode(options.heartbeatTimeout ?? defaultHeartbeatTimeout)
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
        if (!Errors.isErrorBody(error)) return false
        let check = failureSchemas.get(rpc._tag)
        if (check === undefined) {
          const decode = Schema.decodeUnknownEither(Procedure.failureSchemaOf(rpc))
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
          : Effect.fail(protocolError(Errors.messageOf(error, fallback), error))

      const chunk = (requestId: string, values: Array<unknown>) =>
        writeResponse({ _tag: "Chunk", requestId, values: values as unknown as NonEmptyReadonlyArray<unknown> })

      const read = (reader: Reader, what: string): Effect.Effect<ReadableStreamReadResult<Uint8Array>, RpcClientError> =>
        Effect.tryPromise({
          try: () => reader.read(),
          catch: (cause) => clientError("Truncated", `The ${what} was truncated: the connection failed before its end`, cause)
        })

      const readText = (response: Response): Effect.Effect<string, RpcClientError> =>
        Effect.tryPromise({
          try: () => response.text(),
          catch: (cause) => clientError("Truncated", "The response body was truncated", cause)
        })

      const silence = (): RpcClientError => {
        const message = `No data or heartbeat for ${Duration.format(heartbeatTimeout)}`
        return clientError("Timeout", message, new Cause.TimeoutException(message))
      }

      const withHeartbeat = <A>(effect: Effect.Effect<A, RpcClientError>): Effect.Effect<A, RpcClientError> =>
        Effect.timeoutFail(effect, { duration: heartbeatTimeout, onTimeout: silence })

      const bodyOf = (response: Response): Effect.Effect<Reader, RpcClientError> =>
        response.body === null
          ? Effect.fail(clientError("Protocol", "The response has no body"))
          : Effect.succeed(response.body.getReader())

      const subscription = (
        rpc: Rpc.AnyWithProps,
        requestId: string,
        response: Response
      ): Effect.Effect<void, RpcClientError> =>
        Effect.gen(function*() {
          const contentType = Names.mediaTypeOf(response.headers.get(Names.headers.contentType))
          if (contentType !== Names.contentTypes.eventStream) {
            return yield* clientError(
              "Protocol",
              `Expected ${Names.contentTypes.eventStream}, got ${contentType === "" ? "no content type" : contentType}`
            )
          }
          const reader = yield* bodyOf(response)
          let values: Array<unknown> = []
          let terminal: { readonly _tag: "end" } | { readonly _tag: "error"; readonly error: unknown } | undefined
          let invalid: RpcClientError | undefined
          const parser = SseParser.makeSseParser({
            onEvent: (event) => {
              if (terminal !== undefined || invalid !== undefined) return
              const meaning = Sse.subscriptionEvent(event)
              switch (meaning._tag) {
                case "Value":
                  values.push(meaning.json)
                  return
                case "Invalid":
                  invalid = clientError("Protocol", "An event of the subscription is not valid JSON", meaning.cause)
                  return
                case "Dropped":
                  try {
                    onDropped?.(rpc._tag, meaning.count)
                  } catch {
                    // a throwing callback must not break the stream
                  }
                  return
                case "End":
                  terminal = { _tag: "end" }
                  return
                case "Failure":
                  terminal = { _tag: "error", error: meaning.error }
                  return
                case "Ignored":
                  return
              }
            }
          }, sseOptions)
          while (true) {
            const result = yield* withHeartbeat(read(reader, "subscription"))
            if (result.done) break
            try {
              parser.feedBytes(result.value)
            } catch (cause) {
              return yield* cause instanceof SseParser.SseEventTooLarge
                ? clientError("EventTooLarge", cause.message, cause)
                : clientError("Protocol", "The subscription could not be parsed", cause)
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
          return yield* clientError("Truncated", "The stream ended before its end event")
        })

      const download = (requestId: string, response: Response): Effect.Effect<void, RpcClientError> =>
        Effect.gen(function*() {
          const reader = yield* bodyOf(response)
          const expected = sizeOf(response.headers)
          let received = 0
          while (true) {
            const result = yield* read(reader, "download")
            if (result.done) break
            const bytes = result.value
            if (bytes.byteLength === 0) continue
            received += bytes.byteLength
            yield* chunk(requestId, [bytes])
          }
          if (expected !== undefined && received < expected) {
            return yield* clientError("Truncated", `The download was truncated: ${received} of ${expected} bytes received`)
          }
          return yield* exitSuccess(requestId, undefined)
        })

      const exportRows = (requestId: string, response: Response): Effect.Effect<void, RpcClientError> =>
        Effect.gen(function*() {
          const reader = yield* bodyOf(response)
          const rows = Rows.fromBytes(Ndjson.decoder())
          while (true) {
            const result = yield* read(reader, "export")
            let values: Array<unknown>
            try {
              values = result.done ? rows.end() : rows.push(result.value)
            } catch (error) {
              return yield* rowsError("export", error)
            }
            if (values.length > 0) yield* chunk(requestId, values)
            if (result.done) return yield* exitSuccess(requestId, undefined)
          }
        })

      const unary = (requestId: string, response: Response): Effect.Effect<void, RpcClientError> =>
        Effect.flatMap(readText(response), (text) => {
          if (text === "") return exitSuccess(requestId, undefined)
          let value: unknown
          try {
            value = JSON.parse(text)
          } catch (cause) {
            return Effect.fail(clientError("Protocol", "The response is not valid JSON", cause))
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

      const headersOf = (request: RpcMessage.RequestEncoded, accept: string): Effect.Effect<Headers, RpcClientError> =>
        Effect.map(
          Effect.tryPromise({
            try: transport.headers,
            catch: (cause) => clientError("Transport", "The headers could not be computed", cause)
          }),
          (headers) => {
            for (const [key, value] of request.headers) headers.set(key, value)
            headers.set(Names.headers.contentType, Names.contentTypes.json)
            headers.set(Names.headers.accept, accept)
            if (request.traceId !== undefined && request.spanId !== undefined) {
              headers.set(Names.headers.traceparent, `00-${request.traceId}-${request.spanId}-${request.sampled ? "01" : "00"}`)
            }
            return headers
          }
        )

      const acceptOf = (spec: Procedure.ProcedureSpec): string => {
        switch (spec._tag) {
          case "subscription":
            return Names.contentTypes.eventStream
          case "download":
            return spec.contentType === "" ? "*/*" : `${spec.contentType}, */*;q=0.1`
          case "export":
            return Names.contentTypes.ndjson
          case "unary":
            return Names.contentTypes.json
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
          const url = Names.pathOf(base, request.tag) + (spec._tag === "export" ? `?${Names.query.format}=ndjson` : "")
          const fetched = Effect.flatMap(headersOf(request, acceptOf(spec)), (headers) =>
            Effect.tryPromise({
              try: () =>
                transport.fetch(url, {
                  method: "POST",
                  headers,
                  signal: controller.signal,
                  ...(request.payload === undefined ? {} : { body: JSON.stringify(request.payload) })
                }),
              catch: (cause) => clientError("Transport", "Failed to send HTTP request", cause)
            }))
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
