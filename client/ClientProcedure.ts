/**
 * One procedure as the client sees it (its URL, kind and codecs), and the
 * request every kind starts with: a POST of the encoded payload that
 * resolves with a 2xx response or rejects with the typed error of the
 * procedure or a `ClientError`.
 *
 * The codecs are plain functions that throw on a mismatch: compiled ones
 * (`Codec`, what generated clients use) or Effect Schema's (the
 * Effect-flavoured client in `effect/`). Nothing here imports `effect`.
 */
import type { CsvFields } from "../src/protocol/Csv.ts"
import type { ExportFormat } from "../src/protocol/ExportFormat.ts"
import * as Errors from "../src/protocol/Errors.ts"
import * as Names from "../src/protocol/Names.ts"
import { ClientError } from "./ClientError.ts"
import { CodecError, describe as describeCodecError } from "./Codec.ts"

export type ProcedureKind = "subscription" | "download" | "export" | "unary"

/**
 * What a client needs to know of a procedure. `P`, `A`, `E`: its payload,
 * its value (a subscription's value, an export's row, a unary response) and
 * its typed errors.
 */
export interface Procedure<P = unknown, A = unknown, E = unknown> {
  readonly tag: string
  readonly kind: ProcedureKind
  /** The payload to its wire form (`undefined`: no body). Throws on a payload off the contract. */
  readonly encodePayload: (payload: P) => unknown
  /** A value, row or response from its wire form. Throws on a mismatch. */
  readonly decodeSuccess: (json: unknown) => A
  /** A typed error from its wire form. Throws when `json` is none of them. */
  readonly decodeFailure: (json: unknown) => E
  /** A download's declared content type. */
  readonly contentType?: string | undefined
  /** An export's formats and default. */
  readonly formats?: ReadonlyArray<ExportFormat> | undefined
  readonly defaultFormat?: ExportFormat | undefined
  /** An export's row fields as CSV cells hold them; without them CSV rows cannot be decoded. */
  readonly csv?: CsvFields | undefined
}

/** A procedure bound to where it is served. */
export interface ClientProcedure extends Procedure {
  readonly path: string
}

export const bind = (base: string, procedure: Procedure): ClientProcedure => ({
  ...procedure,
  path: Names.pathOf(base, procedure.tag)
})

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

/** A decode failure as a message, cut to a readable length. */
export const describe = (error: unknown): string => {
  const text = error instanceof CodecError ? describeCodecError(error) : error instanceof Error ? error.message : String(error)
  return text.length > 2000 ? `${text.slice(0, 2000)}…` : text
}

/** The cause a decode failure carries: what the codec reported underneath (Schema's `ParseError`), else itself. */
const causeOf = (error: unknown): unknown =>
  error instanceof Error && error.cause !== undefined && !(error instanceof CodecError) ? error.cause : error

/** A decoded value, or a `ClientError("Protocol")` saying which `what` does not match the contract. */
export const decodeOrThrow = <A>(decode: (json: unknown) => A, json: unknown, tag: string, what: string, status?: number): A => {
  try {
    return decode(json)
  } catch (error) {
    throw new ClientError("Protocol", `${tag}: ${what} does not match the contract\n${describe(error)}`, {
      status,
      cause: causeOf(error)
    })
  }
}

/** The typed error of `json` (an error body or event), else a `ClientError("Protocol")` with its message. */
export const failureOf = (procedure: ClientProcedure, json: unknown, prefix: string, status?: number): unknown => {
  try {
    return procedure.decodeFailure(json)
  } catch {
    // not one of its typed errors
  }
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
  return failureOfBody(procedure, status, text)
}

/** The typed error in the body `text` of an HTTP error `status`, or a `ClientError("Protocol")` carrying the status. */
export const failureOfBody = (procedure: ClientProcedure, status: number, text: string): unknown => {
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
  kinds: ReadonlyArray<ProcedureKind>,
  method: string
): void => {
  if (!kinds.includes(procedure.kind)) {
    const kind = procedure.kind
    throw new ClientError(
      "Protocol",
      `${procedure.tag} is a ${kind} procedure: use ${kind === "unary" ? "call" : kind}, not ${method}`
    )
  }
}

/** The request body: the payload encoded by its schema, as JSON (none for an empty payload). */
export const encodePayload = (procedure: ClientProcedure, payload: unknown): string | undefined => {
  const encoded = decodeOrThrow(procedure.encodePayload, payload, procedure.tag, "the payload")
  return encoded === undefined ? undefined : JSON.stringify(encoded)
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
