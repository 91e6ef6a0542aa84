/**
 * A request whose client has already gone is never started (the promise of
 * admission, src/server/internal/Admission.ts) — also when the server reads
 * the request late, together with the client's close.
 *
 * That is what a reconnect storm does to a busy server: requests wait (in
 * the accept queue, behind a late loop) longer than their clients' patience,
 * the clients close their connections, and the server then reads each
 * request and its FIN in one go. Here the wait is made exact: the demo
 * process is stopped (SIGSTOP) while 20 subscriptions and 20 exports are sent
 * and given up (closed) by their clients, then continued (SIGCONT). No
 * stream may be started for any of them: `stream_terminations_total` plus
 * `stream_active` unchanged, no "stream closed" log line for them.
 *
 * Failed before the fix: the server started all 40 (each closed within a
 * few milliseconds, interrupted): admission asked whether the client had
 * gone (`socket.destroyed`) before the server had read the end of the
 * connection, which Node reads one turn of the loop after the request (a
 * read short of its buffer ends that turn's reading). A stream now starts
 * after the next turn's reads, and a connection ended by its client counts
 * as gone (`NodePlatform.afterNextReads`, `clientGone`).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Http from "node:http"
import { loopbackAddresses } from "../support/crowd.ts"
import { startDemo } from "../support/demoProcess.ts"
import { closedInLog, probe, query, sleep, sumOf } from "../support/overload.ts"
import { activeNow, scrape } from "../support/serverWatch.ts"

describe("clients gone before their request is read", () => {
  it("requests given up while the server was stopped start no stream", async () => {
    const demo = await startDemo({ shutdownDeadlineMs: 5_000 })
    try {
      const watchUrl = `${demo.url}/rpc/watchPrices?${query({ symbols: ["ACME"] })}`
      const exportUrl = `${demo.url}/rpc/exportOrders?${query({ count: 10_000_000 })}&format=ndjson`
      // Warm-up: a subscription and an export served (the code paths compiled, the counters there).
      expect((await probe(watchUrl, { read: "head" })).status).toBe(200)
      expect((await probe(`${demo.url}/rpc/exportOrders?${query({ count: 10 })}&format=ndjson`, { read: "body" })).status).toBe(200)
      // Until nothing runs (the warm-up's streams closed), at most 5 s.
      const idle = async () => {
        for (let i = 0; i < 50; i++) {
          const active = await activeNow(demo)
          if (active !== undefined && Object.values(active).every((n) => n === 0)) return
          await sleep(100)
        }
      }
      await idle()
      const startedNow = async () => {
        const metrics = (await scrape(demo)).metrics ?? []
        const started = (kind: string) => sumOf(metrics, "stream_terminations_total", { kind }) + sumOf(metrics, "stream_active", { kind })
        return { subscription: started("subscription"), export: started("export") }
      }
      const before = await startedNow()
      const closedBefore = closedInLog(demo.output(), "subscription")

      // The server stops reading; 40 clients ask and give up (close their connections) while it is stopped.
      let heads = 0
      process.kill(demo.pid, "SIGSTOP")
      try {
        const addresses = loopbackAddresses("127.0.8.1", 40)
        for (let i = 0; i < 40; i++) {
          const request = Http.get(i % 2 === 0 ? watchUrl : exportUrl, { agent: false, localAddress: addresses[i]! }, () => {
            heads++
          })
          request.on("error", () => {})
          setTimeout(() => request.destroy(), 300)
        }
        await sleep(1_000)
      } finally {
        process.kill(demo.pid, "SIGCONT")
      }

      // Once the server has read them: nothing started, nothing running.
      await idle()
      // The log lines arrive through a pipe.
      await sleep(1_000)
      const after = await startedNow()
      const what = demo.output().slice(-1500)
      expect(heads).toBe(0)
      expect({ subscription: after.subscription - before.subscription, export: after.export - before.export }, what)
        .toEqual({ subscription: 0, export: 0 })
      expect(closedInLog(demo.output(), "subscription") - closedBefore, what).toBe(0)
      expect(Object.values((await activeNow(demo)) ?? {}).reduce((sum, n) => sum + n, 0), what).toBe(0)
    } finally {
      await demo.stop({ timeoutMs: 10_000 }).catch(() => undefined)
    }
  }, 60_000)
})
