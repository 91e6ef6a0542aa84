import * as HttpRouter from "@effect/platform/HttpRouter"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import type * as Http from "node:http"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import * as BackpressurePolicy from "../src/server/BackpressurePolicy.ts"
import * as HttpTransport from "../src/server/HttpTransport.ts"
import * as MetricsService from "../src/server/MetricsService.ts"
import * as Procedure from "../src/contract/Procedure.ts"
import * as StreamingConfig from "../src/server/StreamingConfig.ts"
import * as StreamingService from "../src/server/StreamingService.ts"
import * as NodePlatform from "../src/server/internal/NodePlatform.ts"
import * as Transfer from "../src/server/internal/Transfer.ts"
import { eventually, get, listen, quiet, settled } from "./support/http.ts"

const chunkBytes = 64 * 1024

/** A file of `chunks` × 64 KiB with distinct bytes per chunk, removed at the end of the scope. */
const tempFile = (chunks: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = mkdtempSync(Path.join(tmpdir(), "transfer-test-"))
      const path = Path.join(dir, "data.bin")
      const bytes = Buffer.alloc(chunks * chunkBytes)
      for (let i = 0; i < chunks; i++) bytes.fill(i % 251, i * chunkBytes, (i + 1) * chunkBytes)
      writeFileSync(path, bytes)
      return { path, dir, sha256: createHash("sha256").update(bytes).digest("hex"), size: bytes.byteLength }
    }),
    ({ dir }) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

/** Reads a response to its end: its hash and size, or how it was cut. */
const readAll = (response: Http.IncomingMessage) =>
  new Promise<{ readonly outcome: "complete" | "aborted"; readonly sha256: string; readonly size: number }>((resolve) => {
    const hash = createHash("sha256")
    let size = 0
    let done = false
    const finish = (outcome: "complete" | "aborted") => {
      if (done) return
      done = true
      resolve({ outcome, sha256: hash.digest("hex"), size })
    }
    response.on("data", (bytes: Buffer) => {
      size += bytes.byteLength
      hash.update(bytes)
    })
    response.on("end", () => finish(response.complete ? "complete" : "aborted"))
    response.on("aborted", () => finish("aborted"))
    response.on("error", () => finish("aborted"))
    response.on("close", () => finish(response.complete ? "complete" : "aborted"))
    response.resume()
  })

describe("a download from a Node Readable (a file)", () => {
  it.scopedLive("is read no further than the policy's 256 chunks while the reader stalls, then arrives whole", () =>
    Effect.gen(function*() {
      const chunks = 1024 // 64 MiB
      const file = yield* tempFile(chunks)
      const streams: Array<ReturnType<typeof createReadStream>> = []
      const url = yield* listen(HttpRouter.empty.pipe(
        HttpRouter.get(
          "/file",
          Effect.suspend(() => {
            const readable = createReadStream(file.path, { highWaterMark: chunkBytes })
            streams.push(readable)
            return StreamingService.download({
              stream: StreamingService.fromReadable(readable),
              filename: "data.bin",
              contentLength: file.size
            })
          })
        )
      ))
      const response = yield* Effect.promise(() => get(`${url}/file`))
      response.pause()
      const readWhileStalled = yield* Effect.promise(() => settled(() => streams[0]!.bytesRead))
      // The policy's buffer, the batch being written, and what the socket buffers hold on loopback.
      const socketAllowance = 16 * 1024 * 1024
      const allowance = (BackpressurePolicy.capacities.download + 16) * chunkBytes + socketAllowance
      expect(readWhileStalled).toBeLessThanOrEqual(allowance)
      expect(readWhileStalled).toBeLessThan(file.size)
      const read = yield* Effect.promise(() => readAll(response))
      expect(read).toEqual({ outcome: "complete", sha256: file.sha256, size: file.size })
    }).pipe(quiet))

  it.scopedLive("is destroyed when the client goes away", () =>
    Effect.gen(function*() {
      const file = yield* tempFile(1024)
      const streams: Array<ReturnType<typeof createReadStream>> = []
      const url = yield* listen(HttpRouter.empty.pipe(
        HttpRouter.get(
          "/file",
          Effect.suspend(() => {
            const readable = createReadStream(file.path)
            streams.push(readable)
            return StreamingService.download({ stream: StreamingService.fromReadable(readable), filename: "data.bin" })
          })
        )
      ))
      const response = yield* Effect.promise(() => get(`${url}/file`))
      response.pause()
      yield* Effect.promise(() => settled(() => streams[0]!.bytesRead))
      response.destroy()
      yield* Effect.promise(() => settled(() => (streams[0]!.destroyed ? 1 : 0), 3))
      expect(streams[0]!.destroyed).toBe(true)
    }).pipe(quiet))
})

