/**
 * Encoders of a success schema compiled once per procedure: a fast path for
 * the JSON-compatible shapes whose encoding `Schema.encode` would give
 * without any transformation but one, `Date` → ISO string — structs (nested
 * too) of strings, numbers, booleans, literals, `null`, optional fields and
 * refinements of those, with the excess keys dropped as Schema drops them.
 * A value the fast path cannot vouch for (a wrong type, a failed refinement,
 * an invalid date) goes through `Schema.encode`, so the output and the
 * failures are Schema's.
 */
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as IsoDate from "../../core/IsoDate.ts"

export interface CompiledEncoder {
  /** The encoded value (what `Schema.encodeSync` returns). */
  readonly encode: (value: unknown) => unknown
  /** Its JSON text (`JSON.stringify` of `encode`; a void result is `null`). */
  readonly json: (value: unknown) => string
  /** Whether the schema has a fast path (otherwise both go through Schema). */
  readonly compiled: boolean
}

/** Marks a value the fast path cannot encode: the caller falls back to Schema. */
const SLOW: unique symbol = Symbol("slow")

type Check = (value: unknown) => boolean

/** A field's fast path: how to check a value, copy it encoded, and write its JSON. */
interface Field {
  readonly check: Check
  /** The encoded value (a valid Date becomes its ISO string). */
  readonly copy: (value: unknown) => unknown
  /** JSON text of a checked value (SLOW from a nested struct that cannot vouch for it). */
  readonly json: (value: unknown) => string | typeof SLOW
  /** Whether `undefined` is a value of the type (an optional field may hold it). */
  readonly acceptsUndefined: boolean
}

