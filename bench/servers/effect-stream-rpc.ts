/**
 * This library, mounted the way an application mounts it: the procedures of
 * `bench/contract.ts` (built with `src/Procedure.ts`), handlers from
 * `BenchApi.toLayer`, served by `HttpTransport.layer` on `HttpLayerRouter`
 * and `NodeHttpServer` — wire protocol v1 at `/rpc/<tag>`.
 *
 * A second route serves the same tick source with `StreamingService.sse` on a
 * plain route (`/direct/ticks`), to separate the cost of the transport
 * (routing, payload decoding, schema encoding of every value, the `id:` of a
 * resumable procedure) from the cost of the policy and the framing.
 *
 * - ticks: batches of `sseBatchSize` ticks, one Stream chunk per batch, with a
 *   real event-loop turn (`setImmediate`) before each batch, the same pattern
 *   as the raw baseline. `Effect.yieldNow` is not enough: Effect's scheduler
 *   resumes on the microtask queue, which never lets the socket flush. The
 *   source is not slowed by the client (that is the sliding policy), so the
 *   figure is events DELIVERED per second; the runner reports the share the
 *   policy dropped.
 * - idle / fanout: the feed publishes into a `PubSub`; a subscription is the
 *   latest tick followed by `Stream.fromPubSub`.
 * - download: a fresh 64 KiB buffer per stream element.
 * - rows: pages of `rowPageSize` rows, one Stream chunk per page.
 *
 * Subscriptions are served two ways, each a row of its own:
 * - "Stream (general path)": a Stream per subscriber (`feedStream`: the
 *   latest tick, then `Stream.fromPubSub`; keyed: a PubSub per key);
 * - "Topic": the handler returns `topic.subscribe({ keys, after })`, a
 *   `Topic` subscription, and `HttpTransport` serves it however it serves
 *   Topic subscriptions (its fast path once it has one, else the general
 *   path through `StreamingService.sse`): this file needs no change either way.
 *   A new subscriber first gets the latest tick like every other
 *   implementation: it resumes `after` the cursor preceding that tick (the
 *   topic keeps a replay window for it), unless the client sent its own
 *   `Last-Event-ID`.
 * - "SSE answer direct (bench-only)": the same topics served by calling
 *   `SseResponse.serve` on the node:http response under `/direct/topic/`,
 *   before the HTTP router sees the request: the cost of the fast path itself,
 *   whatever the transport does.
 *
 * The symbol feed (`mux` scenario) is a keyed Topic served by `symbolTopic`:
 * one symbol per v1 request (`/rpc/symbolTopic`), or every symbol on one
 * multiplexed connection (`POST /rpc/_mux`, wire protocol v1.1) — the same
 * handler either way.
 *
 * `GET /health` and `GET /metrics` (the library's Prometheus text) are served
 * as the demo serves them. With `BENCH_DEFAULTS=1` (the storm scenarios) the
 * server runs as an application that configures nothing: the transport's
 * default admission (`BENCH_MAX_SUBSCRIPTIONS=n` raises its open
 * subscriptions, nothing else) and the library's metrics (`MetricsService`);
 * without it, nothing is shed and nothing is counted.
 *
 * With `BENCH_REDIS_URL` the live feed's topic (`fanoutTopic`) is a
 * `RedisTopic` shared by every server process started on the same
 * `BENCH_REDIS_STREAM` (the `fanout-redis` scenario): the handlers do not
 * change.
 */
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Http from "node:http"
import * as GracefulShutdown from "../../src/server/GracefulShutdown.ts"
import * as HttpTransport from "../../src/server/HttpTransport.ts"
import * as MetricsService from "../../src/server/MetricsService.ts"
import * as Prometheus from "../../src/server/Prometheus.ts"
import * as Procedure from "../../src/contract/Procedure.ts"
import * as RedisTopic from "../../src/topic/RedisTopic.ts"
import * as StreamingService from "../../src/server/StreamingService.ts"
import * as Topic from "../../src/topic/Topic.ts"
import { NodeSink } from "../../src/server/internal/NodePlatform.ts"
import * as SseResponse from "../../src/server/internal/SseResponse.ts"
import { BenchApi, Tick as TickSchema } from "../contract.ts"
import { announce, exitWithRunner, fail, listenBacklog, queryWith } from "../harness.ts"
import {
  downloadChunk,
  downloadChunkBytes,
  downloadReadable,
  type Feed,
  keyCount,
  type KeyedFeed,
  keyed,
  keyParam,
  live,
  makeBatch,
  makePage,
  quiet,
  serializeTick,
  sparse,
  symbolCount,
  symbols,
  type Tick
} from "../workload.ts"

