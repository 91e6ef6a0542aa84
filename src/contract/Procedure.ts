/**
 * Procedure constructors: `Rpc.make` with the kind of the procedure (and what
 * the kind needs) as an annotation. Collect them with `RpcGroup.make`, so
 * `RpcMiddleware`, `prefix` and `merge` keep working, and write handlers with
 * `group.toLayer({...})` returning plain Streams of domain values. The server
 * applies each kind's policy; a handler has no way around it.
 *
 * This module is the contract: it is shared by servers and clients and
 * imports nothing from either side.
 */
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcSchema from "@effect/rpc/RpcSchema"
import * as Context from "effect/Context"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { ExportFormat } from "../protocol/ExportFormat.ts"
import * as Names from "../protocol/Names.ts"

export type { ExportFormat }

export interface SubscriptionSpec {
  readonly _tag: "subscription"
  readonly description: string | undefined
  /** Cursor of a value; present when the subscription is resumable. */
  readonly cursor: ((value: any) => string) | undefined
}

export interface DownloadSpec {
  readonly _tag: "download"
  readonly description: string | undefined
  readonly contentType: string
  readonly filename: (payload: any) => string
  readonly contentLength: ((payload: any) => number | undefined) | undefined
}

export interface ExportSpec {
  readonly _tag: "export"
  readonly description: string | undefined
  readonly formats: ReadonlyArray<ExportFormat>
  readonly defaultFormat: ExportFormat
  readonly columns: ReadonlyArray<string> | undefined
  readonly filename: (payload: any) => string
}

export interface UnarySpec {
  readonly _tag: "unary"
  readonly description: string | undefined
}

export type ProcedureSpec = SubscriptionSpec | DownloadSpec | ExportSpec | UnarySpec

export type ProcedureKind = ProcedureSpec["_tag"]

/** The annotation carrying a procedure's kind. */
export class Spec extends Context.Tag("effect-stream-rpc/Procedure/Spec")<Spec, ProcedureSpec>() {}

/** The header carrying the cursor a resumable subscription continues after. */
export const lastEventIdHeader = Names.headers.lastEventId

/** The cursor a resumable subscription was asked to continue after, if any. */
export const lastEventId = (headers: Readonly<Record<string, string | undefined>>): string | undefined => {
  const value = headers[lastEventIdHeader]
  return value === undefined || value === "" ? undefined : value
}

type PayloadOption = Schema.Schema.Any | Schema.Struct.Fields

type PayloadSchema<P> = P extends Schema.Struct.Fields ? Schema.Struct<P> : P

const makeRpc = (tag: string, options: {
  readonly payload?: PayloadOption | undefined
  readonly success?: Schema.Schema.Any | undefined
  readonly error?: Schema.Schema.All | undefined
  readonly stream: boolean
}): Rpc.Rpc<string, any, any, any> => {
  const rpcOptions: Record<string, unknown> = { stream: options.stream }
  if (options.payload !== undefined) rpcOptions["payload"] = options.payload
  if (options.success !== undefined) rpcOptions["success"] = options.success
  if (options.error !== undefined) rpcOptions["error"] = options.error
  return Rpc.make(tag, rpcOptions) as unknown as Rpc.Rpc<string, any, any, any>
}

/**
 * A live subscription over Server-Sent Events (sliding policy, 64). With a
 * `cursor`, each value carries an `id:` and a reconnecting client resumes
 * after the last one it saw (`Last-Event-ID`).
 */
export const subscription = <
  const Tag extends string,
  Success extends Schema.Schema.Any,
  Payload extends PayloadOption = typeof Schema.Void,
  Error extends Schema.Schema.All = typeof Schema.Never
>(tag: Tag, options: {
  readonly payload?: Payload
  readonly success: Success
  readonly error?: Error
  readonly cursor?: (value: Schema.Schema.Type<Success>) => string
  readonly description?: string
}): Rpc.Rpc<Tag, PayloadSchema<Payload>, RpcSchema.Stream<Success, Error>> =>
  makeRpc(tag, { ...options, stream: true }).annotate(Spec, {
    _tag: "subscription",
    description: options.description,
    cursor: options.cursor
  }) as any

/**
 * A binary download (suspend policy, 256 chunks): the handler returns a
 * `Stream<Uint8Array>` and the producer waits for a slow client.
 */
export const download = <
  const Tag extends string,
  Payload extends PayloadOption = typeof Schema.Void,
  Error extends Schema.Schema.All = typeof Schema.Never
