/**
 * The Redis-backed topic against a real Redis (127.0.0.1:6379, and servers
 * of the tests' own on other ports for restarts and command counts). Several
 * `RedisTopic`s on one stream in this process stand for several instances:
 * each has its own connections, reader and ring. Without a Redis these skip
 * with one line; with `CI` set they fail.
 */
import { createClient } from "@redis/client"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Net from "node:net"
import { afterAll, describe, expect, it } from "vitest"
import * as RedisTopic from "../src/topic/RedisTopic.ts"
import * as Topic from "../src/topic/Topic.ts"
import { sseCollector } from "./support/http.ts"
import { defaultRedisUrl, eventually, ownRedis, redisTestsEnabled } from "./support/redis.ts"

const enabled = await redisTestsEnabled()

const Tick = Schema.Struct({ n: Schema.Number, key: Schema.String })
type Tick = typeof Tick.Type
const encodeTick = (tick: Tick) => JSON.stringify(tick)
const utf8 = new TextEncoder()

const ticks = (from: number, count: number, keys: ReadonlyArray<string> = ["a", "b"]): Array<Tick> =>
  Array.from({ length: count }, (_, i) => ({ n: from + i, key: keys[(from + i) % keys.length]! }))

/** A fast-path subscriber (what the transport attaches a socket as). */
const recorder = () => {
  const sse = sseCollector()
  const state = { ended: false }
  const sink: Topic.Sink = {
    write: (text) => {
      sse.feed(utf8.encode(text))
      return true
    },
    end: () => {
      state.ended = true
    }
  }
  const messages = () => sse.events.filter((e) => e.event === "message")
  return {
    sink,
    state,
    events: sse.events,
    messages,
    values: () => messages().map((e) => (JSON.parse(e.data) as Tick).n),
    ids: () => messages().map((e) => e.id),
    dropped: () =>
      sse.events.filter((e) => e.event === "dropped").map((e) => (JSON.parse(e.data) as { count: number | null }).count)
  }
}

const offsetOf = (id: string | undefined) => Number(id!.split("-")[1])

const attach = (topic: Topic.Topic<Tick, unknown>, options?: Topic.SubscribeOptions) => {
  const r = recorder()
  const attachment = topic.subscribe(options)[Topic.TypeId].attach(r.sink, encodeTick)
  return { ...r, attachment }
}

/** A TCP proxy to 127.0.0.1:6379 that can be taken down (connections cut, new ones refused) and up again. */
const partition = () =>
  new Promise<{ url: string; down: () => void; up: () => void; close: () => void }>((resolve) => {
    const sockets = new Set<Net.Socket>()
    let blocked = false
    const server = Net.createServer((client) => {
      if (blocked) return client.destroy()
      const upstream = Net.connect({ host: "127.0.0.1", port: 6379 })
      for (const socket of [client, upstream]) {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        socket.on("error", () => {
          client.destroy()
          upstream.destroy()
        })
      }
      client.pipe(upstream)
      upstream.pipe(client)
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      const cutAll = () => {
        for (const socket of sockets) socket.destroy()
      }
      resolve({
        url: `redis://127.0.0.1:${port}`,
        down: () => {
          blocked = true
          cutAll()
        },
        up: () => {
          blocked = false
        },
        close: () => {
          cutAll()
          server.close()
        }
      })
    })
  })

const scopes: Array<Scope.CloseableScope> = []
const streamKeys: Array<string> = []
afterAll(async () => {
  for (const scope of scopes.splice(0)) await Effect.runPromise(Scope.close(scope, Exit.void))
  if (!enabled || streamKeys.length === 0) return
  const client = createClient({ url: defaultRedisUrl })
  client.on("error", () => {})
  await client.connect()
  for (const key of streamKeys) await client.sendCommand(["DEL", key, `${key}:meta`])
  client.destroy()
})

const newStream = () => {
  const key = `test:redis-topic:${Math.random().toString(36).slice(2)}`
  streamKeys.push(key)
  return key
}

