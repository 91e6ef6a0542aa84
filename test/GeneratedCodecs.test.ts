/**
 * The generated demo client decodes as the contract's Schemas decode: for
 * every schema of every demo procedure (payloads, values, rows, errors),
 * random valid values in their wire form decode to equal values (classes to
 * instances of the generated classes, dates to equal Dates), and random
 * invalid inputs — valid wire forms with a property removed or replaced, and
 * arbitrary JSON — are refused by both or accepted by both with equal results.
 */
import type * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Arbitrary from "effect/Arbitrary"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { DemoApi } from "../examples/demo/contract.ts"
import * as Generator from "../src/generator/Generator.ts"
import * as Procedure from "../src/contract/Procedure.ts"
import * as GeneratedClient from "./support/generatedClient.ts"
import { loadGeneratedDemo } from "./support/generatedDemo.ts"

const Generated = await loadGeneratedDemo()

type Decode = (u: unknown) => unknown

/** A value as plain data, for comparing a Schema-decoded value with a generated one: classes by name, dates by time. */
const plain = (u: unknown): unknown => {
  if (u instanceof Date) return { Date: Number.isNaN(u.getTime()) ? "Invalid" : u.toISOString() }
  if (Array.isArray(u)) return u.map(plain)
  if (typeof u === "object" && u !== null) {
    const out: Record<string, unknown> = {}
    const keys = new Set(Object.keys(u))
    // An error's own message (a `message` field); Effect computes one for errors without that field.
    if (u instanceof Error && Object.prototype.hasOwnProperty.call(u, "message")) keys.add("message")
    for (const key of [...keys].sort()) if (key !== "stack" && key !== "name") out[key] = plain((u as Record<string, unknown>)[key])
    // A null-prototype object (fast-check makes them) is plain data too.
    const prototype: unknown = Object.getPrototypeOf(u)
    const name = prototype === Object.prototype || prototype === null ? "Object" : (u.constructor as { name: string }).name
    return { [name]: out }
  }
  if (typeof u === "bigint") return { bigint: String(u) }
  return u
}

type Outcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false }

const run = (f: Decode, u: unknown): Outcome => {
  try {
    return { ok: true, value: plain(f(u)) }
  } catch {
    return { ok: false }
  }
}

const schemaRun = (schema: Schema.Schema<unknown, unknown>, direction: "decode" | "encode") => {
  const f = direction === "decode" ? Schema.decodeUnknownEither(schema) : Schema.encodeUnknownEither(schema)
  return (u: unknown): Outcome => {
    let result: Either.Either<unknown, unknown>
    try {
      result = f(u)
    } catch {
      // Schema throws on some hostile inputs (a `_tag` that cannot become a string): a refusal too.
      return { ok: false }
    }
    return Either.isRight(result) ? { ok: true, value: plain(result.right) } : { ok: false }
  }
}

/** A deep copy keeping prototypes (a class instance stays one) and dates. */
const clone = (u: unknown): unknown => {
  if (u instanceof Date) return new Date(u.getTime())
  if (Array.isArray(u)) return u.map(clone)
  if (typeof u === "object" && u !== null) {
    const copy = Object.create(Object.getPrototypeOf(u)) as Record<string, unknown>
    for (const key of Object.keys(u)) copy[key] = clone((u as Record<string, unknown>)[key])
    return copy
  }
  return u
}

/** Wire forms (or values, for encoders) with one property removed or replaced, nested or not. */
const mutated = (wire: unknown): fc.Arbitrary<unknown> => {
  const paths: Array<ReadonlyArray<string | number>> = []
  const visit = (u: unknown, path: ReadonlyArray<string | number>) => {
    if (Array.isArray(u)) u.forEach((item, i) => (paths.push([...path, i]), visit(item, [...path, i])))
    else if (typeof u === "object" && u !== null) {
      for (const [key, value] of Object.entries(u)) {
        paths.push([...path, key])
        visit(value, [...path, key])
      }
    }
  }
  visit(wire, [])
  if (paths.length === 0) return fc.jsonValue()
  return fc.tuple(fc.constantFrom(...paths), fc.oneof(fc.constant(undefined), fc.jsonValue(), fc.string(), fc.integer())).map(
    ([path, replacement]) => {
      const copy = clone(wire) as Record<string | number, unknown>
      let target = copy
      for (const key of path.slice(0, -1)) target = target[key] as Record<string | number, unknown>
      const last = path[path.length - 1]!
      if (replacement === undefined) delete target[last]
      else target[last] = replacement
      return copy
    }
  )
}

/** A failure union without its `never` members (a procedure without typed errors is `never` | middleware failures). */
const withoutNever = (schema: Schema.Schema.All): Schema.Schema.All => {
  const members = (ast: SchemaAST.AST): Array<SchemaAST.AST> =>
    SchemaAST.isUnion(ast) ? ast.types.flatMap(members) : SchemaAST.isNeverKeyword(ast) ? [] : [ast]
  return Schema.make(SchemaAST.Union.make(members(schema.ast)))
}