exitWithRunner()

/** One macrotask turn: lets I/O callbacks (socket writes, drain) run. */
const nextTurn: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

const ticks: Stream.Stream<Tick> = Stream.suspend(() => {
  let seq = 0
  return Stream.repeatEffectChunk(
    Effect.zipRight(
      nextTurn,
      Effect.sync(() => {
        const batch = makeBatch(seq)
        seq += batch.length
        return Chunk.unsafeFromArray(batch)
      })
    )
  )
})

/** The feed as a PubSub: the latest tick, then every published one. */
const feedStream = (feed: Feed): Stream.Stream<Tick> => {
  const pubsub = Effect.runSync(PubSub.unbounded<Tick>())
  feed.onTick((tick) => pubsub.unsafeOffer(tick))
  return Stream.concat(Stream.sync(feed.latest), Stream.fromPubSub(pubsub))
}
const idleTicks = feedStream(quiet())
const fanoutTicks = feedStream(live())
const sparseTicks = feedStream(sparse())

/** The keyed feed as a PubSub per key (made on its first subscriber): the key's latest tick, then its ticks. */
let keyPubSubs: Map<string, PubSub.PubSub<Tick>> | undefined
const keyedTicks = (key: string): Stream.Stream<Tick> =>
  Stream.suspend(() => {
    const feed = keyed()
    if (keyPubSubs === undefined) {
      const pubsubs = new Map<string, PubSub.PubSub<Tick>>()
      keyPubSubs = pubsubs
      feed.onBatch((batch) => {
        for (const tick of batch) pubsubs.get(tick.symbol)?.unsafeOffer(tick)
      })
    }
    let pubsub = keyPubSubs.get(key)
    if (pubsub === undefined) {
      pubsub = Effect.runSync(PubSub.unbounded<Tick>())
      keyPubSubs.set(key, pubsub)
    }
    const latest = feed.latest(key)
    return Stream.concat(latest === undefined ? Stream.empty : Stream.succeed(latest), Stream.fromPubSub(pubsub))
  })

// ---------------------------------------------------------------- topics

/**
 * A topic fed by a source, and the cursor each key's latest value can be
 * replayed after (a subscriber starts from the current state).
 */
interface FedTopic {
  readonly topic: Topic.Topic<Tick, unknown>
  /** Starts the source on the first subscriber (the keyed feed and the full-speed pump cost CPU). */
  readonly start: () => void
  /** The cursor preceding the latest tick of `key` (of the topic without keys: `""`). */
  readonly beforeLatest: (key: string) => string | undefined
}

class Topics extends Context.Tag("bench/Topics")<Topics, {
  readonly ticks: FedTopic
  readonly idle: FedTopic
  readonly fanout: FedTopic
  readonly fanoutPubSub: FedTopic
  readonly sparse: FedTopic
  readonly keyed: FedTopic
  readonly symbols: FedTopic
}>() {}

/**
 * `topic` fed by `feed` through `publish`, connected on its first subscriber
 * (so a server measured on its Stream routes publishes nothing to topics),
 * the latest tick first.
 */
