/**
 * The runtime behind generated clients: typed `subscribe`, `download`,
 * `export` and `call` for every procedure of a group served by
 * `HttpTransport` (wire protocol v1).
 *
 * ```ts
 * const client = StreamClient.make(DemoApi, { baseUrl: "/rpc" })
 * for await (const price of client.subscribe("watchPrices", { symbols: ["ACME"] })) {
 *   console.log(price.symbol, price.price, price.at.toISOString())
 * }
 * ```
 *
 * Every request is `POST <baseUrl>/<Tag>` with the payload encoded by the
 * procedure's payload schema. Values, rows and errors are decoded with the
 * contract's schemas, so `Date`, `bigint`, branded and transformed types
 * round-trip. A failure is either the procedure's TYPED error (its error
 * schema, or a failure of one of its middlewares, e.g. `Unauthorized`) or a
 * `ClientError` saying what went wrong with the transfer.
 *
 * Subscriptions reconnect on transport failures, on a body that ends without
 * `event: end` and on heartbeat silence, with exponential backoff and full
 * jitter, resuming resumable procedures with `Last-Event-ID`. They stop for
 * good on `event: end`, on a typed error, on a `ClientError` that a retry
 * cannot fix (an undecodable value, an oversized event, an HTTP error other
 * than 502/503/504) and when closed by the caller.
 *
 * Browser-safe: only `fetch`, `AbortController`, `ReadableStream`,
 * `TextDecoder` and `setTimeout`; no Node built-ins (see `saveToFile.ts` for
 * writing a download to disk in Node).
 */
import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import type * as RpcSchema from "@effect/rpc/RpcSchema"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as Stream from "effect/Stream"
import type { ExportFormat } from "../src/ExportFormat.ts"
import * as Procedure from "../src/Procedure.ts"
import { type DownloadProgress, invokeCallback, withProgress } from "./DownloadProgress.ts"
import { makeSseParser, SseEventTooLarge } from "./SseParser.ts"

export type { DownloadProgress } from "./DownloadProgress.ts"
export type { ExportFormat }

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

export interface ClientOptions {
  /** Where the procedures are mounted, e.g. `"http://127.0.0.1:3000/rpc"`, or `"/rpc"` in a browser. */
  readonly baseUrl: string
  /**
   * Headers of every request (e.g. `Authorization`). A function is called
   * again for every request and every reconnection, so it can hand out a
   * fresh token each time.
   */
  readonly headers?: HeadersInit | (() => HeadersInit | Promise<HeadersInit>)
  /** The fetch to use. Default `globalThis.fetch`. */
  readonly fetch?: typeof globalThis.fetch
}

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed"

export interface ReconnectOptions {
  /** Base of the exponential backoff. Default 500 ms; the server's `retry:` replaces it when sent. */
  readonly initialDelayMs?: number
  /** Longest wait between two attempts. Default 30 s. */
  readonly maxDelayMs?: number
  /** Reconnection attempts in a row without receiving an event before giving up. Default `Infinity`. */
  readonly maxAttempts?: number
}

export interface SubscribeOptions<A, E> {
  /** Aborting closes the subscription, like `unsubscribe()`. */
  readonly signal?: AbortSignal
  /** Called for every value, as soon as it is parsed (independently of the iterator). */
  readonly onData?: (value: A) => void
  /** Called once when the subscription fails for good: a typed error or a `ClientError`. */
  readonly onError?: (error: E | ClientError) => void
  /**
   * Called when the server reports values this subscriber will never get: dropped by the
   * sliding policy, or no longer kept for a resume. `null` is a gap whose size the server
   * cannot know (a resume cursor from before a server restart).
   */
  readonly onDropped?: (count: number | null) => void
  /** Called on every change of the connection state. */
  readonly onState?: (state: ConnectionState) => void
  readonly reconnect?: ReconnectOptions
  /** Longest silence (not a byte, not even a heartbeat comment) before reconnecting. Default 60 s. */
  readonly heartbeatTimeoutMs?: number
  /** Start after this cursor (resumable procedures). */
  readonly lastEventId?: string
  /** Largest SSE event accepted, in characters. Default 1 MiB. */
  readonly maxEventSize?: number
}

/**
 * A live subscription. Values reach `onData` and, once iterated, the async
 * iterator (or `stream`), which reads the network only as fast as it is
 * consumed: at most `queueCapacity` values wait in the client, then reading
 * pauses and the server's sliding policy drops (and counts) stale values.
 *
 * Without `onData`, values are queued from the start, so none is missed
 * before the iteration begins; with `onData` and no iterator, nothing is
 * queued.
 */
export interface Subscription<A, E> extends AsyncIterable<A> {
  /** Closes the subscription: aborts the request; the iterator ends. */
  readonly unsubscribe: () => void
  readonly state: ConnectionState
  /**
   * The cursor of the last value handed to the consumer: the one the
   * iterator (or `stream`) took last when it is iterated, else the one
   * `onData` saw last. Pass it as `options.lastEventId` to resume later
   * without a gap. (Reconnections send the last cursor received, since the
   * values in the queue are still delivered.)
   */
  readonly lastEventId: string | undefined
  /** The same subscription as an Effect Stream (consume it once; interrupting it closes the subscription). */
  readonly stream: Stream.Stream<A, E | ClientError>
}

export interface DownloadOptions {
  /** Aborting cancels the transfer: the promise rejects, or `body` errors, with `ClientError("Aborted")`. */
  readonly signal?: AbortSignal
  /** Called after every chunk of the body is read. */
  readonly onProgress?: (progress: DownloadProgress) => void
}

export interface Download {
  /** From `Content-Disposition` (`filename*=` preferred over `filename=`). */
  readonly filename: string | undefined
  readonly contentType: string
  /** From `Content-Length`; `undefined` when unknown (or the body is content-encoded). */
  readonly size: number | undefined
  /** The bytes, read on demand; errors with `ClientError("Truncated")` when the transfer is cut short. */
  readonly body: ReadableStream<Uint8Array>
  /** Reads the whole body (use either `body` or `blob`, once). */
  readonly blob: () => Promise<Blob>
}