const needsEscape = /["\\\u0000-\u001f\ud800-\udfff]/

const jsonString = (value: unknown): string =>
  needsEscape.test(value as string) ? JSON.stringify(value) : `"${value as string}"`

const jsonNumber = (value: unknown): string => (Number.isFinite(value) ? `${value as number}` : "null")

const identity = (value: unknown): unknown => value

const isValidDate = (value: unknown): boolean => value instanceof Date && !Number.isNaN(value.getTime())

const dateSchemas = new Set<SchemaAST.AST>([Schema.Date.ast, Schema.DateFromString.ast])

const parseOptions: SchemaAST.ParseOptions = {}

const fieldOf = (ast: SchemaAST.AST, depth: number): Field | undefined => {
  if (dateSchemas.has(ast)) {
    return {
      check: isValidDate,
      copy: (value) => IsoDate.ofDate(value as Date),
      json: (value) => `"${IsoDate.ofDate(value as Date)}"`,
      acceptsUndefined: false
    }
  }
  switch (ast._tag) {
    case "StringKeyword":
      return { check: (v) => typeof v === "string", copy: identity, json: jsonString, acceptsUndefined: false }
    case "NumberKeyword":
      return { check: (v) => typeof v === "number", copy: identity, json: jsonNumber, acceptsUndefined: false }
    case "BooleanKeyword":
      return { check: (v) => typeof v === "boolean", copy: identity, json: (v) => (v ? "true" : "false"), acceptsUndefined: false }
    case "UndefinedKeyword":
      return { check: (v) => v === undefined, copy: identity, json: () => "null", acceptsUndefined: true }
    case "Literal": {
      const literal = ast.literal
      if (typeof literal === "bigint") return undefined
      const text = JSON.stringify(literal)
      return { check: (v) => v === literal, copy: identity, json: () => text, acceptsUndefined: false }
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
      const members: Array<Field> = []
      for (const member of ast.types) {
        const field = fieldOf(member, depth)
        if (field === undefined) return undefined
        members.push(field)
      }
      const pick = (value: unknown): Field | undefined => {
        for (let i = 0; i < members.length; i++) if (members[i]!.check(value)) return members[i]
        return undefined
      }
      return {
        check: (v) => pick(v) !== undefined,
        copy: (v) => pick(v)!.copy(v),
        json: (v) => pick(v)!.json(v),
        acceptsUndefined: members.some((m) => m.acceptsUndefined)
      }
    }
    case "TypeLiteral": {
      if (depth > 8) return undefined
      const struct = structOf(ast, depth + 1)
      if (struct === undefined) return undefined
      return {
        check: (v) => typeof v === "object" && v !== null,
        copy: (v) => struct.copy(v),
        json: (v) => struct.json(v),
        acceptsUndefined: false
      }
    }
    default:
      return undefined
  }
}

interface Struct {
  /** The encoded object, or SLOW. */
  readonly copy: (value: unknown) => unknown
  /** Its JSON text, or SLOW. */
  readonly json: (value: unknown) => string | typeof SLOW
}

const structOf = (ast: SchemaAST.TypeLiteral, depth: number): Struct | undefined => {
  if (ast.indexSignatures.length > 0) return undefined
  const names: Array<string> = []
  const keys: Array<string> = []
  const fields: Array<Field> = []
  const optional: Array<boolean> = []
  for (const p of ast.propertySignatures) {
    if (typeof p.name !== "string") return undefined
    const field = fieldOf(p.type, depth)
    if (field === undefined) return undefined
    names.push(p.name)
    keys.push(JSON.stringify(p.name) + ":")
    fields.push(field)
    optional.push(p.isOptional)
  }
  const count = names.length
  // An absent optional field stays absent (an absent required one is Schema's to report);
  // a present `undefined` is kept only where the type allows it.
  const copy = (value: unknown): unknown => {
    if (typeof value !== "object" || value === null) return SLOW
    const row = value as Record<string, unknown>
    const out: Record<string, unknown> = {}
    for (let i = 0; i < count; i++) {
      const v = row[names[i]!]
      if (v === undefined && !Object.hasOwn(row, names[i]!)) {
        if (optional[i]) continue
        return SLOW
      }
      const field = fields[i]!
      if (!field.check(v)) return SLOW
      const encoded = field.copy(v)
      if (encoded === SLOW) return SLOW
      out[names[i]!] = encoded
    }
    return out
  }
  const json = (value: unknown): string | typeof SLOW => {
    if (typeof value !== "object" || value === null) return SLOW
    const row = value as Record<string, unknown>
    let out = "{"
    let first = true
    for (let i = 0; i < count; i++) {
      const v = row[names[i]!]
      if (v === undefined) {
        if (!Object.hasOwn(row, names[i]!)) {
          if (optional[i]) continue
          return SLOW
        }
        // JSON.stringify leaves out a key whose value is undefined.
        if (fields[i]!.check(v)) continue
        return SLOW
      }
      const field = fields[i]!
      if (!field.check(v)) return SLOW
      const text = field.json(v)
      if (text === SLOW) return SLOW
      out += first ? keys[i]! + text : "," + keys[i]! + text
      first = false
    }
    return out + "}"
  }
  return { copy, json }
}

/** How a field is written by generated code: its own code for the common kinds, else its closures. */
type Kind = "string" | "number" | "boolean" | "date" | "other"

const kindOf = (ast: SchemaAST.AST): Kind => {
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

/**
 * The struct's encoders as generated code (one function per schema, the
 * fields inlined: no call per field for strings, numbers, booleans and
 * dates). Undefined where code cannot be generated (`new Function` refused,
 * as in some edge runtimes): the closures then do the same work.
 */
const generated = (ast: SchemaAST.TypeLiteral, depth: number): Struct | undefined => {
  const struct = structOf(ast, depth)
  if (struct === undefined) return undefined
  const props = ast.propertySignatures
  const fields = props.map((p) => fieldOf(p.type, depth)!)
  const json: Array<string> = ["if (typeof row !== 'object' || row === null) return SLOW", "var s = '{', c = '', v, t"]
  const copy: Array<string> = ["if (typeof row !== 'object' || row === null) return SLOW", "var o = {}, v, t"]
  props.forEach((p, i) => {
    const name = JSON.stringify(p.name as string)
    const key = JSON.stringify(JSON.stringify(p.name as string) + ":")
    const missing = p.isOptional ? "" : "return SLOW"
    const absent = `if (v === undefined && !hasOwn(row, ${name})) { ${missing} } else`
    let check: string
    let text: string
    let value: string
    switch (kindOf(p.type)) {
      case "string":
        check = "typeof v !== 'string'"
        text = "(escape.test(v) ? JSON.stringify(v) : '\"' + v + '\"')"
        value = "v"
        break
      case "number":
        check = "typeof v !== 'number'"
        text = "(Number.isFinite(v) ? '' + v : 'null')"
        value = "v"
        break
      case "boolean":
        check = "typeof v !== 'boolean'"
        text = "(v ? 'true' : 'false')"
        value = "v"
        break
      case "date":
        check = "!(v instanceof Date) || (t = v.getTime()) !== t"
        // `t` holds `v.getTime()` once checked.
        text = "'\"' + iso(t) + '\"'"
        value = "iso(t)"
        break
      case "other":
        check = `!f[${i}].check(v)`
        text = `f[${i}].json(v)`
        value = `f[${i}].copy(v)`
        break
    }
    const undefinedOk = fields[i]!.acceptsUndefined
    // A present undefined: JSON leaves the key out; the encoded copy keeps it where the type allows it.
    json.push(
      `v = row[${name}]`,
      `${absent} if (v === undefined && ${undefinedOk}) {} else { if (${check}) return SLOW; t = ${text}; if (t === SLOW) return SLOW; s += c + ${key} + t; c = ',' }`
    )
    copy.push(
      `v = row[${name}]`,
      `${absent} { if (${check}) return SLOW; t = ${value}; if (t === SLOW) return SLOW; o[${name}] = t }`
    )
  })
  json.push("return s + '}'")
  copy.push("return o")
  try {
    const make = (body: Array<string>) =>
      new Function("SLOW", "f", "hasOwn", "escape", "iso", `return function (row) {\n${body.join("\n")}\n}`)(
        SLOW,
        fields,
        Object.hasOwn,
        needsEscape,
        IsoDate.isoString
      ) as (row: unknown) => never
    return { json: make(json), copy: make(copy) }
  } catch {
    return struct
  }
}

/** Compiles the encoders of `schema` once. */
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

export const compile = (schema: Schema.Schema.All): CompiledEncoder => {
  const slowEncode = ParseResult.encodeUnknownSync(schema as Schema.Schema<unknown, unknown, never>)
  const slowJson = (value: unknown): string => JSON.stringify(slowEncode(value) ?? null)
  const fields = fieldsOf(schema)
  const struct = fields !== undefined ? generated(fields.ast, 0) : undefined
  if (fields === undefined || struct === undefined) return { encode: slowEncode, json: slowJson, compiled: false }
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
