/**
 * Test support: watching a demo server process while a case loads it, and
 * the accounts once its clients have left.
 *
 * `watchServer` sends `GET /metrics` and `GET /health`, each on a fresh
 * connection, every `everyMs`, not waiting for the previous ones (a hang
 * must not stop the sampling), and keeps what they answer: their answer
 * times, the server's shed counts by reason, its peak of open streams and
 * its resident memory.
 *
 * `streamsAfter` waits for every stream to end once the clients have gone
 * (`stream_active` 0), then counts the streams the server started — ended
 * (`stream_terminations_total`) plus still open — per kind, and its "stream
 * closed" log lines: a case compares those with the 200s its clients saw. A
 * stream started for a client that had already gone (an orphan) shows up as
 * more streams started than answered.
 */
import { type Distribution, distribution } from "./crowd.ts"
import type { DemoProcess } from "./demoProcess.ts"
import * as Fs from "node:fs"
import { closedInLog, type MetricLine, parseMetrics, probe, type ProbeResult, residentBytes, sleep, sumOf } from "./overload.ts"

export interface Watched {
  /** Answer times of the scrapes and health checks that were answered. */
  readonly metrics: Distribution
  readonly health: Distribution
  /** Scrapes and health checks not answered 200 (hangs of 10 s included). */
  readonly metricsNot200: number
  readonly healthNot200: number
  /** `stream_shed_total` by reason, and by kind and reason, at the last scrape. */
  readonly shedByReason: Readonly<Record<string, number>>
  readonly shedByKind: Readonly<Record<string, number>>
  /** Most streams open at once per kind (`stream_active`), as scraped. */
  readonly peakActive: Readonly<Record<string, number>>
  readonly rssPeak: number
}

export const shedOf = (metrics: ReadonlyArray<MetricLine>) => {
  const byReason: Record<string, number> = {}
  const byKind: Record<string, number> = {}
  for (const line of metrics.filter((line) => line.name === "stream_shed_total")) {
    const reason = line.labels["reason"] ?? "?"
    byReason[reason] = (byReason[reason] ?? 0) + line.value
    const key = `${line.labels["kind"] ?? "?"}/${reason}`
    byKind[key] = (byKind[key] ?? 0) + line.value
  }
  return { byReason, byKind }
}

export const scrape = async (demo: DemoProcess): Promise<{ readonly result: ProbeResult; readonly metrics: ReadonlyArray<MetricLine> | undefined }> => {
  const result = await probe(`${demo.url}/metrics`, { read: "body" })
  return { result, metrics: result.status === 200 ? parseMetrics(result.body) : undefined }
}

/** Streams open now per kind, from one scrape (undefined if it was not answered). */
export const activeNow = async (demo: DemoProcess): Promise<Readonly<Record<string, number>> | undefined> => {
  const { metrics } = await scrape(demo)
  if (metrics === undefined) return undefined
  return {
    subscription: sumOf(metrics, "stream_active", { kind: "subscription" }),
    download: sumOf(metrics, "stream_active", { kind: "download" }),
    export: sumOf(metrics, "stream_active", { kind: "export" })
  }
}

export const watchServer = (demo: DemoProcess, everyMs: number): { readonly stop: () => Promise<Watched> } => {
  const metricsProbes: Array<ProbeResult> = []
  const healthProbes: Array<ProbeResult> = []
  const peakActive: Record<string, number> = {}
  let shed = { byReason: {} as Record<string, number>, byKind: {} as Record<string, number> }
  let rssPeak = residentBytes(demo.pid) ?? 0
  const pending = new Set<Promise<unknown>>()
  const track = (promise: Promise<unknown>) => {
    pending.add(promise)
    void promise.finally(() => pending.delete(promise))
  }
  const sample = () => {
    track(probe(`${demo.url}/health`, { read: "body" }).then((result) => healthProbes.push(result)))
    track(scrape(demo).then(({ metrics, result }) => {
      metricsProbes.push(result)
      rssPeak = Math.max(rssPeak, residentBytes(demo.pid) ?? 0)
      if (metrics === undefined) return
      for (const line of metrics.filter((line) => line.name === "stream_active")) {
        const kind = line.labels["kind"] ?? "?"
        peakActive[kind] = Math.max(peakActive[kind] ?? 0, sumOf(metrics, "stream_active", { kind }))
      }
      shed = shedOf(metrics)
    }))
  }
  const timer = setInterval(sample, everyMs)
  sample()
  const answered = (results: ReadonlyArray<ProbeResult>) => results.filter((r) => r.status !== "hang").map((r) => r.headMs)
  return {
    stop: async () => {
      clearInterval(timer)
      await Promise.allSettled([...pending])
      return {
        metrics: distribution(answered(metricsProbes)),
        health: distribution(answered(healthProbes)),
        metricsNot200: metricsProbes.filter((r) => r.status !== 200).length,
        healthNot200: healthProbes.filter((r) => r.status !== 200).length,
        shedByReason: shed.byReason,
        shedByKind: shed.byKind,
        peakActive: { ...peakActive },
        rssPeak
      }
    }
  }
}

export interface StreamsAfter {
  /** Streams still open after waiting (0: nothing left running). */
  readonly active: number
  /** Streams the server started, per kind: ended plus still open. */
  readonly started: Readonly<Record<"subscription" | "download" | "export", number>>
  /** "stream closed" log lines of subscriptions. */
  readonly subscriptionsClosedInLog: number
  readonly shedByReason: Readonly<Record<string, number>>
  readonly shedByKind: Readonly<Record<string, number>>
}

export const streamsAfter = async (demo: DemoProcess, timeoutMs = 30_000): Promise<StreamsAfter> => {
  let active = Number.NaN
  let metrics: ReadonlyArray<MetricLine> = []
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) {
    const scraped = await scrape(demo)
    if (scraped.metrics !== undefined) {
      metrics = scraped.metrics
      active = sumOf(metrics, "stream_active")
      if (active === 0) break
    }
    await sleep(500)
  }
  const startedOf = (kind: string) =>
    sumOf(metrics, "stream_terminations_total", { kind }) + sumOf(metrics, "stream_active", { kind })
  const started = { subscription: startedOf("subscription"), download: startedOf("download"), export: startedOf("export") }
  // The log lines arrive through a pipe: wait for them to stop coming.
  let subscriptionsClosedInLog = closedInLog(demo.output(), "subscription")
  for (const deadline = Date.now() + 10_000; subscriptionsClosedInLog < started.subscription && Date.now() < deadline;) {
    await sleep(200)
    subscriptionsClosedInLog = closedInLog(demo.output(), "subscription")
  }
  const shed = shedOf(metrics)
  return { active, started, subscriptionsClosedInLog, shedByReason: shed.byReason, shedByKind: shed.byKind }
}

/** "12 fan_out_delay, 3 event_loop_delay", or "none". */
export const reasons = (byReason: Readonly<Record<string, number>>): string =>
  Object.entries(byReason).filter(([, n]) => n > 0).map(([reason, n]) => `${n} ${reason}`).join(", ") || "none"

/** CPU seconds (user + system) process `pid` has used, from /proc/<pid>/stat; undefined where there is none. */
export const cpuSeconds = (pid: number): number | undefined => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // Fields after the command name (which may hold spaces, in parentheses): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return undefined
  }
}