export interface ExportOptions<F extends string = ExportFormat> extends DownloadOptions {
  /** Default: the procedure's default format. */
  readonly format?: F
}

/**
 * An export: the file as a `Download`, and its rows decoded with the
 * contract's row schema by `for await` (json, ndjson, and csv when the
 * contract declares `columns`). Use either the rows or the bytes, once.
 */
export interface Export<A> extends Download, AsyncIterable<A> {}

export interface CallOptions {
  readonly signal?: AbortSignal
}

export type ClientErrorReason = "Transport" | "Truncated" | "Timeout" | "Protocol" | "EventTooLarge" | "Aborted"

/**
 * Anything that is not a typed answer of the procedure:
 * - `Transport`: the request or the connection failed;
 * - `Truncated`: the body ended early (a download or export short of its
 *   length or cut by the server; a subscription without `event: end`);
 * - `Timeout`: a subscription was silent longer than `heartbeatTimeoutMs`;
 * - `Protocol`: an answer that is not what the protocol and the contract
 *   say (an HTTP error that is not a typed error — `status` tells which —,
 *   a value that does not decode, a malformed body);
 * - `EventTooLarge`: an SSE event over `maxEventSize`;
 * - `Aborted`: the caller's `AbortSignal` fired.
 */
export class ClientError extends Error {
  readonly _tag = "ClientError" as const
  readonly reason: ClientErrorReason
  declare readonly status?: number
  constructor(reason: ClientErrorReason, message: string, options?: {
    readonly status?: number | undefined
    readonly cause?: unknown
  }) {
    super(message, options !== undefined && "cause" in options ? { cause: options.cause } : undefined)
    this.name = "ClientError"
    this.reason = reason
    if (options?.status !== undefined) {
      Object.defineProperty(this, "status", { value: options.status, enumerable: true, writable: false })
    }
  }
}

/** The value type of a procedure: the element of a stream, or the one response of a unary procedure. */
export type SuccessOf<R> = R extends Rpc.Rpc<infer _Tag, infer _Payload, infer _Success, infer _Error, infer _Middleware>
  ? [_Success] extends [RpcSchema.Stream<infer _A, infer _E>] ? _A["Type"] : _Success["Type"]
  : never

/** The typed errors of a procedure: its stream and rpc errors and the failures of its middlewares. */
export type ErrorOf<R> = R extends Rpc.Rpc<infer _Tag, infer _Payload, infer _Success, infer _Error, infer _Middleware>
  ? ([_Success] extends [RpcSchema.Stream<infer _A, infer _E>] ? _E["Type"] : never)
    | _Error["Type"]
    | _Middleware["failure"]["Type"]
  : never

/** The payload type of a procedure. */
export type PayloadOf<R> = Rpc.Payload<R>

/** Export formats a client may ask for (the contract's formats are checked at run time). */
export type FormatsOf<_R> = ExportFormat

type Of<Rpcs extends Rpc.Any, Tag extends string> = Rpc.ExtractTag<Rpcs, Tag>

export interface StreamClient<Rpcs extends Rpc.Any> {
  /** A subscription (Server-Sent Events), reconnecting and resuming until it ends, fails or is closed. */
  readonly subscribe: <Tag extends Rpcs["_tag"]>(
    tag: Tag,
    payload: PayloadOf<Of<Rpcs, Tag>>,
    options?: SubscribeOptions<SuccessOf<Of<Rpcs, Tag>>, ErrorOf<Of<Rpcs, Tag>>>
  ) => Subscription<SuccessOf<Of<Rpcs, Tag>>, ErrorOf<Of<Rpcs, Tag>>>
  /** Resolves once the response headers arrive; rejects with the typed error or a `ClientError`. */
  readonly download: <Tag extends Rpcs["_tag"]>(
    tag: Tag,
    payload: PayloadOf<Of<Rpcs, Tag>>,
    options?: DownloadOptions
  ) => Promise<Download>
  /** Resolves once the response headers arrive; rejects with the typed error or a `ClientError`. */
  readonly export: <Tag extends Rpcs["_tag"]>(
    tag: Tag,
    payload: PayloadOf<Of<Rpcs, Tag>>,
    options?: ExportOptions<FormatsOf<Of<Rpcs, Tag>>>
  ) => Promise<Export<SuccessOf<Of<Rpcs, Tag>>>>
  /** A unary call; rejects with the typed error or a `ClientError`. */
  readonly call: <Tag extends Rpcs["_tag"]>(
    tag: Tag,
    payload: PayloadOf<Of<Rpcs, Tag>>,
    options?: CallOptions
  ) => Promise<SuccessOf<Of<Rpcs, Tag>>>
}

export const defaults = {
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  maxAttempts: Infinity,
  heartbeatTimeoutMs: 60_000,
  maxEventSize: 1024 * 1024,
  /** Values a subscription keeps for a consumer that is not pulling before it stops reading the network. */
  queueCapacity: 64
} as const

/** HTTP statuses of a subscription request that are retried (a proxy or a server restarting). */
const transientStatuses: ReadonlySet<number> = new Set([502, 503, 504])

// ---------------------------------------------------------------------------
// Procedures
// ---------------------------------------------------------------------------

type Decoder = (u: unknown) => Either.Either<unknown, ParseResult.ParseError>

interface ClientProcedure {
  readonly tag: string
  readonly spec: Procedure.ProcedureSpec
  readonly path: string
  readonly rowSchema: Schema.Schema.Any
  readonly encodePayload: (payload: unknown) => Either.Either<unknown, ParseResult.ParseError>
  readonly decodeSuccess: Decoder
  readonly decodeFailure: Decoder
}

const asSchema = (schema: Schema.Schema.All): Schema.Schema<unknown, unknown, never> =>
  schema as unknown as Schema.Schema<unknown, unknown, never>

