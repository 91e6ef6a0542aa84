/**
 * Test support: many subscribers in a process of their own, so that the cost
 * of reading their streams does not delay the measuring process's event loop
 * (a probe's latency is then the server's, not the prober's).
 *
 * `startFloodClients()` spawns this file (`node --import tsx`); the child
 * opens subscriptions on request over IPC, each on its own connection, reads
 * and discards what they receive, and counts how each request was answered:
 * 200 (a stream), 503 (shed), another status, a connection error, or no
 * answer within `giveUpMs` (the client gives up and closes the connection).
 */
import * as Http from "node:http"
import { forkChild } from "./childProcess.ts"

export interface FloodCounts {
  /** Requests sent. */
  readonly sent: number
  /** Answered 200: a stream the server started for a client still there. */
  readonly ok: number
  /** Answered 503. */
  readonly shed: number
  /** 503 answers with a `Retry-After` header and a JSON `{_tag, message}` body. */
  readonly shedWellFormed: number
  /** Answered with another status. */
  readonly other: number
  /** Connection errors before an answer. */
  readonly errors: number
  /** No answer within `giveUpMs`: the client closed the connection. */
  readonly gaveUp: number
  /** Streams open now (200 and not ended). */
  readonly open: number
  /** Streams that ended while the client still held them (the server closed them). */
  readonly endedByServer: number
  /** Latency to the response head of answered requests, milliseconds: max and 99th percentile. */
  readonly maxHeadMs: number
  readonly p99HeadMs: number
}

type Command =
  | { readonly type: "open"; readonly url: string; readonly count: number; readonly giveUpMs: number }
  | { readonly type: "counts" }
  | { readonly type: "close" }

// ---------------------------------------------------------------------------
// The child
// ---------------------------------------------------------------------------

const child = () => {
  const open = new Set<Http.ClientRequest>()
  const heads: Array<number> = []
  const counts = { sent: 0, ok: 0, shed: 0, shedWellFormed: 0, other: 0, errors: 0, gaveUp: 0, endedByServer: 0 }
  let closing = false
  const snapshot = (): FloodCounts => {
    const sorted = [...heads].sort((a, b) => a - b)
    return {
      ...counts,
      open: open.size,
      maxHeadMs: sorted.at(-1) ?? 0,
      p99HeadMs: sorted[Math.floor(sorted.length * 0.99)] ?? 0
    }
  }
  const subscribe = (url: string, giveUpMs: number) => {
    counts.sent++
    const started = Date.now()
    let answered = false
    let gaveUp = false
    const request = Http.get(url, { agent: false }, (response) => {
      answered = true
      clearTimeout(timer)
      heads.push(Date.now() - started)
      if (response.statusCode === 200) {
        counts.ok++
        open.add(request)
        response.on("data", () => {})
        response.on("error", () => {})
        response.on("close", () => {
          if (open.delete(request) && !closing) counts.endedByServer++
        })
        return
      }
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (text: string) => {
        body += text
      })
      response.on("end", () => {
        if (response.statusCode !== 503) {
          counts.other++
          return
        }
        counts.shed++
        try {
          const parsed = JSON.parse(body) as { _tag?: unknown; message?: unknown }
          if (response.headers["retry-after"] !== undefined && typeof parsed._tag === "string" && typeof parsed.message === "string") {
            counts.shedWellFormed++
          }
        } catch {
          // not JSON: counted as shed, not as well formed
        }
      })
      response.on("error", () => {})
    })
    const timer = setTimeout(() => {
      if (answered) return
      gaveUp = true
      counts.gaveUp++
      request.destroy()
    }, giveUpMs)
    request.on("error", () => {
      clearTimeout(timer)
      if (!answered && !gaveUp) counts.errors++
    })
  }
  process.on("message", (command: Command) => {
    if (command.type === "open") {
      for (let i = 0; i < command.count; i++) subscribe(command.url, command.giveUpMs)
      process.send!({ type: "counts", counts: snapshot() })
    } else if (command.type === "counts") {
      process.send!({ type: "counts", counts: snapshot() })
    } else {
      closing = true
      for (const request of open) request.destroy()
      open.clear()
      process.send!({ type: "counts", counts: snapshot() }, () => process.exit(0))
    }
  })
  process.send!({ type: "ready" })
}

// ---------------------------------------------------------------------------
// The parent
// ---------------------------------------------------------------------------

export interface FloodClients {
  readonly pid: number
  /** Opens `count` more subscriptions to `url` (a full `/rpc/watchPrices?payload=…` URL). */
  readonly open: (url: string, count: number, giveUpMs?: number) => Promise<FloodCounts>
  readonly counts: () => Promise<FloodCounts>
  /** Closes every connection, then the child exits; the final counts. */
  readonly close: () => Promise<FloodCounts>
  /** SIGKILL if still running (a cleanup). */
  readonly kill: () => void
}

export const startFloodClients = (): Promise<FloodClients> => {
  const { child: process_, kill } = forkChild(import.meta.url, "--flood-child")
  const waiting: Array<(counts: FloodCounts) => void> = []
  process_.on("message", (message: { type: string; counts?: FloodCounts }) => {
    if (message.type === "counts") waiting.shift()?.(message.counts!)
  })
  const ask = (command: Command) =>
    new Promise<FloodCounts>((resolve, reject) => {
      waiting.push(resolve)
      process_.send(command, (error) => {
        if (error !== null) reject(error)
      })
    })
  return new Promise((resolve, reject) => {
    process_.once("error", reject)
    process_.once("exit", (code) => reject(new Error(`the flood clients exited (code ${code})`)))
    process_.once("message", () =>
      resolve({
        pid: process_.pid!,
        open: (url, count, giveUpMs = 10_000) => ask({ type: "open", url, count, giveUpMs }),
        counts: () => ask({ type: "counts" }),
        close: () => ask({ type: "close" }),
        kill
      }))
  })
}

if (process.argv.includes("--flood-child")) child()
