/** A contract with a schema the generator cannot compile (a custom transformation), for the fallback tests. */
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Schema from "effect/Schema"
import * as Procedure from "../../src/contract/Procedure.ts"

/** Cents on the wire as a string ("1234"), a number of units in the program (12.34). */
export const Cents = Schema.transform(Schema.String, Schema.Number, {
  strict: true,
  decode: (s) => Number(s) / 100,
  encode: (n) => String(Math.round(n * 100))
})

export const FallbackApi = RpcGroup.make(
  Procedure.unary("price", { payload: { amount: Cents }, success: Cents }),
  Procedure.unary("ping", { payload: { n: Schema.Number }, success: Schema.Number })
)
