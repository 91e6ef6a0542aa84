/**
 * What the generator compiles a contract into before writing any code: each
 * procedure's payload, values and errors as `Shape`s — a small, JSON-safe
 * description of the wire form and the decoded type (structs, classes,
 * unions, literals, arrays, tuples, records, `Date` and `bigint` from
 * strings, refinements with the constraints they check, brands).
 *
 * A `Shape` is plain data, so the OpenAPI document carries the same
 * description (`x-effect-stream-rpc`) and a client generated from the
 * document alone is the client generated from the contract.
 *
 * A schema the compiler does not know (a custom transformation, a
 * declaration, a recursive schema) is `Unsupported`: its procedure falls back
 * to Effect Schema.
 */
import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import type { Constraints } from "../protocol/Constraints.ts"
import type { ExportFormat } from "../protocol/ExportFormat.ts"
import * as Procedure from "../contract/Procedure.ts"
import { csvFields } from "../contract/RowFields.ts"

export type Shape =
  | { readonly _tag: "String" }
  | { readonly _tag: "Number" }
  | { readonly _tag: "Boolean" }
  | { readonly _tag: "Unknown" }
  | { readonly _tag: "Void" }
  | { readonly _tag: "Undefined" }
  | { readonly _tag: "Never" }
  | { readonly _tag: "Literal"; readonly value: string | number | boolean | null }
  | { readonly _tag: "Date"; readonly valid: boolean }
  | { readonly _tag: "BigInt" }
  | { readonly _tag: "NumberFromString" }
  | { readonly _tag: "Array"; readonly item: Shape }
  | { readonly _tag: "Tuple"; readonly elements: ReadonlyArray<Element>; readonly rest: Shape | null }
  | { readonly _tag: "Struct"; readonly fields: ReadonlyArray<Field>; readonly records: ReadonlyArray<Shape> }
  | { readonly _tag: "Union"; readonly members: ReadonlyArray<Shape> }
  | { readonly _tag: "Refine"; readonly from: Shape; readonly constraints: Constraints; readonly expected: string }
  /** A refinement with no constraint the generator can write out: the server checks it, the client does not. */
  | { readonly _tag: "Unchecked"; readonly from: Shape; readonly description: string }
  | { readonly _tag: "Brand"; readonly from: Shape; readonly brands: ReadonlyArray<string> }
  /** A class of the contract (`Schema.Class`, `Schema.TaggedError`...), by name in `ClientShapes.classes`. */
  | { readonly _tag: "Class"; readonly name: string }

export interface Element {
  readonly shape: Shape
  readonly optional: boolean
}

export interface Field {
  readonly name: string
  readonly shape: Shape
  readonly optional: boolean
  readonly description?: string
}

export interface ClassShape {
  readonly name: string
  /** A typed error (it appears among a procedure's failures): the generated class extends `Error`. */
  readonly error: boolean
  readonly fields: ReadonlyArray<Field>
  readonly description?: string
}

export interface ProcedureShapes {
  readonly tag: string
  readonly kind: Procedure.ProcedureKind
  readonly description?: string
  /** `@param` lines for the payload's documented fields. */
  readonly params: ReadonlyArray<string>
  /** A subscription with a cursor: resumable with Last-Event-ID. */
  readonly resumable?: boolean
  readonly contentType?: string
  readonly formats?: ReadonlyArray<ExportFormat>
  readonly defaultFormat?: ExportFormat
  readonly csv?: { readonly [column: string]: string }
  /** Absent when the procedure falls back to Effect Schema (`fallback` says why). */
  readonly payload?: Shape
  readonly success?: Shape
  readonly failure?: Shape
  readonly fallback?: string
}

/** Everything a client module is generated from; what `x-effect-stream-rpc` holds in the OpenAPI document. */
export interface ClientShapes {
  readonly version: 1
  readonly group: string
  readonly classes: ReadonlyArray<ClassShape>
  readonly procedures: ReadonlyArray<ProcedureShapes>
}

export class Unsupported extends Error {}

const constraintKeys: ReadonlySet<string> = new Set([
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "minLength",
  "maxLength",
  "minItems",
  "maxItems",
  "pattern"
])

/** The constraints of a refinement's JSON Schema annotation, when every one of them can be checked. */
const constraintsOf = (annotation: Record<string, unknown>): Constraints | undefined => {
  const out: Record<string, unknown> = {}
  let any = false
  for (const [key, value] of Object.entries(annotation)) {
    if (key === "type" && value === "integer") out["integer"] = true
    else if (constraintKeys.has(key) && (typeof value === "number" || (key === "pattern" && typeof value === "string"))) {
      out[key] = value
    } else if (key === "description" || key === "title") continue
    else return undefined
    any = true
  }
  return any ? (out as Constraints) : undefined
}

const describe = (ast: SchemaAST.Annotated): string | undefined =>
  Option.getOrUndefined(SchemaAST.getDescriptionAnnotation(ast))

/** Types whose own description says nothing the type does not ("a string", "a valid Date"). */
const isKeyword = (ast: SchemaAST.AST): boolean =>
  ast._tag.endsWith("Keyword") || SchemaAST.isDeclaration(ast) || SchemaAST.isTupleType(ast) ||
  describe(ast) === "a valid Date" || (SchemaAST.isTransformation(ast) && isBigIntFromString(ast))

