/**
 * The runtime behind generated clients: `subscribe`, `download`, `export` and
 * `call` for procedures served by `HttpTransport` (wire protocol v1), each
 * procedure described by its kind and codecs. A generated module declares its
 * procedures with `subscription`, `download`, `exportRows` and `unary` and
 * binds one method to each:
 *
 * ```ts
 * const client = makeDemoApiClient({ baseUrl: "/rpc" })
 * for await (const price of client.watchPrices({ symbols: ["ACME"] })) {
 *   console.log(price.symbol, price.price, price.at.toISOString())
 * }
 * ```
 *
 * Every request is `POST <baseUrl>/<Tag>` with the encoded payload. Values,
 * rows and errors are decoded by the procedure's codecs, so `Date`, `bigint`
 * and classes round-trip. A failure is either the procedure's TYPED error
 * (its error schema, or a failure of one of its middlewares, e.g.
 * `Unauthorized`) or a `ClientError` saying what went wrong with the transfer.
 *
 * No runtime import of `effect`, and browser-safe: only `fetch`,
 * `AbortController`, `ReadableStream`, `TextDecoder` and `setTimeout` (see
 * `saveToFile.ts` for writing a download to disk in Node). The
 * Effect-flavoured client (a group's schemas, `.stream` as an Effect Stream,
 * the `RpcClient` protocol) is `effect-stream-rpc/client/effect`.
 */
import type { CsvFields } from "../src/protocol/Csv.ts"
import type { ExportFormat } from "../src/protocol/ExportFormat.ts"
import * as Names from "../src/protocol/Names.ts"
import { ClientError } from "./ClientError.ts"
import type { Codec } from "./Codec.ts"
import * as ClientProcedure from "./ClientProcedure.ts"
import * as Subscription_ from "./Subscription.ts"
import * as Transfer from "./Transfer.ts"

export { ClientError, type ClientErrorReason } from "./ClientError.ts"
export type { Procedure } from "./ClientProcedure.ts"
export type { DownloadProgress } from "./DownloadProgress.ts"
export { type ConnectionState, defaults, type ReconnectOptions, type SubscribeOptions, type Subscription } from "./Subscription.ts"
export type { Download, DownloadOptions, Export, ExportOptions } from "./Transfer.ts"
export type { ExportFormat }

export interface ClientOptions {
  /** Where the procedures are mounted, e.g. `"http://127.0.0.1:3000/rpc"`, or `"/rpc"` in a browser. */
  readonly baseUrl: string
  /**
   * Headers of every request (e.g. `Authorization`). A function is called
   * again for every request and every reconnection, so it can hand out a
   * fresh token each time.
   */
  readonly headers?: ClientProcedure.HeadersOption
  /** The fetch to use. Default `globalThis.fetch`. */
  readonly fetch?: typeof globalThis.fetch
}

export interface CallOptions {
  readonly signal?: AbortSignal
}

/** A procedure of one kind: `P` its payload, `A` its values (rows, response), `E` its typed errors. */
export interface SubscriptionProcedure<P, A, E> extends ClientProcedure.Procedure<P, A, E> {
  readonly kind: "subscription"
}
export interface DownloadProcedure<P, E> extends ClientProcedure.Procedure<P, Uint8Array, E> {
  readonly kind: "download"
}
export interface ExportProcedure<P, A, E> extends ClientProcedure.Procedure<P, A, E> {
  readonly kind: "export"
}
export interface UnaryProcedure<P, A, E> extends ClientProcedure.Procedure<P, A, E> {
  readonly kind: "unary"
}

interface Codecs<P, A, E> {
  readonly payload: Codec<P>
  readonly success: Codec<A>
  readonly failure: Codec<E>
}

export const subscription = <P, A, E>(tag: string, codecs: Codecs<P, A, E>): SubscriptionProcedure<P, A, E> => ({
  tag,
  kind: "subscription",
  encodePayload: codecs.payload.encode,
  decodeSuccess: codecs.success.decode,
  decodeFailure: codecs.failure.decode
})

export const download = <P, E>(tag: string, codecs: {
  readonly payload: Codec<P>
  readonly failure: Codec<E>
  readonly contentType: string
}): DownloadProcedure<P, E> => ({
  tag,
  kind: "download",
  encodePayload: codecs.payload.encode,
  decodeSuccess: (u) => u as Uint8Array,
  decodeFailure: codecs.failure.decode,
  contentType: codecs.contentType
})

export const exportRows = <P, A, E>(tag: string, codecs: Codecs<P, A, E> & {
  readonly formats: ReadonlyArray<ExportFormat>
  readonly defaultFormat: ExportFormat
  /** The row's fields as CSV cells hold them (when the contract declares columns). */
  readonly csv?: CsvFields | undefined
}): ExportProcedure<P, A, E> => ({
  tag,
  kind: "export",
  encodePayload: codecs.payload.encode,
  decodeSuccess: codecs.success.decode,
  decodeFailure: codecs.failure.decode,
  formats: codecs.formats,
  defaultFormat: codecs.defaultFormat,
  csv: codecs.csv
})