describe("slabs: the chunks of a download written to a socket", () => {
  const observer: Transfer.Observer = { delivered: () => {}, completed: () => {}, failed: () => {} }
  const downloadEncoding: Transfer.Encoding<Uint8Array> = { batch: 16, header: "", encode: (c) => c, footer: () => "" }

  it.scopedLive("arrive byte for byte while the transfer reuses about as many slabs as the policy holds", () =>
    Effect.gen(function*() {
      const chunks = 2048 // 128 MiB
      const expected = createHash("sha256")
      for (let i = 0; i < chunks; i++) expected.update(new Uint8Array(chunkBytes).fill(i % 251))
      // A fresh buffer per chunk, each with its own bytes: a slab reused too early would show in the hash.
      const source = Stream.range(0, chunks - 1).pipe(Stream.map((i) => new Uint8Array(chunkBytes).fill(i % 251)))
      const slabs = new Transfer.Slabs()
      const buffer = yield* Transfer.start(source, BackpressurePolicy.capacities.download, undefined, slabs)
      const body = new NodePlatform.NodeBody(buffer, downloadEncoding, observer, slabs)
      const server = Net.createServer((socket) => {
        body.pipe(socket)
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => {
          server.listen(0, "127.0.0.1", () => resume(Effect.void))
        }),
        () => Effect.sync(() => server.close())
      )
      const port = (server.address() as Net.AddressInfo).port
      const received = yield* Effect.promise(() =>
        new Promise<{ sha256: string; size: number }>((resolve, reject) => {
          const hash = createHash("sha256")
          let size = 0
          const socket = Net.connect(port, "127.0.0.1")
          socket.on("data", (bytes: Buffer) => {
            size += bytes.byteLength
            hash.update(bytes)
          })
          socket.on("end", () => resolve({ sha256: hash.digest("hex"), size }))
          socket.on("error", reject)
        })
      )
      expect(received).toEqual({ sha256: expected.digest("hex"), size: chunks * chunkBytes })
      // The policy's 256 chunks, those written and not yet taken by the socket counted among them.
      expect(slabs.allocated).toBeGreaterThan(0)
      expect(slabs.allocated).toBeLessThanOrEqual(BackpressurePolicy.capacities.download)
    }))

  it("copies only chunks of 16 KiB or more, and nothing once stopped", () => {
    const slabs = new Transfer.Slabs()
    const small = new Uint8Array(1024).fill(1)
    expect(slabs.copy(small)).toBe(small)
    const large = new Uint8Array(Transfer.Slabs.minBytes).fill(2)
    const copied = slabs.copy(large)
    expect(copied).not.toBe(large)
    expect(slabs.owns(copied)).toBe(true)
    expect(Array.from(copied)).toEqual(Array.from(large))
    // Handed back, the slab holds the next chunk.
    slabs.release(copied)
    const next = slabs.copy(new Uint8Array(Transfer.Slabs.minBytes).fill(3))
    expect(next.buffer).toBe(copied.buffer)
    expect(slabs.allocated).toBe(1)
    // A chunk larger than a slab gets a slab of its own size class.
    const huge = slabs.copy(new Uint8Array(Transfer.Slabs.slabBytes + 1).fill(4))
    expect(huge.buffer.byteLength).toBe(2 * Transfer.Slabs.slabBytes)
    slabs.stop()
    expect(slabs.copy(large)).toBe(large)
  })
})

