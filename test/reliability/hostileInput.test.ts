/**
 * Hostile input against the demo contract over loopback: arbitrary paths,
 * query strings, headers and bodies (invalid JSON, wrong types, 100,000
 * nested arrays, invalid UTF-8, oversized). The transport answers only 4xx
 * with a JSON `{_tag, message}` body — never a 5xx — and stays up; an
 * oversized body is refused without being read whole (the bytes the
 * server's sockets read are counted).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fc from "fast-check"
import * as Net from "node:net"
import { DemoApi } from "../../examples/demo/contract.ts"
import { AuthenticationLive, DemoHandlers } from "../../examples/demo/handlers.ts"
import * as PriceFeed from "../../examples/demo/PriceFeed.ts"
import { quiet, serve, type Served } from "../soak/harness.ts"

const serveDemo = serve(
  DemoApi,
  Layer.mergeAll(DemoHandlers, AuthenticationLive).pipe(Layer.provide(PriceFeed.layer({ pricesPerSecond: 100 })))
)

const limit = 1024 * 1024

/** Reads an answer: a 2xx is fine (the input happened to be valid); anything else must be a 4xx JSON error. */
const expectNoServerError = async (response: Response, what: string) => {
  if (response.ok) {
    await response.body?.cancel()
    return
  }
  expect(response.status, what).toBeGreaterThanOrEqual(400)
  expect(response.status, what).toBeLessThan(500)
  expect(response.headers.get("content-type"), what).toBe("application/json")
  const body = (await response.json()) as { _tag?: unknown; message?: unknown }
  expect(typeof body._tag, what).toBe("string")
  expect(typeof body.message, what).toBe("string")
}

const expectAlive = async (served: Served) => {
  const response = await fetch(`${served.url}/whoAmI`, { headers: { authorization: "Bearer demo-token" } })
  expect(response.status).toBe(200)
  expect(await response.json()).toEqual({ name: "demo" })
}

const procedures = ["watchPrices", "downloadReport", "exportOrders", "getQuote", "whoAmI"] as const

/** JSON that is valid but of the wrong shape for every payload of the demo. */
const wrongTypes = fc.oneof(
  fc.jsonValue(),
  fc.record({ symbols: fc.jsonValue(), count: fc.jsonValue(), sizeMb: fc.jsonValue(), symbol: fc.jsonValue() }, {
    requiredKeys: []
  }),
  fc.constantFrom(
    { symbols: Array.from({ length: 51 }, () => "ACME") },
    { count: -1 },
    { count: 1.5 },
    { count: 1e300 },
    { sizeMb: "1" },
    { sizeMb: 1e9 },
    { symbols: [null] },
    { __proto__: { symbols: ["ACME"] } },
    { constructor: { prototype: { polluted: true } } }
  )
)

const deepArray = (depth: number) => "[".repeat(depth) + "]".repeat(depth)

const bodies = fc.oneof(
  wrongTypes.map((value) => JSON.stringify(value)),
  fc.string(),
  fc.constantFrom(
    "",
    "{",
    "{\"symbol\":",
    "nul",
    "\"unterminated",
    "{\"symbol\": \"ACME\"} trailing",
    "[1,2,]",
    "\u0000",
    "\ufeff{\"symbol\":\"ACME\"}",
    deepArray(100_000),
    `{"symbols":${deepArray(100_000)}}`,
    `{"symbol":${"{\"a\":".repeat(50_000)}1${"}".repeat(50_000)}}`
  )
).map((text) => new TextEncoder().encode(text))

