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
import type { CallOptions, ClientOptions } from "./internal/Runtime.ts"
import * as Runtime from "./internal/Runtime.ts"
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

export type { CallOptions, ClientOptions } from "./internal/Runtime.ts"

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

/** A client for procedures declared with `subscription`, `download`, `exportRows` and `unary`. */
export const make = (options: ClientOptions): Client => {
  const run = Runtime.runtime(options)
  return {
    subscribe: (procedure, payload, options) =>
      run.subscribe(procedure, payload, options as Subscription_.SubscribeOptions<unknown, unknown>).subscription as never,
    download: (procedure, payload, options) => run.download(procedure, payload, options),
    export: (procedure, payload, options) => run.export(procedure, payload, options) as never,
    call: (procedure, payload, options) => run.call(procedure, payload, options) as never
  }
}
