/**
 * Past its capacity the server refuses new calls at once with 503, a
 * `Retry-After` and a JSON error, and counts what it shed.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Net from "node:net"
import { DemoApi } from "../examples/demo/contract.ts"
import { AuthenticationLive, DemoHandlers } from "../examples/demo/handlers.ts"
import * as PriceFeed from "../examples/demo/PriceFeed.ts"
import * as TurnQueue from "../src/core/TurnQueue.ts"
import * as HttpTransport from "../src/server/HttpTransport.ts"
import * as MetricsService from "../src/server/MetricsService.ts"
import * as Prometheus from "../src/server/Prometheus.ts"
import * as Topic from "../src/topic/Topic.ts"
import { costlySink } from "./support/costlySink.ts"
import { eventually, get, listen, quiet } from "./support/http.ts"

/** The demo's procedures with these limits, for the lifetime of the test's scope. */
const serve = (admission: HttpTransport.Options["admission"]) =>
  Effect.gen(function*() {
    const services = yield* Layer.build(
      Layer.mergeAll(DemoHandlers, AuthenticationLive, MetricsService.layer).pipe(
        Layer.provide(PriceFeed.layer({ pricesPerSecond: 10 }))
      )
    )
    return yield* Effect.flatMap(HttpTransport.toHttpApp(DemoApi, { admission }), listen).pipe(Effect.provide(services))
  })

const watch = (base: string) => `${base}/rpc/watchPrices?payload=${encodeURIComponent(JSON.stringify({ symbols: ["ACME"] }))}`
const download = (base: string) => `${base}/rpc/downloadReport?payload=${encodeURIComponent(JSON.stringify({ sizeMb: 64 }))}`

const shedCount = (reason: string) =>
  Effect.map(Metric.snapshot, (pairs) => {
    const text = Prometheus.render(pairs)
    return text.split("\n")
      .filter((line) => line.startsWith("stream_shed_total{") && line.includes(`reason="${reason}"`))
      .reduce((sum, line) => sum + Number(line.split(" ").pop()), 0)
  })

const expectShed = async (url: string) => {
  const response = await fetch(url)
  expect(response.status).toBe(503)
  expect(response.headers.get("retry-after")).toBe("1")
  const body = (await response.json()) as { _tag: string; message: string }
  expect(body._tag).toBe("ServiceUnavailable")
  return body.message
}

