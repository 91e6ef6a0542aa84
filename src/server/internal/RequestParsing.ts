/**
 * From an HTTP request to a call: the procedure named by the path, the
 * method, the export format, the payload (`?payload=` or a JSON body, within
 * the size limit, decoded with the procedure's schema) and the resume cursor.
 * Every refusal is a `ProtocolError` (4xx).
 */
import * as Headers from "@effect/platform/Headers"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as ParseResult from "effect/ParseResult"
import * as Stream from "effect/Stream"
import * as ExportFormat from "../../protocol/ExportFormat.ts"
import * as Procedure from "../../contract/Procedure.ts"
import * as Names from "../../protocol/Names.ts"
import * as ProtocolError from "../../contract/ProtocolError.ts"
import type { Served } from "./Served.ts"

export interface Call {
  readonly served: Served
  readonly payload: unknown
  /** The request headers, with `?lastEventId=` as `last-event-id` when the header is absent. */
  readonly headers: Headers.Headers
  /** The export format asked for (exports only). */
  readonly format: ExportFormat.ExportFormat | undefined
}

const describeParseError = (error: ParseResult.ParseError): string => {
  try {
    const text = ParseResult.ArrayFormatter.formatErrorSync(error)
      .map((issue) => `${["payload", ...issue.path.map(String)].join(".")}: ${issue.message}`)
      .join("; ")
    // The messages quote the actual values: a hostile payload is not echoed back whole.
    return text.length > 2000 ? `${text.slice(0, 2000)}…` : text
  } catch {
    // Formatting a value nested too deeply to print (100,000 nested arrays) overflows the stack.
    return "payload: does not match the schema (a value is nested too deeply to describe)"
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * Reads the request body up to `limit` bytes. Past the limit the rest is
 * discarded, not kept, so the client can read the 413; a body larger still
 * (hostile) is cut off by closing the connection.
 */
const readBody = (request: HttpServerRequest.HttpServerRequest, limit: number, timeout: Duration.Duration) =>
  Effect.gen(function*() {
    const declared = Number(request.headers[Names.headers.contentLength] ?? NaN)
    if (declared > limit) {
      // Not read at all: the 413 closes the connection.
      return yield* new ProtocolError.PayloadTooLarge({ message: `The request body exceeds ${limit} bytes` })
    }
    const chunks: Array<Uint8Array> = []
    let size = 0
    const discardUpTo = limit * 4
    const read = request.stream.pipe(
      Stream.mapError(() => new ProtocolError.MalformedJson({ message: "The request body could not be read" })),
      Stream.runForEachWhile((chunk) => {
        size += chunk.byteLength
        if (size <= limit) chunks.push(chunk)
        return Effect.succeed(size <= discardUpTo)
      })
    )
    // A body trickling in byte by byte must not hold the request (and its socket) for
    // minutes. The read runs apart and only the wait is timed out: interrupting the read
    // would destroy the socket before the 408 is written. It ends when the socket closes.
    const reader = yield* Effect.forkDaemon(read)
    yield* Fiber.join(reader).pipe(
      Effect.interruptible,
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () =>
          new ProtocolError.RequestTimeout({ message: `The request body did not arrive within ${Duration.format(timeout)}` })
      })
    )
    if (size > limit) {
      return yield* new ProtocolError.PayloadTooLarge({ message: `The request body exceeds ${limit} bytes` })
    }
    const body = new Uint8Array(size)
    let offset = 0
    for (const chunk of chunks) {
      body.set(chunk, offset)
      offset += chunk.byteLength
    }
    return body
  })

const parseJson = (text: string) =>
  Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: () => new ProtocolError.MalformedJson({ message: "The payload is not valid JSON" })
  })

/** A POST's JSON body, within `limit` bytes and `timeout`; `undefined` when it is empty. */
export const jsonBody = (request: HttpServerRequest.HttpServerRequest, limit: number, timeout: Duration.Duration) =>
  Effect.gen(function*() {
    const contentType = Names.mediaTypeOf(request.headers[Names.headers.contentType])
    const body = yield* readBody(request, limit, timeout)
    if (body.byteLength === 0) return undefined
    if (contentType !== Names.contentTypes.json && contentType !== "") {
      return yield* new ProtocolError.UnsupportedMediaType({
        message: `Expected Content-Type application/json, got ${contentType.slice(0, 100)}`
      })
    }
    const text = yield* Effect.try({
      try: () => utf8.decode(body),
      catch: () => new ProtocolError.MalformedJson({ message: "The request body is not valid UTF-8" })
    })
    return yield* parseJson(text)
  })

