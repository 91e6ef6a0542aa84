/**
 * better-sse on node:http, as its docs show: `createSession(req, res)`, then
 * - ticks: `session.push(tick)` for every tick, batches with an event-loop
 *   turn between (`push` writes at once and never waits for `drain`);
 * - slow: `session.iterate(generator)`, the library's way to send an
 *   iterable (also blind to `drain`);
 * - idle / fanout / sparse: the latest tick pushed, then
 *   `channel.register(session)` on a channel the feed broadcasts to with
 *   `channel.broadcast(tick)`.
 * - keyed: a channel per key (created on its first subscriber), each tick
 *   broadcast to its key's channel only.
 * A client subscribes with `GET /<stream>`.
 */
import { createChannel, createSession } from "better-sse"
import * as Http from "node:http"
import { announce, exitWithRunner, fail, listenBacklog } from "../harness.ts"
import { type Feed, keyed, keyParam, live, makeBatch, quiet, sparse, tickGenerator } from "../workload.ts"

exitWithRunner()

const channelOf = (feed: Feed) => {
  const channel = createChannel()
  feed.onTick((tick) => channel.broadcast(tick))
  return channel
}
const idleChannel = channelOf(quiet())
const fanoutChannel = channelOf(live())
const sparseChannel = channelOf(sparse())

/** Channels of the keyed feed by key, made on the first subscription (the feed starts then). */
let keyChannels: Map<string, ReturnType<typeof createChannel>> | undefined
const subscribeKey = async (req: Http.IncomingMessage, res: Http.ServerResponse) => {
  const feed = keyed()
  if (keyChannels === undefined) {
    const channels = new Map<string, ReturnType<typeof createChannel>>()
    keyChannels = channels
    feed.onBatch((batch) => {
      for (const tick of batch) channels.get(tick.symbol)?.broadcast(tick)
    })
  }
  const key = keyParam(req.url ?? "")
  const latest = key === undefined ? undefined : feed.latest(key)
  if (key === undefined || latest === undefined) {
    res.writeHead(400).end()
    return
  }
  let channel = keyChannels.get(key)
  if (channel === undefined) {
    channel = createChannel()
    keyChannels.set(key, channel)
  }
  const session = await createSession(req, res)
  session.push(latest)
  channel.register(session)
}

const ticks = async (req: Http.IncomingMessage, res: Http.ServerResponse) => {
  const session = await createSession(req, res)
  let seq = 0
  const pump = (): void => {
    if (!session.isConnected) return
    const batch = makeBatch(seq)
    seq += batch.length
    for (const tick of batch) session.push(tick)
    setImmediate(pump)
  }
  setImmediate(pump)
}

const iterate = async (req: Http.IncomingMessage, res: Http.ServerResponse) => {
  const session = await createSession(req, res)
  const abort = new AbortController()
  session.once("disconnected", () => abort.abort())
  await session.iterate(tickGenerator(abort.signal))
}

const subscribe = async (feed: Feed, channel: ReturnType<typeof createChannel>, req: Http.IncomingMessage, res: Http.ServerResponse) => {
  const session = await createSession(req, res)
  session.push(feed.latest())
  channel.register(session)
}

const server = Http.createServer((req, res) => {
  const path = (req.url ?? "").split("?")[0]
  const handled = path === "/ticks"
    ? ticks(req, res)
    : path === "/iterate"
    ? iterate(req, res)
    : path === "/idle"
    ? subscribe(quiet(), idleChannel, req, res)
    : path === "/fanout"
    ? subscribe(live(), fanoutChannel, req, res)
    : path === "/sparse"
    ? subscribe(sparse(), sparseChannel, req, res)
    : path === "/keyed"
    ? subscribeKey(req, res)
    : undefined
  if (handled === undefined) {
    res.writeHead(404).end()
    return
  }
  handled.catch(() => {
    // A push to a session whose client went away throws; the subscription is over.
  })
})
server.on("error", (error) => fail("better-sse server", error))
server.listen({ port: 0, host: "127.0.0.1", backlog: listenBacklog }, () => {
  const address = server.address()
  if (address === null || typeof address === "string") return fail("better-sse server", "no TCP address")
  announce(address.port, {
    ticks: { path: "/ticks", variant: "push" },
    slow: { path: "/iterate", variant: "iterate()" },
    idle: { path: "/idle" },
    fanout: { path: "/fanout" },
    sparse: { path: "/sparse" },
    keyed: { path: "/keyed?key={key}" }
  })
})