const invalidUtf8 = fc.constantFrom(
  Uint8Array.from([0x7b, 0x22, 0x73, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), // {"s":"\xff\xfe"}
  Uint8Array.from([0xc3, 0x28]),
  Uint8Array.from([0xed, 0xa0, 0x80]), // a UTF-16 surrogate encoded in UTF-8
  Uint8Array.from([0xf8, 0x88, 0x80, 0x80, 0x80]),
  Uint8Array.from([0x22, 0xe2, 0x82, 0x22])
)

const segment = fc.oneof(
  fc.constantFrom(...procedures, "rpc", "%", "%E0%A4%A", "%00", "..", "%2e%2e", "%2F", "a%20b", "%F0%9F%92%A9"),
  fc.webSegment(),
  fc.string({ maxLength: 20 }).map(encodeURIComponent),
  fc.constant("x".repeat(1000))
)

const queryValue = fc.oneof(
  fc.string(),
  fc.fullUnicodeString(),
  wrongTypes.map((value) => JSON.stringify(value)),
  fc.constantFrom("%", "%E0%A4%A", "{", deepArray(300), "x".repeat(1_000))
)

const query = fc.record({
  payload: fc.option(queryValue, { nil: undefined }),
  format: fc.option(fc.oneof(fc.constantFrom("csv", "json", "ndjson", "xlsx", "", "CSV", "csv\u0000"), fc.string()), {
    nil: undefined
  }),
  lastEventId: fc.option(queryValue, { nil: undefined })
}).map((params) => {
  const parts: Array<string> = []
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined) parts.push(`${key}=${encodeURIComponent(value)}`)
  }
  return parts.join("&")
})

/** Header values fetch can send: printable Latin-1, no CR, LF or NUL. (Requests stay under Node's 16 KiB head limit; over it, see below.) */
const headerValue = fc.oneof(
  fc.stringOf(fc.char().filter((c) => c !== "\r" && c !== "\n" && c !== "\u0000")),
  fc.constantFrom("-1", "1e309", "99999999999999999999999999", "NaN", "0x10", " 42 ", "'; DROP TABLE", "x".repeat(2_000))
)

const headers = fc.record({
  "last-event-id": fc.option(headerValue, { nil: undefined }),
  authorization: fc.option(fc.oneof(headerValue, fc.constant("Bearer demo-token")), { nil: undefined }),
  "content-type": fc.option(
    fc.oneof(
      fc.constantFrom("application/json", "text/plain", "application/json; charset=latin1", "multipart/form-data", ""),
      headerValue
    ),
    { nil: undefined }
  ),
  traceparent: fc.option(fc.oneof(headerValue, fc.constant("00-zz-yy-01")), { nil: undefined }),
  origin: fc.option(headerValue, { nil: undefined })
}).map((record) => {
  const out: Record<string, string> = {}
  for (const [key, value] of Object.entries(record)) if (value !== undefined) out[key] = value
  return out
})

const request = fc.record({
  path: fc.array(segment, { minLength: 0, maxLength: 3 }).map((parts) => parts.join("/")),
  query,
  method: fc.constantFrom("GET", "POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"),
  headers,
  body: fc.option(fc.oneof(bodies, invalidUtf8), { nil: undefined })
})

