import * as HttpRouter from "@effect/platform/HttpRouter"
import { describe, expect, it } from "@effect/vitest"
import { parse as parseCsv } from "csv-parse/sync"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { createHash } from "node:crypto"
import * as BackpressurePolicy from "../src/server/BackpressurePolicy.ts"
import * as MetricsService from "../src/server/MetricsService.ts"
import * as StreamingConfig from "../src/server/StreamingConfig.ts"
import * as StreamingService from "../src/server/StreamingService.ts"
import { eventually, get, listen, quiet, settled, sseCollector } from "./support/http.ts"

const encodeNumber = (n: number) => JSON.stringify({ n })
/** About 200 bytes a value: what the producer makes while the client is stalled is far more than socket buffers hold. */
const padding = "x".repeat(200)
const encodePadded = (n: number) => JSON.stringify({ n, padding })

/** Reads a node:http response to its end, feeding an SSE collector. */
const readSse = (response: import("node:http").IncomingMessage) => {
  const sse = sseCollector()
  const done = new Promise<void>((resolve, reject) => {
    response.on("data", (chunk: Buffer) => sse.feed(chunk))
    response.on("end", resolve)
    response.on("error", reject)
  })
  return { ...sse, done }
}

describe("StreamingService.sse", () => {
  it.scopedLive("a slow subscriber loses the oldest values, is told exactly how many, then gets the newest", () =>
    Effect.gen(function*() {
      const produced = 200_000
      const gate = yield* Deferred.make<void>()
      const producerDone = yield* Deferred.make<void>()
      const events = Stream.fromEffect(Deferred.await(gate)).pipe(
        Stream.flatMap(() => Stream.range(0, produced - 1, 500)),
        // a real source yields to the event loop; a synchronous one would starve it
        Stream.mapChunksEffect((chunk) => Effect.as(Effect.yieldNow(), chunk)),
        Stream.ensuring(Deferred.succeed(producerDone, undefined))
      )
      const url = yield* listen(
        HttpRouter.empty.pipe(HttpRouter.get("/prices", StreamingService.sse({ name: "prices", stream: events, serialize: encodePadded })))
      )
      const response = yield* Effect.promise(() => get(`${url}/prices`))
      expect(response.headers["content-type"]).toBe("text/event-stream")
      expect(response.headers["cache-control"]).toBe("no-cache, no-transform")
      expect(response.headers["x-accel-buffering"]).toBe("no")
      response.pause()
      yield* Deferred.succeed(gate, undefined)
      yield* Deferred.await(producerDone)

      const sse = readSse(response)
      response.resume()
      yield* Effect.promise(() => sse.done)

      const values = sse.events.filter((e) => e.event === "message").map((e) => (JSON.parse(e.data) as { n: number }).n)
      const dropped = sse.events
        .filter((e) => e.event === "dropped")
        .reduce((sum, e) => sum + (JSON.parse(e.data) as { count: number }).count, 0)
      expect(dropped).toBeGreaterThan(0)
      expect(values.length + dropped).toBe(produced)
      // the stream ends with the newest values, in order, none repeated
      expect(values.slice(-64)).toEqual(Array.from({ length: 64 }, (_, i) => produced - 64 + i))
      for (let i = 1; i < values.length; i++) expect(values[i]!).toBeGreaterThan(values[i - 1]!)
      // what reached the client while it was stalled is bounded by socket buffers, not by the producer
      expect(values.length).toBeLessThan(produced / 2)
      // a dropped event always precedes the value that follows a gap
      let expected = 0
      for (const e of sse.events) {
        if (e.event === "dropped") expected += (JSON.parse(e.data) as { count: number }).count
        if (e.event === "message") {
          expect((JSON.parse(e.data) as { n: number }).n).toBe(expected)
          expected++
        }
      }
      expect(sse.events.at(-1)?.event).toBe("end")
    }).pipe(quiet))

  it.scopedLive("a typed failure becomes an error event with its _tag; a defect leaks nothing", () =>
    Effect.gen(function*() {
      class OutOfStock extends Error {
        readonly _tag = "OutOfStock"
      }
      const failing = Stream.make(1, 2).pipe(Stream.concat(Stream.fail(new OutOfStock("no more stock"))))
      const defect = Stream.make(1).pipe(Stream.concat(Stream.die(new Error("secret database password in /srv/db"))))
      const url = yield* listen(HttpRouter.empty.pipe(
        HttpRouter.get("/failing", StreamingService.sse({ name: "failing", stream: failing, serialize: encodeNumber })),
        HttpRouter.get("/defect", StreamingService.sse({ name: "defect", stream: defect, serialize: encodeNumber }))
      ))
      const typed = readSse(yield* Effect.promise(() => get(`${url}/failing`)))
      yield* Effect.promise(() => typed.done)
      expect(typed.events.map((e) => e.event)).toEqual(["message", "message", "error"])
      expect(JSON.parse(typed.events[2]!.data)).toEqual({ _tag: "OutOfStock", message: "no more stock" })

      const hidden = readSse(yield* Effect.promise(() => get(`${url}/defect`)))
      yield* Effect.promise(() => hidden.done)
      expect(hidden.events.map((e) => e.event)).toEqual(["message", "error"])
      expect(JSON.parse(hidden.events[1]!.data)).toEqual({ _tag: "InternalError", message: "Internal server error" })
      expect(hidden.events[1]!.data).not.toContain("secret")
    }).pipe(quiet))

  it.scopedLive("a resumable stream sends id: per value, and starts with a comment so proxies flush", () =>
    Effect.gen(function*() {
      const url = yield* listen(HttpRouter.empty.pipe(
        HttpRouter.get(
          "/ids",
          StreamingService.sse({ name: "ids", stream: Stream.make(7, 8), serialize: encodeNumber, id: (n) => `cursor-${n}` })
        )
      ))
      const response = yield* Effect.promise(() => get(`${url}/ids`))
      const sse = readSse(response)
      yield* Effect.promise(() => sse.done)
      expect(sse.comments[0]).toBe("ok")
      expect(sse.events).toEqual([
        { event: "message", data: "{\"n\":7}", id: "cursor-7" },
        { event: "message", data: "{\"n\":8}", id: "cursor-8" },
        { event: "end", data: "{}", id: undefined }
      ])
    }).pipe(quiet))

  it.scopedLive("the heartbeat comes at the configured interval while no value flows", () =>
    Effect.gen(function*() {
      const url = yield* listen(
        HttpRouter.empty.pipe(HttpRouter.get("/idle", StreamingService.sse({ name: "idle", stream: Stream.never, serialize: encodeNumber })))
      ).pipe(Effect.provide(StreamingConfig.layer({ heartbeatInterval: "20 millis" })))
      const response = yield* Effect.promise(() => get(`${url}/idle`))
      const sse = readSse(response)
      yield* Effect.promise(() => eventually(() => sse.comments.filter((c) => c === "heartbeat").length >= 3))
      expect(sse.events).toEqual([])
      response.destroy()
    }).pipe(quiet))

  it.scoped("the heartbeat is every 30 seconds by default (TestClock)", () =>
    Effect.gen(function*() {
      const response = yield* StreamingService.sse({ name: "idle", stream: Stream.never, serialize: encodeNumber })
      if (response.body._tag !== "Stream") throw new Error("expected a streamed body")
      const frames: Array<string> = []
      const decoder = new TextDecoder()
      const fiber = yield* response.body.stream.pipe(
        Stream.runForEach((bytes) => Effect.sync(() => frames.push(decoder.decode(bytes)))),
        Effect.fork
      )
      yield* TestClock.adjust("29 seconds")
      expect(frames).toEqual([": ok\n\n"])
      yield* TestClock.adjust("1 second")
      expect(frames).toEqual([": ok\n\n", ": heartbeat\n\n"])
      yield* TestClock.adjust("60 seconds")
      expect(frames.filter((f) => f === ": heartbeat\n\n")).toHaveLength(3)
      yield* Fiber.interrupt(fiber)
    }).pipe(quiet))

  it.scopedLive("a client disconnect interrupts the producer, runs its finalizers, and the gauge returns to 0", () =>
    Effect.gen(function*() {
      const finalized = yield* Deferred.make<void>()
      const firstValue = yield* Deferred.make<void>()
      const ticking = Stream.iterate(0, (n) => n + 1).pipe(
        Stream.mapEffect((n) => Effect.as(Effect.sleep("1 millis"), n)),
        Stream.tap(() => Deferred.succeed(firstValue, undefined)),
        Stream.ensuring(Deferred.succeed(finalized, undefined))
      )
      const url = yield* listen(
        HttpRouter.empty.pipe(HttpRouter.get("/live", StreamingService.sse({ name: "live-disconnect", stream: ticking, serialize: encodeNumber })))
      ).pipe(Effect.provide(MetricsService.layer))
      const active = MetricsService.labelled(MetricsService.metrics.active, "subscription", "live-disconnect")
      const response = yield* Effect.promise(() => get(`${url}/live`))
      const sse = readSse(response)
      yield* Deferred.await(firstValue)
      yield* Effect.promise(() => eventually(() => sse.events.length > 0))
      expect((yield* Metric.value(active)).value).toBe(1)
      response.destroy()
      yield* Deferred.await(finalized)
      yield* Effect.promise(() => eventually(() => Effect.runSync(Metric.value(active)).value === 0))
    }).pipe(quiet))
})

