/**
 * A flood past capacity against the demo server as a real process (what
 * `npm start` runs, with the default admission limits): subscriptions are
 * opened in steps, by a client process of their own, until the server sheds
 * (or a bound on count or time is reached), alongside `stalledExports`
 * exports of many rows whose clients never read. Throughout, every
 * `probeEveryMs` the measuring process sends, each on a fresh connection:
 *
 * - a new subscription and a small export: each must be answered — served,
 *   or `503` with `Retry-After` and a JSON `{_tag, message}` — not hang;
 * - `GET /metrics` and `GET /health`: must answer;
 *
 * and samples the server's resident memory (`/proc/<pid>/status`) and heap
 * (`process_heap_bytes`). Then every client leaves, and the case checks that
 * nothing is left running (`stream_active` back to 0), that no stream was
 * started for a client that had gone (streams the server started, from
 * `stream_terminations_total` and its "stream closed" log lines, against
 * requests the clients saw answered 200), that a new subscription and an
 * export work, and how far memory comes back: as V8 gives it back by
 * itself while the server idles, and after a full collection requested
 * through the server's inspector (the baseline is taken after one too).
 *
 * `FLOOD_TRACE=1` prints every probe to stderr as it completes: seconds since
 * the flood started, kind, status, milliseconds to the head, and the wall
 * clock (to find the moment in a `DEMO_NODE_FLAGS=--cpu-prof` profile).
 */
import { startDemo } from "../support/demoProcess.ts"
import { type FloodCounts, startFloodClients } from "../support/floodClients.ts"
import {
  closedInLog,
  type MetricLine,
  parseMetrics,
  probe,
  type ProbeResult,
  query,
  residentBytes,
  sleep,
  sumOf
} from "../support/overload.ts"
import * as Http from "node:http"

export interface FloodOptions {
  readonly pricesPerSecond: number
  /** Symbols per flood subscription (of the demo's 5). */
  readonly symbols: number
  /** Subscriptions added per step, and the pause between steps. */
  readonly step: number
  readonly stepMs: number
  /** Bounds of the ramp: at most this many subscriptions, for at most this long. */
  readonly maxSubscriptions: number
  readonly rampMs: number
  /** How long the flood is held once the server sheds (or the ramp ends). */
  readonly holdMs: number
  readonly stalledExports: number
  /** Rows asked of each stalled export. */
  readonly stalledExportRows: number
  readonly probeEveryMs: number
  /** How long memory is watched after every client left. */
  readonly settleMs: number
}

export interface Latencies {
  readonly count: number
  readonly maxMs: number
  readonly p99Ms: number
  /** Answers later than 1 s. */
  readonly over1s: number
  /** No answer within the probe's 10 s. */
  readonly hangs: number
}

export interface FloodReport {
  /** Flood subscriptions sent, and answered 200 / 503. */
  readonly flood: FloodCounts
  /** Subscriptions open on the server (`stream_active`) at its first shed (of any request), and at the peak. */
  readonly activeAtFirstShed: number | undefined
  readonly peakActive: number
  readonly firstShedAfterMs: number | undefined
  /** `stream_shed_total` by reason at the end of the flood. */
  readonly shedByReason: Readonly<Record<string, number>>
  /** Probes: new subscriptions and exports answered 503 / served, and their latencies to the head. */
  readonly probes503: Latencies
  readonly probesServed: Latencies
  readonly probes503WellFormed: number
  readonly probesOtherStatus: number
  readonly metrics: Latencies
  /** `/metrics` scrapes answered other than 200 (hangs included). */
  readonly metricsNot200: number
  /** `GET /health`, on a fresh connection next to each scrape, and those answered other than 200. */
  readonly health: Latencies
  readonly healthNot200: number
  readonly stalledExportsAnswered: number
  /** Streams still open once every client left, after waiting. */
  readonly activeAfter: number
  /** Streams the server started (terminations + active) against requests answered 200, per kind. */
  readonly subscriptionsStarted: number
  readonly subscriptionsAnswered: number
  readonly subscriptionsClosedInLog: number
  readonly exportsStarted: number
  readonly exportsAnswered: number
  readonly orphans: number
  /** After the flood: a subscription received a price, an export of 1,000 rows came whole. */
  readonly subscriptionAfter: boolean
  readonly exportAfter: boolean
  readonly memory: {
    readonly rssBaseline: number
    readonly rssPeak: number
    readonly rssAfter: number
    readonly heapBaseline: number
    readonly heapPeak: number
    readonly heapAfter: number
    /** Seconds from the last client leaving to the `after` figures. */
    readonly settledSeconds: number
    /** Then, after a full collection (the baseline is taken after one too). */
    readonly rssAfterGc: number
    readonly heapAfterGc: number
  }
  readonly exitCode: number | null
  readonly durationMs: number
  readonly output: string
}

