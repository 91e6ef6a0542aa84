/**
 * One shared in-memory price feed per server. Sequence numbers start from the
 * wall clock in microseconds, so they stay monotonic across restarts; the
 * most recent values are kept for replay to resuming subscribers.
 */
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { Price, symbols as demoSymbols } from "./contract.ts"

export interface PriceFeedOptions {
  /** Prices per second, per symbol. */
  readonly pricesPerSecond: number
  /** How many of the most recent prices are kept for replay. */
  readonly replay: number
  readonly symbols: ReadonlyArray<string>
}

export interface Replay {
  /**
   * Prices after the cursor that can no longer be replayed (older than the
   * oldest kept); `undefined` when the cursor is from before a restart, so
   * what the previous run produced after it cannot be known.
   */
  readonly missed: number | undefined
  readonly prices: Stream.Stream<Price>
}

export class PriceFeed extends Context.Tag("demo/PriceFeed")<PriceFeed, {
  readonly symbols: ReadonlySet<string>
  /** Live prices of `symbols`; with `after`, first the kept prices that follow that sequence number. */
  readonly subscribe: (symbols: ReadonlyArray<string>, after: number | undefined) => Effect.Effect<Replay>
  readonly latest: (symbol: string) => Option.Option<Price>
}>() {}

const tick = 10 // milliseconds

export const make = (options: PriceFeedOptions) =>
  Effect.gen(function*() {
    const pubsub = yield* Effect.acquireRelease(PubSub.unbounded<Price>(), PubSub.shutdown)
    const kept: Array<Price> = []
    const latest = new Map<string, Price>()
    let seq = Date.now() * 1000
    const firstSeq = seq + 1
    /** How many of the prices with seq in [from, to] are of a wanted symbol (seq → symbol is round-robin). */
    const countWanted = (from: number, to: number, wanted: ReadonlySet<string>): number => {
      if (to < from) return 0
      const n = options.symbols.length
      const length = to - from + 1
      let count = Math.floor(length / n) * wanted.size
      for (let s = from + Math.floor(length / n) * n; s <= to; s++) {
        if (wanted.has(options.symbols[(s - firstSeq) % n]!)) count++
      }
      return count
    }
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
      for (const price of batch) kept.push(price)
      if (kept.length > options.replay) kept.splice(0, kept.length - options.replay)
      return PubSub.publishAll(pubsub, batch)
    })
    yield* publish.pipe(Effect.repeat(Schedule.spaced(`${tick} millis`)), Effect.forkScoped)

    const subscribe = (symbols: ReadonlyArray<string>, cursor: number | undefined): Effect.Effect<Replay> =>
      Effect.sync(() => {
        const wanted = new Set(symbols)
        // A cursor ahead of the feed (another instance's, or made up) cannot be resumed
        // from: start live, and say there is a gap of unknown size.
        const ahead = cursor !== undefined && cursor > seq
        const after = cursor !== undefined && !ahead ? cursor : undefined
        const previousRun = after !== undefined && after < firstSeq - 1
        const oldest = kept[0]
        const missed = ahead
          ? undefined
          : after === undefined
          ? 0
          : previousRun
          ? undefined
          : oldest !== undefined && oldest.seq > after + 1
          ? countWanted(after + 1, oldest.seq - 1, wanted)
          : 0
        const prices = Stream.unwrapScoped(Effect.gen(function*() {
          // Subscribe before reading the kept values: nothing falls between replay and live.
          const queue = yield* PubSub.subscribe(pubsub)
          let last = after ?? seq
          const replayed = after === undefined ? [] : kept.filter((p) => p.seq > after && wanted.has(p.symbol))
          if (replayed.length > 0) last = replayed[replayed.length - 1]!.seq
          const live = Stream.fromQueue(queue).pipe(
            Stream.filter((p) => p.seq > last && wanted.has(p.symbol))
          )
          return Stream.concat(Stream.fromChunk(Chunk.unsafeFromArray(replayed)), live)
        }))
        return { missed, prices }
      })

    return PriceFeed.of({
      symbols: new Set(options.symbols),
      subscribe,
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
