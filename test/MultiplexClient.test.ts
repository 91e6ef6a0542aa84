/**
 * The client's multiplexed subscriptions (wire protocol v1.1) against a small
 * node:http server on a loopback port that speaks the protocol with the
 * frames of `Multiplex` and `Sse`, so that each test decides exactly what the
 * server writes and when: values at chosen points, cuts, a `404` on a change,
 * a `503` with `Retry-After`, a server without v1.1.
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import { it as effectIt } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { afterEach, describe, expect, it } from "vitest"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Client from "../client/Client.ts"
import * as Codec from "../client/Codec.ts"
import * as StreamClient from "../client/effect/StreamClient.ts"
import { DemoApi, Price } from "../examples/demo/contract.ts"
import { AuthenticationLive, DemoHandlers } from "../examples/demo/handlers.ts"
import * as PriceFeed from "../examples/demo/PriceFeed.ts"
import * as Multiplex from "../src/protocol/Multiplex.ts"
import * as Sse from "../src/protocol/Sse.ts"
import * as HttpTransport from "../src/server/HttpTransport.ts"
import { eventually } from "./support/eventually.ts"
import { listen, quiet } from "./support/http.ts"

// ---------------------------------------------------------------------------
// The procedures
// ---------------------------------------------------------------------------

interface Boom {
  readonly _tag: "Boom"
  readonly reason: string
}
const boom: Codec.Codec<Boom> = {
  decode: (u) => {
    if (typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === "Boom") return u as Boom
    throw new Codec.CodecError("a Boom", u)
  },
  encode: (b) => b
}
const ticks = Client.subscription("ticks", {
  payload: Codec.struct<{ readonly name: string }>({ name: Codec.field(Codec.string) }),
  success: Codec.number,
  failure: boom
})

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

interface MuxConnection {
  readonly id: string
  readonly response: Http.ServerResponse
  /** Subscriptions on it, by id: their entries. */
  readonly subs: Map<string, Multiplex.Entry>
  /** Writes `frame` for subscription `sub` (a `sub:` line when it changes). */
  readonly send: (sub: string, frame: string) => void
  /** Announces the connection (done at once unless `holdConnectionEvent`). */
  readonly announce: () => void
  closed: boolean
}

interface Canned {
  readonly status: number
  readonly headers?: Record<string, string>
  readonly body: string
}

const readBody = (request: Http.IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    let text = ""
    request.setEncoding("utf8")
    request.on("data", (chunk: string) => (text += chunk))
    request.on("end", () => resolve(text))
    request.on("error", reject)
  })

const servers: Array<Http.Server> = []
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})

const notFound = JSON.stringify({ _tag: "NotFound", message: "No procedure _mux" })

