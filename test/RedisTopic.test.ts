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
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { afterAll, describe, expect, it } from "vitest"
import * as RedisTopic from "../src/RedisTopic.ts"
import * as Topic from "../src/Topic.ts"
import { sseCollector } from "./support/http.ts"
import { defaultRedisUrl, eventually, redisTestsEnabled } from "./support/redis.ts"

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

const attach = (topic: Topic.Topic<Tick, unknown>, options?: Topic.SubscribeOptions) => {
  const r = recorder()
  const attachment = topic.subscribe(options)[Topic.TypeId].attach(r.sink, encodeTick)
  return { ...r, attachment }
}

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
})