describe("hostile input", () => {
  it.scopedLive("arbitrary paths, queries, headers, methods and bodies: only 2xx or 4xx JSON errors, and the server stays up", () =>
    Effect.gen(function*() {
      const served = yield* serveDemo
      let requests = 0
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(request, async ({ body, headers, method, path, query }) => {
            requests++
            const target = `${served.url}/${path}${query === "" ? "" : `?${query}`}`
            const withBody = body !== undefined && method !== "GET" && method !== "HEAD"
            const response = await fetch(target, { method, headers, ...(withBody ? { body } : {}) })
            if (method === "HEAD" || method === "OPTIONS") {
              await response.body?.cancel()
              expect(response.status).toBeLessThan(500)
              return
            }
            await expectNoServerError(response, `${method} ${target.slice(0, 200)}`)
          }),
          { numRuns: 400 }
        )
      )
      expect(requests).toBeGreaterThanOrEqual(400)
      yield* Effect.promise(() => expectAlive(served))
    }).pipe(quiet), 60_000)

  it.scopedLive("deep nesting, invalid UTF-8 and wrong types, one by one, on every procedure: 400 with a short JSON error", () =>
    Effect.gen(function*() {
      const served = yield* serveDemo
      const cases: Array<readonly [string, Uint8Array<ArrayBuffer> | string]> = [
        ["100,000 nested arrays", deepArray(100_000)],
        ["100,000 nested arrays in a field", `{"symbols":${deepArray(100_000)},"count":${deepArray(100_000)}}`],
        ["50,000 nested objects", `${"{\"a\":".repeat(50_000)}1${"}".repeat(50_000)}`],
        ["invalid UTF-8", Uint8Array.from([0x7b, 0x22, 0x73, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d])],
        ["a lone surrogate in UTF-8", Uint8Array.from([0x22, 0xed, 0xa0, 0x80, 0x22])],
        ["not JSON", "symbols=ACME"],
        ["wrong types", "{\"symbols\":\"ACME\",\"count\":\"10\",\"sizeMb\":true,\"symbol\":[]}"],
        ["a number too large", "{\"count\":1e400,\"sizeMb\":1e400}"]
      ]
      for (const procedure of procedures) {
        for (const [what, body] of cases) {
          const response = yield* Effect.promise(() =>
            fetch(`${served.url}/${procedure}`, {
              method: "POST",
              headers: { "content-type": "application/json", authorization: "Bearer demo-token" },
              body
            })
          )
          // whoAmI takes no payload: valid JSON of any shape is ignored.
          if (procedure !== "whoAmI") expect(response.status, `${procedure}: ${what}`).toBe(400)
          const text = yield* Effect.promise(() => response.clone().text())
          expect(text.length, `${procedure}: ${what}`).toBeLessThan(4_000)
          yield* Effect.promise(() => expectNoServerError(response, `${procedure}: ${what}`))
        }
      }
      yield* Effect.promise(() => expectAlive(served))
    }).pipe(quiet))

  it.scopedLive("a huge or malformed Last-Event-ID: a resumable subscription starts live, never a 5xx", () =>
    Effect.gen(function*() {
      const served = yield* serveDemo
      const payload = encodeURIComponent(JSON.stringify({ symbols: ["ACME"] }))
      for (const id of ["x".repeat(8_000), "9".repeat(5_000), "-1", "1e999", "18446744073709551616", "\u00ff\u00fe", " 1 "]) {
        for (const via of ["header", "query"] as const) {
          const url = `${served.url}/watchPrices?payload=${payload}${via === "query" ? `&lastEventId=${encodeURIComponent(id)}` : ""}`
          const response = yield* Effect.promise(() =>
            fetch(url, { headers: via === "header" ? { "last-event-id": id } : {} })
          )
          expect(response.status, `${via} ${id.slice(0, 20)}`).toBe(200)
          const reader = response.body!.getReader()
          const first = yield* Effect.promise(() => reader.read())
          expect(new TextDecoder().decode(first.value)).toMatch(/^(: ok|retry:)/)
          yield* Effect.promise(() => reader.cancel())
        }
      }
      yield* Effect.promise(() => expectAlive(served))
    }).pipe(quiet))

  it.scopedLive("headers over Node's limit get a 4xx from Node itself, and the server stays up", () =>
    Effect.gen(function*() {
      const served = yield* serveDemo
      const raw = (text: string) =>
        new Promise<string>((resolve) => {
          const socket = Net.connect({ host: "127.0.0.1", port: served.port })
          let answer = ""
          socket.on("data", (data: Buffer) => {
            answer += data.toString("latin1")
          })
          socket.on("error", () => undefined)
          socket.on("close", () => resolve(answer))
          socket.end(text)
        })
      const answers = yield* Effect.promise(() =>
        Promise.all([
          raw(`GET /rpc/watchPrices HTTP/1.1\r\nHost: x\r\nLast-Event-ID: ${"9".repeat(100_000)}\r\n\r\n`),
          raw(`GET /rpc/getQuote?payload=${"a".repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`),
          raw(`GET /rpc/getQuote HTTP/1.1\r\nHost: x\r\nX-Junk: a\u0000b\r\n\r\n`),
          raw(`GET /rpc/getQuote HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n`),
          raw(`GARBAGE\r\n\r\n`),
          raw(`POST /rpc/getQuote HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`)
        ])
      )
      for (const answer of answers) {
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1])
        expect(status, answer.slice(0, 100)).toBeGreaterThanOrEqual(400)
        expect(status, answer.slice(0, 100)).toBeLessThan(500)
      }
      yield* Effect.promise(() => expectAlive(served))
    }).pipe(quiet))
})

// ---------------------------------------------------------------------------
// Oversized bodies
// ---------------------------------------------------------------------------

interface Upload {
  /** The status line, or "" when the connection closed without an answer. */
  readonly status: string
  readonly body: string
  /** Bytes the client managed to send. */
  readonly sent: number
}

