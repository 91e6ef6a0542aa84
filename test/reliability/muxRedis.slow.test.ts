/**
 * Wire protocol v1.1 across instances: two demo server processes on one
 * Redis (a redis-server of the test's own, as in redisInstances.slow.test.ts,
 * so the demo's fixed keys are the test's alone). A multiplexed connection of
 * `watchPrices` subscriptions on A is cut and reopened on B with each one's
 * last cursor: every subscription continues exactly, against a witness v1
 * subscription on B that stays open. A change for A's connection sent to B is
 * relayed to A over Redis (`ConnectionRelay`, 202) and applied there. Without a Redis these skip with one
 * line; with `CI` set they fail.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ConnectionRelay from "../../src/server/ConnectionRelay.ts"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Multiplex from "../../src/protocol/Multiplex.ts"
import { type DemoProcess, startDemo } from "../support/demoProcess.ts"
import { offsetOf, type Price, watchPrices as watch } from "../support/priceWatch.ts"
import { change, type MuxClient, openMux } from "../support/mux.ts"
import { eventually, type OwnRedis, ownRedis, redisTestsEnabled } from "../support/redis.ts"

const enabled = await redisTestsEnabled()

const symbols = ["ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI"]

/** A subscription's values as `<cursor> <seq> <symbol>`, the witness's way. */
const received = (mux: MuxClient, sub: string) =>
  mux.get(sub).values.map((v) => {
    const price = v.json as Price
    return `${v.id} ${price.seq} ${price.symbol}`
  })

describe.skipIf(!enabled)("multiplexed connections across two demo instances on one Redis", () => {
  let redis: OwnRedis
  let a: DemoProcess
  let b: DemoProcess
  const closers: Array<() => void> = []

  beforeAll(async () => {
    redis = await ownRedis()
    const start = () => startDemo({ env: { REDIS_URL: redis.url }, pricesPerSecond: 20 })
    ;[a, b] = await Promise.all([start(), start()])
  }, 90_000)

  afterAll(async () => {
    for (const close of closers) close()
    await Promise.allSettled([a?.stop({ signal: "SIGKILL" }), b?.stop({ signal: "SIGKILL" })])
    await redis?.stop()
  }, 30_000)

  it("a connection of 6 watchPrices subscriptions cut on A and reopened on B with each cursor: every one continues exactly; a change for it on B is relayed to A", async () => {
    const witness = watch(b.url, symbols)
    closers.push(witness.close)
    await eventually(async () => witness.messages().length >= 1, 30_000, "the witness's first price")
    const entries: Array<Multiplex.Entry> = [
      ...symbols.map((symbol) => ({ id: symbol, tag: "watchPrices", payload: { symbols: [symbol] } })),
      { id: "pair", tag: "watchPrices", payload: { symbols: ["ACME", "HOOLI"] } }
    ]
    const subscribed = (of: ReadonlyArray<Multiplex.Entry>) => new Map(of.map((e) => [e.id, (e.payload as { symbols: Array<string> }).symbols]))
    const first = await openMux(`${a.url}/rpc`, entries)
    closers.push(first.abort)
    expect(first.status).toBe(200)
    await eventually(async () => entries.every((e) => first.get(e.id).values.length >= 10), 30_000, "prices on A")
    for (const entry of entries) expect(first.get(entry.id).resume, entry.id).toBe("exact")
    const connection = first.state.connection!

    // the connection lives on A: a change for it reaching B is relayed to A over Redis (202) and applied there
    const onB = await change(`${b.url}/rpc`, connection, { add: [{ id: "relayed", tag: "watchPrices", payload: { symbols: ["GLOBEX"] } }] })
    expect(onB).toEqual({ status: 202, json: {} })
    await eventually(async () => first.get("relayed").values.length >= 3, 30_000, "the relayed subscription's prices on A")
    expect(first.get("relayed").resume).toBe("exact")
    // removed through B, the relayed one stops on A; nothing else is touched
    expect(await change(`${b.url}/rpc`, connection, { remove: ["relayed"] })).toEqual({ status: 202, json: {} })
    expect(await change(`${a.url}/rpc`, connection, { remove: [] })).toEqual({ status: 200, json: {} })
    // a connection no instance holds is a 404 on either
    const unknown = await change(`${b.url}/rpc`, "nobody.0", { remove: [] })
    expect(unknown.status).toBe(404)
    expect((unknown.json as { _tag: string })._tag).toBe("NotFound")

    first.abort()
    await first.done
    const resumed = entries.map((e) => ({ ...e, lastEventId: first.lastId(e.id)! }))
    const second = await openMux(`${b.url}/rpc`, resumed)
    closers.push(second.abort)
    expect(second.status).toBe(200)
    await eventually(async () => entries.every((e) => second.get(e.id).values.length >= 20), 30_000, "prices on B after the resume")
    for (const entry of entries) expect(second.get(entry.id).resume, entry.id).toBe("exact")
    // B's connection id is B's own
    expect(second.state.connection).not.toBe(connection)

    const symbolsOf = subscribed(entries)
    for (const entry of entries) {
      const all = [...received(first, entry.id), ...received(second, entry.id)]
      const from = offsetOf(all[0]!.split(" ")[0])
      const last = offsetOf(all[all.length - 1]!.split(" ")[0])
      // the witness (on B since before the first connection) has seen at least as far as this subscription
      await eventually(async () => witness.messages().some((e) => offsetOf(e.id) >= last), 30_000, "the witness catching up")
      const witnessed = witness.messages()
        .map((e) => ({ id: e.id, price: JSON.parse(e.data) as Price }))
        .filter(({ id, price }) => offsetOf(id) >= from && offsetOf(id) <= last && symbolsOf.get(entry.id)!.includes(price.symbol))
        .map(({ id, price }) => `${id} ${price.seq} ${price.symbol}`)
      expect(all, entry.id).toEqual(witnessed)
      expect(first.get(entry.id).dropped, entry.id).toEqual([])
      expect(second.get(entry.id).dropped, entry.id).toEqual([])
    }
    expect(witness.dropped()).toEqual([])
  }, 90_000)
})

describe("ConnectionRelay.redis with no Redis there", () => {
  it("fails to build with TopicUnavailable within its connect timeout, not a hang", async () => {
    const exit = await Effect.runPromiseExit(
      Effect.scoped(Layer.build(ConnectionRelay.redis({ url: "redis://127.0.0.1:1", connectTimeout: "300 millis" })))
    )
    expect(Exit.isFailure(exit)).toBe(true)
    if (Exit.isFailure(exit)) {
      const failure = Cause.failureOption(exit.cause)
      expect(Option.isSome(failure) && failure.value._tag).toBe("TopicUnavailable")
    }
  }, 20_000)
})
