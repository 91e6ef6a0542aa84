/**
 * Security over loopback: authentication denies before any handler runs,
 * errors never carry stack traces or internal messages, CSV formula
 * injection is neutralised, Content-Disposition cannot be injected into,
 * CORS is off by default and exact when configured, and clients refuse an
 * event larger than their maximum.
 */
import * as RpcClient from "@effect/rpc/RpcClient"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { parse as parseCsv } from "csv-parse/sync"
import * as fc from "fast-check"
import * as RpcProtocol from "../../client/effect/RpcProtocol.ts"
import * as StreamClient from "../../client/effect/StreamClient.ts"
import { Authentication } from "../../examples/demo/contract.ts"
import { AuthenticationLive } from "../../examples/demo/handlers.ts"
import * as ContentDisposition from "../../src/protocol/ContentDisposition.ts"
import * as HttpTransport from "../../src/server/HttpTransport.ts"
import * as Procedure from "../../src/contract/Procedure.ts"
import { Forbidden, Unauthorized } from "../../src/contract/ProtocolError.ts"
import { headEnd, rawPost, recordResponse } from "../support/faultProxy.ts"
import { quiet, serve } from "../soak/harness.ts"

const Row = Schema.Struct({ text: Schema.String })
const secret = "SECRET-internal-detail /srv/app/db.ts:42"

const collect = async <A>(iterable: AsyncIterable<A>): Promise<Array<A>> => {
  const out: Array<A> = []
  for await (const a of iterable) out.push(a)
  return out
}

const failureOf = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then((value) => {
    throw new Error(`expected a failure, got ${JSON.stringify(value)}`)
  }, (error: unknown) => error)

// ---------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------

describe("authentication middleware", () => {
  const guardedUnary = Procedure.unary("guardedUnary", { success: Schema.String }).middleware(Authentication)
  const guardedSubscription = Procedure.subscription("guardedSubscription", { success: Row }).middleware(Authentication)
  const guardedDownload = Procedure.download("guardedDownload", { filename: "x.bin" }).middleware(Authentication)
  const guardedExport = Procedure.export("guardedExport", { row: Row }).middleware(Authentication)
  const GuardedApi = RpcGroup.make(guardedUnary, guardedSubscription, guardedDownload, guardedExport)

  it.scopedLive("denies (401 without a token, 403 with a wrong one) before any handler of any kind runs", () =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      const handlers = GuardedApi.toLayer({
        guardedUnary: () => Effect.sync(() => (calls.push("unary"), "ok")),
        guardedSubscription: () => Stream.suspend(() => (calls.push("subscription"), Stream.make({ text: "ok" }))),
        guardedDownload: () => Stream.suspend(() => (calls.push("download"), Stream.make(new Uint8Array(1)))),
        guardedExport: () => Stream.suspend(() => (calls.push("export"), Stream.make({ text: "ok" })))
      })
      const served = yield* serve(GuardedApi, Layer.merge(handlers, AuthenticationLive))
      const tags = ["guardedUnary", "guardedSubscription", "guardedDownload", "guardedExport"]
      yield* Effect.promise(async () => {
        for (const tag of tags) {
          for (const [headers, status, name] of [
            [{}, 401, "Unauthorized"],
            [{ authorization: "Bearer stolen" }, 403, "Forbidden"],
            [{ authorization: "demo-token" }, 403, "Forbidden"],
            [{ authorization: "Bearer demo-token-2" }, 403, "Forbidden"],
            [{ authorization: "bearer demo-token" }, 403, "Forbidden"]
          ] as const) {
            for (const method of ["GET", "POST"]) {
              const response = await fetch(`${served.url}/${tag}`, { method, headers })
              expect(response.status, `${method} ${tag}`).toBe(status)
              expect(await response.json()).toMatchObject({ _tag: name })
            }
          }
        }
        // The typed clients see the middleware's typed errors.
        const anonymous = StreamClient.make(GuardedApi, { baseUrl: served.url })
        expect(await failureOf(anonymous.call("guardedUnary", undefined))).toBeInstanceOf(Unauthorized)
        expect(await failureOf(collect(anonymous.subscribe("guardedSubscription", undefined)))).toBeInstanceOf(Unauthorized)
        expect(await failureOf(anonymous.download("guardedDownload", undefined))).toBeInstanceOf(Unauthorized)
        const wrong = StreamClient.make(GuardedApi, { baseUrl: served.url, headers: { authorization: "Bearer x" } })
        expect(await failureOf(wrong.export("guardedExport", undefined))).toBeInstanceOf(Forbidden)
      })
      expect(calls).toEqual([])
      // With the right token every handler runs: the guard is what kept them from running.
      yield* Effect.promise(async () => {
        for (const tag of tags) {
          const response = await fetch(`${served.url}/${tag}`, { headers: { authorization: "Bearer demo-token" } })
          expect(response.status, tag).toBe(200)
          await response.arrayBuffer()
        }
      })
      expect([...calls].sort()).toEqual(["download", "export", "subscription", "unary"])
    }).pipe(quiet))
})