describe("StreamingService.download", () => {
  const chunkSize = 16 * 1024
  const chunkCount = 4096 // 64 MiB
  const chunkOf = (i: number) => new Uint8Array(chunkSize).fill(i % 251)

  it.scopedLive("a slow reader holds the producer back, and every byte arrives in order", () =>
    Effect.gen(function*() {
      let producedChunks = 0
      const bytes = Stream.range(0, chunkCount - 1).pipe(
        Stream.rechunk(1),
        Stream.mapEffect((i) =>
          Effect.sync(() => {
            producedChunks++
            return chunkOf(i)
          })
        )
      )
      const expected = createHash("sha256")
      for (let i = 0; i < chunkCount; i++) expected.update(chunkOf(i))
      const url = yield* listen(HttpRouter.empty.pipe(
        HttpRouter.get(
          "/report",
          StreamingService.download({
            stream: bytes,
            filename: "report.bin",
            contentLength: chunkSize * chunkCount
          })
        )
      ))
      const response = yield* Effect.promise(() => get(`${url}/report`))
      response.pause()
      expect(response.headers["content-length"]).toBe(String(chunkSize * chunkCount))
      expect(response.headers["content-disposition"]).toBe(
        "attachment; filename=\"report.bin\"; filename*=UTF-8''report.bin"
      )
      const stalledAt = yield* Effect.promise(() => settled(() => producedChunks))
      // the policy buffer (256 chunks) plus what the socket buffers hold on loopback — not the whole file
      const socketAllowance = (16 * 1024 * 1024) / chunkSize
      expect(stalledAt).toBeLessThanOrEqual(BackpressurePolicy.capacities.download + socketAllowance)
      expect(stalledAt).toBeLessThan(chunkCount)

      const hash = createHash("sha256")
      let received = 0
      yield* Effect.promise(() =>
        new Promise<void>((resolve, reject) => {
          response.on("data", (chunk: Buffer) => {
            received += chunk.byteLength
            hash.update(chunk)
          })
          response.on("end", resolve)
          response.on("error", reject)
          response.resume()
        })
      )
      expect(received).toBe(chunkSize * chunkCount)
      expect(hash.digest("hex")).toBe(expected.digest("hex"))
      expect(producedChunks).toBe(chunkCount)
    }).pipe(quiet))

  it.scopedLive("a failure after the transfer started aborts the connection instead of ending the body", () =>
    Effect.gen(function*() {
      const bytes = Stream.make(new Uint8Array(1024)).pipe(Stream.concat(Stream.fail("disk gone")))
      const url = yield* listen(HttpRouter.empty.pipe(
        HttpRouter.get("/broken", StreamingService.download({ stream: bytes, filename: "broken.bin" }))
      ))
      const outcome = yield* Effect.promise(() =>
        fetch(`${url}/broken`).then((r) => r.arrayBuffer()).then(() => "complete", () => "aborted")
      )
      expect(outcome).toBe("aborted")
    }).pipe(quiet))
})

