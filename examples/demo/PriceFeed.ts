/**
 * One shared price feed per server, published to a `Topic` keyed by symbol:
 * every watcher of a symbol shares each price's encoding, and the most recent
 * prices are kept for replay to resuming subscribers (the topic's cursors are
 * the event ids). Sequence numbers start from the wall clock in microseconds,
 * so they are consecutive within a run and keep increasing across restarts.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Topic from "../../src/Topic.ts"
import { Price, symbols as demoSymbols } from "./contract.ts"

export interface PriceFeedOptions {
  /** Prices per second, per symbol. */
  readonly pricesPerSecond: number
  /** How many of the most recent prices are kept for replay. */
  readonly replay: number
  readonly symbols: ReadonlyArray<string>
}

export class PriceFeed extends Context.Tag("demo/PriceFeed")<PriceFeed, {
  readonly symbols: ReadonlySet<string>
  /** Every price, keyed by symbol: `topic.subscribe({ keys: symbols, after: cursor })`. */
  readonly topic: Topic.Topic<Price>
  readonly latest: (symbol: string) => Option.Option<Price>
}>() {}

const tick = 10 // milliseconds

export const make = (options: PriceFeedOptions) =>
  Effect.gen(function*() {
    const topic = yield* Topic.make<Price>({ key: (price) => price.symbol, replay: { count: options.replay } })
    const latest = new Map<string, Price>()
    let seq = Date.now() * 1000
    let owed = 0
    const prices = new Map(options.symbols.map((symbol, i) => [symbol, 100 + 20 * i]))

    const publish = Effect.suspend(() => {
      owed += (options.pricesPerSecond * tick) / 1000
      const perSymbol = Math.floor(owed)
      owed -= perSymbol
      if (perSymbol === 0) return Effect.void
      const batch: Array<Price> = []
      const at = new Date()
      for (let i = 0; i < perSymbol; i++) {
        for (const symbol of options.symbols) {
          const previous = prices.get(symbol)!
          const next = Math.max(1, Math.round((previous * (1 + (Math.random() - 0.5) / 500)) * 100) / 100)
          prices.set(symbol, next)
          const price = new Price({ seq: ++seq, symbol, price: next, at })
          batch.push(price)
          latest.set(symbol, price)
        }
      }
      return topic.publishAll(batch)
    })
    yield* publish.pipe(Effect.repeat(Schedule.spaced(`${tick} millis`)), Effect.forkScoped)

    return PriceFeed.of({
      symbols: new Set(options.symbols),
      topic,
      latest: (symbol) => Option.fromNullable(latest.get(symbol))
    })
  })

export const layer = (options: Partial<PriceFeedOptions> = {}): Layer.Layer<PriceFeed> =>
  Layer.scoped(
    PriceFeed,
    make({
      pricesPerSecond: options.pricesPerSecond ?? 10,
      replay: options.replay ?? 10_000,
      symbols: options.symbols ?? demoSymbols
    })
  )
