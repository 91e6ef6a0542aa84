/**
 * The benchmark's procedures, defined with `src/Procedure.ts` exactly as an
 * application defines its own: served by `servers/effect-stream-rpc.ts`
 * through `HttpTransport`, and called by `load.ts` with `client/effect/StreamClient.ts`
 * for the "with our client" row.
 */
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Schema from "effect/Schema"
import * as Procedure from "../src/contract/Procedure.ts"
import { rowColumns } from "./workload.ts"

export const Tick = Schema.Struct({
  seq: Schema.Number,
  symbol: Schema.String,
  price: Schema.Number,
  ts: Schema.Number,
  pad: Schema.String
})

export const Row = Schema.Struct({
  id: Schema.Number,
  customer: Schema.String,
  total: Schema.Number,
  createdAt: Schema.Date,
  status: Schema.String,
  note: Schema.optional(Schema.String)
})

/** The full-speed source; resumable (`id:` per event), like tRPC's `tracked()`. */
export const ticks = Procedure.subscription("ticks", {
  success: Tick,
  cursor: (tick) => String(tick.seq)
})

/** The quiet feed: the latest tick, then nothing. */
export const idle = Procedure.subscription("idle", { success: Tick })

/** The live feed: `fanoutRate` ticks per second. */
export const fanout = Procedure.subscription("fanout", { success: Tick })

/** The sparse feed: `sparseRate` ticks per second (the 20,000-subscriber fan-out). */
export const sparse = Procedure.subscription("sparse", { success: Tick })

/** One key of the keyed feed: its latest tick, then every tick of that key. */
export const keyed = Procedure.subscription("keyed", { payload: { key: Schema.String }, success: Tick })

// The same sources served from a `Topic` (the handler returns `topic.subscribe(...)`).

export const ticksTopic = Procedure.subscription("ticksTopic", { success: Tick })
export const idleTopic = Procedure.subscription("idleTopic", { success: Tick })
export const fanoutTopic = Procedure.subscription("fanoutTopic", { success: Tick })
/** The fan-out feed through an Effect `PubSub`, served by `Topic.fromPubSub`. */
export const fanoutPubSubTopic = Procedure.subscription("fanoutPubSubTopic", { success: Tick })
export const sparseTopic = Procedure.subscription("sparseTopic", { success: Tick })
export const keyedTopic = Procedure.subscription("keyedTopic", { payload: { key: Schema.String }, success: Tick })
/** One symbol of the symbol feed (the `mux` scenario: singly, or ten on one multiplexed connection). */
export const symbolTopic = Procedure.subscription("symbolTopic", { payload: { key: Schema.String }, success: Tick })

export const download = Procedure.download("download", {
  payload: { bytes: Schema.Int },
  filename: "bench.bin",
  contentLength: ({ bytes }) => bytes
})

/** The same bytes from a Node `Readable` (the handler returns `StreamingService.fromReadable(...)`). */
export const downloadReadable = Procedure.download("downloadReadable", {
  payload: { bytes: Schema.Int },
  filename: "bench.bin",
  contentLength: ({ bytes }) => bytes
})

export const rows = Procedure.export("rows", {
  payload: { rows: Schema.Int },
  row: Row,
  columns: rowColumns,
  formats: ["csv", "ndjson", "json"]
})

export class BenchApi extends RpcGroup.make(
  ticks,
  idle,
  fanout,
  sparse,
  keyed,
  ticksTopic,
  idleTopic,
  fanoutTopic,
  fanoutPubSubTopic,
  sparseTopic,
  keyedTopic,
  symbolTopic,
  download,
  downloadReadable,
  rows
) {}
