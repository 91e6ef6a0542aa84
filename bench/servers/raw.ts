/**
 * Baseline: plain `node:http`, written the way a careful engineer would
 * without a framework. Every ratio in the report is against this server.
 *
 * - SSE: one `res.write` per event; when `write` returns false the producer
 *   stops and resumes on `drain` (nothing is dropped, nothing piles up).
 *   Between batches of `sseBatchSize` events it yields with `setImmediate`,
 *   the same source pattern as every other implementation.
 * - Download: `pipeline(readable, res)` from a Readable handing over the
 *   next 64 KiB buffer on each `read()`.
 */
import * as Http from "node:http"
import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import { announce, exitWithRunner, fail } from "../harness.ts"
import {
  downloadBytesOf,
  downloadChunk,
  downloadChunkBytes,
  makeBatch,
  paths,
  serializeTick,
  type Tick
} from "../workload.ts"

exitWithRunner()

const sse = (req: Http.IncomingMessage, res: Http.ServerResponse): void => {
  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",
    "connection": "keep-alive"
  })
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

const download = (req: Http.IncomingMessage, res: Http.ServerResponse): void => {
  const bytes = downloadBytesOf(req.url ?? "")
  if (bytes === undefined) {
    res.writeHead(400).end()
    return
  }
  let left = bytes / downloadChunkBytes
  const source = new Readable({
    read() {
      if (left === 0) {
        this.push(null)
        return
      }
      left--
      this.push(downloadChunk())
    }
  })
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(bytes) })
  pipeline(source, res).catch(() => {
    // The client went away; the transfer is over either way.
  })
}

const server = Http.createServer((req, res) => {
  const path = (req.url ?? "").split("?")[0]
  if (path === paths.sse) return sse(req, res)
  if (path === paths.download) return download(req, res)
  res.writeHead(404).end()
})
server.on("error", (error) => fail("raw server", error))
server.listen(0, "127.0.0.1", () => {
  const address = server.address()
  if (address === null || typeof address === "string") return fail("raw server", "no TCP address")
  announce(address.port)
})
