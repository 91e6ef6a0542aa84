/**
 * Encoders of a success schema compiled once per procedure: a fast path for
 * the JSON-compatible shapes whose encoding `Schema.encode` would give
 * without any transformation but one, `Date` → ISO string — structs (nested
 * too) of strings, numbers, booleans, literals, `null`, optional fields and
 * refinements of those, with the excess keys dropped as Schema drops them.
 * A value the fast path cannot vouch for (a wrong type, a failed refinement,
 * an invalid date) goes through `Schema.encode`, so the output and the
 * failures are Schema's.
 *
 * Here the schema is read into a plain description of its fields; the
 * encoders themselves, closures and generated code, are
 * `core/StructEncoder.ts`.
 */
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as StructEncoder from "../../core/StructEncoder.ts"
import { SLOW } from "../../core/StructEncoder.ts"

export interface CompiledEncoder {
  /** The encoded value (what `Schema.encodeSync` returns). */
  readonly encode: (value: unknown) => unknown
  /** Its JSON text (`JSON.stringify` of `encode`; a void result is `null`). */
  readonly json: (value: unknown) => string
  /** Whether the schema has a fast path (otherwise both go through Schema). */
  readonly compiled: boolean
}

const dateSchemas = new Set<SchemaAST.AST>([Schema.Date.ast, Schema.DateFromString.ast])

const parseOptions: SchemaAST.ParseOptions = {}

const fieldOf = (ast: SchemaAST.AST, depth: number): StructEncoder.Field | undefined => {
  if (dateSchemas.has(ast)) return StructEncoder.date()
  switch (ast._tag) {
    case "StringKeyword":
      return StructEncoder.string()
    case "NumberKeyword":
      return StructEncoder.number()
    case "BooleanKeyword":
      return StructEncoder.boolean()
    case "UndefinedKeyword":
      return StructEncoder.undefined()
    case "Literal": {
      const literal = ast.literal
      if (typeof literal === "bigint") return undefined
      return StructEncoder.literal(literal)
    }
    case "Refinement": {
      const from = fieldOf(ast.from, depth)
      if (from === undefined) return undefined
      // Schema checks a refinement on encoding too: a value that fails it takes the slow path.
      const refinement = ast
      return {
        ...from,
        check: (v) => from.check(v) && Option.isNone(refinement.filter(v, parseOptions, refinement))
      }
    }
    case "Union": {
      const members: Array<StructEncoder.Field> = []
      for (const member of ast.types) {
        const field = fieldOf(member, depth)
        if (field === undefined) return undefined
        members.push(field)
      }
      return StructEncoder.union(members)
    }
    case "TypeLiteral": {
      if (depth > 8) return undefined
      const properties = propertiesOf(ast, depth + 1)
      if (properties === undefined) return undefined
      return StructEncoder.struct(StructEncoder.closures(properties))
    }
    default:
      return undefined
  }
}

const kindOf = (ast: SchemaAST.AST): StructEncoder.Kind => {
  if (dateSchemas.has(ast)) return "date"
  switch (ast._tag) {
    case "StringKeyword":
      return "string"
    case "NumberKeyword":
      return "number"
    case "BooleanKeyword":
      return "boolean"
    default:
      return "other"
  }
}

/** The struct's properties with their fast paths; undefined when one has none (or the struct has an index signature). */
const propertiesOf = (ast: SchemaAST.TypeLiteral, depth: number): Array<StructEncoder.Property> | undefined => {
  if (ast.indexSignatures.length > 0) return undefined
  const properties: Array<StructEncoder.Property> = []
  for (const p of ast.propertySignatures) {
    if (typeof p.name !== "string") return undefined
    const field = fieldOf(p.type, depth)
    if (field === undefined) return undefined
    properties.push({ name: p.name, optional: p.isOptional, kind: kindOf(p.type), field })
  }
  return properties
}

/**
 * The struct whose fields are encoded, and what a value must be besides:
 * a struct's fields; or a `Schema.Class`'s fields, for instances of the class
 * (Schema encodes an instance as the struct of its fields, and refuses
 * anything else: that goes through Schema here too).
 */
const fieldsOf = (
  schema: Schema.Schema.All
): { readonly ast: SchemaAST.TypeLiteral; readonly accepts: (value: unknown) => boolean } | undefined => {
  const ast = schema.ast
  if (SchemaAST.isTypeLiteral(ast)) return { ast, accepts: () => true }
  if (
    typeof schema === "function" && SchemaAST.isTransformation(ast) && SchemaAST.isDeclaration(ast.to) &&
    SchemaAST.isTypeLiteral(ast.from)
  ) {
    const Class = schema as unknown as abstract new(...args: ReadonlyArray<never>) => unknown
    return { ast: ast.from, accepts: (value) => value instanceof Class }
  }
  return undefined
}

/** Compiles the encoders of `schema` once. */
export const compile = (schema: Schema.Schema.All): CompiledEncoder => {
  const slowEncode = ParseResult.encodeUnknownSync(schema as Schema.Schema<unknown, unknown, never>)
  const slowJson = (value: unknown): string => JSON.stringify(slowEncode(value) ?? null)
  const fields = fieldsOf(schema)
  const properties = fields !== undefined ? propertiesOf(fields.ast, 0) : undefined
  if (fields === undefined || properties === undefined) return { encode: slowEncode, json: slowJson, compiled: false }
  const struct = StructEncoder.generated(properties)
  const accepts = fields.accepts
  return {
    encode: (value) => {
      const out = accepts(value) ? struct.copy(value) : SLOW
      return out === SLOW ? slowEncode(value) : out
    },
    json: (value) => {
      const out = accepts(value) ? struct.json(value) : SLOW
      return out === SLOW ? slowJson(value) : out
    },
    compiled: true
  }
}
