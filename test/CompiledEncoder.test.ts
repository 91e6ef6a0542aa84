import { describe, expect, it } from "@effect/vitest"
import * as Schema from "effect/Schema"
import * as fc from "fast-check"
import * as CompiledEncoder from "../src/server/internal/CompiledEncoder.ts"

const Order = Schema.Struct({
  id: Schema.Int,
  customer: Schema.String,
  total: Schema.Number,
  paid: Schema.Boolean,
  createdAt: Schema.Date,
  status: Schema.Literal("open", "paid", "refunded"),
  note: Schema.optional(Schema.String),
  closedAt: Schema.NullOr(Schema.DateFromString),
  address: Schema.Struct({ city: Schema.String, zip: Schema.optional(Schema.String) }),
  code: Schema.String.pipe(Schema.maxLength(4))
})

/** What Schema gives: the encoded value and its JSON, or the failure it throws. */
const bySchema = (schema: Schema.Schema.All, value: unknown) => {
  try {
    const encoded = Schema.encodeUnknownSync(schema as Schema.Schema<unknown, unknown, never>)(value)
    return { encoded, json: JSON.stringify(encoded ?? null) }
  } catch (error) {
    return { failure: String(error) }
  }
}

const compiledOf = (encoder: CompiledEncoder.CompiledEncoder, value: unknown) => {
  try {
    return { encoded: encoder.encode(value), json: encoder.json(value) }
  } catch (error) {
    return { failure: String(error) }
  }
}

const anyValue = fc.oneof(
  fc.string(),
  fc.double(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.date({ noInvalidDate: false })
)

const validOrders = fc.record(
  {
    id: fc.integer(),
    customer: fc.fullUnicodeString(),
    total: fc.double(),
    paid: fc.boolean(),
    createdAt: fc.date(),
    status: fc.constantFrom("open", "paid", "refunded"),
    note: fc.oneof(fc.string(), fc.constant(undefined)),
    closedAt: fc.oneof(fc.constant(null), fc.date()),
    address: fc.record({ city: fc.string(), zip: fc.string() }, { requiredKeys: ["city"] }),
    code: fc.string({ maxLength: 4 }),
    extra: fc.string()
  },
  { requiredKeys: ["id", "customer", "total", "paid", "createdAt", "status", "closedAt", "address", "code"] }
)

const orders = fc.record(
  {
    id: fc.oneof(fc.integer(), anyValue),
    customer: fc.oneof(fc.string(), fc.fullUnicodeString(), anyValue),
    total: fc.oneof(fc.double(), anyValue),
    paid: fc.oneof(fc.boolean(), anyValue),
    createdAt: fc.oneof(fc.date({ noInvalidDate: false }), anyValue),
    status: fc.oneof(fc.constantFrom("open", "paid", "refunded"), anyValue),
    note: fc.oneof(fc.string(), fc.constant(undefined)),
    closedAt: fc.oneof(fc.constant(null), fc.date({ noInvalidDate: false }), anyValue),
    address: fc.oneof(
      fc.record({ city: fc.string(), zip: fc.string() }, { requiredKeys: ["city"] }),
      anyValue
    ),
    code: fc.oneof(fc.string({ maxLength: 6 }), anyValue),
    extra: fc.string()
  },
  { requiredKeys: ["id", "customer", "total", "paid", "createdAt", "status", "closedAt", "address", "code"] }
)

describe("compiled encoders", () => {
  it("give exactly what Schema gives — value, JSON text, or failure — for any row, valid or not", () => {
    const encoder = CompiledEncoder.compile(Order)
    expect(encoder.compiled).toBe(true)
    fc.assert(
      fc.property(fc.oneof(validOrders, orders), (row) => {
        expect(compiledOf(encoder, row)).toEqual(bySchema(Order, row))
      }),
      { numRuns: 3000 }
    )
  })

  it("compile a Schema.Class: its instances (valid or not) and anything else encode exactly as Schema encodes them", () => {
    const { address: _, ...fields } = Order.fields
    class OrderClass extends Schema.Class<OrderClass>("OrderClass")(fields) {}
    const encoder = CompiledEncoder.compile(OrderClass)
    expect(encoder.compiled).toBe(true)
    const instance = (row: Record<string, unknown>) => {
      const { address: _, extra: __, ...rest } = row
      // Built without validation: the encoder must still refuse (through Schema) what Schema refuses.
      return new OrderClass(rest as ConstructorParameters<typeof OrderClass>[0], { disableValidation: true })
    }
    fc.assert(
      fc.property(fc.oneof(validOrders.map(instance), orders.map(instance), orders), (value) => {
        expect(compiledOf(encoder, value)).toEqual(bySchema(OrderClass, value))
      }),
      { numRuns: 3000 }
    )
  })

  it("drop the keys the schema does not declare, as Schema does", () => {
    const encoder = CompiledEncoder.compile(Schema.Struct({ id: Schema.Number }))
    expect(encoder.json({ id: 1, passwordHash: "secret" })).toBe("{\"id\":1}")
    expect(encoder.encode({ id: 1, passwordHash: "secret" })).toEqual({ id: 1 })
  })

  it("write a Date as its ISO string and leave an absent optional field out", () => {
    const encoder = CompiledEncoder.compile(Schema.Struct({ at: Schema.Date, note: Schema.optional(Schema.String) }))
    expect(encoder.json({ at: new Date("2026-01-02T03:04:05.000Z") })).toBe("{\"at\":\"2026-01-02T03:04:05.000Z\"}")
  })

  it("fall back to Schema for the shapes they do not compile", () => {
    const Transformed = Schema.Struct({ n: Schema.NumberFromString, tags: Schema.Array(Schema.String) })
    const encoder = CompiledEncoder.compile(Transformed)
    expect(encoder.compiled).toBe(false)
    expect(encoder.json({ n: 3, tags: ["a"] })).toBe("{\"n\":\"3\",\"tags\":[\"a\"]}")
  })
})
