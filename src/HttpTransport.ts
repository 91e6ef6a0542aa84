/**
 * Wire protocol v1 over HTTP: serves an `RpcGroup` whose handlers come from
 * `group.toLayer({...})`. Every procedure is at `<base>/<Tag>`, by GET with
 * `?payload=` (URL-encoded JSON) or POST with a JSON body.
 *
 * The path from a handler to the socket is bounded end to end: handler
 * stream → the kind's policy in `StreamingService` → encoder → a write that
 * waits for the socket's `drain`. @effect/rpc's own HTTP protocol (an
 * unbounded mailbox) is not on this path.
 *
 * Errors before a stream starts are answered with a status and a JSON body
 * `{"_tag", "message"}` (see `ProtocolError`); bad input is never a 5xx.
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as HttpTraceContext from "@effect/platform/HttpTraceContext"
import * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Mailbox from "effect/Mailbox"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as ExportFormat from "./protocol/ExportFormat.ts"
import { GracefulShutdown } from "./GracefulShutdown.ts"
import * as Procedure from "./Procedure.ts"
import * as ProtocolError from "./ProtocolError.ts"
import * as StreamingService from "./StreamingService.ts"

export interface Options {
  /** Base path of the procedures. Default `/rpc`. */
  readonly path?: string | undefined
  /**
   * Cross-origin access. Without it no CORS header is sent, so only pages of
   * the same origin can call (the safe default). `origins: "*"` cannot be
   * combined with `credentials: true`.
   */
  readonly cors?: CorsOptions | undefined
  /** Largest accepted request body (POST) or `?payload=` in bytes. Default 1 MiB. */
  readonly maxPayloadBytes?: number | undefined
}

export interface CorsOptions {
  readonly origins: "*" | ReadonlyArray<string>
  /** Allow cookies and `Authorization` from the allowed origins. Default false. */
  readonly credentials?: boolean | undefined
  /** How long browsers may cache a preflight answer, in seconds. Default 600. */
  readonly maxAge?: number | undefined
}

export const defaultPath = "/rpc"

const corsAllowHeaders = "content-type, authorization, last-event-id, traceparent, tracestate"
const corsExposeHeaders = "content-disposition, content-length"

/** CORS response headers for a request from `origin`, or undefined when it is not allowed. */
const corsHeaders = (cors: CorsOptions | undefined, origin: string | undefined): Record<string, string> | undefined => {
  if (cors === undefined || origin === undefined) return undefined
  const allowed = cors.origins === "*" || cors.origins.includes(origin)
  if (!allowed) return undefined
  return {
    "access-control-allow-origin": cors.origins === "*" ? "*" : origin,
    ...(cors.credentials === true ? { "access-control-allow-credentials": "true" } : {}),
    "access-control-expose-headers": corsExposeHeaders,
    ...(cors.origins === "*" ? {} : { vary: "Origin" })
  }
}
export const defaultMaxPayloadBytes = 1024 * 1024

interface TypedFailure {
  readonly _tag: "TypedFailure"
  readonly served: Served
  readonly error: unknown
}

interface Served {
  readonly rpc: Rpc.AnyWithProps
  readonly spec: Procedure.ProcedureSpec
  readonly decodePayload: (u: unknown) => Effect.Effect<unknown, ParseResult.ParseError>
  readonly encodeSuccess: (a: unknown) => unknown
  readonly failure: Schema.Schema.All
  readonly encodeFailure: (e: unknown) => unknown
}

const jsonError = (error: { readonly _tag: string; readonly message: string }, status: number, headers?: Headers.Input) =>
  HttpServerResponse.unsafeJson({ _tag: error._tag, message: error.message }, {
    status,
    ...(headers === undefined ? {} : { headers })
  })

/**
 * Extra headers of an error answer. A 413 closes the connection: Node would
 * otherwise read (and discard) the whole unread body to keep the connection
 * alive, however large its declared length. A 503 while draining closes it
 * too, so the client's retry opens a new connection (to another instance).
 */
const errorHeaders = (tag: ProtocolError.ProtocolError["_tag"]): Headers.Input | undefined => {
  switch (tag) {
    case "MethodNotAllowed":
      return { allow: "GET, POST" }
    case "PayloadTooLarge":
    case "ServiceUnavailable":
      return { connection: "close" }
    default:
      return undefined
  }
}

const protocolError = (error: ProtocolError.ProtocolError, headers?: Headers.Input) =>
  jsonError(error, ProtocolError.statusOf(error.constructor as unknown as Schema.Schema.All, 400), headers)

