/**
 * One shared price feed per server, published to a `Topic` keyed by symbol:
 * every watcher of a symbol shares each price's encoding, and the most recent
 * prices are kept for replay to resuming subscribers (the topic's cursors are
 * the event ids). Sequence numbers start from the wall clock in microseconds,
 * so they are consecutive within a run and keep increasing across restarts.
 *
 * With `redis` (the demo's REDIS_URL) the topic is a `RedisTopic`: several
 * instances share one feed. Exactly one publishes at a time, the holder of a
 * lease in Redis (`SET NX PX`, renewed every second, 3 s long); when it dies
 * the lease expires and another instance takes over, continuing the sequence
 * and the prices from the last ones it read. Publishes are fenced by the
 * lease: Redis refuses those of an instance that no longer holds it.
 */
import { createClient } from "@redis/client"
import * as Context from "effect/Context"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as RedisTopic from "../../src/topic/RedisTopic.ts"
import * as Topic from "../../src/topic/Topic.ts"
import { Price, symbols as demoSymbols } from "./contract.ts"

export interface PriceFeedOptions {
  /** Prices per second, per symbol. */
  readonly pricesPerSecond: number
  /** How many of the most recent prices are kept for replay. */
  readonly replay: number
  readonly symbols: ReadonlyArray<string>
  /** A Redis URL: the feed is shared by every instance on it. */
  readonly redis?: string | undefined
}

/** Redis keys of the shared feed: the stream (and its `:meta`), and the publisher's lease. */
export const redisKeys = { stream: "demo:prices", lease: "demo:prices:lease" } as const
/** The lease lasts this long unless renewed; it is renewed every `leaseMillis / 3`. */
export const leaseMillis = 3_000

export class PriceFeed extends Context.Tag("demo/PriceFeed")<PriceFeed, {
  readonly symbols: ReadonlySet<string>
  /** Every price, keyed by symbol: `topic.subscribe({ keys: symbols, after: cursor })`. */
  readonly topic: Topic.Topic<Price, Topic.TopicUnavailable>
  readonly latest: (symbol: string) => Option.Option<Price>
}>() {}

const tick = 10 // milliseconds

export const make = (options: PriceFeedOptions) =>
  Effect.gen(function*() {
    const topicOptions = { key: (price: Price) => price.symbol, replay: { count: options.replay } }
    /** This instance's token of the lease while it holds it: publishes are fenced by it in Redis. */
    let leaseToken = ""
    const topic: Topic.Topic<Price, Topic.TopicUnavailable> = options.redis === undefined
      ? yield* Topic.make<Price>(topicOptions)
      : yield* RedisTopic.make({
        ...topicOptions,
        redis: options.redis,
        stream: redisKeys.stream,
        codec: Price,
        fence: { key: redisKeys.lease, token: () => leaseToken }
      })
    const latest = new Map<string, Price>()
    let seq = Date.now() * 1000
    let owed = 0
    const prices = new Map(options.symbols.map((symbol, i) => [symbol, 100 + 20 * i]))
    /** Whether this instance publishes: always in memory; the lease holder on Redis. */
    let publishing = options.redis === undefined
    /** The last sequence number read from the feed: a new publisher continues from it. */
    let lastSeen: number | undefined

    if (options.redis !== undefined) {
      // Prices published by whichever instance holds the lease: the quotes, and where to continue from.
      yield* topic.subscribe().pipe(
        Stream.runForEach((price) =>
          Effect.sync(() => {
            latest.set(price.symbol, price)
            lastSeen = price.seq
            if (!publishing) prices.set(price.symbol, price.price)
          })
        ),
        Effect.forkScoped
      )
      yield* lease(options.redis, (held, token) => {
        if (held && !publishing) {
          owed = 0
          if (lastSeen !== undefined) seq = lastSeen
        }
        leaseToken = token
        publishing = held
      })
    }

    // Prices owed from the time elapsed, not from the ticks counted: a tick that fires late
    // (a busy loop) owes more, so the feed keeps its rate. At most a second's worth at once.
    let lastTick = yield* Clock.currentTimeMillis
    const publish = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const elapsed = Math.min(1000, Math.max(0, now - lastTick))
      lastTick = now
      if (!publishing) return Effect.void
      owed += (options.pricesPerSecond * elapsed) / 1000
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
          if (options.redis === undefined) latest.set(symbol, price)
        }
      }
      // Redis unreachable: this tick's prices are lost (the reader reports the gap to subscribers).
      return topic.publishAll(batch).pipe(Effect.catchAll(() => Effect.void))
    })
    yield* publish.pipe(Effect.repeat(Schedule.spaced(`${tick} millis`)), Effect.forkScoped)

    return PriceFeed.of({
      symbols: new Set(options.symbols),
      topic,
      latest: (symbol) => Option.fromNullable(latest.get(symbol))
    })
  })