const latencies = (results: ReadonlyArray<ProbeResult>): Latencies => {
  const answered = results.filter((result) => result.status !== "hang").map((result) => result.headMs).sort((a, b) => a - b)
  return {
    count: results.length,
    maxMs: Math.round(answered.at(-1) ?? 0),
    p99Ms: Math.round(answered[Math.floor(answered.length * 0.99)] ?? 0),
    over1s: answered.filter((ms) => ms > 1_000).length,
    hangs: results.length - answered.length
  }
}

export const floodPastCapacity = async (options: FloodOptions): Promise<FloodReport> => {
  const started = Date.now()
  const demo = await startDemo({ pricesPerSecond: options.pricesPerSecond, shutdownDeadlineMs: 5_000, inspect: true })
  const flood = await startFloodClients()
  const stalled: Array<Http.ClientRequest> = []
  try {
    const symbols = ["ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI"].slice(0, Math.max(1, Math.min(5, options.symbols)))
    const watchUrl = `${demo.url}/rpc/watchPrices?${query({ symbols })}`
    const exportUrl = (count: number) => `${demo.url}/rpc/exportOrders?${query({ count })}&format=ndjson`
    let answered = { subscription: 0, export: 0 }

    // Warm-up (the code paths compiled), then the baseline.
    const warm = await probe(watchUrl, { read: "head" })
    if (warm.status === 200) answered.subscription++
    const warmExport = await probe(exportUrl(1_000), { read: "body" })
    if (warmExport.status === 200) answered.export++
    await sleep(2_000)
    await demo.collectGarbage()
    const scrape = async () => {
      const result = await probe(`${demo.url}/metrics`, { read: "body" })
      return { result, metrics: result.status === 200 ? parseMetrics(result.body) : undefined }
    }
    const first = await scrape()
    const heapOf = (metrics: ReadonlyArray<MetricLine> | undefined) => metrics === undefined ? 0 : sumOf(metrics, "process_heap_bytes")
    const rssBaseline = residentBytes(demo.pid) ?? sumOf(first.metrics ?? [], "process_resident_memory_bytes")
    const heapBaseline = heapOf(first.metrics)
    let rssPeak = rssBaseline
    let heapPeak = heapBaseline
    let peakActive = 0
    let activeAtFirstShed: number | undefined
    let firstShedAfterMs: number | undefined
    let shedByReason: Record<string, number> = {}

    // The probes, every probeEveryMs, not waiting for the previous ones (a hang must not stop the sampling).
    const subscriptionProbes: Array<ProbeResult> = []
    const exportProbes: Array<ProbeResult> = []
    const metricsProbes: Array<ProbeResult> = []
    const healthProbes: Array<ProbeResult> = []
    const pending = new Set<Promise<unknown>>()
    const track = (promise: Promise<unknown>) => {
      pending.add(promise)
      void promise.finally(() => pending.delete(promise))
    }
    const floodStarted = Date.now()
    const trace = (kind: string, result: ProbeResult) => {
      if (process.env["FLOOD_TRACE"] !== undefined) console.error(`trace ${((Date.now() - floodStarted) / 1000).toFixed(1)} ${kind} ${result.status} ${Math.round(result.headMs)} ${Date.now()}`)
    }
    const sample = () => {
      track(probe(watchUrl, { read: "head" }).then((result) => {
        trace("sub", result)
        subscriptionProbes.push(result)
        if (result.status === 200) answered.subscription++
      }))
      track(probe(exportUrl(100), { read: "body" }).then((result) => {
        trace("exp", result)
        exportProbes.push(result)
        if (result.status === 200) answered.export++
      }))
      track(probe(`${demo.url}/health`, { read: "body" }).then((result) => {
        trace("hea", result)
        healthProbes.push(result)
      }))
      track(scrape().then(({ metrics, result }) => {
        metricsProbes.push(result)
        trace("met", result)
        const rss = residentBytes(demo.pid)
        if (rss !== undefined) rssPeak = Math.max(rssPeak, rss)
        if (metrics === undefined) return
        heapPeak = Math.max(heapPeak, heapOf(metrics))
        const active = sumOf(metrics, "stream_active", { kind: "subscription" })
        peakActive = Math.max(peakActive, active)
        const shed = sumOf(metrics, "stream_shed_total")
        if (shed > 0 && activeAtFirstShed === undefined) {
          activeAtFirstShed = active
          firstShedAfterMs = Date.now() - floodStarted
        }
        shedByReason = {}
        for (const line of metrics.filter((line) => line.name === "stream_shed_total")) {
          const reason = line.labels["reason"] ?? "?"
          shedByReason[reason] = (shedByReason[reason] ?? 0) + line.value
        }
      }))
    }
    const sampler = setInterval(sample, options.probeEveryMs)

    // The stalled exports: asked for many rows, never read.
    let stalledExportsAnswered = 0
    for (let i = 0; i < options.stalledExports; i++) {
      const request = Http.get(exportUrl(options.stalledExportRows), { agent: false }, (response) => {
        if (response.statusCode === 200) {
          stalledExportsAnswered++
          answered.export++
        }
        response.pause()
        response.on("error", () => {})
      })
      request.on("error", () => {})
      stalled.push(request)
    }

    // The stalled exports answered and their first burst of rows (what the socket buffers take) past:
    // while they fill their sockets the loop is busy and new streams are shed; the ramp starts
    // once a subscription is admitted again (or after 30 s).
    for (const deadline = Date.now() + 10_000; stalledExportsAnswered < options.stalledExports && Date.now() < deadline;) await sleep(100)
    await sleep(2_000)
    for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
      const admitted = await probe(watchUrl, { read: "head" })
      if (admitted.status === 200) {
        answered.subscription++
        break
      }
      await sleep(500)
    }

    // The ramp: subscriptions in steps until the server sheds one of them, or a bound is reached.
    let counts = await flood.counts()
    const rampStarted = Date.now()
    while (Date.now() - rampStarted < options.rampMs && counts.sent < options.maxSubscriptions && counts.shed === 0) {
      counts = await flood.open(watchUrl, Math.min(options.step, options.maxSubscriptions - counts.sent))
      await sleep(options.stepMs)
    }
    const holdUntil = Date.now() + options.holdMs
    while (Date.now() < holdUntil) {
      await sleep(1_000)
      counts = await flood.counts()
    }
    clearInterval(sampler)
    await Promise.allSettled([...pending])

    // Every client leaves.
    const floodCounts = await flood.close()
    for (const request of stalled) request.destroy()
    const left = Date.now()
    let activeAfter = Number.NaN
    let metricsAfter: ReadonlyArray<MetricLine> = []
    for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
      const { metrics } = await scrape()
      if (metrics !== undefined) {
        metricsAfter = metrics
        activeAfter = sumOf(metrics, "stream_active")
        if (activeAfter === 0) break
      }
      await sleep(500)
    }
    answered = { subscription: answered.subscription + floodCounts.ok, export: answered.export }
    const subscriptionsStarted = sumOf(metricsAfter, "stream_terminations_total", { kind: "subscription" }) +
      sumOf(metricsAfter, "stream_active", { kind: "subscription" })
    const exportsStarted = sumOf(metricsAfter, "stream_terminations_total", { kind: "export" }) +
      sumOf(metricsAfter, "stream_active", { kind: "export" })
    // The log lines arrive through a pipe: wait for them to stop coming.
    let subscriptionsClosedInLog = closedInLog(demo.output(), "subscription")
    for (const deadline = Date.now() + 10_000; subscriptionsClosedInLog < subscriptionsStarted && Date.now() < deadline;) {
      await sleep(200)
      subscriptionsClosedInLog = closedInLog(demo.output(), "subscription")
    }

    // After the flood: a subscription gets a price (tried again after a 503, as its Retry-After
    // asks: the loop's utilization is measured over the last second), an export comes whole.
    const subscribeOnce = () => new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        request.destroy()
        resolve(false)
      }, 10_000)
      const request = Http.get(watchUrl, { agent: false }, (response) => {
        if (response.statusCode !== 200) {
          clearTimeout(timer)
          request.destroy()
          resolve(false)
          return
        }
        let text = ""
        response.setEncoding("utf8")
        response.on("data", (chunk: string) => {
          text += chunk
          if (/^data: /m.test(text)) {
            clearTimeout(timer)
            request.destroy()
            resolve(response.statusCode === 200)
          }
        })
        response.on("error", () => {})
      })
      request.on("error", () => {})
    })
    let subscriptionAfter = false
    for (let attempt = 0; attempt < 5 && !subscriptionAfter; attempt++) {
      if (attempt > 0) await sleep(1_000)
      subscriptionAfter = await subscribeOnce()
    }
    const exportAfterResult = await probe(exportUrl(1_000), { read: "body" })
    const exportAfter = exportAfterResult.status === 200 &&
      exportAfterResult.body.split("\n").filter((line) => line !== "").length === 1_000

    // Memory, as the server gives it back by itself.
    let rssAfter = residentBytes(demo.pid) ?? 0
    let heapAfter = 0
    while (Date.now() - left < options.settleMs) {
      await sleep(2_000)
      const { metrics } = await scrape()
      rssAfter = residentBytes(demo.pid) ?? sumOf(metrics ?? [], "process_resident_memory_bytes")
      heapAfter = heapOf(metrics)
    }
    const settledSeconds = (Date.now() - left) / 1000
    // And after a full collection (through the server's inspector), as the baseline was taken.
    await demo.collectGarbage()
    const afterGc = await scrape()
    const rssAfterGc = residentBytes(demo.pid) ?? sumOf(afterGc.metrics ?? [], "process_resident_memory_bytes")
    const heapAfterGc = heapOf(afterGc.metrics)

    const exit = await demo.stop({ timeoutMs: 20_000 }).catch(() => ({ code: null }))
    const probes = [...subscriptionProbes, ...exportProbes]
    return {
      flood: floodCounts,
      activeAtFirstShed,
      peakActive,
      firstShedAfterMs,
      shedByReason,
      probes503: latencies(probes.filter((result) => result.status === 503)),
      probesServed: latencies(probes.filter((result) => result.status === 200 || result.status === "hang")),
      probes503WellFormed: probes.filter((result) => result.wellFormed503).length,
      probesOtherStatus: probes.filter((result) => result.status !== 200 && result.status !== 503 && result.status !== "hang").length,
      metrics: latencies(metricsProbes),
      metricsNot200: metricsProbes.filter((result) => result.status !== 200).length,
      health: latencies(healthProbes),
      healthNot200: healthProbes.filter((result) => result.status !== 200).length,
      stalledExportsAnswered,
      activeAfter,
      subscriptionsStarted,
      subscriptionsAnswered: answered.subscription,
      subscriptionsClosedInLog,
      exportsStarted,
      exportsAnswered: answered.export,
      orphans: Math.max(0, subscriptionsStarted - answered.subscription) + Math.max(0, exportsStarted - answered.export),
      subscriptionAfter,
      exportAfter,
      memory: { rssBaseline, rssPeak, rssAfter, heapBaseline, heapPeak, heapAfter, settledSeconds, rssAfterGc, heapAfterGc },
      exitCode: exit.code,
      durationMs: Date.now() - started,
      output: demo.output()
    }
  } finally {
    for (const request of stalled) request.destroy()
    flood.kill()
    await demo.stop({ timeoutMs: 10_000 }).catch(() => undefined)
  }
}