interface Case {
  readonly name: string
  readonly schema: Schema.Schema<unknown, unknown>
  /** The generated function and the Schema direction it must agree with. */
  readonly generated: Decode
  readonly direction: "decode" | "encode"
}

const casesOf = (
  group: RpcGroup.RpcGroup<Rpc.Any>,
  procedures: Readonly<Record<string, unknown>>
): Array<Case> => {
  const cases: Array<Case> = []
  for (const request of group.requests.values()) {
    const rpc = request as unknown as Rpc.AnyWithProps
    const procedure = procedures[rpc._tag] as {
      readonly encodePayload: Decode
      readonly decodeSuccess: Decode
      readonly decodeFailure: Decode
    }
    const schemas = Procedure.schemasOf(rpc)
    const as = (schema: Schema.Schema.All) => schema as unknown as Schema.Schema<unknown, unknown>
    cases.push({ name: `${rpc._tag} payload`, schema: as(schemas.payload), generated: procedure.encodePayload, direction: "encode" })
    if (Procedure.specOf(rpc)._tag !== "download") {
      cases.push({ name: `${rpc._tag} value`, schema: as(schemas.success), generated: procedure.decodeSuccess, direction: "decode" })
    }
    cases.push({
      name: `${rpc._tag} error`,
      schema: as(withoutNever(Procedure.failureSchemaOf(rpc))),
      generated: procedure.decodeFailure,
      direction: "decode"
    })
  }
  return cases
}

const cases = casesOf(DemoApi as unknown as RpcGroup.RpcGroup<Rpc.Any>, Generated.DemoApiProcedures)

/**
 * A `__proto__` key somewhere: the generated decoder keeps it as an own
 * property, where Schema's output object takes it as its prototype. The one
 * deliberate difference, so such inputs are left out of the comparison.
 */
const hasProtoKey = (u: unknown): boolean =>
  typeof u === "object" && u !== null &&
  (Object.prototype.hasOwnProperty.call(u, "__proto__") || Object.values(u).some(hasProtoKey))

const runs = 300

/** For every case: random valid values agree, and random invalid inputs are refused by both. */
const agreeOn = (cases: ReadonlyArray<Case>) => {
  for (const c of cases) {
    const never = SchemaAST.isNeverKeyword(c.schema.ast)
    const expected = schemaRun(c.schema, c.direction)

    it(`${c.name}: random valid values ${c.direction === "decode" ? "decode from their wire form" : "encode"} to equal results`, () => {
      if (never) {
        // No typed error: both refuse anything.
        fc.assert(fc.property(fc.jsonValue(), (u) => {
          expect([run(c.generated, u).ok, expected(u).ok]).toEqual([false, false])
        }))
        return
      }
      let accepted = 0
      fc.assert(
        fc.property(Arbitrary.make(c.schema), (value) => {
          // The wire form as it travels: encoded, through JSON.
          const input = c.direction === "decode"
            ? JSON.parse(JSON.stringify(Schema.encodeSync(c.schema)(value)) ?? "null")
            : value
          if (hasProtoKey(input)) return
          const want = expected(input)
          const got = run(c.generated, input)
          if (c.direction === "encode" && got.ok && want.ok) {
            expect(JSON.parse(JSON.stringify(got.value) ?? "null")).toEqual(JSON.parse(JSON.stringify(want.value) ?? "null"))
          } else {
            expect(got).toEqual(want)
          }
          if (want.ok) accepted++
        }),
        { numRuns: runs }
      )
      // Values whose wire form is not what they were (NaN through JSON) are the only ones refused.
      expect(accepted).toBeGreaterThan(runs / 2)
    })

    it(`${c.name}: random invalid inputs are refused by both`, () => {
      let refused = 0
      const inputs = never
        ? fc.jsonValue()
        : Arbitrary.make(c.schema).chain((value) =>
          mutated(c.direction === "decode" ? JSON.parse(JSON.stringify(Schema.encodeSync(c.schema)(value)) ?? "null") : value)
        )
      fc.assert(
        fc.property(fc.oneof(inputs, fc.jsonValue()), (input) => {
          if (hasProtoKey(input)) return
          const want = expected(input)
          const got = run(c.generated, input)
          expect(got.ok).toBe(want.ok)
          if (got.ok && want.ok && c.direction === "decode") expect(got.value).toEqual(want.value)
          if (!want.ok) refused++
        }),
        { numRuns: runs }
      )
      // Unless the schema accepts anything (an empty payload), most of these are refused.
      if (!SchemaAST.isVoidKeyword(c.schema.ast)) expect(refused).toBeGreaterThan(runs / 4)
    })
  }

}

