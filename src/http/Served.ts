/**
 * A procedure as the transport serves it: its kind, its payload decoder and
 * its success and failure encoders, compiled once when the server starts.
 */
import type * as Rpc from "@effect/rpc/Rpc"
import type * as Effect from "effect/Effect"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as Procedure from "../Procedure.ts"

export interface Served {
  readonly rpc: Rpc.AnyWithProps
  readonly spec: Procedure.ProcedureSpec
  readonly decodePayload: (u: unknown) => Effect.Effect<unknown, ParseResult.ParseError>
  readonly encodeSuccess: (a: unknown) => unknown
  /** The JSON text of a value: one function per procedure, so a Topic caches each value's frame once. */
  readonly successJson: (a: unknown) => string
  /** The procedure's failures and its middlewares' failures. */
  readonly failure: Schema.Schema.All
  readonly encodeFailure: (e: unknown) => unknown
  /** The JSON text of a failure, for an `error` event. */
  readonly failureJson: (e: unknown) => string
}

const encodeSyncOrDie = (schema: Schema.Schema.All) => {
  const encode = Schema.encodeUnknownSync(schema as Schema.Schema<unknown, unknown, never>)
  return (value: unknown): unknown => encode(value)
}

/**
 * Encoder of a Struct whose fields are all string, number or boolean: copies the
 * declared keys after a typeof check (dropping any others, as Schema encoding does);
 * anything else goes through Schema. Undefined for other schemas.
 */
const fastStruct = (schema: Schema.Schema.All): ((a: unknown) => unknown) | undefined => {
  const ast = schema.ast
  if (!SchemaAST.isTypeLiteral(ast) || ast.indexSignatures.length > 0) return undefined
  const names: Array<string> = []
  const types: Array<string> = []
  for (const p of ast.propertySignatures) {
    if (p.isOptional || typeof p.name !== "string") return undefined
    const t = p.type._tag
    if (t !== "StringKeyword" && t !== "NumberKeyword" && t !== "BooleanKeyword") return undefined
    names.push(p.name)
    types.push(t === "StringKeyword" ? "string" : t === "NumberKeyword" ? "number" : "boolean")
  }
  const slow = encodeSyncOrDie(schema)
  return (a) => {
    if (typeof a !== "object" || a === null) return slow(a)
    const out: Record<string, unknown> = {}
    for (let i = 0; i < names.length; i++) {
      const v = (a as Record<string, unknown>)[names[i]!]
      if (typeof v !== types[i]) return slow(a)
      out[names[i]!] = v
    }
    return out
  }
}

export const make = (rpc: Rpc.AnyWithProps): Served => {
  const schemas = Procedure.schemasOf(rpc)
  const failure = Procedure.failureSchemaOf(rpc)
  const encodeSuccess = fastStruct(schemas.success) ?? encodeSyncOrDie(schemas.success)
  const encodeFailure = encodeSyncOrDie(failure)
  return {
    rpc,
    spec: Procedure.specOf(rpc),
    decodePayload: Schema.decodeUnknown(schemas.payload as Schema.Schema<unknown, unknown, never>, {
      errors: "all",
      onExcessProperty: "ignore"
    }),
    encodeSuccess,
    successJson: (value) => JSON.stringify(encodeSuccess(value)),
    failure,
    encodeFailure,
    failureJson: (error) => JSON.stringify(encodeFailure(error))
  }
}