describe("StreamingService.export", () => {
  const rows: ReadonlyArray<Record<string, unknown>> = [
    { id: 1, name: "plain", note: "simple", amount: 1.5, when: new Date("2026-01-02T03:04:05.000Z") },
    { id: 2, name: "comma, separated", note: "she said \"hi\"", amount: -3, when: null },
    { id: 3, name: "line\nbreak", note: "carriage\r\nreturn", amount: 0, when: undefined },
    { id: 4, name: "ünïcødé ✓ 日本語 🎉", note: "", amount: 1e21, when: null },
    { id: 5, name: "=SUM(A1:A9)", note: "+1", amount: 2, when: null },
    { id: 6, name: "-2+3", note: "@cmd", amount: 3, when: null },
    { id: 7, name: "\tTab", note: "\rCR", amount: 4, when: null }
  ]
  const columns = ["id", "name", "note", "amount", "when"]
  const serialize = (row: Record<string, unknown>) => ({
    ...row,
    when: row["when"] instanceof Date ? row["when"].toISOString() : row["when"] ?? null
  })
  const expectedRows = rows.map(serialize)

  const serveExport = (format: "json" | "csv" | "ndjson") =>
    listen(HttpRouter.empty.pipe(
      HttpRouter.get(
        "/orders",
        StreamingService.export({ name: "orders", stream: Stream.fromIterable(rows), format, serialize, columns })
      )
    ))

  it.scopedLive("json is a streamed array that JSON.parse reads back", () =>
    Effect.gen(function*() {
      const url = yield* serveExport("json")
      const response = yield* Effect.promise(() => fetch(`${url}/orders`))
      expect(response.headers.get("content-type")).toBe("application/json")
      expect(response.headers.get("content-disposition")).toContain("filename=\"orders.json\"")
      expect(JSON.parse(yield* Effect.promise(() => response.text()))).toEqual(expectedRows)
    }).pipe(quiet))

  it.scopedLive("ndjson is one JSON document per line", () =>
    Effect.gen(function*() {
      const url = yield* serveExport("ndjson")
      const response = yield* Effect.promise(() => fetch(`${url}/orders`))
      expect(response.headers.get("content-type")).toBe("application/x-ndjson")
      const text = yield* Effect.promise(() => response.text())
      expect(text.endsWith("\n")).toBe(true)
      expect(text.trimEnd().split("\n").map((line) => JSON.parse(line))).toEqual(expectedRows)
    }).pipe(quiet))

  it.scopedLive("csv round-trips through csv-parse, with formula-looking cells neutralised by a leading quote", () =>
    Effect.gen(function*() {
      const url = yield* serveExport("csv")
      const response = yield* Effect.promise(() => fetch(`${url}/orders`))
      expect(response.headers.get("content-type")).toBe("text/csv; charset=utf-8")
      expect(response.headers.get("content-disposition")).toContain("filename=\"orders.csv\"")
      const text = yield* Effect.promise(() => response.text())
      expect(text.startsWith("id,name,note,amount,when\r\n")).toBe(true)
      const parsed = parseCsv(text, { columns: true, relax_quotes: false }) as Array<Record<string, string>>
      const formula = /^[=+\-@\t\r]/
      expect(parsed).toEqual(expectedRows.map((row) =>
        Object.fromEntries(columns.map((column) => {
          const value = (row as Record<string, unknown>)[column]
          if (value === null || value === undefined) return [column, ""]
          if (typeof value === "string") return [column, formula.test(value) ? `'${value}` : value]
          return [column, String(value)]
        }))
      ))
    }).pipe(quiet))

  it.scopedLive("an infinite export read slowly holds the producer to the policy capacity plus socket buffers", () =>
    Effect.gen(function*() {
      let produced = 0
      const infinite = Stream.iterate(0, (n) => n + 1).pipe(
        Stream.rechunk(16),
        Stream.mapChunksEffect((chunk) =>
          Effect.sync(() => {
            produced += Chunk.size(chunk)
            return chunk
          })
        ),
        Stream.map((n) => ({ n, text: "x".repeat(100) }))
      )
      const url = yield* listen(HttpRouter.empty.pipe(
        HttpRouter.get("/all", StreamingService.export({ name: "all", stream: infinite, format: "ndjson" }))
      ))
      const response = yield* Effect.promise(() => get(`${url}/all`))
      response.pause()
      const stalledAt = yield* Effect.promise(() => settled(() => produced))
      const rowBytes = JSON.stringify({ n: 1_000_000, text: "x".repeat(100) }).length + 1
      const socketAllowance = Math.ceil((16 * 1024 * 1024) / rowBytes)
      expect(stalledAt).toBeLessThanOrEqual(BackpressurePolicy.capacities.export + 16 + socketAllowance)
      response.destroy()
    }).pipe(quiet))
})