// ---------------------------------------------------------------------------
// Defects
// ---------------------------------------------------------------------------

describe("errors never expose internals", () => {
  const boom = () => new Error(secret)
  const unaryDefect = Procedure.unary("unaryDefect", { success: Schema.String })
  const unaryThrow = Procedure.unary("unaryThrow", { success: Schema.String })
  const subscriptionDefect = Procedure.subscription("subscriptionDefect", { success: Row })
  const subscriptionLateDefect = Procedure.subscription("subscriptionLateDefect", { success: Row })
  const downloadDefect = Procedure.download("downloadDefect", { filename: "x.bin" })
  const downloadLateDefect = Procedure.download("downloadLateDefect", { filename: "x.bin" })
  const exportDefect = Procedure.export("exportDefect", { row: Row, formats: ["ndjson", "json", "csv"] })
  const exportLateDefect = Procedure.export("exportLateDefect", { row: Row, columns: ["text"], formats: ["ndjson", "json", "csv"] })
  const badEncoding = Procedure.unary("badEncoding", { success: Schema.Number })
  const DefectApi = RpcGroup.make(
    unaryDefect,
    unaryThrow,
    subscriptionDefect,
    subscriptionLateDefect,
    downloadDefect,
    downloadLateDefect,
    exportDefect,
    exportLateDefect,
    badEncoding
  )
  const handlers = DefectApi.toLayer({
    unaryDefect: () => Effect.die(boom()),
    unaryThrow: () =>
      Effect.sync(() => {
        throw boom()
      }),
    subscriptionDefect: () => Stream.die(boom()),
    subscriptionLateDefect: () => Stream.concat(Stream.make({ text: "first" }), Stream.die(boom())),
    downloadDefect: () => Stream.die(boom()),
    downloadLateDefect: () => Stream.concat(Stream.make(new Uint8Array(100)), Stream.die(boom())),
    exportDefect: () => Stream.die(boom()),
    exportLateDefect: () => Stream.concat(Stream.make({ text: "first" }), Stream.die(boom())),
    badEncoding: () => Effect.succeed("not a number" as unknown as number)
  })

  const expectClean = (text: string, what: string) => {
    expect(text, what).not.toContain("SECRET")
    expect(text, what).not.toContain("/srv/app")
    expect(text, what).not.toMatch(/\bat .*:\d+:\d+/) // a stack frame
    expect(text, what).not.toContain("node_modules")
  }

  it.scopedLive("a defect before any byte is a 500 InternalError with a generic message, in every kind", () =>
    Effect.gen(function*() {
      const served = yield* serve(DefectApi, handlers)
      for (const tag of ["unaryDefect", "unaryThrow", "downloadDefect", "exportDefect", "badEncoding"]) {
        const response = yield* Effect.promise(() => fetch(`${served.url}/${tag}`, { method: "POST" }))
        const text = yield* Effect.promise(() => response.text())
        expect(response.status, tag).toBe(500)
        expect(JSON.parse(text), tag).toEqual({ _tag: "InternalError", message: "Internal server error" })
        expectClean(text, tag)
      }
    }).pipe(quiet))

  it.scopedLive("a defect in a subscription is an `error` event with a generic message, before or after values", () =>
    Effect.gen(function*() {
      const served = yield* serve(DefectApi, handlers)
      for (const tag of ["subscriptionDefect", "subscriptionLateDefect"]) {
        const text = yield* Effect.promise(() => fetch(`${served.url}/${tag}`).then((response) => response.text()))
        expect(text, tag).toContain("event: error\ndata: {\"_tag\":\"InternalError\",\"message\":\"Internal server error\"}")
        expectClean(text, tag)
      }
      const client = StreamClient.make(DefectApi, { baseUrl: served.url })
      const error = yield* Effect.promise(() => failureOf(collect(client.subscribe("subscriptionLateDefect", undefined))))
      expect(error).toBeInstanceOf(StreamClient.ClientError)
      expectClean(String((error as Error).message), "client error")
    }).pipe(quiet))

  it.scopedLive("a defect after a download or export started cuts the transfer: the client reports it, never a clean end", () =>
    Effect.gen(function*() {
      const served = yield* serve(DefectApi, handlers)
      const raw = yield* Effect.promise(() => recordResponse(served.port, rawPost("/rpc/downloadLateDefect", undefined)))
      expectClean(raw.toString("latin1"), "raw download")
      // chunked, and cut: no terminating chunk
      expect(raw.toString("latin1").endsWith("0\r\n\r\n")).toBe(false)
      const client = StreamClient.make(DefectApi, { baseUrl: served.url })
      // The connection is destroyed right after the first bytes: the client sees it while reading the
      // head (Transport) or the body (Truncated) — a typed error either way, never a complete transfer.
      const expectCut = (error: unknown, what: string) => {
        expect(error, what).toBeInstanceOf(StreamClient.ClientError)
        expect(["Transport", "Truncated"], what).toContain((error as StreamClient.ClientError).reason)
        expectClean((error as Error).message, what)
      }
      const downloadError = yield* Effect.promise(() =>
        failureOf(client.download("downloadLateDefect", undefined).then((download) => download.blob()))
      )
      expectCut(downloadError, "download")
      for (const format of ["ndjson", "json", "csv"] as const) {
        const rawExport = yield* Effect.promise(() =>
          recordResponse(served.port, rawPost(`/rpc/exportLateDefect?format=${format}`, undefined))
        )
        expectClean(rawExport.toString("latin1"), `raw export ${format}`)
        expect(rawExport.toString("latin1").endsWith("0\r\n\r\n"), format).toBe(false)
        const exportError = yield* Effect.promise(() =>
          failureOf(client.export("exportLateDefect", undefined, { format }).then(collect))
        )
        expectCut(exportError, `export ${format}`)
      }
      const context = yield* Layer.build(RpcProtocol.layer(DefectApi, { url: served.url }))
      const rpc = yield* RpcClient.make(DefectApi).pipe(Effect.provide(context))
      for (const stream of [rpc.downloadLateDefect(), rpc.exportLateDefect()]) {
        const exit = yield* Effect.exit(Stream.runDrain(stream as Stream.Stream<unknown, RpcClientError>))
        expect(Exit.isFailure(exit)).toBe(true)
        expectClean(JSON.stringify(exit), "RpcClient")
      }
    }).pipe(quiet))
})