describe("cleanup of a transfer", () => {
  it.scopedLive("a client that goes away mid-download interrupts the producer, runs its finalizers, and the gauge returns to 0", () =>
    Effect.gen(function*() {
      const finalized = yield* Deferred.make<void>()
      let produced = 0
      const endless = Stream.repeatEffect(Effect.sync(() => {
        produced++
        return new Uint8Array(chunkBytes)
      })).pipe(Stream.ensuring(Deferred.succeed(finalized, undefined)))
      const url = yield* listen(HttpRouter.empty.pipe(
        HttpRouter.get("/endless", StreamingService.download({ name: "endless", stream: endless }))
      )).pipe(Effect.provide(MetricsService.layer))
      const active = MetricsService.labelled(MetricsService.metrics.active, "download", "endless")
      const response = yield* Effect.promise(() => get(`${url}/endless`))
      response.pause()
      yield* Effect.promise(() => settled(() => produced))
      expect((yield* Metric.value(active)).value).toBe(1)
      response.destroy()
      yield* Deferred.await(finalized)
      yield* Effect.promise(() => eventually(() => Effect.runSync(Metric.value(active)).value === 0))
    }).pipe(quiet))
})

describe("a transfer whose client takes no byte", () => {
  it.scopedLive("is cut after the stall timeout: its producer is interrupted, its slot freed, and other clients' transfers are served meanwhile", () =>
    Effect.gen(function*() {
      const finalized = yield* Deferred.make<void>()
      const endless = Stream.repeatEffect(Effect.sync(() => new Uint8Array(chunkBytes))).pipe(
        Stream.ensuring(Deferred.succeed(finalized, undefined))
      )
      const finite = Stream.range(1, 64).pipe(Stream.map((i) => new Uint8Array(chunkBytes).fill(i % 251)))
      const url = yield* listen(HttpRouter.empty.pipe(
        HttpRouter.get("/endless", StreamingService.download({ name: "endless", stream: endless })),
        HttpRouter.get("/finite", StreamingService.download({ name: "finite", stream: finite }))
      )).pipe(
        Effect.provide(MetricsService.layer),
        Effect.provide(StreamingConfig.layer({ transferStallTimeout: "300 millis" }))
      )
      const active = MetricsService.labelled(MetricsService.metrics.active, "download", "endless")
      const stalled = yield* Effect.promise(() => get(`${url}/endless`))
      stalled.pause()
      // Another client's download is served whole while the stalled one holds its slot.
      const other = yield* Effect.promise(() => get(`${url}/finite`).then(readAll))
      expect(other).toMatchObject({ outcome: "complete", size: 64 * chunkBytes })
      // The stalled client is cut, its producer interrupted, its stream counted out.
      yield* Deferred.await(finalized)
      yield* Effect.promise(() => eventually(() => Effect.runSync(Metric.value(active)).value === 0))
      // Read at last, what it holds ends short: a truncated transfer, never a complete one.
      expect((yield* Effect.promise(() => readAll(stalled))).outcome).toBe("aborted")
    }).pipe(quiet))

  it.scopedLive("is not cut while it reads slowly", () =>
    Effect.gen(function*() {
      const finite = Stream.range(1, 100).pipe(Stream.map(() => new Uint8Array(chunkBytes)))
      const url = yield* listen(HttpRouter.empty.pipe(
        HttpRouter.get("/finite", StreamingService.download({ name: "finite", stream: finite }))
      )).pipe(Effect.provide(StreamingConfig.layer({ transferStallTimeout: "2 seconds" })))
      const response = yield* Effect.promise(() => get(`${url}/finite`))
      // Reads a chunk every 10 ms: the socket never goes 2 s without taking a byte.
      let size = 0
      const outcome = yield* Effect.promise(() =>
        new Promise<string>((resolve) => {
          response.on("data", (bytes: Buffer) => {
            size += bytes.byteLength
            response.pause()
            setTimeout(() => response.resume(), 10)
          })
          response.on("end", () => resolve(response.complete ? "complete" : "aborted"))
          response.on("close", () => resolve(response.complete ? "complete" : "aborted"))
        })
      )
      expect(outcome).toBe("complete")
      expect(size).toBe(100 * chunkBytes)
    }).pipe(quiet))
})