/** Sends a 64 MiB body over a raw socket (declared by Content-Length, or chunked) and reads what comes back. */
const upload = (port: number, mode: "length" | "chunked", total = 64 * 1024 * 1024): Promise<Upload> =>
  new Promise((resolve) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    const piece = Buffer.alloc(64 * 1024, 0x20)
    let sent = 0
    let answer = ""
    let finished = false
    const finish = () => {
      if (finished) return
      finished = true
      clearTimeout(timer)
      socket.destroy()
      const head = answer.split("\r\n\r\n")[0] ?? ""
      resolve({ status: head.split("\r\n")[0] ?? "", body: answer.slice(head.length + 4), sent })
    }
    // Bounded: a server that neither answers nor closes fails the test by its answer, not by hanging it.
    const timer = setTimeout(finish, 10_000)
    socket.on("data", (data: Buffer) => {
      answer += data.toString("utf8")
    })
    socket.on("error", () => undefined)
    socket.on("close", finish)
    socket.write(
      `POST /rpc/getQuote HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${
        mode === "length" ? `Content-Length: ${total}` : "Transfer-Encoding: chunked"
      }\r\n\r\n`
    )
    const frame = mode === "length"
      ? piece
      : Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from("\r\n")])
    const pump = () => {
      while (sent < total && !socket.destroyed) {
        sent += piece.length
        if (!socket.write(frame)) return void socket.once("drain", pump)
      }
      if (mode === "chunked" && !socket.destroyed) socket.write("0\r\n\r\n")
    }
    pump()
  })

describe("oversized bodies", () => {
  it.scopedLive("a declared Content-Length of 64 MiB: 413 JSON at once, and the server reads almost none of it", () =>
    Effect.gen(function*() {
      const served = yield* serveDemo
      const before = served.bytesRead()
      const answer = yield* Effect.promise(() => upload(served.port, "length"))
      expect(answer.status).toBe("HTTP/1.1 413 Payload Too Large")
      expect(JSON.parse(answer.body)).toMatchObject({ _tag: "PayloadTooLarge" })
      const read = served.bytesRead() - before
      // Not the 64 MiB: at most what was in flight when the 413 went out.
      expect(read).toBeLessThan(2 * limit)
      yield* Effect.promise(() => expectAlive(served))
    }).pipe(quiet))

  it.scopedLive("a chunked body of 64 MiB with no length: refused (413, or the connection closed) after a bounded read", () =>
    Effect.gen(function*() {
      const served = yield* serveDemo
      const before = served.bytesRead()
      const answer = yield* Effect.promise(() => upload(served.port, "chunked"))
      if (answer.status !== "") {
        expect(answer.status).toBe("HTTP/1.1 413 Payload Too Large")
        expect(JSON.parse(answer.body)).toMatchObject({ _tag: "PayloadTooLarge" })
      }
      const read = served.bytesRead() - before
      // The transport discards up to 4× the limit hoping to answer, then cuts the connection.
      expect(read).toBeLessThan(4 * limit + 2 * 1024 * 1024)
      expect(answer.sent).toBeGreaterThan(read)
      yield* Effect.promise(() => expectAlive(served))
    }).pipe(quiet))

  it.scopedLive("bodies just over the limit, declared or chunked, get a 413 JSON answer", () =>
    Effect.gen(function*() {
      const served = yield* serveDemo
      for (const mode of ["length", "chunked"] as const) {
        const answer = yield* Effect.promise(() => upload(served.port, mode, limit + 64 * 1024))
        expect(answer.status, mode).toBe("HTTP/1.1 413 Payload Too Large")
        expect(JSON.parse(answer.body), mode).toMatchObject({ _tag: "PayloadTooLarge" })
      }
      const response = yield* Effect.promise(() =>
        fetch(`${served.url}/getQuote?payload=${"x".repeat(limit + 1)}`).catch((error: unknown) => error)
      )
      // Node refuses a 1 MiB URL itself (431); either way, no 5xx.
      if (response instanceof Response) expect(response.status).toBeLessThan(500)
      yield* Effect.promise(() => expectAlive(served))
    }).pipe(quiet))
})