const connectFeed = (feed: Feed, topic: Topic.Topic<Tick>, publish: (tick: Tick) => void): FedTopic => {
  let before: string | undefined
  let started = false
  const start = () => {
    if (started) return
    started = true
    before = topic.latestCursor()
    publish(feed.latest())
    feed.onTick((tick) => {
      before = topic.latestCursor()
      publish(tick)
    })
  }
  return { topic, start, beforeLatest: () => before }
}

/** A topic of a feed, published to directly. */
const feedTopic = (feed: Feed) =>
  Effect.map(Topic.make<Tick>({ replay: { count: 1 } }), (topic) => connectFeed(feed, topic, topic.unsafePublish))

/** A keyed feed (`keyed()`, `symbols()`): a topic keyed by symbol; every key's latest tick is in the replay window. */
const keyedTopicOf = (feed: () => KeyedFeed, keys: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const topic = yield* Topic.make<Tick>({ key: (tick) => tick.symbol, replay: { count: 2 * keys.length } })
    const before = new Map<string, string>()
    let started = false
    const publish = (batch: ReadonlyArray<Tick>) => {
      const cursor = topic.latestCursor()
      for (const tick of batch) before.set(tick.symbol, cursor)
      topic.unsafePublishAll(batch)
    }
    const start = () => {
      if (started) return
      started = true
      const source = feed()
      const latest: Array<Tick> = []
      for (const key of keys) {
        const tick = source.latest(key)
        if (tick !== undefined) latest.push(tick)
      }
      publish(latest)
      source.onBatch(publish)
    }
    return { topic, start, beforeLatest: (key: string) => before.get(key) } satisfies FedTopic
  })

/** The full-speed source into a topic: a batch of `sseBatchSize` per event-loop turn, from the first subscriber on. */
const ticksTopic = Effect.gen(function*() {
  const topic = yield* Topic.make<Tick>()
  let started = false
  const start = () => {
    if (started) return
    started = true
    let seq = 0
    const pump = () => {
      const batch = makeBatch(seq)
      seq += batch.length
      topic.unsafePublishAll(batch)
      setImmediate(pump)
    }
    setImmediate(pump)
  }
  return { topic, start, beforeLatest: () => undefined } satisfies FedTopic
})

/**
 * The live feed through Redis (`BENCH_REDIS_URL`, `BENCH_REDIS_STREAM`): a
 * `RedisTopic` instead of the in-memory one, the rest unchanged. Several
 * server processes on one stream are instances of one service: the one with
 * `BENCH_REDIS_PUBLISH=1` publishes the feed from its start, every one
 * delivers it to its own subscribers.
 */
const redisFeedTopic = (feed: Feed, redis: string, stream: string, publishes: boolean) =>
  Effect.gen(function*() {
    const topic = yield* RedisTopic.make<Tick, typeof TickSchema.Encoded>({
      redis,
      stream,
      codec: TickSchema,
      replay: { count: 1 }
    })
    if (publishes) feed.onTick((tick) => topic.unsafePublish(tick))
    // The cursor before the latest value this instance has read: a new subscriber gets that value first.
    const beforeLatest = () => {
      const latest = topic.latestCursor()
      const dash = latest.lastIndexOf("-")
      const offset = Number(latest.slice(dash + 1))
      return offset > 0 ? `${latest.slice(0, dash)}-${offset - 1}` : undefined
    }
    return { topic, start: () => {}, beforeLatest } satisfies FedTopic
  })

/**
 * A feed offered to an Effect `PubSub`, served by `Topic.fromPubSub`: what a
 * handler written around `Stream.fromPubSub` gets by returning the topic's
 * subscription instead (the PubSub hop included).
 */
const pubSubTopic = (feed: Feed) =>
  Effect.gen(function*() {
    const pubsub = yield* PubSub.unbounded<Tick>()
    const topic = yield* Topic.fromPubSub(pubsub, { replay: { count: 1 } })
    return connectFeed(feed, topic, (tick) => pubsub.unsafeOffer(tick))
  })

