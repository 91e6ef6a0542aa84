/**
 * Errors answered before a stream starts: a status and a JSON body
 * `{"_tag", "message"}`. Protocol errors (bad input, unknown procedure, …)
 * and the typed failures of handlers and middlewares, by their status
 * annotation (default 400). Bad input is never a 5xx.
 */
import type * as Headers from "@effect/platform/Headers"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as ProtocolError from "../../contract/ProtocolError.ts"
import * as Errors from "../../protocol/Errors.ts"
import type { Served } from "./Served.ts"

/** A failure of a handler or a middleware, encoded with the procedure's failure schema. */
export class TypedFailure {
  readonly _tag = "TypedFailure"
  constructor(readonly served: Served, readonly error: unknown) {}
}

/**
 * Extra headers of an error answer. A 413 closes the connection: Node would
 * otherwise read (and discard) the whole unread body to keep the connection
 * alive, however large its declared length. A 503 while draining closes it
 * too, so the client's retry opens a new connection (to another instance).
 */
const extraHeaders = (tag: ProtocolError.ProtocolError["_tag"]): Headers.Input | undefined => {
  switch (tag) {
    case "MethodNotAllowed":
      return { allow: "GET, POST" }
    case "PayloadTooLarge":
    case "RequestTimeout":
      return { connection: "close" }
    case "ServiceUnavailable":
      return { connection: "close", "retry-after": "1" }
    default:
      return undefined
  }
}

export const protocolError = (error: ProtocolError.ProtocolError): HttpServerResponse.HttpServerResponse => {
  const headers = extraHeaders(error._tag)
  return HttpServerResponse.unsafeJson({ _tag: error._tag, message: error.message }, {
    status: ProtocolError.statusOf(error.constructor as unknown as Schema.Schema.All, 400),
    ...(headers === undefined ? {} : { headers })
  })
}

const internalError = () => protocolError(new ProtocolError.InternalError({ message: "Internal server error" }))

/** Status of `error`: the annotation of the (possibly nested) union member it belongs to. */
const statusOf = (ast: SchemaAST.AST, error: unknown): number | undefined => {
  if (SchemaAST.isUnion(ast)) {
    for (const member of ast.types) {
      const status = statusOf(member, error)
      if (status !== undefined) return status
    }
    return undefined
  }
  return Schema.is(Schema.make(ast))(error) ? HttpApiSchema.getStatus(ast, 400) : undefined
}

/** The JSON body of a protocol error (for an `error` event). */
export const protocolErrorJson = (error: ProtocolError.ProtocolError): string => Errors.encodeBody(error._tag, error.message)

/** The JSON of a typed failure, with a `message` (for an `error` event); `undefined` when it cannot be encoded. */
export const typedFailureJson = (served: Served, error: unknown): string | undefined => {
  let body: unknown
  try {
    body = served.encodeFailure(error)
  } catch {
    return undefined
  }
  if (typeof body === "object" && body !== null && !("message" in body)) {
    body = { ...body, message: (body as { _tag?: unknown })._tag ?? "Failed" }
  }
  return JSON.stringify(body)
}

/** A typed failure of a handler or middleware: its status annotation (default 400) and its encoded JSON. */
export const typedFailure = (served: Served, error: unknown): HttpServerResponse.HttpServerResponse => {
  const json = typedFailureJson(served, error)
  return json === undefined
    ? internalError()
    : HttpServerResponse.text(json, { status: statusOf(served.failure.ast, error) ?? 400, contentType: "application/json" })
}

/** Every failure and defect of serving a request as its answer; a defect's details are logged, never sent. */
export const respond = <R>(
  program: Effect.Effect<HttpServerResponse.HttpServerResponse, ProtocolError.ProtocolError | TypedFailure, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  program.pipe(
    Effect.catchAll((failure) =>
      Effect.succeed(
        failure._tag === "TypedFailure" ? typedFailure(failure.served, failure.error) : protocolError(failure)
      )
    ),
    Effect.catchAllDefect((defect) =>
      Effect.as(Effect.logError("procedure defect", Cause.die(defect)), internalError())
    )
  )
