/**
 * oRPC: event iterators (an async generator procedure) served by
 * `RPCHandler` from `@orpc/server/node` on node:http, as oRPC's docs show:
 * - ticks: an async generator yielding ticks in batches with an event-loop
 *   turn between (pulled: it produces only as fast as the response is read);
 * - idle / fanout: the latest tick, then `publisher.subscribe("tick",
 *   { signal })` of an `EventPublisher` the feed publishes to.
 * A client calls `POST /rpc/<procedure>` with the RPC protocol's JSON body
 * (what `RPCLink` sends for a call without input).
 */
import { EventPublisher, os } from "@orpc/server"
import { RPCHandler } from "@orpc/server/node"
import * as Http from "node:http"
import { announce, exitWithRunner, fail, listenBacklog } from "../harness.ts"
import { type Feed, live, quiet, type Tick, tickGenerator } from "../workload.ts"

exitWithRunner()

const publisherOf = (feed: Feed): EventPublisher<{ tick: Tick }> => {
  const publisher = new EventPublisher<{ tick: Tick }>()
  feed.onTick((tick) => publisher.publish("tick", tick))
  return publisher
}
const idlePublisher = publisherOf(quiet())
const fanoutPublisher = publisherOf(live())

const feedProcedure = (feed: Feed, publisher: EventPublisher<{ tick: Tick }>) =>
  os.handler(async function*({ signal }) {
    yield feed.latest()
    for await (const tick of publisher.subscribe("tick", { signal })) yield tick
  })

const router = {
  ticks: os.handler(async function*({ signal }) {
    yield* tickGenerator(signal)
  }),
  idle: feedProcedure(quiet(), idlePublisher),
  fanout: feedProcedure(live(), fanoutPublisher)
}

const handler = new RPCHandler(router)

const server = Http.createServer(async (req, res) => {
  const { matched } = await handler.handle(req, res, { prefix: "/rpc", context: {} })
  if (!matched) {
    res.statusCode = 404
    res.end("Not found")
  }
})
server.on("error", (error) => fail("oRPC server", error))
server.listen({ port: 0, host: "127.0.0.1", backlog: listenBacklog }, () => {
  const address = server.address()
  if (address === null || typeof address === "string") return fail("oRPC server", "no TCP address")
  const call = (procedure: string) => ({
    method: "POST" as const,
    path: `/rpc/${procedure}`,
    headers: { "content-type": "application/json" },
    body: "{}"
  })
  announce(address.port, { ticks: call("ticks"), idle: call("idle"), fanout: call("fanout") })
})
