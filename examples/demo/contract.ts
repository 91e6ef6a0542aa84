/**
 * The demo contract: one procedure of each kind, plus an authenticated one.
 * Shared by the demo server, the tests and the generated client.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcMiddleware from "@effect/rpc/RpcMiddleware"
import * as Context from "effect/Context"
import * as Schema from "effect/Schema"
import * as Procedure from "../../src/contract/Procedure.ts"
import { Forbidden, Unauthorized } from "../../src/contract/ProtocolError.ts"

export class Price extends Schema.Class<Price>("Price")({
  seq: Schema.Number.annotations({ description: "Position in the feed: consecutive, increasing across restarts" }),
  symbol: Schema.String,
  price: Schema.Number,
  at: Schema.Date.annotations({ description: "When the price was quoted" })
}) {}

export class UnknownSymbol extends Schema.TaggedError<UnknownSymbol>()(
  "UnknownSymbol",
  { symbol: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}

export class Order extends Schema.Class<Order>("Order")({
  id: Schema.Number,
  customer: Schema.String,
  total: Schema.Number,
  placedAt: Schema.Date,
  note: Schema.optional(Schema.String)
}) {}

export const orderColumns = ["id", "customer", "total", "placedAt", "note"] as const

export { symbols } from "./symbols.ts"

/** A ticker symbol: short, so that an error naming an unknown one stays short too. */
export const Ticker = Schema.String.pipe(Schema.maxLength(32))

export class CurrentUser extends Context.Tag("demo/CurrentUser")<CurrentUser, { readonly name: string }>() {}

/** Bearer-token authentication: 401 without a token, 403 with a token that is not allowed. */
export class Authentication extends RpcMiddleware.Tag<Authentication>()("demo/Authentication", {
  provides: CurrentUser,
  failure: Schema.Union(Unauthorized, Forbidden)
}) {}

export const watchPrices = Procedure.subscription("watchPrices", {
  description: "Live prices of the given symbols; resumable with Last-Event-ID.",
  payload: { symbols: Schema.Array(Ticker).pipe(Schema.maxItems(50)) },
  success: Price,
  error: UnknownSymbol,
  // Resumable. The handler returns a Topic subscription: the server sends the topic's own cursors
  // (epoch and offset) as ids instead of this one.
  cursor: (price) => String(price.seq)
})

export const downloadReport = Procedure.download("downloadReport", {
  description: "A generated binary report of the requested size.",
  payload: { sizeMb: Schema.Number.pipe(Schema.between(0, 1024)) },
  contentType: "application/octet-stream",
  filename: ({ sizeMb }) => `report-${sizeMb}MB.bin`,
  contentLength: ({ sizeMb }) => Math.round(sizeMb * 1024 * 1024)
})

export const exportOrders = Procedure.export("exportOrders", {
  description: "Orders as CSV, JSON or NDJSON.",
  payload: { count: Schema.Int.pipe(Schema.between(0, 10_000_000)) },
  row: Order,
  columns: orderColumns,
  formats: ["csv", "json", "ndjson"],
  defaultFormat: "csv",
  filename: "orders"
})

export const getQuote = Procedure.unary("getQuote", {
  description: "The latest price of one symbol.",
  payload: { symbol: Ticker },
  success: Price,
  error: UnknownSymbol
})

export const whoAmI = Procedure.unary("whoAmI", {
  description: "The authenticated user.",
  success: Schema.Struct({ name: Schema.String })
}).middleware(Authentication)

export class DemoApi extends RpcGroup.make(watchPrices, downloadReport, exportOrders, getQuote, whoAmI) {}