const identifierOf = (ast: SchemaAST.AST): string | undefined => Option.getOrUndefined(SchemaAST.getIdentifierAnnotation(ast))

// Recognised by their shape and identifiers rather than by identity: a contract loaded through
// another copy of effect (a loader's CommonJS build) has ASTs of its own.
/** `Schema.DateFromString` (what `Schema.Date` refines). */
const isDateFromString = (ast: SchemaAST.Transformation): boolean =>
  SchemaAST.isStringKeyword(ast.from) && SchemaAST.isDeclaration(ast.to) && identifierOf(ast) === "DateFromString" &&
  identifierOf(ast.to) === "DateFromSelf"

/** `Schema.NumberFromString`. */
const isNumberFromString = (ast: SchemaAST.Transformation): boolean =>
  SchemaAST.isStringKeyword(ast.from) && SchemaAST.isNumberKeyword(ast.to) && identifierOf(ast) === "NumberFromString"

/** `Schema.BigInt`: a bigint from a decimal string. */
const isBigIntFromString = (ast: SchemaAST.Transformation): boolean =>
  SchemaAST.isStringKeyword(ast.from) && SchemaAST.isBigIntKeyword(ast.to) && identifierOf(ast) === "BigInt"

/** Compiles schemas into shapes, collecting the classes they use (each once, dependencies first). */
export class Compiler {
  private readonly classes = new Map<SchemaAST.AST, ClassShape>()
  private readonly names = new Set<string>()
  private readonly order: Array<SchemaAST.AST> = []

  get classShapes(): ReadonlyArray<ClassShape> {
    return this.order.map((key) => this.classes.get(key)!)
  }

  shape(ast: SchemaAST.AST, error = false): Shape {
    const brands = SchemaAST.getBrandAnnotation(ast)
    const shape = this.bare(ast, error)
    return Option.isSome(brands)
      ? { _tag: "Brand", from: shape, brands: brands.value.map((brand) => String(brand)) }
      : shape
  }

  private bare(ast: SchemaAST.AST, error: boolean): Shape {
    switch (ast._tag) {
      case "StringKeyword":
        return { _tag: "String" }
      case "NumberKeyword":
        return { _tag: "Number" }
      case "BooleanKeyword":
        return { _tag: "Boolean" }
      case "UnknownKeyword":
      case "AnyKeyword":
        return { _tag: "Unknown" }
      case "VoidKeyword":
        return { _tag: "Void" }
      case "UndefinedKeyword":
        return { _tag: "Undefined" }
      case "NeverKeyword":
        return { _tag: "Never" }
      case "Literal":
        if (typeof ast.literal === "bigint") throw new Unsupported("a bigint literal")
        return { _tag: "Literal", value: ast.literal }
      case "Enums":
        return { _tag: "Union", members: ast.enums.map(([, value]) => ({ _tag: "Literal", value })) }
      case "Union": {
        // Nested unions flattened and `never` left out: the same members, tried in the same order.
        const members = ast.types.map((member) => this.shape(member, error)).flatMap((member) =>
          member._tag === "Union" ? member.members : member._tag === "Never" ? [] : [member]
        )
        return members.length === 0 ? { _tag: "Never" } : members.length === 1 ? members[0]! : { _tag: "Union", members }
      }
      case "TupleType": {
        if (ast.rest.length > 1) throw new Unsupported("a tuple with elements after its rest")
        const elements = ast.elements.map((element) => ({ shape: this.shape(element.type, error), optional: element.isOptional }))
        const rest = ast.rest.length === 1 ? this.shape(ast.rest[0]!.type, error) : null
        return elements.length === 0 && rest !== null ? { _tag: "Array", item: rest } : { _tag: "Tuple", elements, rest }
      }
      case "TypeLiteral":
        return this.struct(ast, error)
      case "Refinement":
        return this.refinement(ast, error)
      case "Transformation":
        return this.transformation(ast, error)
      case "Suspend":
        throw new Unsupported("a recursive schema (Schema.suspend)")
      case "Declaration":
        throw new Unsupported(`a declaration (${Option.getOrElse(SchemaAST.getIdentifierAnnotation(ast), () => "a custom type")})`)
      default:
        throw new Unsupported(`a ${ast._tag}`)
    }
  }

  private struct(ast: SchemaAST.TypeLiteral, error: boolean): Shape & { readonly _tag: "Struct" } {
    const fields = ast.propertySignatures.map((property): Field => {
      if (typeof property.name !== "string") throw new Unsupported("a symbol property")
      const own = describe(property)
      const description = own ?? (isKeyword(property.type) ? undefined : describe(property.type))
      return {
        name: property.name,
        shape: this.shape(property.type, error),
        optional: property.isOptional,
        ...(description === undefined ? {} : { description })
      }
    })
    const records = ast.indexSignatures.map((signature) => {
      if (!SchemaAST.isStringKeyword(signature.parameter)) throw new Unsupported("a record whose keys are not strings")
      return this.shape(signature.type, error)
    })
    return { _tag: "Struct", fields, records }
  }