/**
 * The publisher's lease: `SET lease <token> NX PX` to take it, a compare-and-
 * `PEXPIRE` to renew it, every `leaseMillis / 3`. `onChange(true, token)`
 * when this instance holds it, `onChange(false, "")` as soon as a renewal
 * fails (Redis lost, or the lease taken over). The token is new at each
 * acquisition and fences every publish (`RedisTopic`'s `fence`): an instance
 * that believes it still holds a lease it lost (paused longer than the lease)
 * has its publishes refused by Redis, so two instances never publish at once.
 */
const lease = (url: string, onChange: (held: boolean, token: string) => void) =>
  Effect.gen(function*() {
    const id = `${process.pid}-${Math.random().toString(36).slice(2)}`
    let acquisitions = 0
    /** The value of the lease this instance holds or is taking. */
    let token = `${id}-0`
    const client = createClient({
      url,
      disableOfflineQueue: true,
      socket: { connectTimeout: 2_000, reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 1_000) }
    })
    client.on("error", () => {})
    yield* Effect.promise(() => client.connect().catch(() => undefined))
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        // released at once on shutdown: another instance takes over without waiting for the expiry
        if (held) {
          await client.sendCommand(["EVAL", release, "1", redisKeys.lease, token], { timeout: 1_000 }).catch(() => undefined)
        }
        client.destroy()
      })
    )
    let held = false
    const step = Effect.promise(async () => {
      let now = false
      try {
        if (!held) token = `${id}-${++acquisitions}`
        const reply = held
          ? await client.sendCommand(["EVAL", renew, "1", redisKeys.lease, token, String(leaseMillis)], { timeout: 1_000 })
          : await client.sendCommand(["SET", redisKeys.lease, token, "NX", "PX", String(leaseMillis)], { timeout: 1_000 })
        now = held ? Number(reply) === 1 : String(reply) === "OK"
      } catch {
        now = false
      }
      if (now !== held) {
        held = now
        onChange(held, held ? token : "")
        console.log(held ? `price feed: publishing (lease ${token} taken)` : `price feed: standby (lease ${token} lost)`)
      }
    })
    yield* step.pipe(Effect.repeat(Schedule.spaced(`${leaseMillis / 3} millis`)), Effect.forkScoped)
  })

const renew = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`
const release = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`

const withDefaults = (options: Partial<PriceFeedOptions>): PriceFeedOptions => ({
  pricesPerSecond: options.pricesPerSecond ?? 10,
  replay: options.replay ?? 10_000,
  symbols: options.symbols ?? demoSymbols,
  redis: options.redis
})

/** The feed in memory, for this process alone. */
export const layer = (options: Omit<Partial<PriceFeedOptions>, "redis"> = {}): Layer.Layer<PriceFeed> =>
  // in memory, nothing can fail
  Layer.orDie(Layer.scoped(PriceFeed, make(withDefaults({ ...options, redis: undefined }))))

/** The feed shared through Redis; fails with `TopicUnavailable` when Redis cannot be reached at startup. */
export const redisLayer = (
  redis: string,
  options: Omit<Partial<PriceFeedOptions>, "redis"> = {}
): Layer.Layer<PriceFeed, Topic.TopicUnavailable> => Layer.scoped(PriceFeed, make(withDefaults({ ...options, redis })))
