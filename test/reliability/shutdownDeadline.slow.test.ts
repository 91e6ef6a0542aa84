/**
 * A stalled client cannot hold a shutdown: at the deadline the transfers
 * still running are cut (their clients see a truncated transfer) and the
 * process exits 0, while a download whose client reads completes. The soak
 * run (`npm run soak`) measures the time from SIGTERM to exit.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Http from "node:http"
import { shutdownAtDeadline } from "../soak/shutdownDeadline.ts"
import { startDemo } from "../support/demoProcess.ts"
import { eventually } from "../support/http.ts"

const query = (payload: unknown) => `payload=${encodeURIComponent(JSON.stringify(payload))}`

/** A GET whose outcome is "complete" (a clean end of body) or "truncated". */
const transfer = (url: string, read: boolean) =>
  new Promise<{ readonly response: Http.IncomingMessage; readonly outcome: Promise<string> }>((resolve, reject) => {
    Http.get(url, { agent: false }, (response) => {
      const outcome = new Promise<string>((settle) => {
        response.on("end", () => settle("complete"))
        response.on("error", () => settle("truncated"))
        response.on("aborted", () => settle("truncated"))
      })
      if (read) response.resume()
      else response.pause()
      resolve({ response, outcome })
    }).on("error", reject)
  })

describe("shutdown deadline", () => {
  it("SIGTERM with stalled downloads and 200 subscriptions: the stalled ones are cut at the deadline, the process exits 0", async () => {
    const demo = await startDemo({ shutdownDeadlineMs: 1_000 })
    try {
      const subscriptions = await Promise.all(
        Array.from({ length: 200 }, () =>
          new Promise<Http.IncomingMessage>((resolve, reject) =>
            Http.get(`${demo.url}/rpc/watchPrices?${query({ symbols: ["ACME"] })}`, { agent: false }, (r) => {
              r.resume()
              resolve(r)
            }).on("error", reject)
          ))
      )
      // npm start's /metrics counts the open subscriptions
      const metrics = await fetch(`${demo.url}/metrics`).then((r) => r.text())
      expect(metrics).toContain("stream_active{kind=\"subscription\",stream=\"watchPrices\"} 200\n")
      // and its /health says it serves
      const health = await fetch(`${demo.url}/health`)
      expect(health.status).toBe(200)
      expect(await health.json()).toEqual({ status: "ok" })
      const stalled = await Promise.all([1, 2, 3].map(() => transfer(`${demo.url}/rpc/downloadReport?${query({ sizeMb: 256 })}`, false)))
      const reading = await transfer(`${demo.url}/rpc/downloadReport?${query({ sizeMb: 1 })}`, true)
      expect(await reading.outcome).toBe("complete")
      // The stalled downloads have started (their heads are in) and their clients read nothing more
      // until the process has exited: 256 MiB each, they are still running at the deadline.

      const exit = await demo.stop({ timeoutMs: 30_000 })
      expect(exit.code, demo.output().slice(-2000)).toBe(0)
      for (const { outcome, response } of stalled) {
        response.resume()
        expect(await outcome).toBe("truncated")
      }
      await eventually(() => subscriptions.every((r) => r.complete || r.destroyed))
      expect(demo.output()).toMatch(/drain deadline passed; cut the remaining transfers[\s\S]*transfers: 3/)
    } finally {
      await demo.stop().catch(() => undefined)
    }
  }, 90_000)
})

describe("shutdown deadline with downloads in progress", () => {
  it("SIGTERM while some downloads are read and others stalled: the read ones complete, the stalled ones are cut, exit 0", async () => {
    const report = await shutdownAtDeadline({
      subscriptions: 100,
      stalled: 2,
      stalledMb: 256,
      reading: 2,
      readingMb: 64,
      shutdownDeadlineMs: 3_000
    })
    const what = JSON.stringify({ ...report, output: report.output.slice(-2000) })
    expect(report.exitCode, what).toBe(0)
    expect(report.stalledTruncated, what).toBe(2)
    expect(report.cutAtDeadline, what).toBe(2)
    expect(report.readingComplete, what).toBe(2)
    expect(report.subscriptionsEnded, what).toBe(100)
  }, 90_000)
})
