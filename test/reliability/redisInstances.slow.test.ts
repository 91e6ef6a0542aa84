/**
 * Several demo server processes on one Redis (`REDIS_URL`, a redis-server of
 * the test's own): one shared price feed, the same ids in the same order on
 * every instance, a client resuming on another instance with nothing lost or
 * repeated, Redis commands per value the same at 10 and at 1,000 clients, the
 * publisher's lease taken over when it dies (and fencing a paused one), and a Redis
 * restarted empty recovered from by itself. Without a Redis (no
 * redis-server) these skip with one line; with `CI` set they fail.
 */
import { createClient } from "@redis/client"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type DemoProcess, startDemo } from "../support/demoProcess.ts"
import { offsetOf, type Price, watchPrices as watch } from "../support/priceWatch.ts"
import { eventually, type OwnRedis, ownRedis, redisTestsEnabled } from "../support/redis.ts"

const enabled = await redisTestsEnabled()

const allSymbols = ["ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI"]

/** Whether an instance's last word on the lease is that it publishes (a loaded machine can move the lease). */
const publishingNow = (output: string): boolean => {
  const lines = output.match(/price feed: (publishing|standby)/g) ?? []
  return lines[lines.length - 1] === "price feed: publishing"
}

describe.skipIf(!enabled)("several demo instances on one Redis", () => {
  let redis: OwnRedis
  let a: DemoProcess
  let b: DemoProcess
  const closers: Array<() => void> = []
  const start = (redisUrl: string) => startDemo({ env: { REDIS_URL: redisUrl }, pricesPerSecond: 20 })

  beforeAll(async () => {
    redis = await ownRedis()
    ;[a, b] = await Promise.all([start(redis.url), start(redis.url)])
  }, 90_000)

  afterAll(async () => {
    for (const close of closers) close()
    await Promise.allSettled([a?.stop({ signal: "SIGKILL" }), b?.stop({ signal: "SIGKILL" })])
    await redis?.stop()
  }, 30_000)

  const subscribe = (instance: DemoProcess, symbols: ReadonlyArray<string>, lastEventId?: string) => {
    const w = watch(instance.url, symbols, lastEventId)
    closers.push(w.close)
    return w
  }

  it("a price published by one instance (the lease holder) reaches the subscribers of both, same ids, same order", async () => {
    const onA = subscribe(a, allSymbols)
    const onB = subscribe(b, ["ACME", "HOOLI"])
    const onB2 = subscribe(b, allSymbols)
    await eventually(
      async () => onA.messages().length >= 80 && onB2.messages().length >= 80 && onB.messages().length >= 30,
      30_000,
      "prices on both instances"
    )
    const from = Math.max(offsetOf(onA.messages()[0]!.id), offsetOf(onB2.messages()[0]!.id))
    const fromA = onA.messages().filter((e) => offsetOf(e.id) >= from).slice(0, 40)
    const fromB = onB2.messages().filter((e) => offsetOf(e.id) >= from).slice(0, 40)
    expect(fromA.length).toBe(40)
    expect(fromB).toEqual(fromA)
    // the keyed subscriber on B gets exactly A's prices of its symbols, same ids, from where both
    // had started (either may have started first: they are on different processes)
    const keyedFrom = Math.max(offsetOf(onB.messages()[0]!.id), offsetOf(onA.messages()[0]!.id))
    const expected = onA.messages().filter((e) =>
      offsetOf(e.id) >= keyedFrom && ["ACME", "HOOLI"].includes((JSON.parse(e.data) as Price).symbol)
    )
    const got = onB.messages().filter((e) =>
      offsetOf(e.id) >= keyedFrom && offsetOf(e.id) <= offsetOf(expected[expected.length - 1]?.id)
    )
    expect(got.length).toBeGreaterThan(10)
    expect(got).toEqual(expected.slice(0, got.length))
    // one feed: sequence numbers consecutive across all symbols
    const seqs = onA.prices().map((p) => p.seq)
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i))
    expect([...onA.dropped(), ...onB.dropped(), ...onB2.dropped()]).toEqual([])
  }, 60_000)

  it("a client cut from instance A resumes on B with Last-Event-ID: against a witness, nothing lost or repeated", async () => {
    const witness = subscribe(b, ["ACME", "GLOBEX"])
    await eventually(async () => witness.messages().length >= 1, 30_000, "the witness's first price")
    const client = subscribe(a, ["ACME", "GLOBEX"])
    await eventually(async () => client.messages().length >= 30, 30_000, "the client's prices")
    client.close()
    const last = client.messages()[client.messages().length - 1]!.id!
    const resumed = subscribe(b, ["ACME", "GLOBEX"], last)
    await eventually(async () => resumed.messages().length >= 30, 30_000, "the resumed client's prices")
    const owed = witness.messages().filter((e) => offsetOf(e.id) > offsetOf(last))
    const n = Math.min(owed.length, resumed.messages().length)
    expect(n).toBeGreaterThanOrEqual(30)
    expect(resumed.messages().slice(0, n)).toEqual(owed.slice(0, n))
    expect(resumed.dropped()).toEqual([])
    // the client's first connection and its resume, together: the witness's prices exactly once
    const joined = [...client.messages(), ...resumed.messages()].map((e) => e.id)
    expect(new Set(joined).size).toBe(joined.length)
  }, 60_000)

  it("the instance publishing the feed is killed: the other takes over, the feed goes on where it stopped", async () => {
    const publisher = publishingNow(a.output()) ? a : b
    const standby = publisher === a ? b : a
    expect(publishingNow(publisher.output())).toBe(true)
    expect(publishingNow(standby.output())).toBe(false)
    const takeovers = (standby.output().match(/price feed: publishing/g) ?? []).length
    const onStandby = subscribe(standby, allSymbols)
    await eventually(async () => onStandby.messages().length >= 20, 30_000, "prices before the kill")
    const before = onStandby.messages().length
    const killedAt = Date.now()
    await publisher.stop({ signal: "SIGKILL" })
    await eventually(async () => (standby.output().match(/price feed: publishing/g) ?? []).length > takeovers, 30_000, "the takeover")
    await eventually(async () => onStandby.messages().length >= before + 20, 30_000, "prices after the takeover")
    // the longest silence the subscriber saw from the kill on: the takeover time
    const after = onStandby.arrivals.filter((at) => at > killedAt)
    const takeoverMs = Math.max(...after.map((at, i) => at - (i === 0 ? killedAt : after[i - 1]!)))
    process.stdout.write(`demo takeover: prices resumed ${takeoverMs} ms after the publisher was killed (SIGKILL)\n`)
    // the new publisher continues the sequence: no hole, no repeat, no gap reported
    const seqs = onStandby.prices().map((p) => p.seq)
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i))
    expect(onStandby.dropped()).toEqual([])
    // the other instance again, for the next test
    if (publisher === a) a = await start(redis.url)
    else b = await start(redis.url)
  }, 90_000)

  it("Redis stopped for 5 s and restarted empty: both instances recover by themselves; a cursor from before is a reported gap", async () => {
    const onA = subscribe(a, allSymbols)
    const onB = subscribe(b, ["ACME"])
    await eventually(async () => onA.messages().length >= 10 && onB.messages().length >= 2, 30_000, "prices before")
    const oldCursor = onA.messages()[onA.messages().length - 1]!.id!
    await redis.stop()
    await new Promise((r) => setTimeout(r, 5_000))
    // subscribers stay connected meanwhile (heartbeats)
    const countBefore = onA.messages().length
    await redis.start()
    await eventually(
      async () => onA.dropped().length === 1 && onA.messages().length >= countBefore + 20 && onB.dropped().length === 1,
      30_000,
      "the feed after the restart"
    )
    expect(onA.dropped()).toEqual([null])
    expect(onB.dropped()).toEqual([null])
    const newEpoch = onA.messages()[onA.messages().length - 1]!.id!.split("-")[0]
    expect(newEpoch).not.toBe(oldCursor.split("-")[0])
    const resumed = subscribe(b, allSymbols, oldCursor)
    await eventually(async () => resumed.events.length >= 2, 30_000, "the old cursor's answer")
    expect(resumed.events[0]!.event).toBe("dropped")
    expect(resumed.dropped()).toEqual([null])
    expect(resumed.messages()[0]!.id!.startsWith(`${newEpoch}-`)).toBe(true)
  }, 90_000)

  it("Redis commands per published value do not grow with subscribers: INFO commandstats at 10 and at 1,000 SSE clients", async () => {
    const admin = createClient({ url: redis.url })
    admin.on("error", () => {})
    await admin.connect()
    try {
      const latestOffset = (clients: ReadonlyArray<ReturnType<typeof watch>>) =>
        Math.max(...clients.map((c) => offsetOf(c.messages()[c.messages().length - 1]?.id ?? "x-0")))
      const measure = async (n: number) => {
        // half on each instance, one symbol each (20 prices/s): what they cost Redis is what is measured
        // in waves, and a client the server sheds (503, its event loop busy) tries again, as a real one does
        const clients: Array<ReturnType<typeof watch>> = []
        const admitted = async (i: number) => {
          for (;;) {
            const client = subscribe(i % 2 === 0 ? a : b, ["ACME"])
            await eventually(async () => client.status() !== undefined, 30_000, "an answer")
            if (client.status() !== 503) return client
            client.close()
            await new Promise((r) => setTimeout(r, 100))
          }
        }
        for (let from = 0; from < n; from += 50) {
          clients.push(...await Promise.all(Array.from({ length: Math.min(50, n - from) }, (_, i) => admitted(from + i))))
        }
        await eventually(async () => clients.every((c) => c.messages().length >= 1), 60_000, `${n} clients' first prices`).catch(
          (error: unknown) => {
            const statuses = clients.map((c) => String(c.status()))
            const counts = Object.fromEntries([...new Set(statuses)].map((st) => [st, statuses.filter((x) => x === st).length]))
            const waiting = clients.filter((c) => c.messages().length === 0).length
            throw new Error(`${String(error)}: statuses ${JSON.stringify(counts)}, ${waiting} without a price`)
          }
        )
        await admin.sendCommand(["CONFIG", "RESETSTAT"])
        const from = latestOffset(clients)
        await eventually(async () => latestOffset(clients) >= from + 300, 60_000, "300 values published")
        const info = String(await admin.sendCommand(["INFO", "commandstats"]))
        const to = latestOffset(clients)
        for (const c of clients) c.close()
        const stats: Record<string, number> = {}
        for (const match of info.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) stats[match[1]!] = Number(match[2])
        delete stats["config|resetstat"]
        delete stats["info"]
        const total = Object.values(stats).reduce((x, y) => x + y, 0)
        return { perValue: total / (to - from), values: to - from, stats }
      }
      const at10 = await measure(10)
      const at1000 = await measure(1_000)
      process.stdout.write(
        `commandstats, 2 demo processes: ${at10.perValue.toFixed(2)} commands per value at 10 clients, ${
          at1000.perValue.toFixed(2)
        } at 1,000 (${JSON.stringify(at10)}; ${JSON.stringify(at1000)})\n`
      )
      // per batch: the script (and the commands inside it), one XREAD per instance; the lease: a command per second per instance
      expect(at1000.perValue).toBeLessThanOrEqual(at10.perValue * 1.25)
      expect(at1000.stats["xrange"] ?? 0).toBe(0)
    } finally {
      admin.destroy()
    }
  }, 180_000)
})

