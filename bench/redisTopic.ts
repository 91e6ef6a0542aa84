/**
 * The cost of fan-out through Redis against the in-memory Topic, in process:
 * `npx tsx bench/redisTopic.ts` (needs a Redis at REDIS_URL, default
 * redis://127.0.0.1:6379).
 *
 * - in memory: one Topic, 4,000 fast-path subscribers;
 * - Redis: two RedisTopics on one stream (two instances' worth of
 *   connections, readers and rings), 2,000 subscribers each.
 *
 * The same values at the same rate to both; subscribers are in-process sinks
 * (no sockets: what is compared is the topics' own work, the part Redis
 * adds to). Reported: this process's CPU per delivery, Redis's CPU
 * (`INFO cpu`) per published value, and the publish → delivery latency seen
 * by one probe subscriber per topic (p50, p99).
 */
import { createClient } from "@redis/client"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as RedisTopic from "../src/topic/RedisTopic.ts"
import * as Topic from "../src/topic/Topic.ts"

const Tick = Schema.Struct({ n: Schema.Number, key: Schema.String, t: Schema.Number })
type Tick = typeof Tick.Type
const redisUrl = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const subscribers = 4_000
const valuesPerTick = 20
const tickMillis = 100
const warmupMillis = 1_000
const windowMillis = 5_000
const keys = ["a", "b", "c", "d", "e"]
const encode = (tick: Tick) => JSON.stringify(tick)
const now = () => performance.timeOrigin + performance.now()

interface Figures {
  readonly deliveries: number
  readonly cpuMicrosPerDelivery: number
  readonly redisCpuMicrosPerValue: number | undefined
  readonly p50Ms: number
  readonly p99Ms: number
}

const redisCpu = async (): Promise<number> => {
  const client = createClient({ url: redisUrl })
  client.on("error", () => {})
  await client.connect()
  const info = String(await client.sendCommand(["INFO", "cpu"]))
  client.destroy()
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? 0)
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? 0)
  return (user + sys) * 1e6
}

const run = async (
  label: string,
  topics: ReadonlyArray<Topic.Topic<Tick, unknown>>,
  publish: (values: ReadonlyArray<Tick>) => Promise<void>,
  withRedis: boolean
): Promise<Figures> => {
  let counting = false
  let deliveries = 0
  const latencies: Array<number> = []
  const sink: Topic.Sink = {
    write: (_text, values) => {
      if (counting) deliveries += values
      return true
    },
    end: () => {}
  }
  const attachments: Array<Topic.Attachment> = []
  for (let i = 0; i < subscribers; i++) {
    const topic = topics[i % topics.length]!
    attachments.push(topic.subscribe()[Topic.TypeId].attach(sink, encode))
  }
  for (const topic of topics) {
    const probe: Topic.Sink = {
      write: (text) => {
        if (!counting) return true
        const at = now()
        for (const match of text.matchAll(/"t":([\d.]+)/g)) latencies.push(at - Number(match[1]))
        return true
      },
      end: () => {}
    }
    attachments.push(topic.subscribe()[Topic.TypeId].attach(probe, encode))
  }
  let n = 0
  let publishing = true
  const loop = (async () => {
    while (publishing) {
      const t = now()
      const batch = Array.from({ length: valuesPerTick }, () => ({ n: n++, key: keys[n % keys.length]!, t }))
      await publish(batch)
      await new Promise((r) => setTimeout(r, Math.max(0, tickMillis - (now() - t))))
    }
  })()
  await new Promise((r) => setTimeout(r, warmupMillis))
  counting = true
  const cpuBefore = process.cpuUsage()
  const redisBefore = withRedis ? await redisCpu() : 0
  const firstValue = n
  await new Promise((r) => setTimeout(r, windowMillis))
  const cpu = process.cpuUsage(cpuBefore)
  const redisAfter = withRedis ? await redisCpu() : 0
  const published = n - firstValue
  counting = false
  publishing = false
  await loop
  for (const attachment of attachments) attachment.detach()
  latencies.sort((x, y) => x - y)
  const figures: Figures = {
    deliveries,
    cpuMicrosPerDelivery: (cpu.user + cpu.system) / Math.max(1, deliveries),
    redisCpuMicrosPerValue: withRedis ? (redisAfter - redisBefore) / Math.max(1, published) : undefined,
    p50Ms: latencies[Math.floor(latencies.length * 0.5)] ?? NaN,
    p99Ms: latencies[Math.floor(latencies.length * 0.99)] ?? NaN
  }
  console.log(`${label}: ${JSON.stringify(figures)}`)
  return figures
}

const main = Effect.gen(function*() {
  // BENCH_ONLY=redis: the Redis part alone (e.g. to profile it)
  const inMemory = process.env["BENCH_ONLY"] === "redis" ? undefined : yield* Effect.gen(function*() {
    const memoryScope = yield* Scope.make()
    const memory = yield* Topic.make<Tick>({ key: (t) => t.key, replay: { count: 1_000 } }).pipe(Scope.extend(memoryScope))
    const figures = yield* Effect.promise(() =>
      run("in memory, 1 topic x 4,000 subscribers", [memory], (values) => Effect.runPromise(memory.publishAll(values)), false)
    )
    yield* Scope.close(memoryScope, Exit.void)
    return figures
  })

  const redisScope = yield* Scope.make()
  const stream = `bench:redis-topic:${process.pid}`
  const options = { redis: redisUrl, stream, codec: Tick, key: (t: Tick) => t.key, replay: { count: 1_000 } }
  const a = yield* RedisTopic.make(options).pipe(Scope.extend(redisScope))
  const b = yield* RedisTopic.make(options).pipe(Scope.extend(redisScope))
  const redis = yield* Effect.promise(() =>
    run("Redis, 2 instances x 2,000 subscribers", [a, b], (values) => Effect.runPromise(a.publishAll(values)), true)
  )
  yield* Scope.close(redisScope, Exit.void)
  const client = createClient({ url: redisUrl })
  yield* Effect.promise(async () => {
    await client.connect()
    await client.sendCommand(["DEL", stream, `${stream}:meta`])
    client.destroy()
  })
  if (inMemory === undefined) return
  console.log(
    `CPU per delivery, Redis / in memory: ${(redis.cpuMicrosPerDelivery / inMemory.cpuMicrosPerDelivery).toFixed(2)}x ` +
      `(${redis.cpuMicrosPerDelivery.toFixed(3)} vs ${inMemory.cpuMicrosPerDelivery.toFixed(3)} µs); ` +
      `Redis server ${redis.redisCpuMicrosPerValue?.toFixed(1)} µs CPU per value; ` +
      `latency p50 ${redis.p50Ms.toFixed(2)} / p99 ${redis.p99Ms.toFixed(2)} ms through Redis, ` +
      `p50 ${inMemory.p50Ms.toFixed(2)} / p99 ${inMemory.p99Ms.toFixed(2)} ms in memory`
  )
})

Effect.runPromise(main).then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
