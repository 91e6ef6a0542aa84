/**
 * One procedure as the client sees it (its URL, kind and schemas), and the
 * request every kind starts with: a POST of the encoded payload that
 * resolves with a 2xx response or rejects with the typed error of the
 * procedure or a `ClientError`.
 */
import type * as Rpc from "@effect/rpc/Rpc"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Procedure from "../src/Procedure.ts"
import * as Errors from "../src/protocol/Errors.ts"
import * as Names from "../src/protocol/Names.ts"
import { ClientError } from "./ClientError.ts"

type Decoder = (u: unknown) => Either.Either<unknown, ParseResult.ParseError>

export interface ClientProcedure {
  readonly tag: string
  readonly spec: Procedure.ProcedureSpec
  readonly path: string
  readonly rowSchema: Schema.Schema.Any
  readonly encodePayload: (payload: unknown) => Either.Either<unknown, ParseResult.ParseError>
  readonly decodeSuccess: Decoder
  readonly decodeFailure: Decoder
}

/** How requests are made: the headers of each (computed again every time) and the fetch. */
export interface Transport {
  readonly headers: () => Promise<Headers>
  readonly fetch: typeof globalThis.fetch
}

/** Headers of every request: a value, or a function called again for every request and reconnection. */
export type HeadersOption = HeadersInit | (() => HeadersInit | Promise<HeadersInit>)

export const transport = (options: {
  readonly headers?: HeadersOption | undefined
  readonly fetch?: typeof globalThis.fetch | undefined
}): Transport => ({
  headers: async () => new Headers(typeof options.headers === "function" ? await options.headers() : options.headers),
  fetch: options.fetch ?? ((input, init) => globalThis.fetch(input, init))
})

export const asSchema = (schema: Schema.Schema.All): Schema.Schema<unknown, unknown, never> =>
  schema as unknown as Schema.Schema<unknown, unknown, never>

export const make = (base: string, rpc: Rpc.AnyWithProps): ClientProcedure => {
  const schemas = Procedure.schemasOf(rpc)
  return {
    tag: rpc._tag,
    spec: Procedure.specOf(rpc),
    path: Names.pathOf(base, rpc._tag),
    rowSchema: schemas.success,
    encodePayload: Schema.encodeUnknownEither(asSchema(schemas.payload)),
    decodeSuccess: Schema.decodeUnknownEither(asSchema(schemas.success)),
    decodeFailure: Schema.decodeUnknownEither(Procedure.failureSchemaOf(rpc))
  }
}

/** A parse error as a message, cut to a readable length. */
export const describe = (error: ParseResult.ParseError): string => {
  const text = ParseResult.TreeFormatter.formatErrorSync(error)
  return text.length > 2000 ? `${text.slice(0, 2000)}…` : text
}

/** A decoded value, or a `ClientError("Protocol")` saying which `what` does not match the contract. */
export const decodeOrThrow = (decode: Decoder, json: unknown, tag: string, what: string): unknown => {
  const decoded = decode(json)
  if (Either.isLeft(decoded)) {
    throw new ClientError("Protocol", `${tag}: ${what} does not match the contract\n${describe(decoded.left)}`, {
      cause: decoded.left
    })
  }
  return decoded.right
}

/** The typed error of `json` (an error body or event), else a `ClientError("Protocol")` with its message. */
export const failureOf = (procedure: ClientProcedure, json: unknown, prefix: string, status?: number): unknown => {
  const typed = procedure.decodeFailure(json)
  if (Either.isRight(typed)) return typed.right
  const tag = Errors.isErrorBody(json) ? `${json._tag}: ` : ""
  return new ClientError("Protocol", `${procedure.tag}: ${tag}${Errors.messageOf(json, prefix)}`, {
    status,
    cause: json
  })
}

/** The typed error in an HTTP error body, or a `ClientError("Protocol")` carrying the status. */
export const failureOfResponse = async (procedure: ClientProcedure, response: Response): Promise<unknown> => {
  const status = response.status
  let text: string
  try {
    text = await response.text()
  } catch (cause) {
    return new ClientError("Transport", `${procedure.tag}: HTTP ${status}, and its body could not be read`, {
      status,
      cause
    })
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return new ClientError("Protocol", `${procedure.tag}: HTTP ${status}`, { status, cause: text.slice(0, 1000) })
  }
  return failureOf(procedure, json, `HTTP ${status}`, status)
}

export const expectKind = (
  procedure: ClientProcedure,
  kinds: ReadonlyArray<Procedure.ProcedureKind>,
  method: string
): void => {
  if (!kinds.includes(procedure.spec._tag)) {
    const kind = procedure.spec._tag
    throw new ClientError(
      "Protocol",
      `${procedure.tag} is a ${kind} procedure: use ${kind === "unary" ? "call" : kind}, not ${method}`
    )
  }
}

/** The request body: the payload encoded by its schema, as JSON (none for an empty payload). */
export const encodePayload = (procedure: ClientProcedure, payload: unknown): string | undefined => {
  const encoded = procedure.encodePayload(payload)
  if (Either.isLeft(encoded)) {
    throw new ClientError("Protocol", `${procedure.tag}: the payload does not match the contract\n${describe(encoded.left)}`, {
      cause: encoded.left
    })
  }
  return encoded.right === undefined ? undefined : JSON.stringify(encoded.right)
}

/** POSTs the payload; resolves with a 2xx response, rejects with the typed error or a ClientError. */
export const post = async (
  procedure: ClientProcedure,
  transport: Transport,
  body: string | undefined,
  init: { readonly signal?: AbortSignal | undefined; readonly query?: string; readonly accept: string }
): Promise<Response> => {
  const signal = init.signal
  if (signal?.aborted) throw new ClientError("Aborted", `${procedure.tag}: aborted`, { cause: signal.reason })
  let headers: Headers
  try {
    headers = await transport.headers()
  } catch (cause) {
    throw new ClientError("Transport", `${procedure.tag}: the headers could not be computed`, { cause })
  }
  headers.set(Names.headers.contentType, Names.contentTypes.json)
  if (!headers.has(Names.headers.accept)) headers.set(Names.headers.accept, init.accept)
  let response: Response
  try {
    response = await transport.fetch(procedure.path + (init.query ?? ""), {
      method: "POST",
      headers,
      ...(body === undefined ? {} : { body }),
      ...(signal === undefined ? {} : { signal })
    })
  } catch (cause) {
    if (signal?.aborted) throw new ClientError("Aborted", `${procedure.tag}: aborted`, { cause })
    throw new ClientError("Transport", `${procedure.tag}: the request failed`, { cause })
  }
  if (!response.ok) throw await failureOfResponse(procedure, response)
  return response
}
