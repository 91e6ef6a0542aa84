/**
 * Baseline: plain `node:http`, written the way a careful engineer would
 * without a framework. Every ratio in the report is against this server.
 *
 * - ticks: one `res.write` per event; when `write` returns false the producer
 *   stops and resumes on `drain` (nothing is dropped, nothing piles up).
 *   Between batches of `sseBatchSize` events it yields with `setImmediate`,
 *   the same source pattern as every other implementation.
 * - idle / fanout / sparse: a set of open responses per feed; a published
 *   tick is serialized once and written to each.
 * - keyed: a Map key → Set of responses; a published tick is serialized once
 *   and written to the responses of its key only.
 * - symbol: like keyed, on the symbol feed (`s0` … `s9`).
 * - mux: the natural hand-written equivalent of a multiplexed connection:
 *   one response subscribed to every symbol, each tick written as
 *   `sub: <symbol>` + the frame when the previous event on that response was
 *   another symbol's, else the frame alone (both strings made once per tick).
 *   No `connection`/`subscribed` events, no per-subscription buffer or cursor:
 *   the least a server can do for the same bytes of events.
 * - download: `pipeline(readable, res)` from a Readable handing over the
 *   next 64 KiB buffer on each `read()`.
 * - exportCsv: `csv-stringify` piped to the response (the library's usual
 *   use: an object-mode Readable of rows → `stringify({ header, columns })` →
 *   `res`), CRLF line ends as RFC 4180 says, Dates as ISO strings.
 * - exportNdjson, exportJson: a hand-written loop: a page of rows → one
 *   string (`JSON.stringify` per row: a Date as its ISO string, an absent
 *   field left out) → one `res.write`, waiting for `drain` when it returns false.
 * - health, metrics (`/health`, `/metrics`, probed by the storm scenarios):
 *   `{"status":"ok"}`, and the Prometheus text a hand-written server would
 *   keep: its open subscriptions and the process figures.
 */
import { stringify } from "csv-stringify"
import * as Http from "node:http"
import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import { announce, exitWithRunner, fail, listenBacklog } from "../harness.ts"
import {
  downloadChunkBytes,
  downloadReadable,
  type Feed,
  intParam,
  keyed as keyedFeed,
  keyParam,
  live,
  makeBatch,
  makePage,
  quiet,
  rowColumns,
  rowPageSize,
  serializeTick,
  sparse,
  symbolCount,
  symbols as symbolFeed,
  type Tick
} from "../workload.ts"

exitWithRunner()

const sseHeaders = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no",
  "connection": "keep-alive"
}

const ticks = (req: Http.IncomingMessage, res: Http.ServerResponse): void => {
  res.writeHead(200, sseHeaders)
  res.write(": ok\n\n")
  let closed = false
  req.socket.on("close", () => {
    closed = true
  })
  let seq = 0
  let batch: Array<Tick> = []
  let next = 0
  const pump = (): void => {
    if (closed) return
    if (next === batch.length) {
      batch = makeBatch(seq)
      seq += batch.length
      next = 0
    }
    while (next < batch.length) {
      if (!res.write(`data: ${serializeTick(batch[next++]!)}\n\n`)) {
        // Resume this batch on drain: nothing is dropped and nothing piles up.
        res.once("drain", pump)
        return
      }
    }
    setImmediate(pump)
  }
  setImmediate(pump)
}

/** Subscribers of each feed; a tick is framed once and written to every one. */
const subscribers = new Map<Feed, Set<Http.ServerResponse>>()
const subscribe = (feed: Feed, req: Http.IncomingMessage, res: Http.ServerResponse): void => {
  let set = subscribers.get(feed)
  if (set === undefined) {
    const responses = new Set<Http.ServerResponse>()
    set = responses
    subscribers.set(feed, responses)
    feed.onTick((tick) => {
      const frame = `data: ${serializeTick(tick)}\n\n`
      for (const response of responses) response.write(frame)
    })
  }
  res.writeHead(200, sseHeaders)
  res.write(`data: ${serializeTick(feed.latest())}\n\n`)
  set.add(res)
  req.socket.on("close", () => set.delete(res))
}