/** The value of a counter on an instance's `/metrics` (summed over its label sets), 0 when absent. */
const counter = async (baseUrl: string, name: string): Promise<number> => {
  const text = await (await fetch(`${baseUrl}/metrics`)).text()
  let sum = 0
  for (const match of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, "gm"))) sum += Number(match[1])
  return sum
}

describe.skipIf(!enabled)("the publisher's lease fences its publishes", () => {
  let redis: OwnRedis
  let a: DemoProcess
  let b: DemoProcess
  const closers: Array<() => void> = []

  beforeAll(async () => {
    redis = await ownRedis()
    // 100 prices per second per symbol: the feed publishes at every 10 ms tick
    const start = () => startDemo({ env: { REDIS_URL: redis.url }, pricesPerSecond: 100 })
    ;[a, b] = await Promise.all([start(), start()])
  }, 90_000)

  afterAll(async () => {
    for (const close of closers) close()
    for (const p of [a, b]) if (p !== undefined) process.kill(p.pid, "SIGCONT")
    await Promise.allSettled([a?.stop({ signal: "SIGKILL" }), b?.stop({ signal: "SIGKILL" })])
    await redis?.stop()
  }, 30_000)

  it("a publisher paused past its lease, then resumed, is refused by Redis: one feed, in order, no repeat", async () => {
    await eventually(async () => publishingNow(a.output()) || publishingNow(b.output()), 30_000, "a publisher")
    // Once resumed, the old publisher either publishes before it notices it lost the lease (Redis
    // refuses it: the fence at work) or notices first (nothing to refuse). The pause is repeated,
    // the roles swapped, until a stale publish has been refused (at most 4 times).
    let refused = 0
    for (let attempt = 0; attempt < 4 && refused === 0; attempt++) {
      const publisher = publishingNow(a.output()) ? a : b
      const standby = publisher === a ? b : a
      const takeovers = (standby.output().match(/price feed: publishing/g) ?? []).length
      const stepDowns = (publisher.output().match(/price feed: standby/g) ?? []).length
      // a witness on the instance that is not paused
      const w = watch(standby.url, allSymbols)
      closers.push(w.close)
      await eventually(async () => w.messages().length >= 100, 30_000, "prices before the pause")
      // paused (a long GC, a stopped VM): it cannot renew, and believes it still publishes
      process.kill(publisher.pid, "SIGSTOP")
      await eventually(async () => (standby.output().match(/price feed: publishing/g) ?? []).length > takeovers, 30_000, "the takeover")
      const atTakeover = w.messages().length
      await eventually(async () => w.messages().length >= atTakeover + 100, 30_000, "prices from the new publisher")
      process.kill(publisher.pid, "SIGCONT")
      await eventually(
        async () => (publisher.output().match(/price feed: standby/g) ?? []).length > stepDowns,
        30_000,
        "the old publisher to step down"
      )
      const atStepDown = w.messages().length
      await eventually(async () => w.messages().length >= atStepDown + 100, 30_000, "prices after it resumed")
      // the publishes it tried before it noticed were refused by Redis (counted, not appended)
      refused = await counter(publisher.url, "topic_publish_failures_total")
      process.stdout.write(`lease fencing, pause ${attempt + 1}: ${refused} publishes of the resumed old publisher refused\n`)
      // one feed: every sequence number once, in order, across the pause, the takeover and the resume
      const seqs = w.prices().map((p) => p.seq)
      expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i))
      expect(w.dropped()).toEqual([])
      w.close()
    }
    expect(refused).toBeGreaterThan(0)
  }, 240_000)
})
