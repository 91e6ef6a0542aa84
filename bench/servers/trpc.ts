/**
 * tRPC v11: SSE subscriptions as `httpSubscriptionLink` consumes them, from
 * the standalone (node:http) adapter, written the way tRPC's docs show:
 * - ticks: an async generator yielding `tracked(id, tick)` (resumable, like
 *   our procedure with a cursor), batches with an event-loop turn between.
 *   A generator is pulled: it produces only as fast as the response is read.
 * - slow, second variant: the docs' other pattern, `on(emitter, "tick",
 *   { signal })` over an emitter fed at full speed by a push source.
 * - idle / fanout: the latest tick, then `on(emitter, "tick", { signal })`
 *   on the feed's emitter.
 * A client subscribes with `GET /<procedure>` (no input).
 */
import { initTRPC, tracked } from "@trpc/server"
import { createHTTPServer } from "@trpc/server/adapters/standalone"
import { EventEmitter, on } from "node:events"
import { announce, exitWithRunner, fail, listenBacklog } from "../harness.ts"
import { type Feed, live, pumpTicks, quiet, type Tick, tickGenerator } from "../workload.ts"

exitWithRunner()

const t = initTRPC.create()

const emitterOf = (feed: Feed): EventEmitter => {
  const emitter = new EventEmitter()
  emitter.setMaxListeners(0)
  feed.onTick((tick) => emitter.emit("tick", tick))
  return emitter
}
const idleEmitter = emitterOf(quiet())
const fanoutEmitter = emitterOf(live())

const feedSubscription = (feed: Feed, emitter: EventEmitter) =>
  t.procedure.subscription(async function*(opts) {
    yield feed.latest()
    for await (const [tick] of on(emitter, "tick", { signal: opts.signal })) {
      yield tick as Tick
    }
  })

const router = t.router({
  ticks: t.procedure.subscription(async function*(opts) {
    for await (const tick of tickGenerator(opts.signal)) yield tracked(String(tick.seq), tick)
  }),
  ticksEmitter: t.procedure.subscription(async function*(opts) {
    const emitter = new EventEmitter()
    const stop = pumpTicks((tick) => emitter.emit("tick", tick))
    try {
      for await (const [tick] of on(emitter, "tick", { signal: opts.signal })) {
        yield tracked(String((tick as Tick).seq), tick as Tick)
      }
    } finally {
      stop()
    }
  }),
  idle: feedSubscription(quiet(), idleEmitter),
  fanout: feedSubscription(live(), fanoutEmitter)
})

export type Router = typeof router

const server = createHTTPServer({ router })
server.on("error", (error) => fail("tRPC server", error))
server.listen({ port: 0, host: "127.0.0.1", backlog: listenBacklog }, () => {
  const address = server.address()
  if (address === null || typeof address === "string") return fail("tRPC server", "no TCP address")
  announce(address.port, {
    ticks: { path: "/ticks" },
    slow: [
      { path: "/ticks", variant: "async generator" },
      { path: "/ticksEmitter", variant: "on(emitter)" }
    ],
    idle: { path: "/idle" },
    fanout: { path: "/fanout" }
  })
})
