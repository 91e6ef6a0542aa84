/**
 * The fields of a row schema as a CSV column holds them (`Csv.CsvFields`):
 * read off the schema's encoded side, so a client knows what each cell held
 * (a number, a boolean, JSON, text). The Effect-flavoured client reads them
 * at run time; the generator writes them into a generated client.
 */
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import type { CsvFields, CsvKind } from "../protocol/Csv.ts"


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

const kindOrder: ReadonlyArray<CsvKind> = ["string", "number", "boolean", "null", "undefined", "json"]

/** The fields of a row schema's encoded side, and whether they are all it can have (no index signature). */
/** The fields of a row schema on its encoded side, and whether they are every field the row can have. */
export const rowFields = (schema: Schema.Schema.All): { readonly fields: CsvFields; readonly closed: boolean } => {
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
export const csvFields = (schema: Schema.Schema.All): CsvFields => rowFields(schema).fields