const benchRedisUrl = process.env["BENCH_REDIS_URL"]
const fanoutTopic = benchRedisUrl === undefined || benchRedisUrl === ""
  ? feedTopic(live())
  : redisFeedTopic(live(), benchRedisUrl, process.env["BENCH_REDIS_STREAM"] ?? "bench:fanout", process.env["BENCH_REDIS_PUBLISH"] === "1")

const TopicsLive = Layer.scoped(
  Topics,
  Effect.all({
    ticks: ticksTopic,
    idle: feedTopic(quiet()),
    fanout: fanoutTopic,
    fanoutPubSub: pubSubTopic(live()),
    sparse: feedTopic(sparse()),
    keyed: keyedTopicOf(keyed, Array.from({ length: keyCount }, (_, k) => `k${k}`)),
    symbols: keyedTopicOf(symbols, Array.from({ length: symbolCount }, (_, k) => `s${k}`))
  })
)

/** What a handler returns: the topic's subscription, from the client's cursor or the one before the latest tick. */
const subscribe = (fed: FedTopic, key: string | undefined, headers: Readonly<Record<string, string | undefined>>) => {
  fed.start()
  return fed.topic.subscribe({
    keys: key === undefined ? undefined : [key],
    after: Procedure.lastEventId(headers) ?? fed.beforeLatest(key ?? "")
  })
}

const chunks = (bytes: number): Stream.Stream<Uint8Array> =>
  Stream.repeatEffect(Effect.sync(downloadChunk)).pipe(Stream.take(Math.ceil(bytes / downloadChunkBytes)))

const rows = (total: number) =>
  Stream.suspend(() => {
    let next = 0
    return Stream.repeatEffectChunkOption(Effect.suspend(() => {
      if (next >= total) return Effect.fail(Option.none())
      const page = makePage(next, total)
      next += page.length
      return Effect.succeed(Chunk.unsafeFromArray(page))
    }))
  })

const Handlers = BenchApi.toLayer(Effect.gen(function*() {
  const topics = yield* Topics
  return {
    ticks: () => ticks,
    idle: () => idleTicks,
    fanout: () => fanoutTicks,
    sparse: () => sparseTicks,
    keyed: ({ key }) => keyedTicks(key),
    ticksTopic: (_, { headers }) => subscribe(topics.ticks, undefined, headers),
    idleTopic: (_, { headers }) => subscribe(topics.idle, undefined, headers),
    fanoutTopic: (_, { headers }) => subscribe(topics.fanout, undefined, headers),
    fanoutPubSubTopic: (_, { headers }) => subscribe(topics.fanoutPubSub, undefined, headers),
    sparseTopic: (_, { headers }) => subscribe(topics.sparse, undefined, headers),
    keyedTopic: ({ key }, { headers }) => subscribe(topics.keyed, key, headers),
    symbolTopic: ({ key }, { headers }) => subscribe(topics.symbols, key, headers),
    download: ({ bytes }) => chunks(bytes),
    downloadReadable: ({ bytes }) => StreamingService.fromReadable(downloadReadable(bytes)),
    rows: ({ rows: total }) => rows(total)
  }
}))

const Direct = HttpLayerRouter.add("GET", "/direct/ticks", StreamingService.sse({ name: "ticks", stream: ticks, serialize: serializeTick }))

/** `BENCH_DEFAULTS=1`: the transport and metrics an application gets when it configures nothing. */
const servingDefaults = process.env["BENCH_DEFAULTS"] === "1"
const maxSubscriptions = Number(process.env["BENCH_MAX_SUBSCRIPTIONS"] ?? NaN)

const capacity = {
  admission: {
    maxEventLoopDelay: Infinity,
    maxRequestDelay: Infinity,
    maxEventLoopUtilization: Infinity,
    maxMemory: Infinity,
    maxFanOutDelay: Infinity,
    maxSubscriptions: Infinity,
    maxTransfersPerClient: Infinity
  }
}

