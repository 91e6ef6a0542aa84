/**
 * A `Topic` shared by every instance of a service through a Redis Stream: the
 * same `Topic.Topic` (a Layer swap, no handler change), its subscriptions the
 * same `Topic.Subscription` (served on the transport's fast path).
 *
 * ```ts
 * const PricesLive = RedisTopic.layer(Prices, {
 *   redis: process.env.REDIS_URL!, stream: "prices", codec: Price,
 *   key: (p) => p.symbol, replay: { count: 10_000 }
 * })
 * ```
 *
 * - Publishing runs one Lua script per batch: it allocates the offsets
 *   (`HINCRBY <stream>:meta offset`) and appends the values (`XADD <stream>
 *   0-<offset>`, trimmed with `MAXLEN ~ retain`), so every instance gives a
 *   value the same cursor `<epoch>-<offset>`. The epoch lives in Redis
 *   (`<stream>:meta` `epoch`, set once): a Redis that restarted empty has a
 *   new one, and cursors of the previous one are gaps of unknown size.
 * - One reader per topic per process (a blocking `XREAD` on its own
 *   connection) appends what it reads to the local fan-out of `Topic`: Redis
 *   work per value does not depend on the number of subscribers. Values this
 *   process published are appended when Redis confirms them (when nothing
 *   published elsewhere is unread before them); the reader skips them.
 * - `fence`: publish only while a lease key holds this publisher's token,
 *   checked in the same script, so a publisher that lost its lease while
 *   paused appends nothing.
 * - A resume is served from the local ring when it holds the cursor, else
 *   from Redis (`XRANGE`) then live, de-duplicated by offset; what neither
 *   holds is reported with `event: dropped`.
 * - Redis lost while running: subscribers stay connected (heartbeats go on),
 *   publishing fails with `TopicUnavailable` at once (no offline queue,
 *   bounded command time), the reader reconnects with backoff and reports any
 *   gap when Redis is back.
 *
 * Metrics (Effect `Metric`, on `/metrics` with `Prometheus`), tagged `topic`:
 * `topic_broker_lag_seconds` (histogram: now − publish time of each batch the
 * reader reads), `topic_broker_reconnects_total`, `topic_publish_failures_total`,
 * `topic_broker_gaps_total` (values lost between this process and Redis).
 */
import { createClient, type RedisClientOptions } from "@redis/client"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import {
  type Control,
  idOf,
  messageOf,
  parseEntries,
  parseRead,
  publishScript,
  publishSha,
  type Raw,
  type RawEntry,
  sleep,
  text
} from "./internal/RedisStream.ts"
import { settingsOf } from "./internal/Settings.ts"
import { subscription } from "./internal/Subscription.ts"
import { newEpoch, type RemoteEntry, TopicState } from "./internal/TopicState.ts"
import * as Topic from "./Topic.ts"

// ---------------------------------------------------------------------------
// models
// ---------------------------------------------------------------------------

/** How values are stored in Redis: text both ways. */
export interface Codec<A> {
  readonly encode: (value: A) => string
  readonly decode: (text: string) => A
}

export interface Options<A, I = unknown> extends Topic.Options<A> {
  /** A Redis URL (`redis://host:port`) or node-redis client options. */
  readonly redis: string | RedisClientOptions
  /** The stream's key; `<stream>:meta` holds its epoch and offset counter. */
  readonly stream: string
  /** A Schema (stored as the JSON of its encoded form) or a codec. */
  readonly codec: Schema.Schema<A, I, never> | Codec<A>
  /**
   * Entries Redis keeps (`XADD MAXLEN ~`): what a resume on any instance can
   * be served from. Default: `max(replay.count, 1,000)`. `replay.age` is
   * applied when reading (entries older are counted as missed).
   */
  readonly retain?: number | undefined
  /** Longest a command may take before publishing fails. Default 2 s. */
  readonly commandTimeout?: Duration.DurationInput | undefined
  /** Longest the first connection may take before the layer fails. Default 5 s. */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /**
   * Publish only while the Redis key `fence.key` holds `fence.token()` (a
   * lease): checked inside the publish script, atomically with the append, so
   * a publisher that lost its lease (paused, partitioned) appends nothing and
   * its publish fails with `TopicUnavailable`, whatever it believes. Make the
   * token new at each acquisition of the lease.
   */
  readonly fence?: { readonly key: string; readonly token: () => string } | undefined
}

