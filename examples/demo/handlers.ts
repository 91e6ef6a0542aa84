/**
 * Handlers of the demo contract. They return plain Streams of domain values
 * (`watchPrices` a Topic subscription, itself a Stream); the server applies
 * each kind's policy.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Procedure from "../../src/contract/Procedure.ts"
import { Forbidden, Unauthorized } from "../../src/contract/ProtocolError.ts"
import { Authentication, CurrentUser, DemoApi, Order, UnknownSymbol } from "./contract.ts"
import { PriceFeed } from "./PriceFeed.ts"

/** The report's byte at offset `o` is `o % 251`: a pattern any reader can verify. */
const patternChunk = Uint8Array.from({ length: 251 * 256 }, (_, i) => i % 251)

export const reportBytes = (size: number): Stream.Stream<Uint8Array> =>
  Stream.unfold(0, (offset) => {
    if (offset >= size) return Option.none()
    const length = Math.min(patternChunk.byteLength, size - offset)
    return Option.some([length === patternChunk.byteLength ? patternChunk : patternChunk.subarray(0, length), offset + length] as const)
  }).pipe(Stream.rechunk(16))

const customers = ["Ada Lovelace", "Grace \"Amazing\" Hopper", "Smith, Jones & Partners", "Zoë Ünicode ✓", "=cmd|'/C calc'!A0"]

/**
 * The rows come from trusted code, so they are built without validation: a
 * `Schema.Class` constructor otherwise checks every field of every row, which
 * costs more than encoding it (a sixth of an export's CPU in a profile).
 */
export const orderAt = (i: number): Order =>
  new Order({
    id: i + 1,
    customer: customers[i % customers.length]!,
    total: Math.round(((i * 7919) % 100_000) + 0.99 * 100) / 100,
    placedAt: new Date(Date.UTC(2026, 0, 1) + i * 60_000),
    ...(i % 3 === 0 ? {} : { note: i % 3 === 1 ? "gift wrap,\nplease" : "" })
  }, { disableValidation: true })

export const orders = (count: number): Stream.Stream<Order> =>
  Stream.range(0, count - 1, 256).pipe(
    Stream.map(orderAt),
    // a real source yields to the event loop between batches
    Stream.mapChunksEffect((chunk) => Effect.as(Effect.yieldNow(), chunk))
  )

export const DemoHandlers = DemoApi.toLayer(Effect.gen(function*() {
  const feed = yield* PriceFeed
  return {
    watchPrices: ({ symbols }, { headers }) => {
      const unknown = symbols.find((symbol) => !feed.symbols.has(symbol))
      if (unknown !== undefined) {
        return Stream.fail(new UnknownSymbol({ symbol: unknown, message: `Unknown symbol ${unknown}` }))
      }
      // Prices that can no longer be replayed are announced by the topic as `event: dropped`.
      return feed.topic.subscribe({ keys: symbols, after: Procedure.lastEventId(headers) })
    },
    downloadReport: ({ sizeMb }) => reportBytes(Math.round(sizeMb * 1024 * 1024)),
    exportOrders: ({ count }) => orders(count),
    getQuote: ({ symbol }) =>
      Option.match(feed.latest(symbol), {
        onNone: () => Effect.fail(new UnknownSymbol({ symbol, message: `Unknown symbol ${symbol}` })),
        onSome: Effect.succeed
      }),
    whoAmI: () => Effect.map(CurrentUser, (user) => ({ name: user.name }))
  }
}))

/** Demo tokens: `demo-token` is allowed, any other token is forbidden, none is unauthorized. */
export const AuthenticationLive = Layer.succeed(
  Authentication,
  Authentication.of(({ headers }) => {
    const authorization = headers["authorization"]
    if (authorization === undefined) {
      return Effect.fail(new Unauthorized({ message: "Send Authorization: Bearer <token>" }))
    }
    if (authorization !== "Bearer demo-token") {
      return Effect.fail(new Forbidden({ message: "This token may not call this procedure" }))
    }
    return Effect.succeed({ name: "demo" })
  })
)