>(tag: Tag, options: {
  readonly payload?: Payload
  readonly error?: Error
  readonly contentType?: string
  readonly filename: string | ((payload: Schema.Schema.Type<PayloadSchema<Payload>>) => string)
  readonly contentLength?: (payload: Schema.Schema.Type<PayloadSchema<Payload>>) => number | undefined
  readonly description?: string
}): Rpc.Rpc<Tag, PayloadSchema<Payload>, RpcSchema.Stream<typeof Schema.Uint8ArrayFromSelf, Error>> => {
  const filename = options.filename
  return makeRpc(tag, { ...options, success: Schema.Uint8ArrayFromSelf, stream: true }).annotate(Spec, {
    _tag: "download",
    description: options.description,
    contentType: options.contentType ?? "application/octet-stream",
    filename: typeof filename === "string" ? () => filename : filename,
    contentLength: options.contentLength
  }) as any
}

/**
 * An export of rows (suspend policy, 128 rows) in the allowed formats, chosen
 * per call with `?format=`. `columns` fixes the CSV column order and lets
 * typed clients decode CSV back into rows.
 */
const exportRows = <
  const Tag extends string,
  Row extends Schema.Schema.Any,
  Payload extends PayloadOption = typeof Schema.Void,
  Error extends Schema.Schema.All = typeof Schema.Never
>(tag: Tag, options: {
  readonly payload?: Payload
  readonly row: Row
  readonly error?: Error
  readonly formats?: ReadonlyArray<ExportFormat>
  readonly defaultFormat?: ExportFormat
  readonly columns?: ReadonlyArray<string>
  readonly filename?: string | ((payload: Schema.Schema.Type<PayloadSchema<Payload>>) => string)
  readonly description?: string
}): Rpc.Rpc<Tag, PayloadSchema<Payload>, RpcSchema.Stream<Row, Error>> => {
  const formats = options.formats ?? ["json", "csv", "ndjson"]
  const defaultFormat = options.defaultFormat ?? formats[0] ?? "json"
  if (!formats.includes(defaultFormat)) {
    throw new globalThis.Error(`export ${tag}: default format ${defaultFormat} is not among ${formats.join(", ")}`)
  }
  const filename = options.filename ?? tag
  return makeRpc(tag, { ...options, success: options.row, stream: true }).annotate(Spec, {
    _tag: "export",
    description: options.description,
    formats,
    defaultFormat,
    columns: options.columns,
    filename: typeof filename === "string" ? () => filename : filename
  }) as any
}

export { exportRows as export }

/** A request with one typed response. */
export const unary = <
  const Tag extends string,
  Success extends Schema.Schema.Any = typeof Schema.Void,
  Payload extends PayloadOption = typeof Schema.Void,
  Error extends Schema.Schema.All = typeof Schema.Never
>(tag: Tag, options: {
  readonly payload?: Payload
  readonly success?: Success
  readonly error?: Error
  readonly description?: string
}): Rpc.Rpc<Tag, PayloadSchema<Payload>, Success, Error> =>
  makeRpc(tag, { ...options, stream: false }).annotate(Spec, {
    _tag: "unary",
    description: options.description
  }) as any

/**
 * The spec of any Rpc: the annotation when present; otherwise a plain
 * streaming Rpc is served as a subscription and any other as unary.
 */
export const specOf = (rpc: Rpc.AnyWithProps): ProcedureSpec =>
  Option.getOrElse(
    Context.getOption(rpc.annotations, Spec),
    (): ProcedureSpec =>
      RpcSchema.isStreamSchema(rpc.successSchema)
        ? { _tag: "subscription", description: undefined, cursor: undefined }
        : { _tag: "unary", description: undefined }
  )

/** Success and failure schemas of a procedure, whatever its kind. */
export const schemasOf = (rpc: Rpc.AnyWithProps): {
  readonly payload: Schema.Schema.Any
  readonly success: Schema.Schema.Any
  readonly failure: Schema.Schema.All
} => {
  const stream = RpcSchema.getStreamSchemas(rpc.successSchema.ast)
  if (Option.isSome(stream)) {
    return {
      payload: rpc.payloadSchema,
      success: stream.value.success,
      failure: Schema.Union(stream.value.failure, rpc.errorSchema)
    }
  }
  return { payload: rpc.payloadSchema, success: rpc.successSchema, failure: rpc.errorSchema }
}

/**
 * Everything a typed failure of `rpc` can be: its own errors and the
 * failures of its middlewares (e.g. `Unauthorized`), as one schema.
 */
export const failureSchemaOf = (rpc: Rpc.AnyWithProps): Schema.Schema<unknown, unknown, never> =>
  Schema.Union(
    schemasOf(rpc).failure,
    ...Array.from(rpc.middlewares, (middleware) => middleware.failure)
  ) as unknown as Schema.Schema<unknown, unknown, never>