const FileApi = RpcGroup.make(
  Procedure.download("file", { payload: { path: Schema.String }, filename: "data.bin" }),
  Procedure.download("webStream", { filename: "web.bin" }),
  Procedure.export("brokenRows", { row: Schema.Struct({ n: Schema.Number }), formats: ["ndjson", "json", "csv"] }),
  Procedure.download("brokenBytes", { filename: "broken.bin" })
)

const webStreamOf = (parts: ReadonlyArray<Uint8Array>) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      for (const part of parts) controller.enqueue(part)
      controller.close()
    }
  })

const FileHandlers = FileApi.toLayer({
  file: ({ path }) => StreamingService.fromReadable(createReadStream(path)),
  webStream: () => StreamingService.fromReadable(webStreamOf([new Uint8Array([1, 2, 3]), new Uint8Array([4, 5])])),
  // a typed failure after the first rows: the transfer is aborted, never ended cleanly
  brokenRows: () => Stream.make({ n: 1 }, { n: 2 }).pipe(Stream.concat(Stream.fail("disk gone" as never))),
  brokenBytes: () => Stream.make(new Uint8Array(1024)).pipe(Stream.concat(Stream.fail("disk gone" as never)))
})

describe("through the transport", () => {
  it.scopedLive("a handler returns a file's Readable: the download is the file, byte for byte", () =>
    Effect.gen(function*() {
      const file = yield* tempFile(40)
      const app = yield* HttpTransport.toHttpApp(FileApi).pipe(Effect.provide(FileHandlers))
      const url = yield* listen(app)
      const payload = encodeURIComponent(JSON.stringify({ path: file.path }))
      const response = yield* Effect.promise(() => get(`${url}/rpc/file?payload=${payload}`))
      expect(response.headers["content-disposition"]).toContain("data.bin")
      expect(yield* Effect.promise(() => readAll(response))).toEqual({
        outcome: "complete",
        sha256: file.sha256,
        size: file.size
      })
    }).pipe(quiet))

  it.scopedLive("a failure after the first byte aborts the download and the export: the socket is destroyed, the body never ends", () =>
    Effect.gen(function*() {
      const app = yield* HttpTransport.toHttpApp(FileApi).pipe(Effect.provide(FileHandlers))
      const url = yield* listen(app)
      for (const path of ["brokenBytes", "brokenRows?format=ndjson", "brokenRows?format=json", "brokenRows?format=csv"]) {
        const response = yield* Effect.promise(() => get(`${url}/rpc/${path}`))
        expect(response.statusCode, path).toBe(200)
        const read = yield* Effect.promise(() => readAll(response))
        expect(read.outcome, path).toBe("aborted")
        expect(read.size, path).toBeGreaterThan(0)
      }
    }).pipe(quiet))

  it.live("through the web handler: a web ReadableStream source arrives whole; a failure after the first byte errors the body", () =>
    Effect.gen(function*() {
      const { dispose, handler } = HttpTransport.toWebHandler(FileApi, FileHandlers)
      const web = yield* Effect.promise(() => handler(new Request("http://localhost/rpc/webStream")))
      expect(web.status).toBe(200)
      expect(Array.from(new Uint8Array(yield* Effect.promise(() => web.arrayBuffer())))).toEqual([1, 2, 3, 4, 5])
      for (const path of ["brokenBytes", "brokenRows?format=ndjson", "brokenRows?format=json", "brokenRows?format=csv"]) {
        const response = yield* Effect.promise(() => handler(new Request(`http://localhost/rpc/${path}`)))
        expect(response.status, path).toBe(200)
        const outcome = yield* Effect.promise(() => response.arrayBuffer().then(() => "complete", () => "errored"))
        expect(outcome, path).toBe("errored")
      }
      yield* Effect.promise(dispose)
    }).pipe(quiet))
})