/** Subscribers of the keyed feed by key; a tick is framed once and written to its key's responses. */
let byKey: Map<string, Set<Http.ServerResponse>> | undefined
const subscribeKey = (req: Http.IncomingMessage, res: Http.ServerResponse): void => {
  const feed = keyedFeed()
  if (byKey === undefined) {
    const index = new Map<string, Set<Http.ServerResponse>>()
    byKey = index
    feed.onBatch((batch) => {
      for (const tick of batch) {
        const responses = index.get(tick.symbol)
        if (responses === undefined) continue
        const frame = `data: ${serializeTick(tick)}\n\n`
        for (const response of responses) response.write(frame)
      }
    })
  }
  const key = keyParam(req.url ?? "")
  const latest = key === undefined ? undefined : feed.latest(key)
  if (key === undefined || latest === undefined) {
    res.writeHead(400).end()
    return
  }
  res.writeHead(200, sseHeaders)
  res.write(`data: ${serializeTick(latest)}\n\n`)
  let set = byKey.get(key)
  if (set === undefined) {
    set = new Set()
    byKey.set(key, set)
  }
  const responses = set
  responses.add(res)
  req.socket.on("close", () => {
    responses.delete(res)
    if (responses.size === 0 && byKey!.get(key) === responses) byKey!.delete(key)
  })
}

/** Subscribers of the symbol feed: one symbol each (`/symbol?key=`), or every symbol on one response (`/mux`). */
interface MuxResponse {
  readonly res: Http.ServerResponse
  /** The symbol of the last event written to it. */
  last: string | undefined
}
let bySymbol: Map<string, Set<Http.ServerResponse>> | undefined
let muxResponses: Set<MuxResponse> | undefined
const symbolSubscribers = (): { readonly bySymbol: Map<string, Set<Http.ServerResponse>>; readonly mux: Set<MuxResponse> } => {
  if (bySymbol === undefined || muxResponses === undefined) {
    const index = new Map<string, Set<Http.ServerResponse>>()
    const mux = new Set<MuxResponse>()
    bySymbol = index
    muxResponses = mux
    symbolFeed().onBatch((batch) => {
      for (const tick of batch) {
        const frame = `data: ${serializeTick(tick)}\n\n`
        const responses = index.get(tick.symbol)
        if (responses !== undefined) for (const response of responses) response.write(frame)
        if (mux.size === 0) continue
        const selected = `sub: ${tick.symbol}\n${frame}`
        for (const m of mux) {
          m.res.write(m.last === tick.symbol ? frame : selected)
          m.last = tick.symbol
        }
      }
    })
  }
  return { bySymbol, mux: muxResponses }
}

const subscribeSymbol = (req: Http.IncomingMessage, res: Http.ServerResponse): void => {
  const index = symbolSubscribers().bySymbol
  const key = keyParam(req.url ?? "")
  const latest = key === undefined ? undefined : symbolFeed().latest(key)
  if (key === undefined || latest === undefined) {
    res.writeHead(400).end()
    return
  }
  res.writeHead(200, sseHeaders)
  res.write(`data: ${serializeTick(latest)}\n\n`)
  let set = index.get(key)
  if (set === undefined) {
    set = new Set()
    index.set(key, set)
  }
  const responses = set
  responses.add(res)
  req.socket.on("close", () => {
    responses.delete(res)
  })
}

const subscribeMux = (req: Http.IncomingMessage, res: Http.ServerResponse): void => {
  const mux = symbolSubscribers().mux
  res.writeHead(200, sseHeaders)
  let text = ""
  for (let k = 0; k < symbolCount; k++) text += `sub: s${k}\ndata: ${serializeTick(symbolFeed().latest(`s${k}`)!)}\n\n`
  res.write(text)
  const entry: MuxResponse = { res, last: `s${symbolCount - 1}` }
  mux.add(entry)
  req.socket.on("close", () => {
    mux.delete(entry)
  })
}

const download = (req: Http.IncomingMessage, res: Http.ServerResponse): void => {
  const bytes = intParam(req.url ?? "", "bytes")
  if (bytes === undefined || bytes % downloadChunkBytes !== 0) {
    res.writeHead(400).end()
    return
  }
  const source = downloadReadable(bytes)
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(bytes) })
  pipeline(source, res).catch(() => {
    // The client went away; the transfer is over either way.
  })
}

/** An object-mode Readable of `total` rows, a page per `read()`. */
const rowSource = (total: number): Readable => {
  let next = 0
  return new Readable({
    objectMode: true,
    highWaterMark: rowPageSize,
    read() {
      if (next >= total) {
        this.push(null)
        return
      }
      const page = makePage(next, total)
      next += page.length
      for (const row of page) this.push(row)
    }
  })
}

const exportCsv = (req: Http.IncomingMessage, res: Http.ServerResponse): void => {
  const rows = intParam(req.url ?? "", "rows")
  if (rows === undefined) {
    res.writeHead(400).end()
    return
  }
  res.writeHead(200, { "content-type": "text/csv; charset=utf-8", "content-disposition": "attachment; filename=\"rows.csv\"" })
  // Dates as ISO strings, as the other formats write them (csv-stringify's default is the epoch number).
  const options = {
    header: true,
    columns: [...rowColumns],
    record_delimiter: "windows" as const,
    cast: { date: (date: Date) => date.toISOString() }
  }
  pipeline(rowSource(rows), stringify(options), res).catch(() => {})
}