/** Status of `error`: the annotation of the (possibly nested) union member it belongs to. */
const statusOfError = (ast: SchemaAST.AST, error: unknown, fallback: number): number | undefined => {
  if (SchemaAST.isUnion(ast)) {
    for (const member of ast.types) {
      const status = statusOfError(member, error, fallback)
      if (status !== undefined) return status
    }
    return undefined
  }
  return Schema.is(Schema.make(ast))(error) ? HttpApiSchema.getStatus(ast, fallback) : undefined
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

/**
 * Encoder of a Struct whose fields are all string, number or boolean: copies the
 * declared keys after a typeof check (dropping any others, as Schema encoding does);
 * anything else goes through Schema. Undefined for other schemas.
 */
const fastStruct = (schema: Schema.Schema.All): ((a: unknown) => unknown) | undefined => {
  const ast = schema.ast
  if (!SchemaAST.isTypeLiteral(ast) || ast.indexSignatures.length > 0) return undefined
  const names: Array<string> = []
  const types: Array<string> = []
  for (const p of ast.propertySignatures) {
    if (p.isOptional || typeof p.name !== "string") return undefined
    const t = p.type._tag
    if (t !== "StringKeyword" && t !== "NumberKeyword" && t !== "BooleanKeyword") return undefined
    names.push(p.name)
    types.push(t === "StringKeyword" ? "string" : t === "NumberKeyword" ? "number" : "boolean")
  }
  const slow = encodeSyncOrDie(schema)
  return (a) => {
    if (typeof a !== "object" || a === null) return slow(a)
    const out: Record<string, unknown> = {}
    for (let i = 0; i < names.length; i++) {
      const v = (a as Record<string, unknown>)[names[i]!]
      if (typeof v !== types[i]) return slow(a)
      out[names[i]!] = v
    }
    return out
  }
}

const encodeSyncOrDie = (schema: Schema.Schema.All) => {
  const encode = Schema.encodeUnknownSync(schema as Schema.Schema<unknown, unknown, never>)
  return (value: unknown): unknown => encode(value)
}

const serve = (rpc: Rpc.AnyWithProps): Served => {
  const schemas = Procedure.schemasOf(rpc)
  const decode = Schema.decodeUnknown(schemas.payload as Schema.Schema<unknown, unknown, never>, {
    errors: "all",
    onExcessProperty: "ignore"
  })
  const failure = Procedure.failureSchemaOf(rpc)
  return {
    rpc,
    spec: Procedure.specOf(rpc),
    decodePayload: decode,
    encodeSuccess: fastStruct(schemas.success) ?? encodeSyncOrDie(schemas.success),
    failure,
    encodeFailure: encodeSyncOrDie(failure)
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * Reads the request body up to `limit` bytes. Past the limit the rest is
 * discarded, not kept, so the client can read the 413; a body larger still
 * (hostile) is cut off by closing the connection.
 */
const readBody = (request: HttpServerRequest.HttpServerRequest, limit: number) =>
  Effect.gen(function*() {
    const declared = Number(request.headers["content-length"] ?? NaN)
    if (declared > limit) {
      // Not read at all: the 413 closes the connection (see errorHeaders).
      return yield* new ProtocolError.PayloadTooLarge({ message: `The request body exceeds ${limit} bytes` })
    }
    const chunks: Array<Uint8Array> = []
    let size = 0
    const discardUpTo = limit * 4
    yield* request.stream.pipe(
      Stream.mapError(() => new ProtocolError.MalformedJson({ message: "The request body could not be read" })),
      Stream.runForEachWhile((chunk) => {
        size += chunk.byteLength
        if (size <= limit) chunks.push(chunk)
        return Effect.succeed(size <= discardUpTo)
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

/** The JSON payload of a request, before schema decoding; `undefined` when none was sent. */
const rawPayload = (request: HttpServerRequest.HttpServerRequest, url: URL, limit: number) =>
  Effect.gen(function*() {
    if (request.method === "POST") {
      const contentType = (request.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase()
      const body = yield* readBody(request, limit)
      if (body.byteLength === 0) return undefined
      if (contentType !== "application/json" && contentType !== "") {
        return yield* new ProtocolError.UnsupportedMediaType({
          message: `Expected Content-Type application/json, got ${contentType}`
        })
      }
      const text = yield* Effect.try({
        try: () => utf8.decode(body),
        catch: () => new ProtocolError.MalformedJson({ message: "The request body is not valid UTF-8" })
      })
      return yield* parseJson(text)
    }
    const param = url.searchParams.get("payload")
    if (param === null || param === "") return undefined
    if (param.length > limit) {
      return yield* new ProtocolError.PayloadTooLarge({ message: `The payload exceeds ${limit} bytes` })
    }
    return yield* parseJson(param)
  })

const decodePayload = (served: Served, raw: unknown): Effect.Effect<unknown, ProtocolError.InvalidPayload> =>
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

/** Runs the procedure's middlewares like RpcServer does, and returns what they provide. */
const runMiddleware = (
  served: Served,
  context: Context.Context<never>,
  payload: unknown,
  headers: Headers.Headers
): Effect.Effect<Context.Context<never>, unknown> => {
  let handler: Effect.Effect<Context.Context<never>, unknown> = Effect.context<never>()
  const options = { rpc: served.rpc, payload, headers, clientId: 0 }
  for (const tag of served.rpc.middlewares) {
    if (tag.wrap) {
      const middleware = Context.unsafeGet(context, tag) as (o: unknown) => Effect.Effect<any, any>
      handler = middleware({ ...options, next: handler })
    } else if (tag.optional) {
      const middleware = Context.unsafeGet(context, tag) as (o: unknown) => Effect.Effect<any, any>
      const previous = handler
      handler = Effect.matchEffect(middleware(options), {
        onFailure: () => previous,
        onSuccess: (value) => tag.provides === undefined ? previous : Effect.provideService(previous, tag.provides, value)
      })
    } else {
      const middleware = Context.unsafeGet(context, tag) as (o: unknown) => Effect.Effect<any, any>
      handler = tag.provides === undefined
        ? Effect.zipRight(middleware(options), handler)
        : Effect.provideServiceEffect(handler, tag.provides, middleware(options))
    }
  }
  return handler
}

/**
 * Starts a stream far enough to see its first chunk, in the request's scope:
 * a typed failure before any byte is sent can still be an HTTP error.
 */
const started = <A, E>(stream: Stream.Stream<A, E>): Effect.Effect<Stream.Stream<A, E>, E, Scope.Scope> =>
  Effect.gen(function*() {
    const pull = yield* Stream.toPull(stream)
    const first = yield* Effect.exit(pull)
    if (Exit.isSuccess(first)) {
      return Stream.concat(Stream.fromChunk(first.value), Stream.repeatEffectChunkOption(pull))
    }
    const failure = Cause.failureOption(first.cause)
    if (Option.isSome(failure)) {
      if (Option.isNone(failure.value)) return Stream.empty
      return yield* Effect.fail(failure.value.value)
    }
    return yield* Effect.failCause(first.cause as Cause.Cause<never>)
  })

const asStream = (result: unknown): Stream.Stream<unknown, unknown> => {
  const value = Rpc.isWrapper(result as object) ? (result as Rpc.Wrapper<unknown>).value : result
  if (Stream.StreamTypeId in (value as object)) return value as Stream.Stream<unknown, unknown>
  // A handler may return an Effect of a Mailbox instead of a Stream.
  return Stream.unwrapScoped(Effect.map(
    value as Effect.Effect<Mailbox.ReadonlyMailbox<unknown, unknown>, unknown, Scope.Scope>,
    Mailbox.toStream
  ))
}

const asEffect = (result: unknown): Effect.Effect<unknown, unknown> =>
  (Rpc.isWrapper(result as object) ? (result as Rpc.Wrapper<unknown>).value : result) as Effect.Effect<unknown, unknown>

/**
 * The procedures of `group` as an `HttpApp`, answering `<path>/<Tag>`.
 * Needs the group's handlers (`group.toLayer`) and middlewares.
 */
export const toHttpApp = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options?: Options
): Effect.Effect<
  HttpApp.Default<never, Scope.Scope>,
  never,
  Rpc.ToHandler<Rpcs> | Rpc.Middleware<Rpcs>
> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<never>()
    const base = (options?.path ?? defaultPath).replace(/\/+$/, "")
    const limit = options?.maxPayloadBytes ?? defaultMaxPayloadBytes
    const procedures = new Map<string, Served>()
    for (const rpc of group.requests.values()) {
      procedures.set(rpc._tag, serve(rpc as unknown as Rpc.AnyWithProps))
    }

    const handle = (
      request: HttpServerRequest.HttpServerRequest
    ): Effect.Effect<HttpServerResponse.HttpServerResponse, never, Scope.Scope> => {
      const program: Effect.Effect<
        HttpServerResponse.HttpServerResponse,
        ProtocolError.ProtocolError | TypedFailure,
        Scope.Scope
      > = Effect.gen(function*() {
        // A draining server starts nothing new: a request on a kept-alive connection would
        // otherwise get a stream that ends at once, again and again, until the process exits.
        if (yield* Deferred.isDone((yield* GracefulShutdown).draining)) {
          return yield* new ProtocolError.ServiceUnavailable({ message: "The server is shutting down: retry" })
        }
        // Not `new URL(request.url, base)`: a request target like "//x" would parse as a host.
        const url = new URL(`http://localhost${request.url.startsWith("/") ? "" : "/"}${request.url}`)
        const prefix = `${base}/`
        if (!url.pathname.startsWith(prefix)) {
          return yield* new ProtocolError.NotFound({ message: `No procedure at ${url.pathname}` })
        }
        let tag: string
        try {
          tag = decodeURIComponent(url.pathname.slice(prefix.length))
        } catch {
          return yield* new ProtocolError.NotFound({ message: "The procedure name is not valid URL encoding" })
        }
        const served = procedures.get(tag)
        if (served === undefined) {
          return yield* new ProtocolError.NotFound({ message: `Unknown procedure: ${tag.slice(0, 200)}` })
        }
        if (request.method !== "GET" && request.method !== "POST") {
          return yield* Effect.fail(
            new ProtocolError.MethodNotAllowed({ message: `Use GET or POST, not ${request.method}` })
          )
        }
        const spec = served.spec
        let format: ExportFormat.ExportFormat | undefined
        if (spec._tag === "export") {
          const asked = url.searchParams.get("format") ?? spec.defaultFormat
          if (!ExportFormat.isExportFormat(asked) || !spec.formats.includes(asked)) {
            return yield* new ProtocolError.NotAcceptable({
              message: `Unsupported export format ${JSON.stringify(asked.slice(0, 50))}; use one of ${
                spec.formats.join(", ")
              }`
            })
          }
          format = asked
        }
        const raw = yield* rawPayload(request, url, limit)
        const payload = yield* decodePayload(served, raw)

        let headers = request.headers
        const resumeFrom = url.searchParams.get("lastEventId")
        if (resumeFrom !== null && headers[Procedure.lastEventIdHeader] === undefined) {
          headers = Headers.set(headers, Procedure.lastEventIdHeader, resumeFrom)
        }
        const provided = yield* runMiddleware(served, context, payload, headers).pipe(
          Effect.mapError((error) => ({ _tag: "TypedFailure" as const, served, error }))
        )
        const entry = context.unsafeMap.get(served.rpc.key) as Rpc.Handler<string> | undefined
        if (entry === undefined) {
          return yield* Effect.dieMessage(`No handler for ${tag}: provide the layer of group.toLayer`)
        }
        const handlerContext = Context.merge(entry.context, provided)
        const parent = HttpTraceContext.fromHeaders(request.headers)
        const spanOptions = {
          kind: "server" as const,
          captureStackTrace: false,
          attributes: { "rpc.system": "effect-stream-rpc", "rpc.method": tag, "rpc.kind": spec._tag },
          ...(Option.isSome(parent) ? { parent: parent.value } : {})
        }
        const result = entry.handler(payload, { clientId: 0, headers })

        if (spec._tag === "unary") {
          return yield* asEffect(result).pipe(
            Effect.mapInputContext((ctx: Context.Context<never>) => Context.merge(ctx, handlerContext)),
            Effect.withSpan(`RpcServer.${tag}`, spanOptions),
            // JSON has no undefined: a void result is sent as null
            Effect.map((value) => HttpServerResponse.unsafeJson(served.encodeSuccess(value) ?? null)),
            Effect.mapError((error) => ({ _tag: "TypedFailure" as const, served, error }))
          )
        }

        const stream = asStream(result).pipe(
          Stream.mapInputContext((ctx: Context.Context<never>) => Context.merge(ctx, handlerContext)),
          Stream.withSpan(`RpcServer.${tag}`, spanOptions)
        )
        switch (spec._tag) {
          case "subscription": {
            const cursor = spec.cursor
            return yield* StreamingService.sse(tag, stream, (value) => JSON.stringify(served.encodeSuccess(value)), {
              id: cursor,
              serializeError: (error) => JSON.stringify(served.encodeFailure(error))
            })
          }
          case "download": {
            const body = yield* started(stream as Stream.Stream<Uint8Array, unknown>).pipe(
              Effect.mapError((error) => ({ _tag: "TypedFailure" as const, served, error }))
            )
            return StreamingService.download(body, {
              name: tag,
              contentType: spec.contentType,
              filename: spec.filename(payload),
              contentLength: spec.contentLength?.(payload)
            })
          }
          case "export": {
            const body = yield* started(stream).pipe(
              Effect.mapError((error) => ({ _tag: "TypedFailure" as const, served, error }))
            )
            return yield* StreamingService.export(
              spec.filename(payload),
              body,
              format ?? spec.defaultFormat,
              served.encodeSuccess,
              { columns: spec.columns }
            )
          }
        }
      })
      return program.pipe(
        Effect.catchAll((failure) => {
          if (failure._tag === "TypedFailure") return Effect.succeed(typedFailure(failure.served, failure.error))
          return Effect.succeed(protocolError(failure, errorHeaders(failure._tag)))
        }),
        Effect.catchAllDefect((defect) =>
          Effect.zipRight(
            Effect.logError("procedure defect", Cause.die(defect)),
            Effect.succeed(protocolError(new ProtocolError.InternalError({ message: "Internal server error" })))
          )
        )
      )
    }

    const cors = options?.cors
    if (cors !== undefined && cors.origins === "*" && cors.credentials === true) {
      return yield* Effect.dieMessage("CORS: origins \"*\" cannot be combined with credentials: list the origins")
    }
    return Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const allow = corsHeaders(cors, request.headers["origin"])
      if (request.method === "OPTIONS" && allow !== undefined && request.headers["access-control-request-method"] !== undefined) {
        return Effect.succeed(HttpServerResponse.empty({
          status: 204,
          headers: {
            ...allow,
            "access-control-allow-methods": "GET, POST",
            "access-control-allow-headers": corsAllowHeaders,
            "access-control-max-age": String(cors?.maxAge ?? 600)
          }
        }))
      }
      const response = handle(request)
      return allow === undefined ? response : Effect.map(response, HttpServerResponse.setHeaders(allow))
    })
  })

/** A typed failure of a handler or middleware: its status annotation (default 400) and its encoded JSON. */
const typedFailure = (served: Served, error: unknown): HttpServerResponse.HttpServerResponse => {
  const status = statusOfError(served.failure.ast, error, 400) ?? 400
  let body: unknown
  try {
    body = served.encodeFailure(error)
  } catch {
    return protocolError(new ProtocolError.InternalError({ message: "Internal server error" }))
  }
  if (typeof body === "object" && body !== null && !("message" in body)) {
    body = { ...body, message: (body as { _tag?: unknown })._tag ?? "Failed" }
  }
  return HttpServerResponse.unsafeJson(body, { status })
}

/** Mounts the procedures of `group` on `HttpLayerRouter` at `<path>/*`. */
export const layer = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options?: Options
): Layer.Layer<never, never, HttpLayerRouter.HttpRouter | Rpc.ToHandler<Rpcs> | Rpc.Middleware<Rpcs>> =>
  HttpLayerRouter.use((router) =>
    Effect.flatMap(
      toHttpApp(group, options),
      (app) => router.add("*", `${(options?.path ?? defaultPath).replace(/\/+$/, "")}/*` as HttpLayerRouter.PathInput, app)
    )
  )

/**
 * A web-standard `(Request) => Promise<Response>` handler for runtimes other
 * than Node (Deno, Bun, workers). `handlers` provides `group.toLayer(...)`
 * and the middlewares.
 */
export const toWebHandler = <Rpcs extends Rpc.Any, E>(
  group: RpcGroup.RpcGroup<Rpcs>,
  handlers: Layer.Layer<Rpc.ToHandler<Rpcs> | Rpc.Middleware<Rpcs>, E>,
  options?: Options
): {
  readonly handler: (request: Request) => Promise<Response>
  readonly dispose: () => Promise<void>
} => {
  const web = HttpLayerRouter.toWebHandler(
    layer(group, options).pipe(Layer.provide(handlers)),
    { disableLogger: true }
  )
  // Every requirement is provided above; the generic group keeps TypeScript from seeing it.
  const handler = web.handler as (request: Request) => Promise<Response>
  return { handler, dispose: web.dispose }
}

