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
import * as SchemaAST from "effect/SchemaAST"
import * as Procedure from "../../src/contract/Procedure.ts"
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

type Kinds = Set<string>

const collectKinds = (ast: SchemaAST.AST, kinds: Kinds, seen: Set<SchemaAST.AST>): void => {
  if (seen.has(ast)) return
  seen.add(ast)
  switch (ast._tag) {
    case "StringKeyword":
    case "TemplateLiteral":
    case "BigIntKeyword":
    case "SymbolKeyword":
    case "UniqueSymbol":
    case "Declaration":
    case "UnknownKeyword":
    case "AnyKeyword":
      kinds.add("string")
      return
    case "NumberKeyword":
      kinds.add("number")
      return
    case "BooleanKeyword":
      kinds.add("boolean")
      return
    case "UndefinedKeyword":
    case "VoidKeyword":
      kinds.add("undefined")
      return
    case "Literal":
      if (ast.literal === null) kinds.add("null")
      else if (typeof ast.literal === "number") kinds.add("number")
      else if (typeof ast.literal === "boolean") kinds.add("boolean")
      else kinds.add("string")
      return
    case "Enums":
      for (const [, value] of ast.enums) kinds.add(typeof value === "number" ? "number" : "string")
      return
    case "Union":
      for (const member of ast.types) collectKinds(member, kinds, seen)
      return
    case "Refinement":
    case "Transformation":
      collectKinds(ast.from, kinds, seen)
      return
    case "Suspend":
      collectKinds(ast.f(), kinds, seen)
      return
    case "TypeLiteral":
    case "TupleType":
    case "ObjectKeyword":
      kinds.add("json")
      return
    case "NeverKeyword":
      return
  }
}

const kindOrder = ["string", "number", "boolean", "null", "undefined", "json"]

/** The fields of a row schema's encoded side, and whether they are all it can have (no index signature). */
const fieldsOf = (schema: Schema.Schema.All): { readonly fields: CsvRows.CsvFields; readonly closed: boolean } => {
  const fields = new Map<string, { optional: boolean; kinds: Kinds }>()
  let closed = true
  const visit = (ast: SchemaAST.AST, depth: number): void => {
    if (depth > 20) {
      closed = false
      return
    }
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
        if (ast.indexSignatures.length > 0) closed = false
        for (const property of ast.propertySignatures) {
          if (typeof property.name !== "string") continue
          const previous = fields.get(property.name)
          const kinds = previous?.kinds ?? new Set<string>()
          collectKinds(property.type, kinds, new Set())
          fields.set(property.name, { optional: property.isOptional || (previous?.optional ?? false), kinds })
        }
        return
      default:
        // Not an object of known fields (unknown, any, a declaration): any column may be one of its keys.
        closed = false
        return
    }
  }
  visit(SchemaAST.encodedAST(schema.ast), 0)
  const out: Record<string, string> = {}
  for (const [name, field] of fields) {
    out[name] = kindOrder.filter((kind) => field.kinds.has(kind)).join("|") + (field.optional ? "?" : "")
  }
  return { fields: out, closed }
}

/** The fields of a row schema, on its encoded side (what a CSV cell holds), by name. */
export const csvFields = (schema: Schema.Schema.All): CsvRows.CsvFields => fieldsOf(schema).fields

/**
 * The fields of a row schema for a CSV whose header is not declared: as
 * `csvFields`, and closed (`CsvRows.closed`: a header column none of them
 * names is an error) when they are every field the row can have.
 */
export const headerFields = (schema: Schema.Schema.All): CsvRows.CsvFields => {
  const { closed, fields } = fieldsOf(schema)
  return closed ? CsvRows.closed(fields) : fields
}