/** A RedisTopic: a `Topic` whose publishes can fail, and the state of its reader. */
export interface RedisTopic<A> extends Topic.Topic<A, Topic.TopicUnavailable> {
  /** The incarnation of the stream this process reads (changes when Redis restarts empty). */
  readonly epoch: () => string
  /** Whether the reader is connected right now. */
  readonly connected: () => boolean
}

// ---------------------------------------------------------------------------
// metrics
// ---------------------------------------------------------------------------

export const names = {
  lag: "topic_broker_lag_seconds",
  reconnects: "topic_broker_reconnects_total",
  publishFailures: "topic_publish_failures_total",
  gaps: "topic_broker_gaps_total"
} as const

export const metrics = {
  lag: Metric.histogram(
    names.lag,
    MetricBoundaries.exponential({ start: 0.001, factor: 4, count: 10 }),
    "Now minus the publish time of the oldest value of each batch a topic's reader reads from Redis"
  ),
  reconnects: Metric.counter(names.reconnects, {
    description: "Times a topic's reader got Redis back after losing it",
    incremental: true
  }),
  publishFailures: Metric.counter(names.publishFailures, {
    description: "Publishes that failed with TopicUnavailable",
    incremental: true
  }),
  gaps: Metric.counter(names.gaps, {
    description: "Values a topic's reader could not read from Redis (trimmed while it was away)",
    incremental: true
  })
}

const codecOf = <A, I>(codec: Schema.Schema<A, I, never> | Codec<A>): Codec<A> => {
  if (!Schema.isSchema(codec)) return codec as Codec<A>
  const schema = codec as Schema.Schema<A, I, never>
  const encode = Schema.encodeSync(schema)
  const decode = Schema.decodeUnknownSync(schema)
  return { encode: (value) => JSON.stringify(encode(value)), decode: (s) => decode(JSON.parse(s)) }
}

// ---------------------------------------------------------------------------
// constructor
// ---------------------------------------------------------------------------

/** Why `url` cannot name a Redis server (`redis://` or `rediss://`), or undefined when it can. */
const invalidUrl = (url: string): string | undefined => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return `not a Redis URL: ${JSON.stringify(url)} (expected redis://host:port or rediss://host:port)`
  }
  return parsed.protocol === "redis:" || parsed.protocol === "rediss:"
    ? undefined
    : `not a Redis URL: the scheme is ${parsed.protocol.replace(/:$/, "")}, expected redis or rediss`
}

/**
 * A topic on the Redis Stream `options.stream`, living as long as the scope.
 * Fails with `TopicUnavailable` when Redis does not answer within
 * `connectTimeout`.
 */
