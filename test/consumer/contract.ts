// A consumer's contract, written as a user of the published package writes it.
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Schema from "effect/Schema"
import * as Procedure from "effect-stream-rpc/Procedure"

export class Tick extends Schema.Class<Tick>("Tick")({ n: Schema.Number, at: Schema.Date }) {}

export class Row extends Schema.Class<Row>("Row")({ id: Schema.Int, name: Schema.String }) {}

export class TooMany extends Schema.TaggedError<TooMany>()("TooMany", { message: Schema.String }) {}

export const Api = RpcGroup.make(
  Procedure.subscription("ticks", {
    description: "Consecutive ticks from `from`.",
    payload: { from: Schema.Int },
    success: Tick,
    cursor: (tick) => String(tick.n)
  }),
  Procedure.export("rows", { payload: { count: Schema.Int }, row: Row, columns: ["id", "name"], formats: ["csv", "json", "ndjson"] }),
  Procedure.unary("add", { payload: { a: Schema.Number, b: Schema.Number }, success: Schema.Number, error: TooMany })
)