  private refinement(ast: SchemaAST.Refinement, error: boolean): Shape {
    const from = this.shape(ast.from, error)
    if (Option.getOrUndefined(SchemaAST.getSchemaIdAnnotation(ast)) === Schema.ValidDateSchemaId && from._tag === "Date") {
      return { _tag: "Date", valid: true }
    }
    const expected = describe(ast) ?? "a refined value"
    const annotation = Option.getOrUndefined(SchemaAST.getJSONSchemaAnnotation(ast)) as Record<string, unknown> | undefined
    const constraints = annotation === undefined ? undefined : constraintsOf(annotation)
    return constraints === undefined
      ? { _tag: "Unchecked", from, description: expected }
      : { _tag: "Refine", from, constraints, expected }
  }

  private transformation(ast: SchemaAST.Transformation, error: boolean): Shape {
    if (isDateFromString(ast)) return { _tag: "Date", valid: false }
    if (isBigIntFromString(ast)) return { _tag: "BigInt" }
    if (isNumberFromString(ast)) return { _tag: "NumberFromString" }
    if (SchemaAST.isDeclaration(ast.to) && Option.isSome(SchemaAST.getSurrogateAnnotation(ast.to)) && SchemaAST.isTypeLiteral(ast.from)) {
      return this.class(ast, ast.from, ast.to, error)
    }
    const name = Option.getOrUndefined(SchemaAST.getIdentifierAnnotation(ast)) ??
      Option.getOrUndefined(SchemaAST.getIdentifierAnnotation(ast.to))
    throw new Unsupported(`a transformation${name === undefined ? "" : ` (${name})`} the generator cannot compile`)
  }

  private class(ast: SchemaAST.Transformation, from: SchemaAST.TypeLiteral, to: SchemaAST.Declaration, error: boolean): Shape {
    const key = to
    const existing = this.classes.get(key)
    if (existing !== undefined) {
      if (error && !existing.error) this.classes.set(key, { ...existing, error: true })
      return { _tag: "Class", name: existing.name }
    }
    const base = Option.getOrElse(SchemaAST.getIdentifierAnnotation(to), () => "Anonymous").replace(/[^A-Za-z0-9_$]/g, "_")
    let name = base
    for (let i = 2; this.names.has(name); i++) name = `${base}${i}`
    this.names.add(name)
    const struct = this.struct(from, error)
    if (struct.records.length > 0) throw new Unsupported(`the class ${name} has index signatures`)
    const description = describe(ast)
    const shape: ClassShape = { name, error, fields: struct.fields, ...(description === undefined ? {} : { description }) }
    this.classes.set(key, shape)
    this.order.push(key)
    return { _tag: "Class", name }
  }
}

const payloadParams = (schema: Schema.Schema.All): ReadonlyArray<string> => {
  let ast = schema.ast
  while (SchemaAST.isTransformation(ast)) ast = ast.to
  if (!SchemaAST.isTypeLiteral(ast)) return []
  return ast.propertySignatures.flatMap((property) => {
    // A bare keyword's description ("a string") says nothing the type doesn't.
    const own = Option.getOrUndefined(SchemaAST.getDescriptionAnnotation(property))
    const description = own ?? (isKeyword(property.type) ? undefined : describe(property.type))
    return description === undefined ? [] : [`@param payload.${String(property.name)} ${description}`]
  })
}

/** The shapes of every procedure of `group`. */
export const fromGroup = <Rpcs extends Rpc.Any>(group: RpcGroup.RpcGroup<Rpcs>, name: string): ClientShapes => {
  const compiler = new Compiler()
  const procedures = Array.from(group.requests.values()).map((request): ProcedureShapes => {
    const rpc = request as unknown as Rpc.AnyWithProps
    const spec = Procedure.specOf(rpc)
    const schemas = Procedure.schemasOf(rpc)
    const common = {
      tag: rpc._tag,
      kind: spec._tag,
      ...(spec.description === undefined ? {} : { description: spec.description }),
      params: payloadParams(schemas.payload),
      ...(spec._tag === "subscription" && spec.cursor !== undefined ? { resumable: true } : {}),
      ...(spec._tag === "download" ? { contentType: spec.contentType } : {}),
      ...(spec._tag === "export"
        ? {
          formats: spec.formats,
          defaultFormat: spec.defaultFormat,
          ...(spec.columns === undefined ? {} : { csv: csvFields(schemas.success) })
        }
        : {})
    }
    try {
      // Failures first: a class among them is an error class wherever else it appears.
      const failure = compiler.shape(Procedure.failureSchemaOf(rpc).ast, true)
      const payload = compiler.shape(schemas.payload.ast)
      const success = spec._tag === "download" ? undefined : compiler.shape(schemas.success.ast)
      return { ...common, payload, failure, ...(success === undefined ? {} : { success }) }
    } catch (error) {
      if (!(error instanceof Unsupported)) throw error
      return { ...common, fallback: error.message }
    }
  })
  return { version: 1, group: name, classes: compiler.classShapes, procedures }
}
