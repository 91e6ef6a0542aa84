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
 * The parts: `Subscription` (the reconnecting SSE loop), `Transfer`
 * (downloads and exports), `ClientProcedure` (the request), `ClientError`.
 *
 * Browser-safe: only `fetch`, `AbortController`, `ReadableStream`,
 * `TextDecoder` and `setTimeout`; no Node built-ins (see `saveToFile.ts` for
 * writing a download to disk in Node).
 */
import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import type * as RpcSchema from "@effect/rpc/RpcSchema"
import * as Either from "effect/Either"
import type { ExportFormat } from "../src/protocol/ExportFormat.ts"
import * as Names from "../src/protocol/Names.ts"
import { ClientError } from "./ClientError.ts"
import * as ClientProcedure from "./ClientProcedure.ts"
import * as Subscription_ from "./Subscription.ts"
import * as Transfer from "./Transfer.ts"

export { ClientError, type ClientErrorReason } from "./ClientError.ts"
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
    options?: Subscription_.SubscribeOptions<SuccessOf<Of<Rpcs, Tag>>, ErrorOf<Of<Rpcs, Tag>>>
  ) => Subscription_.Subscription<SuccessOf<Of<Rpcs, Tag>>, ErrorOf<Of<Rpcs, Tag>>>
  /** Resolves once the response headers arrive; rejects with the typed error or a `ClientError`. */
  readonly download: <Tag extends Rpcs["_tag"]>(
    tag: Tag,
    payload: PayloadOf<Of<Rpcs, Tag>>,
    options?: Transfer.DownloadOptions
  ) => Promise<Transfer.Download>
  /** Resolves once the response headers arrive; rejects with the typed error or a `ClientError`. */
  readonly export: <Tag extends Rpcs["_tag"]>(
    tag: Tag,
    payload: PayloadOf<Of<Rpcs, Tag>>,
    options?: Transfer.ExportOptions<FormatsOf<Of<Rpcs, Tag>>>
  ) => Promise<Transfer.Export<SuccessOf<Of<Rpcs, Tag>>>>
  /** A unary call; rejects with the typed error or a `ClientError`. */
  readonly call: <Tag extends Rpcs["_tag"]>(
    tag: Tag,
    payload: PayloadOf<Of<Rpcs, Tag>>,
    options?: CallOptions
  ) => Promise<SuccessOf<Of<Rpcs, Tag>>>
}

export const make = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options: ClientOptions
): StreamClient<Rpcs> => {
  const base = options.baseUrl
  const transport = ClientProcedure.transport(options)
  const procedures = new Map<string, ClientProcedure.ClientProcedure>()

  const procedureOf = (tag: string): ClientProcedure.ClientProcedure => {
    let procedure = procedures.get(tag)
    if (procedure === undefined) {
      const rpc = group.requests.get(tag)
      if (rpc === undefined) throw new ClientError("Protocol", `No procedure ${tag} in this group`)
      procedure = ClientProcedure.make(base, rpc as unknown as Rpc.AnyWithProps)
      procedures.set(tag, procedure)
    }
    return procedure
  }

  const call = async (tag: string, payload: unknown, options?: CallOptions): Promise<unknown> => {
    const procedure = procedureOf(tag)
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
    const decoded = procedure.decodeSuccess(json)
    if (Either.isLeft(decoded)) {
      throw new ClientError(
        "Protocol",
        `${tag}: the response does not match the contract\n${ClientProcedure.describe(decoded.left)}`,
        { status: response.status, cause: decoded.left }
      )
    }
    return decoded.right
  }

  const subscribe = (tag: string, payload: unknown, subscribeOptions?: Subscription_.SubscribeOptions<unknown, unknown>) => {
    const procedure = procedureOf(tag)
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
    download: async (tag: string, payload: unknown, options?: Transfer.DownloadOptions) =>
      Transfer.download(procedureOf(tag), transport, payload, options),
    export: async (tag: string, payload: unknown, options?: Transfer.ExportOptions<string>) =>
      Transfer.exportRows(procedureOf(tag), transport, payload, options),
    call
  } as unknown as StreamClient<Rpcs>
}