// ---------------------------------------------------------------------------
// CSV formula injection
// ---------------------------------------------------------------------------

describe("CSV formula injection", () => {
  const Cell = Schema.Struct({ a: Schema.String, b: Schema.String })
  const echoCells = Procedure.export("echoCells", {
    payload: { rows: Schema.Array(Cell) },
    row: Cell,
    columns: ["a", "b"],
    formats: ["csv"]
  })
  const CsvApi = RpcGroup.make(echoCells)

  it.scopedLive("no cell of an export starts with = + - @ tab or CR; the typed client restores the text exactly", () =>
    Effect.gen(function*() {
      const served = yield* serve(CsvApi, CsvApi.toLayer({ echoCells: ({ rows }) => Stream.fromIterable(rows) }))
      const client = StreamClient.make(CsvApi, { baseUrl: served.url })
      const dangerous = fc.oneof(
        fc.tuple(fc.constantFrom("=", "+", "-", "@", "\t", "\r", "'=", "''+", "\"=", " ="), fc.string()).map(([a, b]) => a + b),
        fc.constantFrom("=HYPERLINK(\"http://x\",\"y\")", "=cmd|'/C calc'!A0", "@SUM(1+1)", "+1+1", "-1+1", "=1\n=2"),
        fc.string()
      )
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(fc.array(fc.record({ a: dangerous, b: dangerous }), { minLength: 1, maxLength: 8 }), async (rows) => {
            const response = await fetch(`${served.url}/echoCells?format=csv`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ rows })
            })
            const text = await response.text()
            const records = parseCsv(text, { relax_column_count: false }) as Array<Array<string>>
            expect(records[0]).toEqual(["a", "b"])
            expect(records).toHaveLength(rows.length + 1)
            for (const record of records.slice(1)) {
              for (const cell of record) expect(cell, JSON.stringify(cell)).not.toMatch(/^[=+\-@\t\r]/)
            }
            expect(await collect(await client.export("echoCells", { rows }))).toEqual(rows)
          }),
          { numRuns: 150 }
        )
      )
    }).pipe(quiet))
})