/**
 * The hand-written loop of the JSON formats: a page of rows → one string →
 * one `res.write`, waiting for `drain` when it returns false. `JSON.stringify`
 * writes a Date as its ISO string and leaves an absent field out.
 */
const exportJsonLines = (format: "ndjson" | "json") => (req: Http.IncomingMessage, res: Http.ServerResponse): void => {
  const total = intParam(req.url ?? "", "rows")
  if (total === undefined) {
    res.writeHead(400).end()
    return
  }
  res.writeHead(200, {
    "content-type": format === "ndjson" ? "application/x-ndjson" : "application/json",
    "content-disposition": `attachment; filename="rows.${format}"`
  })
  let closed = false
  req.socket.on("close", () => {
    closed = true
  })
  let next = 0
  if (format === "json") res.write("[")
  const pump = (): void => {
    while (!closed) {
      if (next >= total) {
        res.end(format === "ndjson" ? "" : next === 0 ? "]\n" : "\n]\n")
        return
      }
      const page = makePage(next, total)
      let text = ""
      if (format === "ndjson") {
        for (const row of page) text += JSON.stringify(row) + "\n"
      } else {
        for (let i = 0; i < page.length; i++) text += (next === 0 && i === 0 ? "\n" : ",\n") + JSON.stringify(page[i])
      }
      next += page.length
      if (!res.write(text)) {
        res.once("drain", pump)
        return
      }
    }
  }
  pump()
}

const health = (res: Http.ServerResponse): void => {
  res.writeHead(200, { "content-type": "application/json" }).end(`{"status":"ok"}`)
}

const startTimeSeconds = Date.now() / 1000 - process.uptime()

/** What a hand-written server would export: its open subscriptions, and the process figures every dashboard expects. */
const metrics = (res: Http.ServerResponse): void => {
  let open = 0
  for (const responses of subscribers.values()) open += responses.size
  const memory = process.memoryUsage()
  const cpu = process.cpuUsage()
  const text = "# TYPE raw_subscriptions_open gauge\n" +
    `raw_subscriptions_open ${open}\n` +
    "# TYPE process_resident_memory_bytes gauge\n" +
    `process_resident_memory_bytes ${memory.rss}\n` +
    "# TYPE process_heap_bytes gauge\n" +
    `process_heap_bytes ${memory.heapUsed}\n` +
    "# TYPE process_cpu_seconds_total counter\n" +
    `process_cpu_seconds_total ${(cpu.user + cpu.system) / 1e6}\n` +
    "# TYPE process_start_time_seconds gauge\n" +
    `process_start_time_seconds ${startTimeSeconds}\n`
  res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(text)
}

const server = Http.createServer((req, res) => {
  const path = (req.url ?? "").split("?")[0]
  switch (path) {
    case "/ticks":
      return ticks(req, res)
    case "/idle":
      return subscribe(quiet(), req, res)
    case "/fanout":
      return subscribe(live(), req, res)
    case "/sparse":
      return subscribe(sparse(), req, res)
    case "/keyed":
      return subscribeKey(req, res)
    case "/symbol":
      return subscribeSymbol(req, res)
    case "/mux":
      return subscribeMux(req, res)
    case "/download":
      return download(req, res)
    case "/export.csv":
      return exportCsv(req, res)
    case "/export.ndjson":
      return exportJsonLines("ndjson")(req, res)
    case "/export.json":
      return exportJsonLines("json")(req, res)
    case "/health":
      return health(res)
    case "/metrics":
      return metrics(res)
  }
  res.writeHead(404).end()
})
server.on("error", (error) => fail("raw server", error))
server.listen({ port: 0, host: "127.0.0.1", backlog: listenBacklog }, () => {
  const address = server.address()
  if (address === null || typeof address === "string") return fail("raw server", "no TCP address")
  announce(address.port, {
    ticks: { path: "/ticks" },
    idle: { path: "/idle" },
    fanout: { path: "/fanout" },
    storm: { path: "/{feed}" },
    sparse: { path: "/sparse" },
    keyed: { path: "/keyed?key={key}" },
    symbol: { path: "/symbol?key={key}", variant: "one connection per subscription" },
    mux: { path: "/mux", variant: "multiplexed, hand-written (10 per connection, sub: lines)" },
    download: { path: "/download?bytes={bytes}" },
    exportCsv: { path: "/export.csv?rows={rows}", variant: "csv-stringify" },
    exportNdjson: { path: "/export.ndjson?rows={rows}", variant: "hand-written loop" },
    exportJson: { path: "/export.json?rows={rows}", variant: "hand-written loop" }
  })
})