export const unary = <P, A, E>(tag: string, codecs: Codecs<P, A, E>): UnaryProcedure<P, A, E> => ({
  tag,
  kind: "unary",
  encodePayload: codecs.payload.encode,
  decodeSuccess: codecs.success.decode,
  decodeFailure: codecs.failure.decode
})

export interface Client {
  /** A subscription (Server-Sent Events), reconnecting and resuming until it ends, fails or is closed. */
  readonly subscribe: <P, A, E>(
    procedure: SubscriptionProcedure<P, A, E>,
    payload: P,
    options?: Subscription_.SubscribeOptions<A, E>
  ) => Subscription_.Subscription<A, E>
  /** Resolves once the response headers arrive; rejects with the typed error or a `ClientError`. */
  readonly download: <P, E>(
    procedure: DownloadProcedure<P, E> | ExportProcedure<P, unknown, E>,
    payload: P,
    options?: Transfer.DownloadOptions
  ) => Promise<Transfer.Download>
  /** Resolves once the response headers arrive; rejects with the typed error or a `ClientError`. */
  readonly export: <P, A, E>(
    procedure: ExportProcedure<P, A, E>,
    payload: P,
    options?: Transfer.ExportOptions
  ) => Promise<Transfer.Export<A>>
  /** A unary call; rejects with the typed error or a `ClientError`. */
  readonly call: <P, A, E>(procedure: UnaryProcedure<P, A, E>, payload: P, options?: CallOptions) => Promise<A>
}

/** Any procedure, whatever its types. */
export type AnyProcedure = ClientProcedure.Procedure<never, unknown, unknown>

/** The runtime's operations on any procedure, bound to where they are served. */
export interface Runtime {
  readonly subscribe: (
    procedure: AnyProcedure,
    payload: unknown,
    options?: Subscription_.SubscribeOptions<unknown, unknown>
  ) => Subscription_.Opened
  readonly download: (procedure: AnyProcedure, payload: unknown, options?: Transfer.DownloadOptions) => Promise<Transfer.Download>
  readonly export: (procedure: AnyProcedure, payload: unknown, options?: Transfer.ExportOptions<string>) => Promise<Transfer.Export<unknown>>
  readonly call: (procedure: AnyProcedure, payload: unknown, options?: CallOptions) => Promise<unknown>
}

export const runtime = (options: ClientOptions): Runtime => {
  const base = options.baseUrl
  const transport = ClientProcedure.transport(options)
  const bound = new WeakMap<AnyProcedure, ClientProcedure.ClientProcedure>()
  const bind = (procedure: AnyProcedure): ClientProcedure.ClientProcedure => {
    let client = bound.get(procedure)
    if (client === undefined) {
      client = ClientProcedure.bind(base, procedure as ClientProcedure.Procedure)
      bound.set(procedure, client)
    }
    return client
  }

  const call = async (unbound: AnyProcedure, payload: unknown, options?: CallOptions): Promise<unknown> => {
    const procedure = bind(unbound)
    const tag = procedure.tag
    ClientProcedure.expectKind(procedure, ["unary"], "call")
    const signal = options?.signal
    const response = await ClientProcedure.post(procedure, transport, ClientProcedure.encodePayload(procedure, payload), {
      signal,
      accept: Names.contentTypes.json
    })
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
    return ClientProcedure.decodeOrThrow(procedure.decodeSuccess, json, tag, "the response", response.status)
  }

  const subscribe = (
    unbound: AnyProcedure,
    payload: unknown,
    subscribeOptions?: Subscription_.SubscribeOptions<unknown, unknown>
  ): Subscription_.Opened => {
    const procedure = bind(unbound)
    let body: string | undefined
    let invalid: { readonly error: unknown } | undefined
    try {
      ClientProcedure.expectKind(procedure, ["subscription"], "subscribe")
      body = ClientProcedure.encodePayload(procedure, payload)
    } catch (error) {
      invalid = { error }
    }
    return Subscription_.open(procedure, body, subscribeOptions ?? {}, transport, invalid)
  }

  return {
    subscribe,
    download: async (procedure, payload, options) => Transfer.download(bind(procedure), transport, payload, options),
    export: async (procedure, payload, options) => Transfer.exportRows(bind(procedure), transport, payload, options),
    call
  }
}

/** A client for procedures declared with `subscription`, `download`, `exportRows` and `unary`. */
export const make = (options: ClientOptions): Client => {
  const run = runtime(options)
  return {
    subscribe: (procedure, payload, options) =>
      run.subscribe(procedure, payload, options as Subscription_.SubscribeOptions<unknown, unknown>).subscription as never,
    download: (procedure, payload, options) => run.download(procedure, payload, options),
    export: (procedure, payload, options) => run.export(procedure, payload, options) as never,
    call: (procedure, payload, options) => run.call(procedure, payload, options) as never
  }
}