// ---------------------------------------------------------------------------
// Content-Disposition
// ---------------------------------------------------------------------------

describe("Content-Disposition injection", () => {
  const named = Procedure.download("named", {
    payload: { name: Schema.String },
    filename: ({ name }) => name
  })
  const NamedApi = RpcGroup.make(named)

  it.scopedLive("any file name gives exactly one disposition header with the sanitized name, and no extra header line", () =>
    Effect.gen(function*() {
      const served = yield* serve(NamedApi, NamedApi.toLayer({ named: () => Stream.make(new Uint8Array([1])) }))
      const baseline = yield* Effect.promise(() => recordResponse(served.port, rawPost("/rpc/named", JSON.stringify({ name: "a" }))))
      const headerNames = (raw: Buffer) =>
        raw.subarray(0, headEnd(raw)).toString("latin1").split("\r\n").slice(1).filter((line) => line !== "").map((line) =>
          line.slice(0, line.indexOf(":")).toLowerCase()
        )
      const expectedNames = headerNames(baseline)
      const hostile = fc.oneof(
        fc.fullUnicodeString(),
        fc.stringOf(fc.constantFrom("a", "\r", "\n", "\r\n", "\"", ";", "\\", "/", "'", "%", "=", " ", "\u0000", "é", "✓", "\u2028", "😀", "*", "..")),
        fc.constantFrom(
          "x.bin\r\nSet-Cookie: session=evil",
          "x.bin\"; filename=\"evil.exe",
          "evil.exe\"; attachment",
          "../../etc/passwd",
          "a;b;c",
          "filename*=UTF-8''evil.exe",
          "\r\n\r\n<html>",
          ""
        )
      )
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(hostile, async (name) => {
            const raw = await recordResponse(served.port, rawPost("/rpc/named", JSON.stringify({ name })))
            const head = raw.subarray(0, headEnd(raw)).toString("latin1")
            expect(head.startsWith("HTTP/1.1 200 OK\r\n"), head).toBe(true)
            // The same header lines as for a plain name: nothing added, nothing split.
            expect(headerNames(raw)).toEqual(expectedNames)
            const lines = head.split("\r\n").filter((line) => /^content-disposition:/i.test(line))
            expect(lines).toHaveLength(1)
            const value = lines[0]!.slice(lines[0]!.indexOf(":") + 1).trim()
            // One disposition, then exactly the two filename parameters.
            const match = /^attachment; filename="([\x20-\x21\x23-\x5b\x5d-\x7e]*)"; filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]*)$/.exec(value)
            expect(match, value).not.toBeNull()
            expect(decodeURIComponent(match![2]!)).toBe(ContentDisposition.sanitize(name))
            expect(ContentDisposition.filenameOf(value)).toBe(ContentDisposition.sanitize(name))
            expect(ContentDisposition.sanitize(name)).not.toMatch(/[\u0000-\u001f\u007f"\\/]/)
          }),
          { numRuns: 200 }
        )
      )
    }).pipe(quiet))
})

// ---------------------------------------------------------------------------
// CORS
// ---------------------------------------------------------------------------

