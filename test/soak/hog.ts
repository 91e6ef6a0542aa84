/**
 * An export hog against the demo server as a real process: one client reads
 * a `rows`-row NDJSON export of `exportOrders` at full speed (from a crowd
 * process of its own, so its reading does not slow the attempts), and while
 * it runs other clients, each from a loopback address of its own, open new
 * subscriptions, downloads and exports, `attempts` of them spread over
 * `spreadMs`, each on a fresh connection.
 *
 * Admission by harm must let them in: one client's export is not harm to
 * the others (the loop stays on time, the topic's subscribers get their
 * prices), so nearly every attempt is served (the test asks 95%), and each
 * is answered — served and read to its end, or a well-formed 503. Reported:
 * the admitted share, how long the attempts waited for their answer, and
 * the hog's own pace.
 */
import { type HogReport, loopbackAddresses, startCrowd } from "../support/crowd.ts"
import { startDemo } from "../support/demoProcess.ts"
import { probe, type ProbeResult, query, sleep } from "../support/overload.ts"
import { activeNow, reasons, streamsAfter, type StreamsAfter, type Watched, watchServer } from "../support/serverWatch.ts"

export interface HogOptions {
  /** Rows of the hog's export (the contract allows up to 10,000,000). */
  readonly rows: number
  readonly attempts: number
  readonly spreadMs: number
  /** Stop the hog once the attempts are done (the fast test), or read it to its end (the soak). */
  readonly stopHogAfterAttempts: boolean
  /** Size of each attempted download, and rows of each attempted export: read whole. */
  readonly downloadMb: number
  readonly exportRows: number
  readonly probeEveryMs: number
}

export type AttemptKind = "subscription" | "download" | "export"

export interface Attempt {
  readonly kind: AttemptKind
  readonly address: string
  readonly result: ProbeResult
  /** A download or export came whole (its bytes, its rows); a subscription's head said 200. */
  readonly whole: boolean
  /** The hog was still running when this attempt was answered. */
  readonly duringHog: boolean
}

export interface HogCaseReport {
  readonly hog: HogReport
  readonly attempts: ReadonlyArray<Attempt>
  readonly admitted: number
  readonly admittedShare: number
  readonly watched: Watched
  readonly after: StreamsAfter
  /** 200s the clients saw per kind, before the streams were counted. */
  readonly answered: Readonly<Record<AttemptKind, number>>
  readonly orphans: number
  readonly exitCode: number | null
  readonly output: string
}

export const exportHog = async (options: HogOptions): Promise<HogCaseReport> => {
  const demo = await startDemo({ shutdownDeadlineMs: 5_000 })
  const crowd = await startCrowd()
  try {
    const urls: Record<AttemptKind, string> = {
      subscription: `${demo.url}/rpc/watchPrices?${query({ symbols: ["ACME", "HOOLI"] })}`,
      download: `${demo.url}/rpc/downloadReport?${query({ sizeMb: options.downloadMb })}`,
      export: `${demo.url}/rpc/exportOrders?${query({ count: options.exportRows })}&format=ndjson`
    }
    const answered: Record<AttemptKind, number> = { subscription: 0, download: 0, export: 0 }
    let hogRunning = true
    const hogDone = crowd.hog(`${demo.url}/rpc/exportOrders?${query({ count: options.rows })}&format=ndjson`, "127.0.0.2").then((report) => {
      hogRunning = false
      return report
    })
    // The hog under way before the first attempt.
    for (const deadline = Date.now() + 10_000; Date.now() < deadline && hogRunning;) {
      if (((await activeNow(demo))?.["export"] ?? 0) >= 1) break
      await sleep(100)
    }

    const watch = watchServer(demo, options.probeEveryMs)
    const addresses = loopbackAddresses("127.0.3.1", options.attempts)
    const kinds: ReadonlyArray<AttemptKind> = ["subscription", "download", "export"]
    const attempts = await Promise.all(Array.from({ length: options.attempts }, async (_, i): Promise<Attempt> => {
      await sleep((options.spreadMs * i) / options.attempts)
      const kind = kinds[i % kinds.length]!
      const address = addresses[i]!
      const result = await probe(urls[kind], { read: kind === "subscription" ? "head" : "body", localAddress: address, timeoutMs: 30_000 })
      if (result.status === 200) answered[kind]++
      const whole = result.status === 200 && (kind === "subscription" ||
        (result.complete && (kind === "download" || result.body.split("\n").filter((line) => line !== "").length === options.exportRows)))
      return { kind, address, result, whole, duringHog: hogRunning }
    }))
    const watched = await watch.stop()
    if (options.stopHogAfterAttempts) await crowd.stopHog()
    const hog = await hogDone
    await crowd.close()
    const after = await streamsAfter(demo)
    const exit = await demo.stop({ timeoutMs: 20_000 }).catch(() => ({ code: null }))
    const admitted = attempts.filter((attempt) => attempt.result.status === 200).length
    const hogAnswered = hog.status === 200 ? 1 : 0
    return {
      hog,
      attempts,
      admitted,
      admittedShare: admitted / options.attempts,
      watched,
      after,
      answered,
      orphans: Math.max(0, after.started.subscription - answered.subscription) +
        Math.max(0, after.started.download - answered.download) +
        Math.max(0, after.started.export - answered.export - hogAnswered),
      exitCode: exit.code,
      output: demo.output()
    }
  } finally {
    crowd.kill()
    await demo.stop({ timeoutMs: 10_000 }).catch(() => undefined)
  }
}

/** "subscription 13/14, download 13/13, export 12/13" */
export const admittedByKind = (attempts: ReadonlyArray<Attempt>): string =>
  (["subscription", "download", "export"] as const).map((kind) => {
    const of = attempts.filter((attempt) => attempt.kind === kind)
    return `${kind} ${of.filter((attempt) => attempt.result.status === 200).length}/${of.length}`
  }).join(", ")

export { reasons }