const transportOptions: HttpTransport.Options = servingDefaults
  // Only the open subscriptions raised, when the storm needs more than the default admits.
  ? Number.isFinite(maxSubscriptions) ? { admission: { maxSubscriptions } } : {}
  // The bench measures capacity: no call is shed (load shedding is measured by the soak and the storm).
  : capacity

/**
 * The same procedures twice: under /rpc through the router, under /door
 * with the front door (`frontDoor: true`), the rest alike.
 */
const Transport = Layer.merge(
  HttpTransport.layer(BenchApi, transportOptions),
  HttpTransport.layer(BenchApi, { ...transportOptions, path: "/door", frontDoor: true })
)

/** As the demo's: 200 while serving, 503 once draining for shutdown. */
const health = Effect.map(GracefulShutdown.current, (drain) =>
  drain.isDraining()
    ? HttpServerResponse.unsafeJson({ status: "draining" }, { status: 503 })
    : HttpServerResponse.unsafeJson({ status: "ok" }))

const Probes = Layer.mergeAll(
  HttpLayerRouter.add("GET", "/metrics", Prometheus.response),
  HttpLayerRouter.add("GET", "/health", health)
)

const App = Layer.mergeAll(Transport, Direct, Probes).pipe(
  Layer.provide(Handlers),
  // Counting every value costs CPU per delivery: only where an application's defaults are measured.
  Layer.provide(servingDefaults ? MetricsService.layer : Layer.empty)
)

// ---------------------------------------------------------------- SSE answer direct (bench-only)

const encodeTickSchema = Schema.encodeSync(TickSchema)
/** One encoder for every direct response: the topic caches frames per encoder. */
const encodeTick = (tick: Tick): string => JSON.stringify(encodeTickSchema(tick))

/**
 * Serves `/direct/topic/<source>` with `SseResponse.serve` on the node:http
 * response itself; every other request goes to the HTTP router's listeners.
 */
const mountDirectTopics = (server: Http.Server, topics: Context.Tag.Service<Topics>, runtime: Runtime.Runtime<never>) => {
  const routerListeners = server.listeners("request") as Array<(req: Http.IncomingMessage, res: Http.ServerResponse) => void>
  server.removeAllListeners("request")
  const runFork = Runtime.runFork(runtime)
  const sources: Record<string, FedTopic> = {
    ticks: topics.ticks,
    idle: topics.idle,
    fanout: topics.fanout,
    sparse: topics.sparse,
    keyed: topics.keyed
  }
  server.on("request", (req: Http.IncomingMessage, res: Http.ServerResponse) => {
    const url = req.url ?? ""
    if (url.startsWith("/direct/topic/")) {
      const name = url.slice("/direct/topic/".length).split("?")[0]!
      const fed = Object.hasOwn(sources, name) ? sources[name] : undefined
      if (fed !== undefined) {
        const lastEventId = req.headers["last-event-id"]
        const subscription = subscribe(fed, name === "keyed" ? keyParam(url) : undefined, {
          "last-event-id": typeof lastEventId === "string" ? lastEventId : undefined
        })
        runFork(SseResponse.serve(new NodeSink(res), { name: `${name}TopicDirect`, source: subscription, serialize: encodeTick, serializeError: String }))
        return
      }
    }
    for (const listener of routerListeners) listener.call(server, req, res)
  })
}

const nodeServer = Http.createServer()

const stream = "Stream (general path)"
const topic = "Topic"
const direct = "SSE answer direct (bench-only)"
const frontDoor = "Topic, front door (frontDoor: true)"
const streamFrontDoor = "Stream (general path), front door (frontDoor: true)"

