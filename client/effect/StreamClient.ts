/**
 * The Effect-flavoured client: typed `subscribe`, `download`, `export` and
 * `call` for every procedure of a group served by `HttpTransport` (wire
 * protocol v1), read off the group itself, its values decoded by the
 * contract's Schemas, and each subscription also an Effect `Stream`.
 *
 * ```ts
 * const client = StreamClient.make(DemoApi, { baseUrl: "/rpc" })
 * for await (const price of client.subscribe("watchPrices", { symbols: ["ACME"] })) {
 *   console.log(price.symbol, price.price, price.at.toISOString())
 * }
 * ```
 *
 * The runtime is the standalone one (`../Client.ts`: the reconnecting
 * subscription, transfers, errors); only the codecs (the contract's Schemas)
 * and `.stream` are Effect's. For a client without Effect, generate one
 * (`effect-stream-rpc generate`).
 */
import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import type * as RpcSchema from "@effect/rpc/RpcSchema"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { ExportFormat } from "../../src/protocol/ExportFormat.ts"
import * as Client from "../Client.ts"
import type { ClientError } from "../ClientError.ts"
import type * as ClientProcedure from "../ClientProcedure.ts"
import type * as Subscription_ from "../Subscription.ts"
import type * as Transfer from "../Transfer.ts"
import * as SchemaProcedure from "./SchemaProcedure.ts"
import * as Runtime from "../internal/Runtime.ts"

export { ClientError, type ClientErrorReason } from "../ClientError.ts"
export type { DownloadProgress } from "../DownloadProgress.ts"
export { type ConnectionState, defaults, type ReconnectOptions, type SubscribeOptions } from "../Subscription.ts"
export type { Download, DownloadOptions, Export, ExportOptions } from "../Transfer.ts"
export type { CallOptions, ClientOptions } from "../Client.ts"
export type { ExportFormat }

/** A subscription, also as an Effect Stream. */
export interface Subscription<A, E> extends Subscription_.Subscription<A, E> {
  /** The same subscription as an Effect Stream (consume it once; interrupting it closes the subscription). */
  readonly stream: Stream.Stream<A, E | ClientError>
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
  ) => Subscription<SuccessOf<Of<Rpcs, Tag>>, ErrorOf<Of<Rpcs, Tag>>>
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
    options?: Client.CallOptions
  ) => Promise<SuccessOf<Of<Rpcs, Tag>>>
}

/** The Effect Stream of a subscription: batches as chunks; ending it closes the subscription. */
const streamOf = (opened: Subscription_.Opened): Stream.Stream<unknown, unknown> =>
  Stream.unwrapScoped(Effect.as(
    Effect.acquireRelease(Effect.void, () => Effect.sync(opened.subscription.unsubscribe)),
    Stream.repeatEffectChunkOption(Effect.flatMap(Effect.promise(() => opened.take(Number.MAX_SAFE_INTEGER)), (batch) => {
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

export const make = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options: Client.ClientOptions
): StreamClient<Rpcs> => {
  const runtime = Runtime.runtime(options)
  const procedures = new Map<string, ClientProcedure.Procedure>()

  const procedureOf = (tag: string): ClientProcedure.Procedure => {
    let procedure = procedures.get(tag)
    if (procedure === undefined) {
      const rpc = group.requests.get(tag)
      if (rpc === undefined) throw new Client.ClientError("Protocol", `No procedure ${tag} in this group`)
      procedure = SchemaProcedure.make(rpc as unknown as Rpc.AnyWithProps)
      procedures.set(tag, procedure)
    }
    return procedure
  }

  const subscribe = (tag: string, payload: unknown, subscribeOptions?: Subscription_.SubscribeOptions<unknown, unknown>) => {
    const opened = runtime.subscribe(procedureOf(tag), payload, subscribeOptions)
    // The same object, so its getters (state, lastEventId) stay live.
    return Object.defineProperty(opened.subscription, "stream", { value: streamOf(opened), enumerable: true })
  }

  return {
    subscribe,
    download: async (tag: string, payload: unknown, options?: Transfer.DownloadOptions) =>
      runtime.download(procedureOf(tag), payload, options),
    export: async (tag: string, payload: unknown, options?: Transfer.ExportOptions<string>) =>
      runtime.export(procedureOf(tag), payload, options),
    call: async (tag: string, payload: unknown, options?: Client.CallOptions) => runtime.call(procedureOf(tag), payload, options)
  } as unknown as StreamClient<Rpcs>
}