const clientProcedure = (base: string, rpc: Rpc.AnyWithProps): ClientProcedure => {
  const schemas = Procedure.schemasOf(rpc)
  const failure = Schema.Union(
    asSchema(schemas.failure),
    ...Array.from(rpc.middlewares, (middleware) => asSchema(middleware.failure))
  )
  return {
    tag: rpc._tag,
    spec: Procedure.specOf(rpc),
    path: `${base}/${encodeURIComponent(rpc._tag)}`,
    rowSchema: schemas.success,
    encodePayload: Schema.encodeUnknownEither(asSchema(schemas.payload)),
    decodeSuccess: Schema.decodeUnknownEither(asSchema(schemas.success)),
    decodeFailure: Schema.decodeUnknownEither(asSchema(failure))
  }
}

const describe = (error: ParseResult.ParseError): string => {
  const text = ParseResult.TreeFormatter.formatErrorSync(error)
  return text.length > 2000 ? `${text.slice(0, 2000)}…` : text
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null

/** The typed error in an HTTP error body, or a `ClientError("Protocol")` carrying the status. */
const failureOfResponse = async (procedure: ClientProcedure, response: Response): Promise<unknown> => {
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
  const typed = procedure.decodeFailure(json)
  if (Either.isRight(typed)) return typed.right
  const message = isRecord(json) && typeof json["message"] === "string" && json["message"] !== ""
    ? json["message"]
    : `HTTP ${status}`
  const tag = isRecord(json) && typeof json["_tag"] === "string" ? `${json["_tag"]}: ` : ""
  return new ClientError("Protocol", `${procedure.tag}: ${tag}${message}`, { status, cause: json })
}

const resolveHeaders = async (option: ClientOptions["headers"]): Promise<Headers> =>
  new Headers(typeof option === "function" ? await option() : option)

const sleep = (millis: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener("abort", done)
      resolve()
    }
    const timer = setTimeout(done, millis)
    signal.addEventListener("abort", done)
  })

// ---------------------------------------------------------------------------
// Content-Disposition and Content-Length
// ---------------------------------------------------------------------------