describe("the generated demo client decodes as the contract's Schemas do", () => {
  it("covers every procedure of the demo", () => {
    expect(new Set(cases.map((c) => c.name.split(" ")[0]))).toEqual(new Set(DemoApi.requests.keys()))
  })

  agreeOn(cases)

  it("at the edges of every refinement of the demo, both accept and refuse the same payloads", () => {
    const symbols = (n: number) => Array.from({ length: n }, (_, i) => `S${i}`)
    const edges: Record<string, ReadonlyArray<unknown>> = {
      "watchPrices payload": [
        { symbols: symbols(50) },
        { symbols: symbols(51) },
        { symbols: ["X".repeat(32)] },
        { symbols: ["X".repeat(33)] },
        { symbols: [] }
      ],
      "downloadReport payload": [{ sizeMb: 0 }, { sizeMb: 1024 }, { sizeMb: 1024.5 }, { sizeMb: -0.1 }, { sizeMb: 1e-9 }],
      "exportOrders payload": [{ count: 0 }, { count: 10_000_000 }, { count: 10_000_001 }, { count: 1.5 }, { count: -1 }],
      "getQuote payload": [{ symbol: "X".repeat(32) }, { symbol: "X".repeat(33) }, { symbol: "" }]
    }
    let refused = 0
    for (const [name, inputs] of Object.entries(edges)) {
      const c = cases.find((c) => c.name === name)!
      for (const input of inputs) {
        const want = schemaRun(c.schema, c.direction)(input)
        expect([name, input, run(c.generated, input).ok]).toEqual([name, input, want.ok])
        if (!want.ok) refused++
      }
    }
    expect(refused).toBe(8)
  })

  it("a __proto__ key of a record stays an own property", () => {
    const Api = RpcGroup.make(Procedure.unary("dict", { success: Schema.Record({ key: Schema.String, value: Schema.Number }) }))
    return GeneratedClient.load(Api, "DictApi").then((client) => {
      const procedures = client.module["DictApiProcedures"] as Record<string, { readonly decodeSuccess: (u: unknown) => unknown }>
      const decoded = procedures["dict"]!.decodeSuccess(JSON.parse(`{"__proto__": 1, "a": 2}`)) as Record<string, unknown>
      expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype)
      expect(Object.keys(decoded)).toEqual(["__proto__", "a"])
    })
  })

  it("decoded values are instances of the generated classes; typed errors are Errors with their _tag", () => {
    const price = Generated.DemoApiProcedures.getQuote.decodeSuccess({ seq: 1, symbol: "ACME", price: 2, at: "2026-01-01T00:00:00.000Z" })
    expect(price).toBeInstanceOf(Generated.Price)
    expect(price.at).toEqual(new Date("2026-01-01T00:00:00.000Z"))
    const error = Generated.DemoApiProcedures.getQuote.decodeFailure({ _tag: "UnknownSymbol", symbol: "X", message: "no X" })
    expect(error).toBeInstanceOf(Generated.UnknownSymbol)
    expect(error).toBeInstanceOf(Error)
    expect([error._tag, error.message, error.symbol]).toEqual(["UnknownSymbol", "no X", "X"])
  })
})

// ---------------------------------------------------------------------------
// Beyond the demo: every kind of schema the generator compiles, in one contract
// ---------------------------------------------------------------------------

class Inner extends Schema.Class<Inner>("Inner")({ label: Schema.String, when: Schema.optional(Schema.Date) }) {}
class Boom extends Schema.TaggedError<Boom>()("Boom", { code: Schema.Int, message: Schema.String }) {}
class Bust extends Schema.TaggedError<Bust>()("Bust", { reason: Schema.Literal("a", "b") }) {}
enum Color {
  Red = "red",
  Green = 2
}
const Figure = Schema.Union(
  Schema.TaggedStruct("Circle", { r: Schema.Number.pipe(Schema.positive()) }),
  Schema.TaggedStruct("Square", { side: Schema.Number.pipe(Schema.nonNegative()) })
)
const Everything = Schema.Struct({
  id: Schema.String.pipe(Schema.brand("Id")),
  big: Schema.BigInt,
  numeric: Schema.NumberFromString,
  pair: Schema.Tuple(Schema.String, Schema.optionalElement(Schema.Number)),
  rest: Schema.Tuple([Schema.Boolean], Schema.Number),
  record: Schema.Record({ key: Schema.String, value: Schema.NullOr(Schema.Number) }),
  nested: Schema.Array(Inner).pipe(Schema.maxItems(3)),
  figure: Figure,
  color: Schema.Enums(Color),
  exact: Schema.optionalWith(Schema.String, { exact: true }),
  nullable: Schema.NullOr(Schema.Date),
  word: Schema.String.pipe(Schema.pattern(/^[a-z]+$/)),
  nonEmpty: Schema.NonEmptyString,
  literal: Schema.Literal(1, true, null, "x"),
  unknown: Schema.Unknown
})
const EverythingApi = RpcGroup.make(
  Procedure.unary("everything", { payload: { value: Everything }, success: Everything, error: Schema.Union(Boom, Bust) }),
  Procedure.subscription("figures", { success: Figure, error: Boom })
)

const everything = await GeneratedClient.load(EverythingApi, "EverythingApi")

describe("a generated client decodes every kind of schema it compiles as the Schemas do", () => {
  it("compiles every schema of the contract (no fallback)", () => {
    expect(Generator.clientModule(EverythingApi, { groupName: "EverythingApi", command: "test" }).warnings).toEqual([])
  })
  agreeOn(casesOf(EverythingApi as unknown as RpcGroup.RpcGroup<Rpc.Any>, everything.module["EverythingApiProcedures"] as Record<string, unknown>))
})
