import * as HttpRouter from "@effect/platform/HttpRouter"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import { health } from "../examples/demo/health.ts"
import * as GracefulShutdown from "../src/server/GracefulShutdown.ts"
import * as StreamingService from "../src/server/StreamingService.ts"
import { eventually, get, listen, quiet, sseCollector } from "./support/http.ts"

const chunk = (i: number) => new Uint8Array(64 * 1024).fill(i % 256)
const chunks = 256 // 16 MiB

const app = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/live",
    StreamingService.sse({
      name: "live",
      stream: Stream.iterate(0, (n) => n + 1).pipe(Stream.mapEffect((n) => Effect.as(Effect.sleep("2 millis"), n))),
      serialize: (n) => JSON.stringify({ n })
    })
  ),
  HttpRouter.get(
    "/file",
    StreamingService.download({
      stream: Stream.range(0, chunks - 1).pipe(Stream.rechunk(1), Stream.map(chunk)),
      filename: "file.bin",
      contentLength: chunks * 64 * 1024
    })
  )
)

describe("graceful shutdown", () => {
  it.scopedLive("ends subscriptions without `end` so clients reconnect, and lets a running download finish", () =>
    Effect.gen(function*() {
      const drain = yield* GracefulShutdown.make
      const url = yield* listen(app).pipe(Effect.provideService(GracefulShutdown.GracefulShutdown, drain))

      const subscription = yield* Effect.promise(() => get(`${url}/live`))
      const sse = sseCollector()
      const subscriptionEnded = new Promise<void>((resolve) => {
        subscription.on("data", (bytes: Buffer) => sse.feed(bytes))
        subscription.on("end", resolve)
      })
      yield* Effect.promise(() => eventually(() => sse.events.length > 2))

      const download = yield* Effect.promise(() => get(`${url}/file`))
      download.pause()
      yield* Effect.promise(() => eventually(() => drain.transfers() === 1))

      const draining = yield* GracefulShutdown.drain(drain, { deadline: "1 minute" }).pipe(Effect.fork)
      // the subscription ends cleanly at the HTTP level, but with no `end` event: a client reconnects
      yield* Effect.promise(() => subscriptionEnded)
      expect(sse.events.every((e) => e.event === "message")).toBe(true)
      // the download is still running, so draining is not over
      expect(draining.unsafePoll()).toBe(null)

      const hash = createHash("sha256")
      let received = 0
      yield* Effect.promise(() =>
        new Promise<void>((resolve, reject) => {
          download.on("data", (bytes: Buffer) => {
            received += bytes.byteLength
            hash.update(bytes)
          })
          download.on("end", resolve)
          download.on("error", reject)
          download.resume()
        })
      )
      yield* Fiber.join(draining)
      expect(received).toBe(chunks * 64 * 1024)
      const expected = createHash("sha256")
      for (let i = 0; i < chunks; i++) expected.update(chunk(i))
      expect(hash.digest("hex")).toBe(expected.digest("hex"))
      expect(drain.transfers()).toBe(0)
    }).pipe(quiet))

  it.scopedLive("cuts a stalled download at the deadline: the client sees a truncated transfer", () =>
    Effect.gen(function*() {
      const drain = yield* GracefulShutdown.make
      const url = yield* listen(app).pipe(Effect.provideService(GracefulShutdown.GracefulShutdown, drain))
      const download = yield* Effect.promise(() => get(`${url}/file`))
      download.pause()
      const outcome = new Promise<string>((resolve) => {
        download.on("end", () => resolve("complete"))
        download.on("error", () => resolve("truncated"))
        download.on("aborted", () => resolve("truncated"))
      })
      yield* Effect.promise(() => eventually(() => drain.transfers() === 1))
      yield* GracefulShutdown.drain(drain, { deadline: "50 millis" })
      download.resume()
      expect(yield* Effect.promise(() => outcome)).toBe("truncated")
      yield* Effect.promise(() => eventually(() => drain.transfers() === 0))
    }).pipe(quiet))
})

describe("the demo's /health", () => {
  it.scopedLive("200 ok while serving; 503 draining once shutdown has begun", () =>
    Effect.gen(function*() {
      const drain = yield* GracefulShutdown.make
      const url = yield* listen(health).pipe(Effect.provideService(GracefulShutdown.GracefulShutdown, drain))
      const before = yield* Effect.promise(() => fetch(url).then(async (r) => ({ status: r.status, body: await r.json() })))
      expect(before).toEqual({ status: 200, body: { status: "ok" } })
      yield* drain.begin
      const after = yield* Effect.promise(() => fetch(url).then(async (r) => ({ status: r.status, body: await r.json() })))
      expect(after).toEqual({ status: 503, body: { status: "draining" } })
    }))
})