describe("CORS", () => {
  const ping = Procedure.unary("ping", { success: Schema.String })
  const PingApi = RpcGroup.make(ping)
  const handlers = PingApi.toLayer({ ping: () => Effect.succeed("pong") })
  const origin = fc.oneof(
    fc.webUrl().map((url) => new URL(url).origin),
    fc.constantFrom("null", "https://app.example", "https://app.example.evil", "http://app.example", "https://APP.example")
  )
  const ask = async (url: string, origin: string, preflight: boolean) => {
    const response = await fetch(`${url}/ping`, {
      method: preflight ? "OPTIONS" : "GET",
      headers: preflight ? { origin, "access-control-request-method": "POST" } : { origin }
    })
    await response.arrayBuffer()
    return response
  }

  it.scopedLive("by default no origin, not even a preflight, gets a CORS header", () =>
    Effect.gen(function*() {
      const served = yield* serve(PingApi, handlers)
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(origin, fc.boolean(), async (origin, preflight) => {
            const response = await ask(served.url, origin, preflight)
            for (const [name] of response.headers) expect(name).not.toMatch(/^access-control-/)
          }),
          { numRuns: 50 }
        )
      )
    }).pipe(quiet))

  it.scopedLive("with a list, exactly the listed origins are echoed (never another, never *), with credentials only if asked", () =>
    Effect.gen(function*() {
      const allowed = ["https://app.example", "http://localhost:5173"]
      const served = yield* serve(PingApi, handlers, { cors: { origins: allowed, credentials: true } })
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(fc.oneof(origin, fc.constantFrom(...allowed)), fc.boolean(), async (origin, preflight) => {
            const response = await ask(served.url, origin, preflight)
            const echoed = response.headers.get("access-control-allow-origin")
            if (allowed.includes(origin)) {
              expect(echoed).toBe(origin)
              expect(response.headers.get("access-control-allow-credentials")).toBe("true")
              expect(response.headers.get("vary")).toBe("Origin")
            } else {
              expect(echoed).toBe(null)
              expect(response.headers.get("access-control-allow-credentials")).toBe(null)
            }
          }),
          { numRuns: 80 }
        )
      )
      const served2 = yield* serve(PingApi, handlers, { cors: { origins: "*" } })
      const any = yield* Effect.promise(() => ask(served2.url, "https://anyone.example", false))
      expect(any.headers.get("access-control-allow-origin")).toBe("*")
      expect(any.headers.get("access-control-allow-credentials")).toBe(null)
      const refused = yield* Effect.exit(
        HttpTransport.toHttpApp(PingApi, { cors: { origins: "*", credentials: true } }).pipe(Effect.provide(handlers))
      )
      expect(Exit.isFailure(refused)).toBe(true)
    }).pipe(quiet))
})

// ---------------------------------------------------------------------------
// Maximum event size
// ---------------------------------------------------------------------------

describe("client maximum event size", () => {
  const Big = Schema.Struct({ text: Schema.String })
  const huge = Procedure.subscription("huge", { payload: { size: Schema.Int }, success: Big })
  const HugeApi = RpcGroup.make(huge)

  it.scopedLive("a server sending an event over the limit: StreamClient and RpcClient fail with a typed error, no reconnect", () =>
    Effect.gen(function*() {
      let connections = 0
      const served = yield* serve(
        HugeApi,
        HugeApi.toLayer({
          huge: ({ size }) =>
            Stream.suspend(() => {
              connections++
              return Stream.make({ text: "small" }, { text: "x".repeat(size) })
            })
        })
      )
      const client = StreamClient.make(HugeApi, { baseUrl: served.url })
      const values: Array<number> = []
      for (const [size, maxEventSize] of [[2 * 1024 * 1024, undefined], [5_000, 1_000]] as const) {
        connections = 0
        values.length = 0
        const error = yield* Effect.promise(() =>
          failureOf(collect(client.subscribe("huge", { size }, {
            ...(maxEventSize === undefined ? {} : { maxEventSize }),
            reconnect: { initialDelayMs: 1 },
            onData: (value) => values.push(value.text.length)
          })))
        )
        expect(error).toBeInstanceOf(StreamClient.ClientError)
        expect((error as StreamClient.ClientError).reason).toBe("EventTooLarge")
        expect(values).toEqual([5])
        expect(connections).toBe(1)
      }
      const context = yield* Layer.build(RpcProtocol.layer(HugeApi, { url: served.url, maxEventSize: 1_000 }))
      const rpc = yield* RpcClient.make(HugeApi).pipe(Effect.provide(context))
      const exit = yield* Effect.exit(Stream.runCollect(rpc.huge({ size: 5_000 })))
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) expect(JSON.stringify(exit.cause)).toContain("maximum size")
    }).pipe(quiet))
})
