/**
 * Decoders: the generated demo client's compiled codecs against the
 * contract's Effect Schemas, on the same wire values (parsed JSON), in the
 * same process, interleaved round by round; best round of each.
 *
 *   npx tsx bench/decoders.ts [--rounds=7] [--values=100000]
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { Order, Price } from "../examples/demo/contract.ts"
import { DemoApiProcedures } from "../examples/demo/generated/demo.ts"

const arg = (name: string, fallback: number): number => {
  const found = process.argv.find((a) => a.startsWith(`--${name}=`))
  return found === undefined ? fallback : Number(found.split("=")[1])
}
const rounds = arg("rounds", 7)
const count = arg("values", 100_000)

const wire = <A>(values: ReadonlyArray<A>, encode: (a: A) => unknown): ReadonlyArray<unknown> =>
  JSON.parse(JSON.stringify(values.map(encode))) as ReadonlyArray<unknown>

const prices = wire(
  Array.from({ length: count }, (_, i) => new Price({ seq: i, symbol: "ACME", price: 100 + (i % 97) / 7, at: new Date(Date.UTC(2026, 0, 1) + i) })),
  Schema.encodeSync(Price)
)
const orders = wire(
  Array.from({ length: count }, (_, i) =>
    new Order({ id: i, customer: `customer ${i}`, total: i / 3, placedAt: new Date(Date.UTC(2026, 0, 1) + i), ...(i % 2 === 0 ? { note: "n" } : {}) })),
  Schema.encodeSync(Order)
)

interface Contender {
  readonly name: string
  readonly decode: (u: unknown) => unknown
}

const scenarios: ReadonlyArray<{ readonly name: string; readonly values: ReadonlyArray<unknown>; readonly contenders: ReadonlyArray<Contender> }> = [
  {
    name: "Price (class: number, string, number, Date)",
    values: prices,
    contenders: [
      { name: "generated", decode: DemoApiProcedures.watchPrices.decodeSuccess },
      { name: "Schema.decodeUnknownEither", decode: ((d) => (u: unknown) => Either.getOrThrow(d(u)))(Schema.decodeUnknownEither(Price)) }
    ]
  },
  {
    name: "Order (class with an optional field, Date)",
    values: orders,
    contenders: [
      { name: "generated", decode: DemoApiProcedures.exportOrders.decodeSuccess },
      { name: "Schema.decodeUnknownEither", decode: ((d) => (u: unknown) => Either.getOrThrow(d(u)))(Schema.decodeUnknownEither(Order)) }
    ]
  }
]

let sink = 0
const time = (contender: Contender, values: ReadonlyArray<unknown>): number => {
  const start = process.hrtime.bigint()
  for (const value of values) if (contender.decode(value) !== undefined) sink++
  return Number(process.hrtime.bigint() - start) / 1e9
}

for (const scenario of scenarios) {
  const best = new Map<string, number>()
  for (let round = 0; round < rounds; round++) {
    for (const contender of scenario.contenders) {
      const seconds = time(contender, scenario.values)
      best.set(contender.name, Math.min(best.get(contender.name) ?? Infinity, seconds))
    }
  }
  const baseline = best.get("Schema.decodeUnknownEither")!
  console.log(`${scenario.name}, ${count.toLocaleString("en-US")} values, best of ${rounds}:`)
  for (const contender of scenario.contenders) {
    const seconds = best.get(contender.name)!
    console.log(`  ${contender.name.padEnd(28)} ${Math.round(count / seconds).toLocaleString("en-US").padStart(12)} values/s  ${(baseline / seconds).toFixed(2)}× Schema`)
  }
}
if (sink === 0) console.log("(nothing decoded)")