export const make = <A, I = unknown>(
  options: Options<A, I>
): Effect.Effect<RedisTopic<A>, Topic.TopicUnavailable, Scope.Scope> =>
  Effect.gen(function*() {
    const stream = options.stream
    const metaKey = `${stream}:meta`
    const codec = codecOf(options.codec)
    const settings = settingsOf(options)
    const retain = Math.max(1, Math.floor(options.retain ?? Math.max(settings.replayCount, 1000)))
    const commandTimeout = Duration.toMillis(Duration.decode(options.commandTimeout ?? "2 seconds"))
    const connectTimeout = Duration.toMillis(Duration.decode(options.connectTimeout ?? "5 seconds"))
    const tags = [MetricLabel.make("topic", stream)]
    const unavailable = (message: string) => new Topic.TopicUnavailable({ topic: stream, message })

    const lastError = new WeakMap<object, string>()
    const clientOptions: RedisClientOptions = typeof options.redis === "string" ? { url: options.redis } : options.redis
    if (clientOptions.url !== undefined) {
      const invalid = invalidUrl(clientOptions.url)
      if (invalid !== undefined) return yield* Effect.fail(unavailable(invalid))
    }
    const makeClient = () => {
      const client = createClient({
        ...clientOptions,
        // fail at once while disconnected instead of queueing (publish must not hang)
        disableOfflineQueue: true,
        socket: {
          ...clientOptions.socket,
          connectTimeout: Math.min(connectTimeout, 5_000),
          reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 10), 2_000)
        } as NonNullable<RedisClientOptions["socket"]>
      })
      // errors are seen by the commands that fail; the last one explains a failed connection
      client.on("error", (error: unknown) => {
        lastError.set(client, messageOf(error))
      })
      return client
    }
    type Client = ReturnType<typeof makeClient>
    /** Where Redis was looked for, without credentials. */
    const where = (() => {
      if (clientOptions.url === undefined) return ""
      try {
        const url = new URL(clientOptions.url)
        return ` at ${url.protocol}//${url.host}`
      } catch {
        return ""
      }
    })()

    const connect = (client: Client, role: string) =>
      Effect.tryPromise({
        try: () => client.connect(),
        catch: (error) => unavailable(`cannot reach Redis (${role} connection): ${messageOf(error)}`)
      }).pipe(
        Effect.timeoutFail({
          duration: Duration.millis(connectTimeout),
          onTimeout: () =>
            unavailable(
              `Redis${where} did not answer within ${connectTimeout} ms (${role} connection for topic "${stream}")` +
                (lastError.has(client) ? `: ${lastError.get(client)}` : "")
            )
        }),
        Effect.tapError(() => Effect.sync(() => client.destroy()))
      )

    const publisher = makeClient()
    const reader = makeClient()
    yield* connect(publisher, "publisher")
    yield* Effect.addFinalizer(() => Effect.sync(() => publisher.destroy()))
    yield* connect(reader, "reader").pipe(Effect.tapError(() => Effect.sync(() => publisher.destroy())))

    const sha = yield* Effect.promise(() => publishSha)
    const command = <T>(client: Client, args: ReadonlyArray<string>, timeout = commandTimeout): Promise<T> =>
      client.sendCommand<T>(args, { timeout })
    const fence = options.fence
    /** The script, loaded again after a Redis restart (NOSCRIPT). */
    const runScript = async (client: Client, args: ReadonlyArray<string>): Promise<[string, number]> => {
      const keys = fence === undefined ? ["2", metaKey, stream] : ["3", metaKey, stream, fence.key]
      let reply: Raw
      try {
        reply = await command<Raw>(client, ["EVALSHA", sha, ...keys, ...args])
      } catch (error) {
        if (!messageOf(error).includes("NOSCRIPT")) throw error
        reply = await command<Raw>(client, ["EVAL", publishScript, ...keys, ...args])
      }
      const [epoch, last] = reply as [Raw, Raw]
      return [text(epoch), Number(text(last))]
    }

    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()

    let undecodable = 0
    /** An entry as a value; undefined (and logged) when it cannot be decoded: it is skipped as a gap. */
    const decode = (entry: RawEntry): RemoteEntry<A> | undefined => {
      try {
        if (entry.text === undefined) throw new Error("no value field")
        return { offset: entry.offset, value: codec.decode(entry.text), at: entry.at }
      } catch (error) {
        undecodable++
        if (undecodable <= 10) {
          console.warn(`RedisTopic "${stream}": entry ${idOf(entry.offset)} cannot be decoded, skipped: ${messageOf(error)}`)
        }
        return undefined
      }
    }

    const history = async (from: number, to: number): Promise<ReadonlyArray<RemoteEntry<A>>> => {
      const epoch = state.epoch
      const raw = await command<Raw>(publisher, ["XRANGE", stream, idOf(from), idOf(to)])
      const out: Array<RemoteEntry<A>> = []
      for (const entry of parseEntries(raw)) {
        // another incarnation's entries (Redis restarted meanwhile) are not this one's history
        if (entry.epoch !== undefined && entry.epoch !== epoch) throw new Error("the stream was renewed")
        const value = decode(entry)
        // an entry that cannot be decoded is left out: counted as missed
        if (value !== undefined) out.push(value)
      }
      return out
    }

    const state = new TopicState<A>(settings, now, { history })

    // -- the reader --------------------------------------------------------------

    const control: Control = { stopped: false, wake: () => {} }
    let connected = true
    /** Offset of the last entry read (the next XREAD starts after it). */
    let lastRead = 0

    /** On (re)connection: the incarnation Redis has now, and where to read from. */
    const sync = async (initial: boolean) => {
      const [epoch, last] = await runScript(reader, [newEpoch(), String(retain), String(now()), ""])
      if (initial) {
        state.reset(epoch, last + 1)
        lastRead = last
      } else if (epoch !== state.epoch) {
        // Redis restarted without our data: everything since the new incarnation began is read.
        state.reset(epoch, 1)
        lastRead = 0
      }
    }
    yield* Effect.tryPromise({
      try: () => sync(true),
      catch: (error) => unavailable(`cannot read topic "${stream}" from Redis: ${messageOf(error)}`)
    }).pipe(Effect.tapError(() => Effect.sync(() => reader.destroy())))

    const blockMillis = 2_000
    const read = async () => {
      let failures = 0
      while (!control.stopped) {
        try {
          if (failures > 0) {
            await sync(false)
            failures = 0
            connected = true
            metrics.reconnects.unsafeUpdate(1, tags)
          }
          const raw = await command<Raw>(
            reader,
            ["XREAD", "COUNT", String(Math.max(1_000, state.capacity)), "BLOCK", String(blockMillis), "STREAMS", stream, idOf(lastRead)],
            blockMillis + commandTimeout
          )
          const entries = parseRead(raw)
          if (entries.length === 0) continue
          const values: Array<RemoteEntry<A>> = []
          let renewed = false
          let last = lastRead
          for (const entry of entries) {
            if (entry.epoch !== undefined && entry.epoch !== state.epoch) {
              renewed = true
              break
            }
            last = entry.offset
            // already held (this process published it): not decoded again
            if (entry.offset < state.next) continue
            // one that cannot be decoded is read past: subscribers get it as a gap
            const value = decode(entry)
            if (value !== undefined) values.push(value)
          }
          // the lag of every batch read, this process's own values included
          const oldest = entries[0]!
          if (oldest.epoch === undefined || oldest.epoch === state.epoch) {
            metrics.lag.unsafeUpdate(Math.max(0, now() - oldest.at) / 1000, tags)
          }
          const first = values[0]
          if (first !== undefined) {
            if (first.offset > state.next) metrics.gaps.unsafeUpdate(first.offset - state.next, tags)
            state.appendAt(values)
          }
          lastRead = last
          if (renewed) await sync(false)
        } catch {
          if (control.stopped) return
          failures++
          connected = false
          await sleep(Math.min(100 * 2 ** Math.min(failures - 1, 5), 2_000), control)
        }
      }
    }
    const reading = read()
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        control.stopped = true
        control.wake()
        state.shutdown()
        reader.destroy()
        await reading
      })
    )

    // -- publishing --------------------------------------------------------------

    const publishAllPromise = async (values: Iterable<A>): Promise<void> => {
      if (state.ended) return
      const items = Array.isArray(values) ? (values as ReadonlyArray<A>) : Array.from(values)
      const texts: Array<string> = []
      for (const value of items) texts.push(codec.encode(value))
      if (texts.length === 0) return
      // the token when publish was called: a lease lost since then fences this publish
      const token = fence === undefined ? "" : fence.token()
      // bounded batches: a script holds Redis while it runs
      for (let from = 0; from < texts.length; from += 1_000) {
        const at = now()
        const batch = texts.slice(from, from + 1_000)
        const [epoch, last] = await runScript(publisher, [newEpoch(), String(retain), String(at), token, ...batch])
        // Next in line here (nothing published elsewhere in between is still unread): this
        // process's subscribers get the values now, and the reader skips them without decoding.
        const first = last - batch.length + 1
        if (epoch === state.epoch && first === state.next) {
          const entries: Array<RemoteEntry<A>> = new Array(batch.length)
          for (let i = 0; i < batch.length; i++) entries[i] = { offset: first + i, value: items[from + i]!, at }
          state.appendAt(entries)
        }
      }
    }
    const publishAll = (values: Iterable<A>): Effect.Effect<void, Topic.TopicUnavailable> =>
      Effect.tryPromise({
        try: () => publishAllPromise(values),
        catch: (error) => unavailable(`cannot publish to topic "${stream}": ${messageOf(error)}`)
      }).pipe(Effect.tapError(() => Effect.sync(() => metrics.publishFailures.unsafeUpdate(1, tags))))
    const unsafePublishAll = (values: Iterable<A>): void => {
      publishAllPromise(values).catch(() => metrics.publishFailures.unsafeUpdate(1, tags))
    }

    return {
      publish: (value) => publishAll([value]),
      publishAll,
      unsafePublish: (value) => unsafePublishAll([value]),
      unsafePublishAll,
      subscribe: (subscribeOptions) => subscription(state, subscribeOptions),
      latestCursor: () => state.cursorOf(state.next - 1),
      subscriberCount: () => state.count,
      epoch: () => state.epoch,
      connected: () => connected
    }
  })

/**
 * A RedisTopic as the service of a `Topic` tag: swap `Topic.layer(Tag, options)`
 * for this and no handler changes. Fails with `TopicUnavailable` when Redis
 * cannot be reached at startup.
 */
export const layer = <Id, A, I = unknown>(
  tag: Context.Tag<Id, Topic.Topic<A, Topic.TopicUnavailable>>,
  options: Options<A, I>
): Layer.Layer<Id, Topic.TopicUnavailable> => Layer.scoped(tag, make<A, I>(options))