/** A v1.1 server whose every move a test controls. */
const muxServer = async (options: {
  /** What a subscription gets when opened or added (default: `subscribed`). */
  readonly onSubscribe?: (connection: MuxConnection, entry: Multiplex.Entry) => void
  readonly holdConnectionEvent?: boolean
} = {}) => {
  const opens: Array<Multiplex.Open> = []
  const changes: Array<{ readonly connection: string; readonly change: Multiplex.Change }> = []
  const connections: Array<MuxConnection> = []
  const v1: Array<{ readonly tag: string; readonly lastEventId: string | undefined; readonly response: Http.ServerResponse }> = []
  /** Answers of the next opens and changes, instead of applying them. */
  const openAnswers: Array<Canned> = []
  const changeAnswers: Array<Canned> = []
  let nextConnection = 0
  const onSubscribe = options.onSubscribe ?? ((connection, entry) => connection.send(entry.id, Multiplex.subscribed("exact")))

  const answer = (response: Http.ServerResponse, canned: Canned) => {
    response.writeHead(canned.status, { "content-type": "application/json", ...canned.headers })
    response.end(canned.body)
  }

  const server = Http.createServer((request, response) => {
    void (async () => {
      const body = await readBody(request)
      const path = new URL(request.url ?? "/", "http://localhost").pathname
      if (path === "/rpc/_mux") {
        opens.push(JSON.parse(body) as Multiplex.Open)
        const canned = openAnswers.shift()
        if (canned !== undefined) return answer(response, canned)
        response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
        response.write(": ok\n\n")
        let current: string | undefined
        const connection: MuxConnection = {
          id: `c${++nextConnection}`,
          response,
          subs: new Map(),
          send: (sub, frame) => {
            if (connection.closed) return
            response.write((current === sub ? "" : Multiplex.select(sub)) + frame)
            current = sub
          },
          announce: () => {
            response.write(Multiplex.connection(connection.id))
            for (const entry of (JSON.parse(body) as Multiplex.Open).subscriptions) {
              connection.subs.set(entry.id, entry)
              onSubscribe(connection, entry)
            }
          },
          closed: false
        }
        response.on("close", () => (connection.closed = true))
        connections.push(connection)
        if (options.holdConnectionEvent !== true) connection.announce()
        return
      }
      if (path.startsWith("/rpc/_mux/")) {
        const id = decodeURIComponent(path.slice("/rpc/_mux/".length))
        const change = JSON.parse(body) as Multiplex.Change
        changes.push({ connection: id, change })
        const canned = changeAnswers.shift()
        if (canned !== undefined) return answer(response, canned)
        const connection = connections.find((c) => c.id === id && !c.closed)
        if (connection === undefined) {
          return answer(response, { status: 404, body: JSON.stringify({ _tag: "NotFound", message: "Unknown connection" }) })
        }
        for (const removed of change.remove) connection.subs.delete(removed)
        for (const entry of change.add) {
          connection.subs.set(entry.id, entry)
          onSubscribe(connection, entry)
        }
        return answer(response, { status: 200, body: "{}" })
      }
      // v1: one subscription per request
      const lastEventId = request.headers["last-event-id"]
      v1.push({ tag: path.slice("/rpc/".length), lastEventId: typeof lastEventId === "string" ? lastEventId : undefined, response })
      response.writeHead(200, { "content-type": "text/event-stream" })
      response.write(": ok\n\n")
    })()
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  servers.push(server)
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/rpc`
  return { base, opens, changes, connections, v1, openAnswers, changeAnswers, last: () => connections[connections.length - 1]! }
}

const fast = { initialDelayMs: 1, maxDelayMs: 20 }

/** What a subscription reported through its callbacks. */
const recorder = () => {
  const data: Array<number> = []
  const dropped: Array<number | null> = []
  const states: Array<Client.ConnectionState> = []
  const errors: Array<unknown> = []
  return {
    data,
    dropped,
    states,
    errors,
    options: {
      reconnect: fast,
      onData: (value: number) => data.push(value),
      onDropped: (count: number | null) => dropped.push(count),
      onState: (state: Client.ConnectionState) => states.push(state),
      onError: (error: unknown) => errors.push(error)
    }
  }
}

const value = (n: number, id?: string) => Sse.event({ data: JSON.stringify(n), id })

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

describe("multiplexed subscriptions", () => {
  it("twelve subscriptions share one connection, each getting its own values, dropped, end and error", async () => {
    const server = await muxServer()
    const client = Client.make({ baseUrl: server.base, multiplex: true })
    const recorders = Array.from({ length: 12 }, () => recorder())
    const subscriptions = recorders.map((r, i) => client.subscribe(ticks, { name: `s${i}` }, r.options))
    await eventually(() => server.connections.length === 1 && subscriptions.every((s) => s.state === "open"))
    expect(server.opens).toHaveLength(1)
    const entries = server.opens[0]!.subscriptions
    expect(entries.map((e) => e.payload)).toEqual(recorders.map((_, i) => ({ name: `s${i}` })))
    expect(new Set(entries.map((e) => e.id)).size).toBe(12)

    const connection = server.last()
    // Interleaved: a value for every subscription, in two rounds.
    for (let round = 0; round < 2; round++) {
      entries.forEach((entry, i) => connection.send(entry.id, value(i * 100 + round, `${entry.id}-${round}`)))
    }
    connection.send(entries[3]!.id, Sse.dropped(7))
    connection.send(entries[4]!.id, Sse.end)
    connection.send(entries[5]!.id, Sse.error(JSON.stringify({ _tag: "Boom", reason: "five" })))
    connection.send(entries[6]!.id, Sse.error(JSON.stringify({ _tag: "InternalError", message: "Internal server error" })))
    await eventually(() => recorders.every((r) => r.data.length === 2) && subscriptions[6]!.state === "closed")

    recorders.forEach((r, i) => expect(r.data).toEqual([i * 100, i * 100 + 1]))
    expect(recorders[3]!.dropped).toEqual([7])
    expect(recorders.filter((r) => r.dropped.length > 0)).toHaveLength(1)
    expect(subscriptions[4]!.state).toBe("closed")
    expect(recorders[4]!.errors).toEqual([])
    expect(recorders[5]!.errors).toEqual([{ _tag: "Boom", reason: "five" }])
    const internal = recorders[6]!.errors[0]
    expect(internal).toBeInstanceOf(Client.ClientError)
    expect((internal as Client.ClientError).message).toContain("InternalError")
    expect(subscriptions[0]!.lastEventId).toBe(`${entries[0]!.id}-1`)
    // The others go on, on the same connection.
    expect(subscriptions.filter((s) => s.state === "open")).toHaveLength(9)
    expect(server.opens).toHaveLength(1)
    expect(server.v1).toHaveLength(0)
    for (const s of subscriptions) s.unsubscribe()
  })

  it("adds and removes subscriptions with change requests, batching a tick's, waiting for the connection's id", async () => {
    const server = await muxServer({ holdConnectionEvent: true })
    const client = Client.make({ baseUrl: server.base, multiplex: true })
    const a = recorder()
    const first = client.subscribe(ticks, { name: "a" }, a.options)
    await eventually(() => server.opens.length === 1)
    // Subscriptions racing the open: they wait for its `connection` event.
    const b = recorder()
    const c = recorder()
    const second = client.subscribe(ticks, { name: "b" }, b.options)
    const third = client.subscribe(ticks, { name: "c" }, c.options)
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(server.changes).toEqual([])
    server.last().announce()
    await eventually(() => server.changes.length === 1 && third.state === "open")
    const added = server.changes[0]!.change.add
    expect(server.changes[0]!.connection).toBe(server.last().id)
    expect(added.map((e) => e.payload)).toEqual([{ name: "b" }, { name: "c" }])
    expect(server.changes[0]!.change.remove).toEqual([])

    const connection = server.last()
    connection.send(added[0]!.id, value(1))
    await eventually(() => b.data.length === 1)

    second.unsubscribe()
    await eventually(() => server.changes.length === 2)
    expect(server.changes[1]!.change).toEqual({ add: [], remove: [added[0]!.id] })
    expect(connection.subs.has(added[0]!.id)).toBe(false)
    expect(second.state).toBe("closed")
    expect(first.state).toBe("open")
    expect(server.opens).toHaveLength(1)
    first.unsubscribe()
    third.unsubscribe()
  })

  it("a change answered 404 (another instance) reopens the connection with every subscription and its cursor", async () => {
    const server = await muxServer()
    const client = Client.make({ baseUrl: server.base, multiplex: true })
    const a = recorder()
    const first = client.subscribe(ticks, { name: "a" }, a.options)
    await eventually(() => first.state === "open")
    const idA = server.opens[0]!.subscriptions[0]!.id
    server.last().send(idA, value(1, "a-1") + value(2, "a-2"))
    await eventually(() => a.data.length === 2)

    server.changeAnswers.push({ status: 404, body: JSON.stringify({ _tag: "NotFound", message: "Unknown connection" }) })
    const b = recorder()
    const second = client.subscribe(ticks, { name: "b" }, b.options)
    await eventually(() => server.opens.length === 2 && second.state === "open" && first.state === "open")
    expect(server.changes).toHaveLength(1)
    const reopened = server.opens[1]!.subscriptions
    expect(reopened.map((e) => [e.payload, e.lastEventId])).toEqual([[{ name: "a" }, "a-2"], [{ name: "b" }, undefined]])
    expect(a.states).toEqual(["connecting", "open", "reconnecting", "open"])
    // The old connection is let go.
    await eventually(() => server.connections[0]!.closed)
    server.last().send(reopened[0]!.id, value(3, "a-3"))
    await eventually(() => a.data.length === 3)
    expect(a.data).toEqual([1, 2, 3])
    first.unsubscribe()
    second.unsubscribe()
  })

  it("a body cut reconnects with each subscription's own cursor", async () => {
    const server = await muxServer()
    const client = Client.make({ baseUrl: server.base, multiplex: true })
    const a = recorder()
    const b = recorder()
    const first = client.subscribe(ticks, { name: "a" }, a.options)
    const second = client.subscribe(ticks, { name: "b" }, { ...b.options, lastEventId: "b-0" })
    await eventually(() => first.state === "open" && second.state === "open")
    const [entryA, entryB] = server.opens[0]!.subscriptions
    expect(entryB!.lastEventId).toBe("b-0")
    const connection = server.last()
    connection.send(entryA!.id, value(1, "a-1"))
    connection.send(entryB!.id, value(10, "b-10"))
    connection.send(entryA!.id, value(2, "a-2"))
    await eventually(() => a.data.length === 2 && b.data.length === 1)
    connection.response.destroy()

    await eventually(() => server.opens.length === 2 && first.state === "open" && second.state === "open")
    expect(server.opens[1]!.subscriptions.map((e) => [e.id, e.lastEventId])).toEqual([
      [entryA!.id, "a-2"],
      [entryB!.id, "b-10"]
    ])
    expect(b.states).toEqual(["connecting", "open", "reconnecting", "open"])
    expect(a.errors).toEqual([])
    first.unsubscribe()
    second.unsubscribe()
  })

  it("a silent connection (no byte, not even a heartbeat) is reopened after heartbeatTimeoutMs", async () => {
    const server = await muxServer()
    const client = Client.make({ baseUrl: server.base, multiplex: true })
    const a = recorder()
    const first = client.subscribe(ticks, { name: "a" }, { ...a.options, heartbeatTimeoutMs: 200 })
    await eventually(() => server.opens.length === 2)
    expect(server.connections[0]!.closed).toBe(true)
    expect(a.states.slice(0, 3)).toEqual(["connecting", "open", "reconnecting"])
    first.unsubscribe()
  })

  it("a slow consumer loses its oldest values, reported with onDropped as the iterator reaches the gap, without holding the connection", async () => {
    const server = await muxServer()
    const client = Client.make({ baseUrl: server.base, multiplex: true })
    const dropped: Array<number | null> = []
    // Not iterated yet: values are queued for the iterator.
    const slow = client.subscribe(ticks, { name: "slow" }, { onDropped: (count) => dropped.push(count) })
    const quick = recorder()
    const other = client.subscribe(ticks, { name: "quick" }, quick.options)
    await eventually(() => slow.state === "open" && other.state === "open")
    const [entrySlow, entryQuick] = server.opens[0]!.subscriptions
    const connection = server.last()
    for (let i = 0; i < 100; i++) connection.send(entrySlow!.id, value(i, `s-${i}`))
    connection.send(entryQuick!.id, value(42))
    // The other subscription is not held up by the one not consumed (its value came after the 100).
    await eventually(() => quick.data.length === 1)
    // The loss is told as the iterator reaches it: right before the value that follows it.
    expect(dropped).toEqual([])
    const taken: Array<number> = []
    const droppedBefore: Array<number> = []
    for await (const n of slow) {
      droppedBefore.push(dropped.length)
      taken.push(n)
      if (taken.length === 64) break
    }
    expect(taken).toEqual(Array.from({ length: 64 }, (_, i) => i + 36))
    expect(dropped).toEqual([36])
    expect(droppedBefore.slice(0, 2)).toEqual([1, 1])
    other.unsubscribe()
  })

  it("unsubscribing the last subscription closes the connection; one replacing it in the same tick keeps it", async () => {
    const server = await muxServer()
    const client = Client.make({ baseUrl: server.base, multiplex: true })
    const first = client.subscribe(ticks, { name: "a" })
    await eventually(() => first.state === "open")
    first.unsubscribe()
    const second = client.subscribe(ticks, { name: "b" })
    await eventually(() => server.changes.length === 1 && second.state === "open")
    expect(server.changes[0]!.change.remove).toEqual([server.opens[0]!.subscriptions[0]!.id])
    expect(server.changes[0]!.change.add.map((e) => e.payload)).toEqual([{ name: "b" }])
    expect(server.last().closed).toBe(false)

    second.unsubscribe()
    await eventually(() => server.last().closed)
    expect(server.opens).toHaveLength(1)
    // The next subscription opens a new connection.
    const third = client.subscribe(ticks, { name: "c" })
    await eventually(() => third.state === "open")
    expect(server.opens).toHaveLength(2)
    expect(server.opens[1]!.subscriptions.map((e) => e.payload)).toEqual([{ name: "c" }])
    // Ids are never reused.
    const ids = [...server.opens.flatMap((o) => o.subscriptions), ...server.changes.flatMap((c) => c.change.add)].map((e) => e.id)
    expect(new Set(ids).size).toBe(ids.length)
    third.unsubscribe()
  })

  it("a server without v1.1 (404 NotFound for _mux) gets one request per subscription from then on", async () => {
    const server = await muxServer()
    server.openAnswers.push({ status: 404, body: notFound })
    const client = Client.make({ baseUrl: server.base, multiplex: true })
    const a = recorder()
    const b = recorder()
    const first = client.subscribe(ticks, { name: "a" }, { ...a.options, lastEventId: "a-5" })
    const second = client.subscribe(ticks, { name: "b" }, b.options)
    await eventually(() => server.v1.length === 2 && first.state === "open" && second.state === "open")
    expect(server.v1.map((r) => [r.tag, r.lastEventId])).toEqual([["ticks", "a-5"], ["ticks", undefined]])
    server.v1[0]!.response.write(value(6, "a-6"))
    await eventually(() => a.data.length === 1)
    expect(first.lastEventId).toBe("a-6")

    const third = client.subscribe(ticks, { name: "c" })
    await eventually(() => server.v1.length === 3 && third.state === "open")
    expect(server.opens).toHaveLength(1)
    for (const s of [first, second, third]) s.unsubscribe()
  })

  it("a refused connection (503 Retry-After) is retried, each failed attempt visible, and gives up after maxAttempts", async () => {
    const server = await muxServer()
    const unavailable = { status: 503, headers: { "retry-after": "0" }, body: JSON.stringify({ _tag: "ServiceUnavailable", message: "draining" }) }
    server.openAnswers.push(unavailable, unavailable)
    const client = Client.make({ baseUrl: server.base, multiplex: true })
    const a = recorder()
    const first = client.subscribe(ticks, { name: "a" }, a.options)
    await eventually(() => first.state === "open")
    expect(server.opens).toHaveLength(3)
    expect(a.states).toEqual(["connecting", "reconnecting", "open"])
    first.unsubscribe()
    await eventually(() => server.last().closed)

    for (let i = 0; i < 3; i++) server.openAnswers.push(unavailable)
    const b = recorder()
    const second = client.subscribe(ticks, { name: "b" }, { ...b.options, reconnect: { ...fast, maxAttempts: 2 } })
    await eventually(() => second.state === "closed")
    expect(b.states).toEqual(["connecting", "reconnecting", "closed"])
    expect(b.errors).toHaveLength(1)
    expect(b.errors[0]).toBeInstanceOf(Client.ClientError)
    expect((b.errors[0] as Client.ClientError).status).toBe(503)
  })

  it("a subscription not admitted (its own ServiceUnavailable) asks again under a new id; the others are not touched", async () => {
    let refusals = 1
    const server = await muxServer({
      onSubscribe: (connection, entry) => {
        if (entry.payload !== null && (entry.payload as { name?: unknown }).name === "refused" && refusals-- > 0) {
          connection.send(entry.id, Sse.error(JSON.stringify({ _tag: "ServiceUnavailable", message: "not admitted" })))
        } else {
          connection.send(entry.id, Multiplex.subscribed("none"))
        }
      }
    })
    const client = Client.make({ baseUrl: server.base, multiplex: true })
    const a = recorder()
    const r = recorder()
    const fine = client.subscribe(ticks, { name: "fine" }, a.options)
    const refused = client.subscribe(ticks, { name: "refused" }, r.options)
    await eventually(() => server.changes.length === 1 && refused.state === "open")
    const firstId = server.opens[0]!.subscriptions[1]!.id
    const again = server.changes[0]!.change.add
    expect(again.map((e) => e.payload)).toEqual([{ name: "refused" }])
    expect(again[0]!.id).not.toBe(firstId)
    expect(r.states).toEqual(["connecting", "reconnecting", "open"])
    expect(r.errors).toEqual([])
    expect(a.states).toEqual(["connecting", "open"])
    expect(server.opens).toHaveLength(1)
    fine.unsubscribe()
    refused.unsubscribe()
  })
})

describe("a multiplexing client against HttpTransport", () => {
  // Multiplexed when the server speaks v1.1, one request per subscription (the fallback) when it does not:
  // the same values either way.
  effectIt.scopedLive("eight watchPrices subscriptions, as Streams and through for await, each get their own prices", () =>
    Effect.gen(function*() {
      const handlers = Layer.mergeAll(DemoHandlers, AuthenticationLive).pipe(
        Layer.provide(PriceFeed.layer({ pricesPerSecond: 200 }))
      )
      const context = yield* Layer.build(handlers)
      const app = yield* HttpTransport.toHttpApp(DemoApi).pipe(Effect.provide(context))
      const base = `${yield* listen(app as HttpApp.Default<never, Scope.Scope>)}/rpc`
      const requests: Array<string> = []
      const client = StreamClient.make(DemoApi, {
        baseUrl: base,
        multiplex: true,
        fetch: (input, init) => {
          requests.push(new URL(String(input)).pathname)
          return globalThis.fetch(input, init)
        }
      })
      const symbols = ["ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI", "ACME", "GLOBEX", "INITECH"]
      const streams = symbols.slice(0, 4).map((symbol) =>
        client.subscribe("watchPrices", { symbols: [symbol] }).stream.pipe(Stream.take(5), Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
      )
      const iterated = symbols.slice(4).map((symbol) =>
        Effect.promise(async () => {
          const prices: Array<Price> = []
          for await (const price of client.subscribe("watchPrices", { symbols: [symbol] })) {
            prices.push(price)
            if (prices.length === 5) break
          }
          return prices
        })
      )
      const results = yield* Effect.all([...streams, ...iterated], { concurrency: "unbounded" })
      results.forEach((prices, i) => {
        expect(prices).toHaveLength(5)
        for (const price of prices) {
          expect(price).toBeInstanceOf(Price)
          expect(price.symbol).toBe(symbols[i])
        }
      })
      // One open; then either the connection's changes (v1.1) or one request each (a server without v1.1).
      expect(requests[0]).toBe("/rpc/_mux")
      expect(requests.filter((path) => path === "/rpc/_mux")).toHaveLength(1)
      const own = requests.filter((path) => path === "/rpc/watchPrices").length
      expect(own === 0 || own === symbols.length).toBe(true)
    }).pipe(quiet))
})
