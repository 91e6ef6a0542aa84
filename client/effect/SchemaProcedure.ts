/**
 * A procedure of a contract as the client runtime sees it, its codecs being
 * the contract's own Effect Schemas: what the Effect-flavoured clients
 * (`StreamClient`, `RpcProtocol`) run on, and what a generated client falls
 * back to for a schema the generator cannot compile.
 */
import type * as Rpc from "@effect/rpc/Rpc"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Procedure from "../../src/contract/Procedure.ts"
import { csvFields } from "../../src/contract/RowFields.ts"
import type * as ClientProcedure from "../ClientProcedure.ts"

/** The fields of a row schema as CSV cells hold them (`contract/RowFields.ts`). */
export { csvFields }

/** A value off its schema: the message is Schema's tree, the cause its `ParseError`. */
export class SchemaMismatch extends Error {
  readonly _tag = "SchemaMismatch" as const
  constructor(readonly error: ParseResult.ParseError) {
    super(ParseResult.TreeFormatter.formatErrorSync(error), { cause: error })
    this.name = "SchemaMismatch"
  }
}

export const asSchema = (schema: Schema.Schema.All): Schema.Schema<unknown, unknown, never> =>
  schema as unknown as Schema.Schema<unknown, unknown, never>

const throwing = (run: (u: unknown) => Either.Either<unknown, ParseResult.ParseError>) => (u: unknown): unknown => {
  const result = run(u)
  if (Either.isLeft(result)) throw new SchemaMismatch(result.left)
  return result.right
}

export const decoder = (schema: Schema.Schema.All): (u: unknown) => unknown =>
  throwing(Schema.decodeUnknownEither(asSchema(schema)))

export const encoder = (schema: Schema.Schema.All): (u: unknown) => unknown =>
  throwing(Schema.encodeUnknownEither(asSchema(schema)))

/** The procedure `rpc` with its schemas as codecs. */
export const make = (rpc: Rpc.AnyWithProps): ClientProcedure.Procedure => {
  const spec = Procedure.specOf(rpc)
  const schemas = Procedure.schemasOf(rpc)
  const common = {
    tag: rpc._tag,
    kind: spec._tag,
    encodePayload: encoder(schemas.payload),
    decodeSuccess: decoder(schemas.success),
    decodeFailure: decoder(Procedure.failureSchemaOf(rpc))
  }
  switch (spec._tag) {
    case "download":
      return { ...common, contentType: spec.contentType }
    case "export":
      return {
        ...common,
        formats: spec.formats,
        defaultFormat: spec.defaultFormat,
        csv: spec.columns === undefined ? undefined : csvFields(schemas.success)
      }
    default:
      return common
  }
}
