/**
 * A subscription ramp against the demo server as a real process (what
 * `npm start` runs, with its admission by harm): new clients arrive at a
 * steady `perSecond` for `durationMs`, each opening a `watchPrices`
 * subscription and holding it, from a crowd process of its own and from
 * several loopback addresses; a client that has no answer after `giveUpMs`
 * gives up and closes its connection, as a browser or a load balancer would.
 *
 * What must hold, whatever the server's capacity: every request answered
 * (200, or a `503` with `Retry-After` and a JSON `{_tag, message}`: none
 * left to give up); no stream started for a client that had gone (streams
 * the server started = 200s its clients saw, and as many "stream closed"
 * log lines); nothing left running once the clients leave. Reported, not
 * asserted: how fast each answer came (a 503 is meant to be at once: target
 * within 1 s), the share admitted, and why the rest was shed.
 */
import { type Answers, loopbackAddresses, startCrowd } from "../support/crowd.ts"
import { startDemo } from "../support/demoProcess.ts"
import { probe, query, sleep } from "../support/overload.ts"
import { cpuSeconds, streamsAfter, type StreamsAfter, type Watched, watchServer } from "../support/serverWatch.ts"

export interface RampOptions {
  /** PRICES_PER_SECOND of the demo, per symbol; and how many of its 5 symbols each subscription asks. */
  readonly pricesPerSecond: number
  readonly symbols: number
  readonly perSecond: number
  readonly durationMs: number
  /** How long the subscriptions are held once the ramp has ended. */
  readonly holdMs: number
  readonly giveUpMs: number
  /** Loopback addresses the clients come from (127.0.1.1, …). */
  readonly addresses: number
  readonly probeEveryMs: number
}

export interface RampReport {
  readonly answers: Answers
  /** Share of the requests answered 200. */
  readonly admittedShare: number
  readonly watched: Watched
  /** Share of one core the server and the crowd used from the ramp's start to the clients leaving. */
  readonly serverCpu: number
  readonly crowdCpu: number
  readonly after: StreamsAfter
  /** Subscriptions answered 200 to any client (the crowd's and the warm-up's) before the streams were counted. */
  readonly subscriptionsAnswered: number
  readonly orphans: number
  /** After the clients left, a new subscription was served. */
  readonly subscriptionAfter: boolean
  readonly exitCode: number | null
  readonly output: string
}

export const subscriptionRamp = async (options: RampOptions): Promise<RampReport> => {
  const demo = await startDemo({ pricesPerSecond: options.pricesPerSecond, shutdownDeadlineMs: 5_000 })
  const crowd = await startCrowd()
  try {
    const symbols = ["ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI"].slice(0, Math.max(1, Math.min(5, options.symbols)))
    const url = `${demo.url}/rpc/watchPrices?${query({ symbols })}`
    let answered = 0
    // Warm-up: the code paths compiled before the ramp.
    for (let i = 0; i < 3; i++) if ((await probe(url, { read: "head" })).status === 200) answered++

    const watch = watchServer(demo, options.probeEveryMs)
    const cpuBefore = { at: Date.now(), server: cpuSeconds(demo.pid) ?? 0, crowd: cpuSeconds(crowd.pid) ?? 0 }
    await crowd.ramp({
      url,
      perSecond: options.perSecond,
      durationMs: options.durationMs,
      giveUpMs: options.giveUpMs,
      addresses: loopbackAddresses("127.0.1.1", options.addresses)
    })
    await sleep(options.holdMs)
    // Every request answered or given up before the clients leave.
    for (const deadline = Date.now() + options.giveUpMs + 5_000; Date.now() < deadline;) {
      if ((await crowd.answers()).pending === 0) break
      await sleep(200)
    }
    const watched = await watch.stop()
    const seconds = (Date.now() - cpuBefore.at) / 1000
    const serverCpu = ((cpuSeconds(demo.pid) ?? 0) - cpuBefore.server) / seconds
    const crowdCpu = ((cpuSeconds(crowd.pid) ?? 0) - cpuBefore.crowd) / seconds
    const answers = await crowd.close()
    answered += answers.ok

    const after = await streamsAfter(demo)
    const answeredBefore = answered
    let subscriptionAfter = false
    for (let attempt = 0; attempt < 5 && !subscriptionAfter; attempt++) {
      if (attempt > 0) await sleep(1_000)
      const result = await probe(url, { read: "head" })
      if (result.status === 200) answered++
      subscriptionAfter = result.status === 200
    }
    const exit = await demo.stop({ timeoutMs: 20_000 }).catch(() => ({ code: null }))
    return {
      answers,
      admittedShare: answers.sent === 0 ? 0 : answers.ok / answers.sent,
      watched,
      serverCpu,
      crowdCpu,
      after,
      subscriptionsAnswered: answeredBefore,
      // Against the 200s answered before `after` counted the streams started.
      orphans: Math.max(0, after.started.subscription - answeredBefore),
      subscriptionAfter,
      exitCode: exit.code,
      output: demo.output()
    }
  } finally {
    crowd.kill()
    await demo.stop({ timeoutMs: 10_000 }).catch(() => undefined)
  }
}
