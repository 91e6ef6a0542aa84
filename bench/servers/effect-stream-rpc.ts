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
 */
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import * as Http from "node:http"
import * as HttpTransport from "../../src/HttpTransport.ts"
import * as StreamingService from "../../src/StreamingService.ts"
import { BenchApi } from "../contract.ts"
import { announce, exitWithRunner, fail, queryWith } from "../harness.ts"
import {
  downloadChunk,
  downloadChunkBytes,
  type Feed,
  live,
  makeBatch,
  makePage,
  quiet,
  serializeTick,
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

const Handlers = BenchApi.toLayer({
  ticks: () => ticks,
  idle: () => idleTicks,
  fanout: () => fanoutTicks,
  download: ({ bytes }) => chunks(bytes),
  rows: ({ rows: total }) => rows(total)
})

const Direct = HttpLayerRouter.add("GET", "/direct/ticks", StreamingService.sse({ name: "ticks", stream: ticks, serialize: serializeTick }))

// The bench measures capacity: no call is shed (load shedding is measured by the soak).
const App = Layer.mergeAll(
  HttpTransport.layer(BenchApi, { admission: { maxEventLoopDelay: Infinity, maxSubscriptions: Infinity } }),
  Direct
).pipe(Layer.provide(Handlers))

const main = Effect.gen(function*() {
  const server = yield* HttpServer.HttpServer
  const address = server.address
  if (address._tag !== "TcpAddress") return yield* Effect.die(new Error("no TCP address"))
  announce(address.port, {
    ticks: [
      { path: "/rpc/ticks" },
      { path: "/direct/ticks", variant: "StreamingService.sse route" }
    ],
    slow: { path: "/rpc/ticks" },
    idle: { path: "/rpc/idle" },
    fanout: { path: "/rpc/fanout" },
    download: { path: `/rpc/download?payload=${queryWith({ bytes: "{bytes}" }, "bytes")}` },
    exportCsv: { path: `/rpc/rows?format=csv&payload=${queryWith({ rows: "{rows}" }, "rows")}` },
    exportNdjson: { path: `/rpc/rows?format=ndjson&payload=${queryWith({ rows: "{rows}" }, "rows")}` }
  })
  return yield* Effect.never
})

const Server = HttpLayerRouter.serve(App, { disableLogger: true }).pipe(
  Layer.provideMerge(NodeHttpServer.layer(() => Http.createServer(), { port: 0, host: "127.0.0.1" }))
)

Effect.runPromise(
  main.pipe(
    Effect.provide(Server),
    Effect.provide(Logger.minimumLogLevel(LogLevel.Warning))
  )
).catch((error: unknown) => fail("effect-stream-rpc server", error))
