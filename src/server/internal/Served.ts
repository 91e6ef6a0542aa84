/**
 * A procedure as the transport serves it: its kind, its payload decoder and
 * its success and failure encoders, compiled once when the server starts.
 */
import type * as Rpc from "@effect/rpc/Rpc"
import type * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Procedure from "../../contract/Procedure.ts"
import { rowFields } from "../../contract/RowFields.ts"
import * as CompiledEncoder from "./CompiledEncoder.ts"

export interface Served {
  readonly rpc: Rpc.AnyWithProps
  readonly spec: Procedure.ProcedureSpec
  readonly decodePayload: (u: unknown) => Effect.Effect<unknown, ParseResult.ParseError>
  /** `decodePayload` without a fiber: a Left too for a schema that cannot decode synchronously. */
  readonly decodePayloadEither: (u: unknown) => Either.Either<unknown, ParseResult.ParseError>
  readonly encodeSuccess: (a: unknown) => unknown
  /**
   * The JSON text of a value (compiled: no intermediate object for the shapes the fast path knows):
   * one function per procedure, so a Topic caches each value's frame once.
   */
  readonly successJson: (a: unknown) => string
  /** The procedure's failures and its middlewares' failures. */
  readonly failure: Schema.Schema.All
  readonly encodeFailure: (e: unknown) => unknown
  /** The JSON text of a failure, for an `error` event. */
  readonly failureJson: (e: unknown) => string
  /**
   * An export's CSV columns: those the contract declares, else every field
   * of the row schema when it names them all (a row without an optional
   * field still has its column), else none (the first row's keys).
   */
  readonly csvColumns: ReadonlyArray<string> | undefined
}

const encodeSyncOrDie = (schema: Schema.Schema.All) => {
  const encode = Schema.encodeUnknownSync(schema as Schema.Schema<unknown, unknown, never>)
  return (value: unknown): unknown => encode(value)
}

const csvColumnsOf = (spec: Procedure.ProcedureSpec, row: Schema.Schema.All): ReadonlyArray<string> | undefined => {
  if (spec._tag !== "export") return undefined
  if (spec.columns !== undefined) return spec.columns
  const { closed, fields } = rowFields(row)
  const names = Object.keys(fields)
  return closed && names.length > 0 ? names : undefined
}

const decodeOptions = { errors: "all", onExcessProperty: "ignore" } as const

export const make = (rpc: Rpc.AnyWithProps): Served => {
  const schemas = Procedure.schemasOf(rpc)
  const failure = Procedure.failureSchemaOf(rpc)
  // Compiled once: structs of JSON-compatible fields (and Dates) skip the Schema machinery.
  const success = CompiledEncoder.compile(schemas.success)
  const encodeSuccess = success.encode
  const encodeFailure = encodeSyncOrDie(failure)
  return {
    rpc,
    spec: Procedure.specOf(rpc),
    decodePayload: Schema.decodeUnknown(schemas.payload as Schema.Schema<unknown, unknown, never>, decodeOptions),
    decodePayloadEither: Schema.decodeUnknownEither(schemas.payload as Schema.Schema<unknown, unknown, never>, decodeOptions),
    encodeSuccess,
    successJson: success.json,
    failure,
    encodeFailure,
    failureJson: (error) => JSON.stringify(encodeFailure(error)),
    csvColumns: csvColumnsOf(Procedure.specOf(rpc), schemas.success)
  }
}