describe("admission control", () => {
  it.scopedLive("past the subscription limit a new subscription is refused with 503, until one closes", () =>
    Effect.gen(function*() {
      const url = yield* serve({ maxSubscriptions: 2, maxEventLoopDelay: Infinity, maxRequestDelay: Infinity })
      const before = yield* shedCount("subscriptions")
      const first = yield* Effect.acquireRelease(Effect.promise(() => get(watch(url))), (r) => Effect.sync(() => r.destroy()))
      const second = yield* Effect.acquireRelease(Effect.promise(() => get(watch(url))), (r) => Effect.sync(() => r.destroy()))
      expect([first.statusCode, second.statusCode]).toEqual([200, 200])
      expect(yield* Effect.promise(() => expectShed(watch(url)))).toContain("subscription")
      expect(yield* shedCount("subscriptions")).toBe(before + 1)
      // unary calls are not limited by the number of subscriptions
      const quote = yield* Effect.promise(() => fetch(`${url}/rpc/getQuote?payload=${encodeURIComponent(JSON.stringify({ symbol: "ACME" }))}`))
      expect(quote.status).not.toBe(503)
      first.destroy()
      yield* Effect.promise(() =>
        eventually(async () => {
          const response = await get(watch(url))
          response.destroy()
          return response.statusCode === 200
        }, 20_000, "the freed slot to be admitted")
      )
    }).pipe(quiet))

  it.scopedLive("past the transfer limit a new download is refused with 503", () =>
    Effect.gen(function*() {
      const url = yield* serve({ maxTransfers: 1, maxEventLoopDelay: Infinity, maxRequestDelay: Infinity })
      const stalled = yield* Effect.acquireRelease(Effect.promise(() => get(download(url))), (r) => Effect.sync(() => r.destroy()))
      stalled.pause()
      expect(stalled.statusCode).toBe(200)
      expect(yield* Effect.promise(() => expectShed(download(url)))).toContain("transfers")
    }).pipe(quiet))

  it.scopedLive("a transfer whose client leaves while its producer waits on the full buffer frees its slot", () =>
    Effect.gen(function*() {
      const url = yield* serve({ maxTransfers: 1, maxEventLoopDelay: Infinity, maxRequestDelay: Infinity })
      const first = yield* Effect.promise(() => get(download(url)))
      first.pause()
      expect(first.statusCode).toBe(200)
      // The client goes while the producer waits for room (the server forks it from an uninterruptible region).
      first.destroy()
      yield* Effect.promise(() =>
        eventually(async () => {
          const response = await get(download(url))
          response.destroy()
          return response.statusCode === 200
        }, 20_000, "the slot of the transfer whose client left")
      )
    }).pipe(quiet))

  it.scopedLive("one client cannot hold every transfer: past its own limit it is refused, while another client is served", () =>
    Effect.gen(function*() {
      // Clients told apart by a header here (on loopback every request has the same address).
      const url = yield* serve({
        maxTransfersPerClient: 2,
        maxEventLoopDelay: Infinity,
        maxRequestDelay: Infinity,
        clientKey: (request) => request.headers["x-client"]
      })
      const before = yield* shedCount("client_transfers")
      const as = (client: string) => ({ "x-client": client })
      const held = yield* Effect.forEach([1, 2], () =>
        Effect.acquireRelease(Effect.promise(() => get(download(url), as("greedy"))), (r) => Effect.sync(() => r.destroy())))
      for (const response of held) response.pause()
      expect(held.map((r) => r.statusCode)).toEqual([200, 200])
      const refused = yield* Effect.promise(() => fetch(download(url), { headers: as("greedy") }))
      expect(refused.status).toBe(503)
      expect(((yield* Effect.promise(() => refused.json())) as { message: string }).message).toContain("This client has too many")
      expect(yield* shedCount("client_transfers")).toBe(before + 1)
      // Another client, and a request not counted per client (no key), are served meanwhile.
      const other = yield* Effect.acquireRelease(Effect.promise(() => get(download(url), as("other"))), (r) => Effect.sync(() => r.destroy()))
      expect(other.statusCode).toBe(200)
      const anonymous = yield* Effect.acquireRelease(Effect.promise(() => get(download(url))), (r) => Effect.sync(() => r.destroy()))
      expect(anonymous.statusCode).toBe(200)
      // One of its transfers ended: the greedy client may start another.
      held[0]!.destroy()
      yield* Effect.promise(() =>
        eventually(async () => {
          const response = await get(download(url), as("greedy"))
          response.destroy()
          return response.statusCode === 200
        }, 20_000, "the greedy client's freed slot")
      )
    }).pipe(quiet))

  it.scopedLive("is decided before the body is read: a request past the limit is refused while its body is still arriving", () =>
    Effect.gen(function*() {
      const services = yield* Layer.build(
        Layer.mergeAll(DemoHandlers, AuthenticationLive).pipe(Layer.provide(PriceFeed.layer({ pricesPerSecond: 10 })))
      )
      const url = yield* Effect.flatMap(
        HttpTransport.toHttpApp(DemoApi, { admission: { maxTransfers: 1, maxEventLoopDelay: Infinity, maxRequestDelay: Infinity }, bodyTimeout: "10 minutes" }),
        listen
      ).pipe(Effect.provide(services))
      const held = yield* Effect.acquireRelease(Effect.promise(() => get(download(url))), (r) => Effect.sync(() => r.destroy()))
      held.pause()
      expect(held.statusCode).toBe(200)
      const { port } = new URL(url)
      // A POST whose body never arrives whole: the answer comes anyway, from admission.
      const answer = yield* Effect.promise(() =>
        new Promise<string>((resolve, reject) => {
          const socket = Net.connect(Number(port), "127.0.0.1", () => {
            socket.write(
              "POST /rpc/downloadReport HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"sizeMb\""
            )
          })
          let text = ""
          socket.on("data", (bytes) => {
            text += bytes.toString("utf8")
            if (text.includes("\r\n\r\n") && text.includes("}")) {
              socket.destroy()
              resolve(text)
            }
          })
          socket.on("error", reject)
        })
      )
      expect(answer.startsWith("HTTP/1.1 503")).toBe(true)
      expect(answer).toContain("too many transfers")
    }).pipe(quiet))

  it.scopedLive("a blocked event loop sheds new calls at once", () =>
    Effect.gen(function*() {
      const url = yield* serve({ maxEventLoopDelay: "100 millis" })
      const before = yield* shedCount("event_loop_delay")
      const message = yield* Effect.promise(async () => {
        // Block the loop well past the limit. The sampler's timer runs since the transport was made;
        // overdue once the loop is free again, it fires before the request below is read.
        const until = Date.now() + 600
        while (Date.now() < until) {
          // busy: the event loop is blocked
        }
        return expectShed(`${url}/rpc/getQuote?payload=${encodeURIComponent(JSON.stringify({ symbol: "ACME" }))}`)
      })
      expect(message).toContain("overloaded")
      expect(yield* shedCount("event_loop_delay")).toBe(before + 1)
    }).pipe(quiet))

  it.scopedLive("requests waiting for their turn past maxRequestDelay shed new calls", () =>
    Effect.gen(function*() {
      const url = yield* serve({ maxEventLoopDelay: Infinity, maxRequestDelay: "100 millis" })
      const before = yield* shedCount("request_delay")
      const message = yield* Effect.promise(async () => {
        // Two fibers handed back to the requests' queue: the first holds its turn for 300 ms, so
        // the second has waited that long when it runs.
        await new Promise<void>((resolve) => {
          TurnQueue.handBack(() => {
            const until = performance.now() + 300
            while (performance.now() < until) {
              // a fiber's work
            }
          })
          TurnQueue.handBack(resolve)
        })
        return expectShed(watch(url))
      })
      expect(message).toContain("overloaded")
      expect(yield* shedCount("request_delay")).toBe(before + 1)
    }).pipe(quiet))

  it.scopedLive("a loop kept busy by work it already has sheds new streams, not unary calls", () =>
    Effect.gen(function*() {
      const url = yield* serve({ maxEventLoopDelay: Infinity, maxRequestDelay: Infinity, maxEventLoopUtilization: 0.5 })
      const before = yield* shedCount("event_loop_utilization")
      const answers = yield* Effect.promise(async () => {
        // Busy in short turns for two sampling windows: the loop is never late, but never idle either.
        const until = Date.now() + 2_200
        while (Date.now() < until) {
          const turn = Date.now() + 20
          while (Date.now() < turn) {
            // busy
          }
          await new Promise((resolve) => setImmediate(resolve))
        }
        const message = await expectShed(watch(url))
        const quote = await fetch(`${url}/rpc/getQuote?payload=${encodeURIComponent(JSON.stringify({ symbol: "ACME" }))}`)
        return { message, quote: quote.status }
      })
      expect(answers.message).toContain("overloaded")
      expect(answers.quote).not.toBe(503)
      expect(yield* shedCount("event_loop_utilization")).toBe(before + 1)
    }).pipe(quiet))

  it.scopedLive("a process past its memory bound sheds new streams and transfers, not unary calls", () =>
    Effect.gen(function*() {
      // Any process is past one byte: the bound is what is tested, not a real shortage.
      const url = yield* serve({ maxEventLoopDelay: Infinity, maxRequestDelay: Infinity, maxMemory: 1 })
      const before = yield* shedCount("memory")
      const answers = yield* Effect.promise(async () => {
        const subscription = await expectShed(watch(url))
        const transfer = await expectShed(download(url))
        const quote = await fetch(`${url}/rpc/getQuote?payload=${encodeURIComponent(JSON.stringify({ symbol: "ACME" }))}`)
        return { subscription, transfer, quote: quote.status }
      })
      expect(answers.subscription).toContain("overloaded")
      expect(answers.transfer).toContain("overloaded")
      expect(answers.quote).not.toBe(503)
      expect(yield* shedCount("memory")).toBe(before + 2)
    }).pipe(quiet))

  it.scopedLive("a topic handing its values over late sheds new subscriptions, not other calls", () =>
    Effect.gen(function*() {
      const url = yield* serve({ maxEventLoopDelay: Infinity, maxRequestDelay: Infinity, maxFanOutDelay: "100 millis" })
      const before = yield* shedCount("fan_out_delay")
      // A topic in this process whose subscribers cost 2 ms a write: one hand-over to 100 of them
      // takes 200 ms of writes (in slices, the loop turning between them).
      const topic = yield* Topic.make<number>()
      const { sink: costly, written } = costlySink(2)
      for (let i = 0; i < 100; i++) topic.subscribe()[Topic.TypeId].attach(costly, String)
      topic.unsafePublish(1)
      const answers = yield* Effect.promise(async () => {
        await eventually(() => written() >= 100)
        await new Promise((resolve) => setImmediate(resolve)) // the cycle's end is recorded after its writes
        const message = await expectShed(watch(url))
        const quote = await fetch(`${url}/rpc/getQuote?payload=${encodeURIComponent(JSON.stringify({ symbol: "ACME" }))}`)
        const exported = await fetch(`${url}/rpc/exportOrders?payload=${encodeURIComponent(JSON.stringify({ count: 10 }))}&format=ndjson`)
        await exported.text()
        return { message, quote: quote.status, exported: exported.status }
      })
      expect(answers.message).toContain("overloaded")
      expect(answers.quote).not.toBe(503)
      expect(answers.exported).toBe(200)
      expect(yield* shedCount("fan_out_delay")).toBe(before + 1)
    }).pipe(quiet))
})