const main = Effect.gen(function*() {
  const server = yield* HttpServer.HttpServer
  const address = server.address
  if (address._tag !== "TcpAddress") return yield* Effect.die(new Error("no TCP address"))
  mountDirectTopics(nodeServer, yield* Topics, yield* Effect.runtime<never>())
  // `{key}` (k0 … k999, URL-safe) stays literal inside the JSON string, for the load generator.
  const keyedPayload = `${encodeURIComponent(`{"key":"`)}{key}${encodeURIComponent(`"}`)}`
  announce(address.port, {
    ticks: [
      { path: "/rpc/ticks", variant: stream },
      { path: "/direct/ticks", variant: "StreamingService.sse route" },
      { path: "/rpc/ticksTopic", variant: topic },
      { path: "/direct/topic/ticks", variant: direct }
    ],
    slow: [
      { path: "/rpc/ticks", variant: stream },
      { path: "/rpc/ticksTopic", variant: topic },
      { path: "/direct/topic/ticks", variant: direct }
    ],
    idle: [
      { path: "/rpc/idle", variant: stream },
      { path: "/door/idle", variant: streamFrontDoor },
      { path: "/rpc/idleTopic", variant: topic },
      { path: "/door/idleTopic", variant: frontDoor },
      { path: "/direct/topic/idle", variant: direct }
    ],
    fanout: [
      { path: "/rpc/fanout", variant: stream },
      { path: "/door/fanout", variant: streamFrontDoor },
      { path: "/rpc/fanoutTopic", variant: topic },
      { path: "/rpc/fanoutPubSubTopic", variant: "Topic.fromPubSub (the feed through a PubSub)" },
      { path: "/direct/topic/fanout", variant: direct }
    ],
    sparse: [
      { path: "/rpc/sparse", variant: stream },
      { path: "/rpc/sparseTopic", variant: topic },
      { path: "/direct/topic/sparse", variant: direct }
    ],
    keyed: [
      { path: `/rpc/keyed?payload=${keyedPayload}`, variant: stream },
      { path: `/door/keyed?payload=${keyedPayload}`, variant: streamFrontDoor },
      { path: `/rpc/keyedTopic?payload=${keyedPayload}`, variant: topic },
      { path: "/direct/topic/keyed?key={key}", variant: direct }
    ],
    symbol: { path: `/rpc/symbolTopic?payload=${keyedPayload}`, variant: `${topic}, one connection per subscription (v1)` },
    mux: {
      method: "POST",
      path: "/rpc/_mux",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        subscriptions: Array.from({ length: symbolCount }, (_, k) => ({ id: `s${k}`, tag: "symbolTopic", payload: { key: `s${k}` } }))
      }),
      variant: `${topic}, multiplexed (v1.1, ${symbolCount} per connection)`
    },
    storm: [{ path: "/rpc/{feed}Topic", variant: topic }, { path: "/door/{feed}Topic", variant: frontDoor }],
    fanoutInstances: { path: "/rpc/fanoutTopic", variant: topic },
    download: [
      { path: `/rpc/download?payload=${queryWith({ bytes: "{bytes}" }, "bytes")}`, variant: "Stream source" },
      {
        path: `/rpc/downloadReadable?payload=${queryWith({ bytes: "{bytes}" }, "bytes")}`,
        variant: "Readable source (fromReadable)"
      }
    ],
    exportCsv: { path: `/rpc/rows?format=csv&payload=${queryWith({ rows: "{rows}" }, "rows")}` },
    exportNdjson: { path: `/rpc/rows?format=ndjson&payload=${queryWith({ rows: "{rows}" }, "rows")}` },
    exportJson: { path: `/rpc/rows?format=json&payload=${queryWith({ rows: "{rows}" }, "rows")}` }
  })
  return yield* Effect.never
})

const Server = HttpLayerRouter.serve(App, { disableLogger: true }).pipe(
  Layer.provideMerge(NodeHttpServer.layer(() => nodeServer, { port: 0, host: "127.0.0.1", backlog: listenBacklog })),
  Layer.provideMerge(TopicsLive)
)

Effect.runPromise(
  main.pipe(
    Effect.provide(Server),
    Effect.provide(Logger.minimumLogLevel(LogLevel.Warning))
  )
).catch((error: unknown) => fail("effect-stream-rpc server", error))