/** A topic in a scope of its own ("an instance"), closed by `close` or after the file. */
const instance = async (options: Partial<RedisTopic.Options<Tick, Tick>> & { readonly stream: string }) => {
  const scope = Effect.runSync(Scope.make())
  scopes.push(scope)
  const topic = await Effect.runPromise(
    RedisTopic.make<Tick, Tick>({
      redis: defaultRedisUrl,
      codec: Tick,
      key: (tick) => tick.key,
      replay: { count: 1_000 },
      ...options
    }).pipe(Scope.extend(scope))
  )
  return { topic, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

const publish = (topic: RedisTopic.RedisTopic<Tick>, values: ReadonlyArray<Tick>) =>
  Effect.runPromise(topic.publishAll(values))

describe.skipIf(!enabled)("RedisTopic on a real Redis", () => {
  it("two instances on one stream: a value published on either reaches the subscribers of both, same ids, same order", async () => {
    const stream = newStream()
    const a = await instance({ stream })
    const b = await instance({ stream })
    const onA = attach(a.topic)
    const onB = attach(b.topic)
    const onBKeyed = attach(b.topic, { keys: ["a"] })
    for (let i = 0; i < 10; i++) {
      await publish(a.topic, ticks(20 * i, 10))
      await publish(b.topic, ticks(20 * i + 10, 10))
    }
    await eventually(async () => onA.values().length === 200 && onB.values().length === 200, 20_000, "200 values on both")
    expect(onA.messages()).toEqual(onB.messages())
    expect([...onA.values()].sort((x, y) => x - y)).toEqual(ticks(0, 200).map((t) => t.n))
    // ids are the offsets allocated by Redis, consecutive, in order
    const offsets = onA.ids().map((id) => Number(id!.split("-")[1]))
    expect(offsets).toEqual(offsets.map((_, i) => offsets[0]! + i))
    expect(onA.ids()[0]!.split("-")[0]).toBe(a.topic.epoch())
    expect(a.topic.epoch()).toBe(b.topic.epoch())
    await eventually(async () => onBKeyed.values().length === 100, 20_000, "keyed values")
    expect(onBKeyed.messages()).toEqual(onA.messages().filter((e) => (JSON.parse(e.data) as Tick).key === "a"))
    expect(onA.dropped()).toEqual([])
    expect(a.topic.latestCursor()).toBe(b.topic.latestCursor())
  })

  it("a cursor of this stream far ahead of what any instance has seen is a gap of unknown size, then live values (not silence)", async () => {
    const stream = newStream()
    const a = await instance({ stream })
    await publish(a.topic, ticks(0, 5))
    await eventually(async () => a.topic.latestCursor() !== undefined, 20_000, "the first values read back")
    const forged = `${a.topic.epoch()}-9999999999999999`
    const resumed = attach(a.topic, { after: forged })
    expect(resumed.dropped()).toEqual([null])
    await publish(a.topic, ticks(5, 3))
    await eventually(async () => resumed.values().length === 3, 20_000, "live values after the gap")
    expect(resumed.values()).toEqual([5, 6, 7])
  })

  it("a client cut from instance A resumes on B (running) and on C (started after): nothing lost, nothing repeated", async () => {
    const stream = newStream()
    const a = await instance({ stream })
    const b = await instance({ stream })
    const witness = attach(a.topic)
    const client = attach(a.topic)
    await publish(a.topic, ticks(0, 100))
    await eventually(async () => client.values().length >= 40, 20_000, "the client's first values")
    client.attachment.detach()
    const cursor = client.ids()[client.ids().length - 1]!
    const seen = client.messages().length
    await publish(b.topic, ticks(100, 100))
    await eventually(async () => witness.values().length === 200, 20_000, "the witness's values")
    // C has read nothing of it: its ring is empty, the history comes from Redis (XRANGE)
    const c = await instance({ stream })
    const onB = attach(b.topic, { after: cursor })
    const onC = attach(c.topic, { after: cursor })
    const onCKeyed = attach(c.topic, { keys: ["b"], after: cursor })
    // the Stream view (in-process consumers, StreamingService.sse) resumes the same way
    const viaStream = Effect.runPromise(
      Stream.runCollect(Stream.take(c.topic.subscribe({ after: cursor }).entries, 220 - seen))
    )
    await publish(c.topic, ticks(200, 20))
    await eventually(async () => witness.values().length === 220, 20_000, "the witness's last values")
    const after = witness.messages().slice(seen)
    await eventually(
      async () => onB.messages().length >= after.length && onC.messages().length >= after.length,
      20_000,
      "the resumed clients"
    )
    expect(onB.messages()).toEqual(after)
    expect(onC.messages()).toEqual(after)
    expect(onB.dropped()).toEqual([])
    expect(onC.dropped()).toEqual([])
    const keyedAfter = after.filter((e) => (JSON.parse(e.data) as Tick).key === "b")
    await eventually(async () => onCKeyed.messages().length >= keyedAfter.length, 20_000, "the keyed resume")
    expect(onCKeyed.messages()).toEqual(keyedAfter)
    expect(onCKeyed.dropped()).toEqual([])
    const entries = Chunk.toReadonlyArray(await viaStream)
    expect(entries.map((e) => e.cursor)).toEqual(after.map((e) => e.id))
    expect(entries.map((e) => e.value.n)).toEqual(after.map((e) => (JSON.parse(e.data) as Tick).n))
  })

  it("a cursor Redis no longer holds (trimmed) is a gap with its exact count, then the rest, for a subscriber of every key", async () => {
    const stream = newStream()
    const a = await instance({ stream, retain: 100 })
    const witness = attach(a.topic)
    // batch by batch: Redis keeps at least 100 (MAXLEN ~), so the witness's reader never falls behind what it keeps
    for (let i = 0; i < 10; i++) {
      await publish(a.topic, ticks(100 * i, 100))
      await eventually(async () => witness.values().length === 100 * (i + 1), 20_000, "the witness's values")
    }
    expect(witness.dropped()).toEqual([])
    const cursor = witness.ids()[4]!
    // a fresh instance holds none of it: Redis keeps about 100 (MAXLEN ~), the rest is trimmed
    const c = await instance({ stream, retain: 100 })
    const onC = attach(c.topic, { after: cursor })
    const onCKeyed = attach(c.topic, { keys: ["a"], after: cursor })
    await eventually(async () => onC.values().length > 0 && onCKeyed.values().length > 0, 20_000, "the resume")
    const first = onC.values()[0]!
    expect(first).toBeGreaterThan(5)
    expect(onC.events[0]!.event).toBe("dropped")
    expect(onC.dropped()).toEqual([first - 5])
    expect(onC.values()).toEqual(witness.values().slice(first))
    expect(onC.messages()).toEqual(witness.messages().slice(first))
    // what the trimmed entries held is unknown: the gap of a keyed subscriber is of unknown size
    expect(onCKeyed.dropped()).toEqual([null])
    expect(onCKeyed.values()).toEqual(witness.values().slice(first).filter((n) => n % 2 === 0))
  })

  it("Redis unreachable at startup: a typed error, not a hang", async () => {
    const exit = await Effect.runPromiseExit(
      Effect.scoped(RedisTopic.make<Tick, Tick>({ redis: "redis://127.0.0.1:1", stream: "x", codec: Tick, connectTimeout: "1 second" }))
    )
    expect(Exit.isFailure(exit)).toBe(true)
    if (Exit.isFailure(exit)) {
      const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
      expect(error).toBeInstanceOf(Topic.TopicUnavailable)
      expect(error?.message).toMatch(/Redis/)
    }
  })

  it("a URL that names no Redis server: a typed error saying so, before any connection", async () => {
    for (const [redis, expected] of [
      ["not-a-url", /not a Redis URL: "not-a-url"/],
      ["http://127.0.0.1:6379", /the scheme is http, expected redis or rediss/]
    ] as const) {
      const exit = await Effect.runPromiseExit(Effect.scoped(RedisTopic.make<Tick, Tick>({ redis, stream: "x", codec: Tick })))
      const error = Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined
      expect(error).toBeInstanceOf(Topic.TopicUnavailable)
      expect(error?.message).toMatch(expected)
    }
  })

  it("Redis stopped for 5 s then restarted empty: subscribers stay, publish fails typed, both instances recover, old cursors are gaps", async () => {
    const redis = await ownRedis()
    try {
      const stream = newStream()
      const a = await instance({ stream, redis: redis.url })
      const b = await instance({ stream, redis: redis.url })
      const onA = attach(a.topic)
      const onB = attach(b.topic, { keys: ["a"] })
      await publish(a.topic, ticks(0, 10))
      await eventually(async () => onA.values().length === 10 && onB.values().length === 5, 20_000, "the first values")
      const oldCursor = onA.ids()[9]!
      const oldEpoch = a.topic.epoch()

      await redis.stop()
      const failed = await Effect.runPromiseExit(a.topic.publish({ n: 10, key: "a" }))
      expect(Exit.isFailure(failed)).toBe(true)
      if (Exit.isFailure(failed) && failed.cause._tag === "Fail") expect(failed.cause.error).toBeInstanceOf(Topic.TopicUnavailable)
      await eventually(async () => !a.topic.connected() && !b.topic.connected(), 20_000, "the readers to notice")
      await new Promise((r) => setTimeout(r, 5_000))
      // still attached (the transport's heartbeats keep the sockets alive meanwhile)
      expect(onA.state.ended).toBe(false)
      expect(a.topic.subscriberCount()).toBe(1)

      await redis.start()
      await eventually(async () => a.topic.connected() && b.topic.connected(), 20_000, "the readers to reconnect")
      await eventually(async () => a.topic.epoch() !== oldEpoch && a.topic.epoch() === b.topic.epoch(), 20_000, "a new incarnation")
      await eventually(
        async () => Exit.isSuccess(await Effect.runPromiseExit(b.topic.publishAll(ticks(100, 10)))),
        20_000,
        "publishing again"
      )
      await eventually(async () => onA.values().length === 20 && onB.values().length === 10, 20_000, "values after the restart")
      expect(onA.dropped()).toEqual([null])
      expect(onB.dropped()).toEqual([null])
      // the gap comes before the new values, whose ids are of the new incarnation
      const gapAt = onA.events.findIndex((e) => e.event === "dropped")
      expect(onA.events.slice(gapAt + 1).map((e) => (JSON.parse(e.data) as Tick).n)).toEqual(ticks(100, 10).map((t) => t.n))
      expect(onA.ids()[10]!.startsWith(`${a.topic.epoch()}-`)).toBe(true)
      // the reconnections are counted, and the lag of what the readers read is measured
      const reconnects = await Effect.runPromise(
        Metric.value(RedisTopic.metrics.reconnects.pipe(Metric.tagged("topic", stream)))
      )
      expect(reconnects.count).toBeGreaterThanOrEqual(2)
      const lag = await Effect.runPromise(Metric.value(RedisTopic.metrics.lag.pipe(Metric.tagged("topic", stream))))
      expect(lag.count).toBeGreaterThan(0)
      // a cursor from before the restart: a gap of unknown size, then live values
      const resumed = attach(b.topic, { after: oldCursor })
      expect(resumed.dropped()).toEqual([null])
    } finally {
      await redis.stop()
    }
  }, 60_000)

  it("Redis commands per published value do not grow with subscribers (INFO commandstats at 10 and at 1,000)", async () => {
    const redis = await ownRedis()
    try {
      const stream = newStream()
      const a = await instance({ stream, redis: redis.url })
      const b = await instance({ stream, redis: redis.url })
      const admin = createClient({ url: redis.url })
      admin.on("error", () => {})
      await admin.connect()
      const calls = async () => {
        const info = await admin.sendCommand<string>(["INFO", "commandstats"])
        const stats: Record<string, number> = {}
        for (const match of String(info).matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) stats[match[1]!] = Number(match[2])
        return stats
      }
      const measure = async (subscribers: number) => {
        const recorders = Array.from(
          { length: subscribers },
          (_, i) => attach(i % 2 === 0 ? a.topic : b.topic, i % 3 === 0 ? { keys: ["a"] } : undefined)
        )
        await admin.sendCommand(["CONFIG", "RESETSTAT"])
        for (let i = 0; i < 100; i++) await publish(a.topic, ticks(i * 2, 2))
        // every third subscriber watches key "a" (half the values), the others every value
        await eventually(
          async () => recorders.every((r, i) => r.values().length === (i % 3 === 0 ? 100 : 200)),
          20_000,
          "every value to every subscriber"
        )
        const stats = await calls()
        for (const r of recorders) r.attachment.detach()
        delete stats["config|resetstat"]
        delete stats["info"]
        const total = Object.values(stats).reduce((x, y) => x + y, 0)
        return { total, stats }
      }
      const at10 = await measure(10)
      const at1000 = await measure(1_000)
      admin.destroy()
      process.stdout.write(`commandstats for 200 values in 100 publishes, 2 instances: 10 subscribers ${JSON.stringify(at10)}; 1,000 subscribers ${JSON.stringify(at1000)}\n`)
      // per batch: EVALSHA (+ HSETNX, HGET, HINCRBY, 2 XADD inside it) and at most one XREAD per instance
      expect(at1000.total).toBeLessThanOrEqual(100 * 8 + 20)
      expect(at10.total).toBeLessThanOrEqual(100 * 8 + 20)
      expect(at1000.stats["xadd"]).toBe(200)
      expect(at1000.stats["evalsha"]).toBe(100)
      expect(at1000.stats["xrange"] ?? 0).toBe(0)
    } finally {
      await redis.stop()
    }
  }, 60_000)

  it("an instance cut from Redis while another publishes: on its return, what Redis trimmed meanwhile is one exact gap, then the rest", async () => {
    const stream = newStream()
    const proxy = await partition()
    try {
      const a = await instance({ stream, retain: 100 })
      const b = await instance({ stream, retain: 100, redis: proxy.url })
      const witness = attach(a.topic)
      const onB = attach(b.topic)
      const onBKeyed = attach(b.topic, { keys: ["a"] })
      await publish(a.topic, ticks(0, 10))
      await eventually(async () => onB.values().length === 10, 20_000, "the first values on B")
      proxy.down()
      await eventually(async () => !b.topic.connected(), 20_000, "B to lose Redis")
      const failed = await Effect.runPromiseExit(b.topic.publish({ n: -1, key: "a" }))
      expect(Exit.isFailure(failed)).toBe(true)
      // batch by batch: Redis keeps at least 100 (MAXLEN ~), so A's reader never falls behind what it keeps
      for (let i = 1; i <= 10; i++) {
        await publish(a.topic, ticks(100 * i, 100))
        await eventually(async () => witness.values().length === 100 * i + 10, 20_000, "the witness's values")
      }
      expect(witness.dropped()).toEqual([])
      proxy.up()
      await eventually(async () => onB.values().length > 10 && onB.values()[onB.values().length - 1] === 1_099, 20_000, "B again")
      const firstAfter = offsetOf(onB.ids()[10])
      const lastBefore = offsetOf(onB.ids()[9])
      expect(firstAfter).toBeGreaterThan(lastBefore + 1)
      expect(onB.dropped()).toEqual([firstAfter - lastBefore - 1])
      const witnessFrom = witness.ids().indexOf(onB.ids()[10])
      expect(onB.messages().slice(10)).toEqual(witness.messages().slice(witnessFrom))
      await eventually(async () => onBKeyed.values()[onBKeyed.values().length - 1] === 1_098, 20_000, "B's keyed subscriber")
      expect(onBKeyed.dropped()).toEqual([null])
    } finally {
      proxy.close()
    }
  }, 60_000)

  it("a publisher fenced by a lease it no longer holds appends nothing and fails typed; the holder's values go on without a hole", async () => {
    const stream = newStream()
    const lease = `${stream}:lease`
    streamKeys.push(lease)
    const admin = createClient({ url: defaultRedisUrl })
    admin.on("error", () => {})
    await admin.connect()
    await admin.sendCommand(["SET", lease, "a-1"])
    // each believes it holds the lease with its own token; Redis says who does
    const a = await instance({ stream, fence: { key: lease, token: () => "a-1" } })
    const b = await instance({ stream, fence: { key: lease, token: () => "b-1" } })
    const watcher = await instance({ stream })
    const onWatcher = attach(watcher.topic)
    const failsFenced = async (topic: RedisTopic.RedisTopic<Tick>, values: ReadonlyArray<Tick>) => {
      const exit = await Effect.runPromiseExit(topic.publishAll(values))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined
      expect(error).toBeInstanceOf(Topic.TopicUnavailable)
      expect(error?.message).toMatch(/FENCED/)
    }
    await publish(a.topic, ticks(0, 5))
    await failsFenced(b.topic, ticks(100, 5))
    // B takes the lease over while A, paused, still believes it holds it
    await admin.sendCommand(["SET", lease, "b-1"])
    await failsFenced(a.topic, ticks(200, 5))
    await publish(b.topic, ticks(5, 5))
    // the lease expired and nobody holds it: nobody publishes
    await admin.sendCommand(["DEL", lease])
    await failsFenced(b.topic, ticks(300, 5))
    await admin.sendCommand(["SET", lease, "b-1"])
    await publish(b.topic, ticks(10, 5))
    admin.destroy()
    await eventually(async () => onWatcher.values().length >= 15, 20_000, "the holders' values")
    expect(onWatcher.values()).toEqual(ticks(0, 15).map((t) => t.n))
    // fenced publishes took no offset: the ids are consecutive, no gap reported
    const offsets = onWatcher.ids().map(offsetOf)
    expect(offsets).toEqual(offsets.map((_, i) => offsets[0]! + i))
    expect(onWatcher.dropped()).toEqual([])
  })

  it("an entry that cannot be decoded is read past and reported as a gap, not a stuck reader", async () => {
    const stream = newStream()
    const a = await instance({ stream })
    const all = attach(a.topic)
    const keyed = attach(a.topic, { keys: ["a"] })
    await publish(a.topic, ticks(0, 3))
    const admin = createClient({ url: defaultRedisUrl })
    admin.on("error", () => {})
    await admin.connect()
    const offset = Number(await admin.sendCommand(["HINCRBY", `${stream}:meta`, "offset", "1"]))
    await admin.sendCommand(["XADD", stream, `0-${offset}`, "e", a.topic.epoch(), "t", String(Date.now()), "v", "not json"])
    admin.destroy()
    await publish(a.topic, ticks(3, 3))
    await eventually(async () => all.values().length === 6, 20_000, "the values after it")
    expect(all.values()).toEqual([0, 1, 2, 3, 4, 5])
    expect(all.dropped()).toEqual([1])
    expect(keyed.dropped()).toEqual([null])
    expect(keyed.values()).toEqual([0, 2, 4])
  })
})
