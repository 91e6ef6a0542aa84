/**
 * A reconnect storm while subscribers are live, against the demo server as a
 * real process: `live` subscribers watch every symbol's prices, tracking
 * `Last-Event-ID` (and resuming with it if their stream ends); then `storm`
 * clients arrive at once — a fleet reconnecting after a deploy or a network
 * blip — each trying again after a 503 as the library's client does (its
 * `Retry-After` plus full jitter: `retryWait` of client/internal/Backoff.ts),
 * until admitted, then holding its subscription. Two crowd processes (the
 * live subscribers apart, so the storm's work does not show as their lag),
 * the measuring process probing `/metrics` and `/health` throughout.
 *
 * What must hold: every storm client admitted in the end; the live
 * subscribers lose nothing silently (a sequence number skipped or repeated
 * only where an `event: dropped` said so) and keep receiving through the
 * storm; `/metrics` answers every scrape; no stream started for a client
 * that had gone; nothing left running once the clients leave. Reported: the
 * time until the last storm client was admitted, how the 503s were answered,
 * the live subscribers' delivery lag (quote to arrival) before, during and
 * after the storm, and the answer times of `/metrics` and `/health`.
 */
import { type Answers, type LiveReport, loopbackAddresses, startCrowd, type StormAnswers } from "../support/crowd.ts"
import { startDemo } from "../support/demoProcess.ts"
import { query, sleep } from "../support/overload.ts"
import { streamsAfter, type StreamsAfter, type Watched, watchServer } from "../support/serverWatch.ts"

export interface StormOptions {
  /** PRICES_PER_SECOND of the demo, per symbol (each live subscriber watches all 5). */
  readonly pricesPerSecond: number
  readonly live: number
  readonly storm: number
  /** Symbols each storm client asks for (of the 5). */
  readonly stormSymbols: number
  /** Loopback addresses the storm comes from (each client one of them, in turn). */
  readonly stormAddresses: number
  /** An attempt without an answer this long is given up and tried again. */
  readonly giveUpMs: number
  /** How long the storm may take to be admitted, and how long the live are watched after it. */
  readonly admittedWithinMs: number
  readonly afterMs: number
  readonly probeEveryMs: number
}

export interface StormReport {
  readonly storm: StormAnswers
  /** Live subscribers, with their lag in windows "before", "storm" (until the last storm client was admitted) and "after". */
  readonly live: LiveReport
  /** How the live subscribers' own requests (their first, and any resume) were answered. */
  readonly liveAnswers: Answers
  /** `/metrics` and `/health` from the storm's start to the end of "after". */
  readonly watched: Watched
  readonly after: StreamsAfter
  readonly subscriptionsAnswered: number
  readonly orphans: number
  readonly exitCode: number | null
  readonly output: string
}

const allSymbols = ["ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI"]

export const reconnectStorm = async (options: StormOptions): Promise<StormReport> => {
  const demo = await startDemo({ pricesPerSecond: options.pricesPerSecond, shutdownDeadlineMs: 5_000 })
  const liveCrowd = await startCrowd()
  const stormCrowd = await startCrowd()
  try {
    const liveUrl = `${demo.url}/rpc/watchPrices?${query({ symbols: allSymbols })}`
    const stormUrl = `${demo.url}/rpc/watchPrices?${query({ symbols: allSymbols.slice(0, Math.max(1, Math.min(5, options.stormSymbols))) })}`
    // The library client's defaults: the first retry within 500 ms (after Retry-After), at most 30 s.
    const backoff = { initialDelayMs: 500, maxDelayMs: 30_000 }

    // The live subscribers, every one receiving before the storm.
    await liveCrowd.live({ url: liveUrl, subscribers: options.live, addresses: loopbackAddresses("127.0.7.1", 16), ...backoff })
    for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
      if ((await liveCrowd.liveReport()).receiving === options.live) break
      await sleep(200)
    }
    await liveCrowd.mark("before")
    await sleep(2_000)

    // The storm: every client at once.
    const watch = watchServer(demo, options.probeEveryMs)
    await liveCrowd.mark("storm")
    await stormCrowd.storm({
      url: stormUrl,
      clients: options.storm,
      addresses: loopbackAddresses("127.1.0.1", options.stormAddresses),
      giveUpMs: options.giveUpMs,
      ...backoff
    })
    for (const deadline = Date.now() + options.admittedWithinMs; Date.now() < deadline;) {
      if ((await stormCrowd.answers()).admitted === options.storm) break
      await sleep(250)
    }
    await liveCrowd.mark("after")
    await sleep(options.afterMs)
    const watched = await watch.stop()
    const live = await liveCrowd.liveReport()

    // Every client leaves.
    const storm = await stormCrowd.close()
    const liveAnswers = await liveCrowd.close()
    const after = await streamsAfter(demo)
    const exit = await demo.stop({ timeoutMs: 20_000 }).catch(() => ({ code: null }))
    const subscriptionsAnswered = storm.ok + liveAnswers.ok
    return {
      storm,
      live,
      liveAnswers,
      watched,
      after,
      subscriptionsAnswered,
      orphans: Math.max(0, after.started.subscription - subscriptionsAnswered),
      exitCode: exit.code,
      output: demo.output()
    }
  } finally {
    liveCrowd.kill()
    stormCrowd.kill()
    await demo.stop({ timeoutMs: 10_000 }).catch(() => undefined)
  }
}
