/**
 * This library: a NodeHttpServer with an HttpRouter whose routes use
 * `StreamingService.sse` (sliding policy, 64) and `StreamingService.download`
 * (suspend policy, 256 chunks), exactly as an application would mount them.
 *
 * - SSE source: batches of `sseBatchSize` ticks, one Stream chunk per batch,
 *   with a real event-loop turn (`setImmediate`) before each batch, the same
 *   pattern as the raw baseline. `Effect.yieldNow` is not enough: Effect's
 *   scheduler resumes on the microtask queue, which never lets the socket flush.
 *   The source is not slowed by the client (that is the sliding policy), so
 *   the figure is events DELIVERED per second; the runner reports the share
 *   the policy dropped.
 * - Download source: a fresh 64 KiB buffer per stream element.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Stream from "effect/Stream"
import * as Http from "node:http"
import * as StreamingService from "../../src/StreamingService.ts"
import { announce, exitWithRunner, fail } from "../harness.ts"
import {
  downloadBytesOf,
  downloadChunk,
  downloadChunkBytes,
  makeBatch,
  paths,
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

const chunks = (bytes: number): Stream.Stream<Uint8Array> =>
  Stream.repeatEffect(Effect.sync(downloadChunk)).pipe(Stream.take(bytes / downloadChunkBytes))

const router = HttpRouter.empty.pipe(
  HttpRouter.get(paths.sse, StreamingService.sse("bench-ticks", ticks, serializeTick)),
  HttpRouter.get(
    paths.download,
    Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
      const bytes = downloadBytesOf(request.url)
      return bytes === undefined
        ? HttpServerResponse.empty({ status: 400 })
        : StreamingService.download(chunks(bytes), { contentLength: bytes, name: "bench-download" })
    })
  )
)

const main = Effect.gen(function*() {
  yield* HttpServer.serveEffect(router)
  const server = yield* HttpServer.HttpServer
  const address = server.address
  if (address._tag !== "TcpAddress") return yield* Effect.die(new Error("no TCP address"))
  announce(address.port)
  return yield* Effect.never
}).pipe(
  Effect.scoped,
  Effect.provide(NodeHttpServer.layer(() => Http.createServer(), { port: 0, host: "127.0.0.1" })),
  Effect.provide(Logger.minimumLogLevel(LogLevel.Warning))
)

Effect.runPromise(main).catch((error: unknown) => fail("effect-stream-rpc server", error))