/** The JSON payload of a request, before schema decoding; `undefined` when none was sent. */
const rawPayload = (request: HttpServerRequest.HttpServerRequest, url: URL, limit: number, timeout: Duration.Duration) =>
  Effect.gen(function*() {
    if (request.method === "POST") return yield* jsonBody(request, limit, timeout)
    const param = url.searchParams.get(Names.query.payload)
    if (param === null || param === "") return undefined
    if (param.length > limit) {
      return yield* new ProtocolError.PayloadTooLarge({ message: `The payload exceeds ${limit} bytes` })
    }
    return yield* parseJson(param)
  })

/** A payload decoded with the procedure's schema; an absent one as `{}` when the schema accepts it. */
export const decodePayload = (served: Served, raw: unknown): Effect.Effect<unknown, ProtocolError.InvalidPayload> =>
  Effect.gen(function*() {
    const decoded = yield* Effect.either(served.decodePayload(raw))
    if (Either.isRight(decoded)) return decoded.right
    // An absent payload stands for an empty object when the schema accepts one.
    if (raw === undefined) {
      const empty = yield* Effect.either(served.decodePayload({}))
      if (Either.isRight(empty)) return empty.right
    }
    return yield* new ProtocolError.InvalidPayload({ message: describeParseError(decoded.left) })
  })

/** The procedure a request path names under `base`, or a 404. */
export const procedureOf = (procedures: ReadonlyMap<string, Served>, base: string, url: URL) => {
  const prefix = `${base}/`
  if (!url.pathname.startsWith(prefix)) {
    return Either.left(new ProtocolError.NotFound({ message: `No procedure at ${url.pathname.slice(0, 200)}` }))
  }
  let tag: string
  try {
    tag = decodeURIComponent(url.pathname.slice(prefix.length))
  } catch {
    return Either.left(new ProtocolError.NotFound({ message: "The procedure name is not valid URL encoding" }))
  }
  const served = procedures.get(tag)
  return served === undefined
    ? Either.left(new ProtocolError.NotFound({ message: `Unknown procedure: ${tag.slice(0, 200)}` }))
    : Either.right(served)
}

const formatOf = (spec: Procedure.ProcedureSpec, url: URL) => {
  if (spec._tag !== "export") return Either.right(undefined)
  const asked = url.searchParams.get(Names.query.format) ?? spec.defaultFormat
  if (!ExportFormat.isExportFormat(asked) || !spec.formats.includes(asked)) {
    return Either.left(
      new ProtocolError.NotAcceptable({
        message: `Unsupported export format ${JSON.stringify(asked.slice(0, 50))}; use one of ${spec.formats.join(", ")}`
      })
    )
  }
  return Either.right(asked)
}

const absoluteForm = /^https?:\/\/[^/?#]*/i

/**
 * The URL of a request target, routed by its path: an absolute-form target
 * (`GET http://host/rpc/x`, as sent to proxies) by the path it names; any
 * other as a path, since `new URL(target, base)` would read "//x" as a host.
 */
export const urlOf = (request: HttpServerRequest.HttpServerRequest): URL => {
  const target = request.url.replace(absoluteForm, "")
  return new URL(`http://localhost${target.startsWith("/") ? "" : "/"}${target}`)
}

/** `headers` with `?lastEventId=` of `query` as `last-event-id` when the header is absent. */
export const withResumeCursor = (headers: Headers.Headers, query: URLSearchParams): Headers.Headers => {
  const resumeFrom = query.get(Names.query.lastEventId)
  return resumeFrom !== null && headers[Names.headers.lastEventId] === undefined
    ? Headers.set(headers, Names.headers.lastEventId, resumeFrom)
    : headers
}

/**
 * The call a request makes of `served`, the procedure its URL (`url`, from
 * `urlOf`) names (`procedureOf`): the method, the format, the payload, the
 * resume cursor.
 */
export const parse = (
  request: HttpServerRequest.HttpServerRequest,
  url: URL,
  served: Served,
  options: { readonly maxPayloadBytes: number; readonly bodyTimeout: Duration.Duration }
): Effect.Effect<Call, ProtocolError.ProtocolError> =>
  Effect.gen(function*() {
    if (request.method !== "GET" && request.method !== "POST") {
      return yield* new ProtocolError.MethodNotAllowed({ message: `Use GET or POST, not ${request.method.slice(0, 20)}` })
    }
    const format = yield* formatOf(served.spec, url)
    const payload = yield* decodePayload(served, yield* rawPayload(request, url, options.maxPayloadBytes, options.bodyTimeout))
    return { served, payload, headers: withResumeCursor(request.headers, url.searchParams), format }
  })
