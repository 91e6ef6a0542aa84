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
import { csvFields, rowFields } from "../../src/contract/RowFields.ts"
import type * as ClientProcedure from "../ClientProcedure.ts"
import * as CsvRows from "../CsvRows.ts"

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
        // Without declared columns the server's header is the keys of its first row: a column the
        // row schema does not name is then an error (unless the row takes any key).
        csv: spec.columns === undefined ? headerFields(schemas.success) : csvFields(schemas.success)
      }
    default:
      return common
  }
}
/**
 * The fields of a row schema for a CSV whose header is not declared: as
 * `csvFields`, and closed (`CsvRows.closed`: a header column none of them
 * names is an error) when they are every field the row can have.
 */
export const headerFields = (schema: Schema.Schema.All): CsvRows.CsvFields => {
  const { closed, fields } = rowFields(schema)
  return closed ? CsvRows.closed(fields) : fields
}