/** The file name of a `Content-Disposition` header: `filename*=UTF-8''…` when present, else `filename=`. */
export const filenameOf = (header: string | null | undefined): string | undefined => {
  if (header === null || header === undefined) return undefined
  const extended = /(?:^|;)\s*filename\*\s*=\s*([^';\s]*)'[^']*'([^;\s]*)/i.exec(header)
  if (extended !== null) {
    const charset = (extended[1] ?? "").toLowerCase()
    const value = extended[2] ?? ""
    try {
      if (charset === "utf-8" || charset === "") return decodeURIComponent(value)
      if (charset === "iso-8859-1") return unescape(value)
    } catch {
      // malformed percent-encoding: fall back to filename=
    }
  }
  const plain = /(?:^|;)\s*filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/i.exec(header)
  if (plain === null) return undefined
  const quoted = plain[1]
  return quoted !== undefined ? quoted.replace(/\\(.)/g, "$1") : plain[2]
}

const sizeOf = (response: Response): number | undefined => {
  const encoding = response.headers.get("content-encoding")
  // With a content coding the length counts encoded bytes, not the bytes read.
  if (encoding !== null && encoding.trim().toLowerCase() !== "identity") return undefined
  const length = response.headers.get("content-length")
  if (length === null || !/^\s*\d+\s*$/.test(length)) return undefined
  return Number(length)
}

// ---------------------------------------------------------------------------
// Row parsers: incremental, nothing but the current row is buffered
// ---------------------------------------------------------------------------

/** Turns pieces of text into raw rows; `end` checks that the document is complete. */
export interface RowParser<R> {
  push(text: string): Array<R>
  end(): Array<R>
}

export class RowSyntaxError extends Error {
  readonly _tag = "RowSyntaxError"
}

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch (cause) {
    throw new RowSyntaxError(`Not valid JSON: ${text.slice(0, 100)}`, { cause })
  }
}

const isJsonWhitespace = (c: number): boolean => c === 32 || c === 10 || c === 13 || c === 9

/**
 * Elements of a top-level JSON array whose text arrives in pieces. Tracks
 * string, escape and nesting state to find the commas between elements;
 * only the element being read is buffered.
 */
export const makeJsonArrayParser = (): RowParser<unknown> => {
  let phase: "before" | "inside" | "after" = "before"
  let pending = ""
  let depth = 0
  let inString = false
  let escaped = false
  let count = 0

  const element = (text: string, closing: boolean, out: Array<unknown>): void => {
    const trimmed = text.trim()
    if (trimmed === "") {
      if (closing && count === 0) return
      throw new RowSyntaxError("JSON array: missing element")
    }
    out.push(parseJson(trimmed))
    count++
  }

  return {
    push(text) {
      const out: Array<unknown> = []
      const length = text.length
      let i = 0
      if (phase === "before") {
        while (i < length && isJsonWhitespace(text.charCodeAt(i))) i++
        if (i === length) return out
        if (text.charCodeAt(i) !== 91) throw new RowSyntaxError("JSON export: expected an array")
        phase = "inside"
        i++
      }
      let start = i
      while (phase === "inside" && i < length) {
        const c = text.charCodeAt(i)
        if (inString) {
          if (escaped) escaped = false
          else if (c === 92) escaped = true // \
          else if (c === 34) inString = false // "
        } else if (c === 34) {
          inString = true
        } else if (c === 123 || c === 91) { // { [
          depth++
        } else if (c === 125 || c === 93) { // } ]
          if (depth === 0) {
            if (c === 125) throw new RowSyntaxError("JSON array: unbalanced }")
            element(pending + text.slice(start, i), true, out)
            pending = ""
            phase = "after"
            start = i + 1
          } else {
            depth--
          }
        } else if (c === 44 && depth === 0) { // ,
          element(pending + text.slice(start, i), false, out)
          pending = ""
          start = i + 1
        }
        i++
      }
      if (phase === "inside") {
        pending += text.slice(start)
      } else {
        for (let j = start; j < length; j++) {
          if (!isJsonWhitespace(text.charCodeAt(j))) throw new RowSyntaxError("JSON export: text after the array")
        }
      }
      return out
    },
    end() {
      if (phase !== "after") throw new RowSyntaxError("JSON export: the array is not closed")
      return []
    }
  }
}

/** One JSON document per line; blank lines are skipped. */
export const makeNdjsonParser = (): RowParser<unknown> => {
  let pending = ""
  const line = (text: string, out: Array<unknown>) => {
    const trimmed = text.endsWith("\r") ? text.slice(0, -1) : text
    if (trimmed.trim() !== "") out.push(parseJson(trimmed))
  }
  return {
    push(text) {
      const out: Array<unknown> = []
      let start = 0
      let newline = text.indexOf("\n")
      while (newline !== -1) {
        line(pending + text.slice(start, newline), out)
        pending = ""
        start = newline + 1
        newline = text.indexOf("\n", start)
      }
      pending += text.slice(start)
      return out
    },
    end() {
      const out: Array<unknown> = []
      line(pending, out)
      pending = ""
      return out
    }
  }
}

export interface CsvCell {
  readonly text: string
  /** Whether the cell was quoted: `""` is an empty string, an empty unquoted cell is no value. */
  readonly quoted: boolean
}

/**
 * RFC 4180 records from text in pieces: quoted fields with `""` escapes and
 * line breaks inside them; records end with CRLF, LF or CR.
 */
export const makeCsvParser = (): RowParser<ReadonlyArray<CsvCell>> => {
  // "start": at the start of a field; "plain": in an unquoted field;
  // "quoted": in a quoted field; "quote": just after a quote in a quoted field
  let state: "start" | "plain" | "quoted" | "quote" = "start"
  let field = ""
  let quoted = false
  let record: Array<CsvCell> = []
  let recordOpen = false
  let skipLF = false

  const endField = () => {
    record.push({ text: field, quoted })
    field = ""
    quoted = false
    recordOpen = true
  }
  const endRecord = (out: Array<ReadonlyArray<CsvCell>>) => {
    endField()
    out.push(record)
    record = []
    recordOpen = false
  }

  return {
    push(text) {
      const out: Array<ReadonlyArray<CsvCell>> = []
      const length = text.length
      let i = 0
      if (skipLF) {
        skipLF = false
        if (length > 0 && text.charCodeAt(0) === 10) i = 1
      }
      let start = i // start of the literal run of the current field in this piece
      for (; i < length; i++) {
        const c = text.charCodeAt(i)
        switch (state) {
          case "start":
            if (c === 34) {
              quoted = true
              state = "quoted"
              start = i + 1
            } else if (c === 44) {
              endField()
              start = i + 1
            } else if (c === 13 || c === 10) {
              endRecord(out)
              if (c === 13) {
                if (i + 1 < length) {
                  if (text.charCodeAt(i + 1) === 10) i++
                } else {
                  skipLF = true
                }
              }
              start = i + 1
            } else {
              state = "plain"
              start = i
              recordOpen = true
            }
            break
          case "plain":
            if (c === 44 || c === 13 || c === 10) {
              field += text.slice(start, i)
              state = "start"
              if (c === 44) {
                endField()
              } else {
                endRecord(out)
                if (c === 13) {
                  if (i + 1 < length) {
                    if (text.charCodeAt(i + 1) === 10) i++
                  } else {
                    skipLF = true
                  }
                }
              }
              start = i + 1
            }
            break
          case "quoted":
            if (c === 34) {
              field += text.slice(start, i)
              state = "quote"
            }
            break
          case "quote":
            if (c === 34) {
              // an escaped quote: keep one, continue the quoted field
              state = "quoted"
              start = i
            } else if (c === 44) {
              state = "start"
              endField()
              start = i + 1
            } else if (c === 13 || c === 10) {
              state = "start"
              endRecord(out)
              if (c === 13) {
                if (i + 1 < length) {
                  if (text.charCodeAt(i + 1) === 10) i++
                } else {
                  skipLF = true
                }
              }
              start = i + 1
            } else {
              throw new RowSyntaxError("CSV: a quoted field is followed by text")
            }
            break
        }
      }
      if (state === "plain" || state === "quoted") field += text.slice(start)
      return out
    },
    end() {
      if (state === "quoted") throw new RowSyntaxError("CSV: a quoted field is not closed")
      const out: Array<ReadonlyArray<CsvCell>> = []
      if (state !== "start" || recordOpen) endRecord(out)
      state = "start"
      return out
    }
  }
}

/** The export's formula guard undone: one leading `'` before `=`, `+`, `-`, `@`, tab or CR. */
export const unneutralize = (text: string): string => /^'+[=+\-@\t\r]/.test(text) ? text.slice(1) : text

interface FieldKinds {
  string: boolean
  number: boolean
  boolean: boolean
  null: boolean
  undefined: boolean
  json: boolean
}

const noKinds = (): FieldKinds => ({
  string: false,
  number: false,
  boolean: false,
  null: false,
  undefined: false,
  json: false
})

const collectKinds = (ast: SchemaAST.AST, kinds: FieldKinds, seen: Set<SchemaAST.AST>): void => {
  if (seen.has(ast)) return
  seen.add(ast)
  switch (ast._tag) {
    case "StringKeyword":
    case "TemplateLiteral":
    case "BigIntKeyword":
    case "SymbolKeyword":
    case "UniqueSymbol":
      kinds.string = true
      return
    case "NumberKeyword":
      kinds.number = true
      return
    case "BooleanKeyword":
      kinds.boolean = true
      return
    case "UndefinedKeyword":
    case "VoidKeyword":
      kinds.undefined = true
      return
    case "Literal":
      if (ast.literal === null) kinds.null = true
      else if (typeof ast.literal === "number") kinds.number = true
      else if (typeof ast.literal === "boolean") kinds.boolean = true
      else kinds.string = true
      return
    case "Enums":
      for (const [, value] of ast.enums) {
        if (typeof value === "number") kinds.number = true
        else kinds.string = true
      }
      return
    case "Union":
      for (const member of ast.types) collectKinds(member, kinds, seen)
      return
    case "Refinement":
      collectKinds(ast.from, kinds, seen)
      return
    case "Transformation":
      collectKinds(ast.from, kinds, seen)
      return
    case "Suspend":
      collectKinds(ast.f(), kinds, seen)
      return
    case "TypeLiteral":
    case "TupleType":
    case "ObjectKeyword":
      kinds.json = true
      return
    case "Declaration":
    case "UnknownKeyword":
    case "AnyKeyword":
      kinds.string = true
      return
    case "NeverKeyword":
      return
  }
}

interface CsvField {
  readonly optional: boolean
  readonly kinds: FieldKinds
}

/** The fields of a row schema, on its encoded side (what a CSV cell holds), by name. */
const csvFields = (schema: Schema.Schema.Any): ReadonlyMap<string, CsvField> => {
  const fields = new Map<string, CsvField>()
  const visit = (ast: SchemaAST.AST, depth: number): void => {
    if (depth > 20) return
    switch (ast._tag) {
      case "Refinement":
      case "Transformation":
        return visit(ast.from, depth + 1)
      case "Suspend":
        return visit(ast.f(), depth + 1)
      case "Union":
        for (const member of ast.types) visit(member, depth + 1)
        return
      case "TypeLiteral":
        for (const property of ast.propertySignatures) {
          if (typeof property.name !== "string") continue
          const previous = fields.get(property.name)
          const kinds = previous?.kinds ?? noKinds()
          collectKinds(property.type, kinds, new Set())
          fields.set(property.name, { optional: property.isOptional || (previous?.optional ?? false), kinds })
        }
        return
      default:
        return
    }
  }
  visit(SchemaAST.encodedAST(schema.ast), 0)
  return fields
}

const missing = Symbol("missing")

/**
 * The encoded value of one CSV cell, by the type of its field: numbers and
 * booleans are parsed (unless the field also accepts a string), nested
 * objects and arrays are JSON, an empty unquoted cell is no value (or
 * `null`, or `""`, whichever the field accepts first).
 */
const cellValue = (field: CsvField | undefined, cell: CsvCell): unknown => {
  if (!cell.quoted && cell.text === "") {
    if (field === undefined || field.optional || field.kinds.undefined) return missing
    if (field.kinds.null) return null
    if (field.kinds.string) return ""
    return missing
  }
  const text = unneutralize(cell.text)
  if (field === undefined) return text
  const kinds = field.kinds
  if (kinds.string) return text
  if (kinds.boolean && (text === "true" || text === "false")) return text === "true"
  if (kinds.number) {
    const number = Number(text)
    if (text.trim() !== "" && (!Number.isNaN(number) || text === "NaN")) return number
  }
  if (kinds.json) {
    try {
      return JSON.parse(text)
    } catch {
      return text
    }
  }
  return text
}

/** CSV records to row objects: the first record names the columns. */
const csvRows = (schema: Schema.Schema.Any): RowParser<unknown> => {
  const parser = makeCsvParser()
  const fields = csvFields(schema)
  let header: ReadonlyArray<string> | undefined
  const toRows = (records: Array<ReadonlyArray<CsvCell>>): Array<unknown> => {
    const rows: Array<unknown> = []
    for (const record of records) {
      if (header === undefined) {
        header = record.map((cell) => cell.text)
        continue
      }
      const row: Record<string, unknown> = {}
      for (let c = 0; c < header.length; c++) {
        const name = header[c]!
        const value = cellValue(fields.get(name), record[c] ?? { text: "", quoted: false })
        if (value !== missing) row[name] = value
      }
      rows.push(row)
    }
    return rows
  }
  return {
    push: (text) => toRows(parser.push(text)),
    end: () => toRows(parser.end())
  }
}

// ---------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------

export const make = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options: ClientOptions
): StreamClient<Rpcs> => {
  const base = options.baseUrl.replace(/\/+$/, "")
  const fetchImpl: typeof globalThis.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init))
  const procedures = new Map<string, ClientProcedure>()

  const procedureOf = (tag: string): ClientProcedure => {
    let procedure = procedures.get(tag)
    if (procedure === undefined) {
      const rpc = group.requests.get(tag)
      if (rpc === undefined) throw new ClientError("Protocol", `No procedure ${tag} in this group`)
      procedure = clientProcedure(base, rpc as unknown as Rpc.AnyWithProps)
      procedures.set(tag, procedure)
    }
    return procedure
  }

  const expectKind = (procedure: ClientProcedure, kinds: ReadonlyArray<Procedure.ProcedureKind>, method: string) => {
    if (!kinds.includes(procedure.spec._tag)) {
      throw new ClientError(
        "Protocol",
        `${procedure.tag} is a ${procedure.spec._tag} procedure: use ${
          procedure.spec._tag === "unary" ? "call" : procedure.spec._tag === "export" ? "export" : procedure.spec._tag
        }, not ${method}`
      )
    }
  }

  const encodePayload = (procedure: ClientProcedure, payload: unknown): string | undefined => {
    const encoded = procedure.encodePayload(payload)
    if (Either.isLeft(encoded)) {
      throw new ClientError("Protocol", `${procedure.tag}: the payload does not match the contract\n${describe(encoded.left)}`, {
        cause: encoded.left
      })
    }
    return encoded.right === undefined ? undefined : JSON.stringify(encoded.right)
  }

  /** POSTs the payload; resolves with a 2xx response, rejects with the typed error or a ClientError. */
  const post = async (
    procedure: ClientProcedure,
    body: string | undefined,
    init: { readonly signal?: AbortSignal | undefined; readonly query?: string; readonly accept: string }
  ): Promise<Response> => {
    const signal = init.signal
    if (signal?.aborted) throw new ClientError("Aborted", `${procedure.tag}: aborted`, { cause: signal.reason })
    let headers: Headers
    try {
      headers = await resolveHeaders(options.headers)
    } catch (cause) {
      throw new ClientError("Transport", `${procedure.tag}: the headers could not be computed`, { cause })
    }
    headers.set("content-type", "application/json")
    if (!headers.has("accept")) headers.set("accept", init.accept)
    let response: Response
    try {
      response = await fetchImpl(procedure.path + (init.query ?? ""), {
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

  const toDownload = (procedure: ClientProcedure, response: Response, options: DownloadOptions | undefined): Download => {
    const size = sizeOf(response)
    const contentType = response.headers.get("content-type") ?? "application/octet-stream"
    const signal = options?.signal
    const source = response.body ?? new ReadableStream<Uint8Array>({ start: (controller) => controller.close() })
    const body = withProgress(source, {
      total: size,
      onProgress: options?.onProgress,
      failure: (reason, received, cause) => {
        if (signal?.aborted) return new ClientError("Aborted", `${procedure.tag}: aborted`, { cause: signal.reason })
        return new ClientError(
          "Truncated",
          reason === "ended"
            ? `${procedure.tag}: the transfer ended after ${received} of ${size} bytes`
            : `${procedure.tag}: the connection failed after ${received} bytes${size === undefined ? "" : ` of ${size}`}`,
          cause === undefined ? undefined : { cause }
        )
      }
    })
    return {
      filename: filenameOf(response.headers.get("content-disposition")),
      contentType,
      size,
      body,
      blob: async () => {
        const reader = body.getReader()
        const parts: Array<Uint8Array> = []
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          parts.push(value)
        }
        return new Blob(parts as Array<BlobPart>, { type: contentType })
      }
    }
  }

  const download = async (tag: string, payload: unknown, options?: DownloadOptions): Promise<Download> => {
    const procedure = procedureOf(tag)
    expectKind(procedure, ["download", "export"], "download")
    const response = await post(procedure, encodePayload(procedure, payload), {
      signal: options?.signal,
      accept: procedure.spec._tag === "download" ? procedure.spec.contentType : "*/*"
    })
    return toDownload(procedure, response, options)
  }

  const exportRows = async (tag: string, payload: unknown, options?: ExportOptions<string>): Promise<Export<unknown>> => {
    const procedure = procedureOf(tag)
    expectKind(procedure, ["export"], "export")
    const spec = procedure.spec as Procedure.ExportSpec
    const format = options?.format ?? spec.defaultFormat
    if (!(spec.formats as ReadonlyArray<string>).includes(format)) {
      throw new ClientError("Protocol", `${tag}: format ${format} is not one of ${spec.formats.join(", ")}`)
    }
    const response = await post(procedure, encodePayload(procedure, payload), {
      signal: options?.signal,
      query: `?format=${encodeURIComponent(format)}`,
      accept: "*/*"
    })
    const file = toDownload(procedure, response, options)
    const decodeRow = Schema.decodeUnknownEither(asSchema(procedure.rowSchema))
    const parserOf = (): RowParser<unknown> => {
      switch (format) {
        case "json":
          return makeJsonArrayParser()
        case "ndjson":
          return makeNdjsonParser()
        case "csv":
          if (spec.columns === undefined) {
            throw new ClientError("Protocol", `${tag}: CSV rows can be decoded only when the contract declares columns`)
          }
          return csvRows(procedure.rowSchema)
        default:
          throw new ClientError("Protocol", `${tag}: unknown export format ${format}`)
      }
    }
    async function* rows(): AsyncGenerator<unknown, void, undefined> {
      const reader = file.body.getReader()
      const decoder = new TextDecoder()
      let finished = false
      try {
        const parser = parserOf()
        for (;;) {
          const { done, value } = await reader.read()
          let raw: Array<unknown>
          try {
            raw = done ? [...parser.push(decoder.decode()), ...parser.end()] : parser.push(decoder.decode(value, { stream: true }))
          } catch (error) {
            throw error instanceof RowSyntaxError
              ? new ClientError("Protocol", `${tag}: ${error.message}`, { cause: error })
              : error
          }
          for (const row of raw) {
            const decoded = decodeRow(row)
            if (Either.isLeft(decoded)) {
              throw new ClientError("Protocol", `${tag}: a row does not match the contract\n${describe(decoded.left)}`, {
                cause: decoded.left
              })
            }
            yield decoded.right
          }
          if (done) {
            finished = true
            return
          }
        }
      } finally {
        if (!finished) reader.cancel().catch(() => undefined)
        reader.releaseLock()
      }
    }
    return { ...file, [Symbol.asyncIterator]: rows }
  }

  const call = async (tag: string, payload: unknown, options?: CallOptions): Promise<unknown> => {
    const procedure = procedureOf(tag)
    expectKind(procedure, ["unary"], "call")
    const signal = options?.signal
    const response = await post(procedure, encodePayload(procedure, payload), { signal, accept: "application/json" })
    let text: string
    try {
      text = await response.text()
    } catch (cause) {
      if (signal?.aborted) throw new ClientError("Aborted", `${tag}: aborted`, { cause })
      throw new ClientError("Truncated", `${tag}: the response could not be read`, { cause })
    }
    let json: unknown
    try {
      json = text === "" ? undefined : JSON.parse(text)
    } catch (cause) {
      throw new ClientError("Protocol", `${tag}: the response is not JSON`, { status: response.status, cause })
    }
    const decoded = procedure.decodeSuccess(json)
    if (Either.isLeft(decoded)) {
      throw new ClientError("Protocol", `${tag}: the response does not match the contract\n${describe(decoded.left)}`, {
        status: response.status,
        cause: decoded.left
      })
    }
    return decoded.right
  }

  const transport = { headers: () => resolveHeaders(options.headers), fetch: fetchImpl }

  const subscribe = (tag: string, payload: unknown, subscribeOptions?: SubscribeOptions<unknown, unknown>) => {
    const procedure = procedureOf(tag)
    let body: string | undefined
    let invalid: { readonly error: unknown } | undefined
    try {
      expectKind(procedure, ["subscription"], "subscribe")
      body = encodePayload(procedure, payload)
    } catch (error) {
      invalid = { error }
    }
    return openSubscription(procedure, body, subscribeOptions ?? {}, transport, invalid)
  }

  return {
    subscribe,
    download,
    export: exportRows,
    call
  } as unknown as StreamClient<Rpcs>
}

// ---------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------

type Outcome =
  | { readonly _tag: "Closed" }
  | { readonly _tag: "End" }
  | { readonly _tag: "Fatal"; readonly error: unknown }
  | { readonly _tag: "Retry"; readonly error: ClientError; readonly progressed: boolean }

type Batch =
  | { readonly _tag: "Values"; readonly values: Array<unknown> }
  | { readonly _tag: "Done" }
  | { readonly _tag: "Failure"; readonly error: unknown }

/** Thrown inside the parser's callback to stop feeding after a terminal event. */
const stop = Symbol("stop")

const openSubscription = (
  procedure: ClientProcedure,
  body: string | undefined,
  options: SubscribeOptions<unknown, unknown>,
  transport: { readonly headers: () => Promise<Headers>; readonly fetch: typeof globalThis.fetch },
  invalid: { readonly error: unknown } | undefined
): Subscription<unknown, unknown> => {
  const tag = procedure.tag
  const initialDelayMs = Math.max(0, options.reconnect?.initialDelayMs ?? defaults.initialDelayMs)
  const maxDelayMs = Math.max(0, options.reconnect?.maxDelayMs ?? defaults.maxDelayMs)
  const maxAttempts = options.reconnect?.maxAttempts ?? defaults.maxAttempts
  const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? defaults.heartbeatTimeoutMs
  const capacity = defaults.queueCapacity

  let state: ConnectionState = "connecting"
  /** The cursor of the last event received: the `Last-Event-ID` of a reconnection. */
  let lastEventId = options.lastEventId === "" ? undefined : options.lastEventId
  /** The cursor of the last value the iterator (or stream) has taken. */
  let consumedId = lastEventId
  let retryMs: number | undefined
  const closer = new AbortController()

  // The consumer side: the values waiting, and the cursor after each at the same index.
  const queue: Array<unknown> = []
  const queueIds: Array<string | undefined> = []
  let queueing = options.onData === undefined
  let finished = false
  let failure: { readonly error: unknown } | undefined
  let failureTaken = false
  let consumers: Array<() => void> = []
  let producer: (() => void) | undefined

  const wakeConsumers = () => {
    const waiting = consumers
    consumers = []
    for (const wake of waiting) wake()
  }
  const wakeProducer = () => {
    const wake = producer
    producer = undefined
    wake?.()
  }

  const setState = (next: ConnectionState) => {
    if (state === next) return
    state = next
    invokeCallback(options.onState, next)
  }

  const finish = (outcome?: { readonly error: unknown }, discard = false) => {
    if (finished) return
    finished = true
    if (discard) {
      queue.length = 0
      queueIds.length = 0
    }
    if (outcome !== undefined) {
      failure = outcome
      invokeCallback(options.onError, outcome.error)
    }
    closer.abort()
    options.signal?.removeEventListener("abort", onSignal)
    setState("closed")
    wakeConsumers()
    wakeProducer()
  }

  const unsubscribe = () => finish(undefined, true)
  const onSignal = () => unsubscribe()

  const deliver = (value: unknown) => {
    invokeCallback(options.onData, value)
    if (queueing && !finished) {
      queue.push(value)
      queueIds.push(lastEventId)
      wakeConsumers()
    }
  }

  const parser = makeSseParser({
    onEvent: (event) => {
      if (event.id !== undefined) lastEventId = event.id === "" ? undefined : event.id
      connection.progressed = true
      switch (event.type) {
        case "message": {
          let json: unknown
          try {
            json = JSON.parse(event.data)
          } catch (cause) {
            connection.terminal = {
              _tag: "Fatal",
              error: new ClientError("Protocol", `${tag}: an event is not JSON`, { cause })
            }
            throw stop
          }
          const decoded = procedure.decodeSuccess(json)
          if (Either.isLeft(decoded)) {
            connection.terminal = {
              _tag: "Fatal",
              error: new ClientError("Protocol", `${tag}: a value does not match the contract\n${describe(decoded.left)}`, {
                cause: decoded.left
              })
            }
            throw stop
          }
          deliver(decoded.right)
          return
        }
        case "dropped": {
          let count: unknown
          try {
            count = (JSON.parse(event.data) as { readonly count?: unknown }).count
          } catch {
            count = undefined
          }
          if ((typeof count === "number" && count > 0) || count === null) invokeCallback(options.onDropped, count)
          return
        }
        case "end":
          connection.terminal = { _tag: "End" }
          throw stop
        case "error": {
          let json: unknown
          try {
            json = JSON.parse(event.data)
          } catch {
            json = event.data
          }
          const typed = procedure.decodeFailure(json)
          connection.terminal = {
            _tag: "Fatal",
            error: Either.isRight(typed)
              ? typed.right
              : new ClientError(
                "Protocol",
                `${tag}: the subscription failed${
                  isRecord(json) && typeof json["message"] === "string" ? `: ${json["message"]}` : ""
                }`,
                { cause: json }
              )
          }
          throw stop
        }
        default:
          return
      }
    },
    onRetry: (millis) => {
      retryMs = Math.min(Math.max(0, millis), maxDelayMs)
    }
  }, { maxEventSize: options.maxEventSize ?? defaults.maxEventSize })

  /** State of the connection being read, shared with the parser's callback. */
  const connection: { progressed: boolean; terminal: Outcome | undefined } = { progressed: false, terminal: undefined }

  const connect = async (): Promise<Outcome> => {
    const controller = new AbortController()
    const abort = () => controller.abort()
    closer.signal.addEventListener("abort", abort)
    let timer: ReturnType<typeof setTimeout> | undefined
    let timedOut = false
    const disarm = () => {
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
    }
    const arm = () => {
      disarm()
      timer = setTimeout(() => {
        timedOut = true
        controller.abort()
      }, heartbeatTimeoutMs)
    }
    connection.progressed = false
    connection.terminal = undefined
    try {
      arm()
      let headers: Headers
      try {
        headers = await transport.headers()
      } catch (cause) {
        return {
          _tag: "Retry",
          error: new ClientError("Transport", `${tag}: the headers could not be computed`, { cause }),
          progressed: false
        }
      }
      headers.set("content-type", "application/json")
      headers.set("accept", "text/event-stream")
      if (lastEventId !== undefined) headers.set(Procedure.lastEventIdHeader, lastEventId)
      if (closer.signal.aborted) return { _tag: "Closed" }
      const response = await transport.fetch(procedure.path, {
        method: "POST",
        headers,
        ...(body === undefined ? {} : { body }),
        signal: controller.signal
      })
      if (!response.ok) {
        const error = await failureOfResponse(procedure, response)
        if (error instanceof ClientError && transientStatuses.has(response.status)) {
          return { _tag: "Retry", error, progressed: false }
        }
        return { _tag: "Fatal", error }
      }
      const contentType = response.headers.get("content-type") ?? ""
      if (!/^text\/event-stream\s*(;|$)/i.test(contentType) || response.body === null) {
        return {
          _tag: "Fatal",
          error: new ClientError("Protocol", `${tag}: expected text/event-stream, got ${contentType || "no body"}`, {
            status: response.status
          })
        }
      }
      setState("open")
      const reader = response.body.getReader()
      for (;;) {
        if (queueing && queue.length >= capacity) {
          // The consumer is behind: stop reading (the silence is ours, not the server's).
          disarm()
          await new Promise<void>((resolve) => {
            producer = resolve
          })
          if (closer.signal.aborted) return { _tag: "Closed" }
        }
        arm()
        const result = await reader.read()
        if (result.done) {
          return connection.terminal ?? {
            _tag: "Retry",
            error: new ClientError("Truncated", `${tag}: the connection ended without an end event`),
            progressed: connection.progressed
          }
        }
        try {
          parser.feedBytes(result.value)
        } catch (error) {
          if (error === stop) return connection.terminal ?? { _tag: "End" }
          if (error instanceof SseEventTooLarge) {
            return { _tag: "Fatal", error: new ClientError("EventTooLarge", `${tag}: ${error.message}`, { cause: error }) }
          }
          throw error
        }
        if (connection.terminal !== undefined) return connection.terminal
      }
    } catch (cause) {
      if (closer.signal.aborted) return { _tag: "Closed" }
      if (timedOut) {
        return {
          _tag: "Retry",
          error: new ClientError("Timeout", `${tag}: no byte for ${heartbeatTimeoutMs} ms`, { cause }),
          progressed: connection.progressed
        }
      }
      return {
        _tag: "Retry",
        error: new ClientError("Transport", `${tag}: the connection failed`, { cause }),
        progressed: connection.progressed
      }
    } finally {
      disarm()
      closer.signal.removeEventListener("abort", abort)
      controller.abort()
      parser.end()
    }
  }

  const run = async () => {
    let failures = 0
    while (!finished) {
      const outcome = await connect()
      if (finished) return
      switch (outcome._tag) {
        case "Closed":
        case "End":
          finish()
          return
        case "Fatal":
          finish({ error: outcome.error })
          return
        case "Retry": {
          failures = outcome.progressed ? 1 : failures + 1
          if (failures > maxAttempts) {
            finish({ error: outcome.error })
            return
          }
          setState("reconnecting")
          const base = retryMs ?? initialDelayMs
          const ceiling = Math.min(maxDelayMs, base * 2 ** (failures - 1))
          await sleep(Math.random() * ceiling, closer.signal)
        }
      }
    }
  }

  /** Everything queued, or the end, waiting for it when nothing is there yet. */
  const take = async (max: number): Promise<Batch> => {
    queueing = true
    for (;;) {
      if (queue.length > 0) {
        const count = Math.min(max, queue.length)
        const values = queue.splice(0, count)
        consumedId = queueIds.splice(0, count)[count - 1]
        wakeProducer()
        return { _tag: "Values", values }
      }
      if (finished) {
        if (failure !== undefined && !failureTaken) {
          failureTaken = true
          return { _tag: "Failure", error: failure.error }
        }
        return { _tag: "Done" }
      }
      await new Promise<void>((resolve) => consumers.push(resolve))
    }
  }

  const iterator: AsyncIterableIterator<unknown> = {
    next: async () => {
      const batch = await take(1)
      switch (batch._tag) {
        case "Values":
          return { done: false, value: batch.values[0] }
        case "Done":
          return { done: true, value: undefined }
        case "Failure":
          throw batch.error
      }
    },
    return: async () => {
      unsubscribe()
      return { done: true, value: undefined }
    },
    [Symbol.asyncIterator]() {
      return this
    }
  }

  const stream: Stream.Stream<unknown, unknown> = Stream.unwrapScoped(Effect.as(
    Effect.acquireRelease(Effect.sync(() => {
      queueing = true
    }), () => Effect.sync(unsubscribe)),
    Stream.repeatEffectChunkOption(Effect.flatMap(Effect.promise(() => take(Number.MAX_SAFE_INTEGER)), (batch) => {
      switch (batch._tag) {
        case "Values":
          return Effect.succeed(Chunk.unsafeFromArray(batch.values))
        case "Done":
          return Effect.fail(Option.none())
        case "Failure":
          return Effect.fail(Option.some(batch.error))
      }
    }))
  ))

  if (invalid !== undefined) {
    // A request that cannot be made (wrong kind of procedure, payload off the contract) fails at once.
    finish(invalid)
  } else if (options.signal?.aborted) {
    finish()
  } else {
    options.signal?.addEventListener("abort", onSignal)
    invokeCallback(options.onState, state)
    run().catch((cause: unknown) =>
      finish({ error: new ClientError("Protocol", `${tag}: the subscription failed unexpectedly`, { cause }) })
    )
  }

  return {
    unsubscribe,
    get state() {
      return state
    },
    get lastEventId() {
      return queueing ? consumedId : lastEventId
    },
    stream,
    [Symbol.asyncIterator]() {
      queueing = true
      return iterator
    }
  }
}