describe("cleanup", () => {
  it.scopedLive("every termination — end, failure, client disconnect — runs the cleanup and logs one line saying which", () =>
    Effect.gen(function*() {
      const lines: Array<Record<string, unknown>> = []
      const capture = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ annotations, message }) => {
          const text = Array.isArray(message) ? message.join(" ") : String(message)
          if (text === "stream closed") lines.push(Object.fromEntries(HashMap.toEntries(annotations)))
        })
      )
      const url = yield* listen(HttpRouter.empty.pipe(
        HttpRouter.get("/ends", StreamingService.sse({ name: "ends", stream: Stream.make(1, 2), serialize: encodeNumber })),
        HttpRouter.get("/fails", StreamingService.sse({ name: "fails", stream: Stream.fail({ _tag: "Boom", message: "boom" }), serialize: encodeNumber })),
        HttpRouter.get("/forever", StreamingService.sse({ name: "forever", stream: Stream.never, serialize: encodeNumber })),
        HttpRouter.get(
          "/export",
          StreamingService.export({ name: "rows", stream: Stream.make({ a: 1 }).pipe(Stream.concat(Stream.fail("disk"))), format: "ndjson" })
        )
      )).pipe(Effect.provide(capture))
      yield* Effect.promise(() => fetch(`${url}/ends`).then((r) => r.text()))
      yield* Effect.promise(() => fetch(`${url}/fails`).then((r) => r.text()))
      yield* Effect.promise(() => fetch(`${url}/export`).then((r) => r.text()).catch(() => "cut"))
      const forever = yield* Effect.promise(() => get(`${url}/forever`))
      forever.destroy()
      yield* Effect.promise(() => eventually(() => lines.length === 4))
      const byStream = Object.fromEntries(lines.map((line) => [line["stream"], line["termination"]]))
      expect(byStream).toEqual({ ends: "completed", fails: "failed", rows: "failed", forever: "interrupted" })
    }))
})
