/**
 * @effect/rpc's own HTTP protocol, as its README serves it:
 * `RpcServer.layer(group)` + `RpcServer.layerProtocolHttp({ path: "/rpc" })`
 * with `RpcSerialization.layerNdjson`, on `HttpRouter.Default` and
 * `NodeHttpServer`. Every procedure is a stream rpc (`Rpc.make(tag,
 * { success: Tick, stream: true })`) whose handler returns a Stream:
 * - ticks: the same Stream as ours (batches, an event-loop turn before each);
 * - idle / fanout: the latest tick, then `Stream.fromPubSub` of the feed.
 * A client calls `POST /rpc` with one ndjson Request line (what
 * `RpcClient.layerProtocolHttp` sends); each response line is a `Chunk` of
 * values.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as RpcServer from "@effect/rpc/RpcServer"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import * as Http from "node:http"
import { Tick } from "../contract.ts"
import { announce, exitWithRunner, fail, listenBacklog } from "../harness.ts"
import { type Feed, live, makeBatch, quiet, type Tick as TickValue } from "../workload.ts"

exitWithRunner()

class Api extends RpcGroup.make(
  Rpc.make("ticks", { success: Tick, stream: true }),
  Rpc.make("idle", { success: Tick, stream: true }),
  Rpc.make("fanout", { success: Tick, stream: true })
) {}

const nextTurn: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

const ticks: Stream.Stream<TickValue> = Stream.suspend(() => {
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

const feedStream = (feed: Feed): Stream.Stream<TickValue> => {
  const pubsub = Effect.runSync(PubSub.unbounded<TickValue>())
  feed.onTick((tick) => pubsub.unsafeOffer(tick))
  return Stream.concat(Stream.sync(feed.latest), Stream.fromPubSub(pubsub))
}
const idleTicks = feedStream(quiet())
const fanoutTicks = feedStream(live())

const Handlers = Api.toLayer({
  ticks: () => ticks,
  idle: () => idleTicks,
  fanout: () => fanoutTicks
})

const RpcLayer = RpcServer.layer(Api).pipe(Layer.provide(Handlers))
const HttpProtocol = RpcServer.layerProtocolHttp({ path: "/rpc" }).pipe(Layer.provide(RpcSerialization.layerNdjson))

const request = (tag: string) => ({
  method: "POST" as const,
  path: "/rpc",
  headers: { "content-type": "application/ndjson" },
  body: `${JSON.stringify({ _tag: "Request", id: "1", tag, payload: {}, headers: [] })}\n`
})

const Main = HttpRouter.Default.serve().pipe(
  Layer.provide(RpcLayer),
  Layer.provide(HttpProtocol),
  Layer.provideMerge(NodeHttpServer.layer(() => Http.createServer(), { port: 0, host: "127.0.0.1", backlog: listenBacklog }))
)

const main = Effect.gen(function*() {
  const server = yield* HttpServer.HttpServer
  const address = server.address
  if (address._tag !== "TcpAddress") return yield* Effect.die(new Error("no TCP address"))
  announce(address.port, { ticks: request("ticks"), idle: request("idle"), fanout: request("fanout") })
  return yield* Effect.never
})

Effect.runPromise(
  main.pipe(Effect.provide(Main), Effect.provide(Logger.minimumLogLevel(LogLevel.Warning)))
).catch((error: unknown) => fail("@effect/rpc server", error))
