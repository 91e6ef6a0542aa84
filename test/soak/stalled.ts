/**
 * Every transfer slot held by clients that never read, released by the stall
 * timeout: the demo server as a real process with `TRANSFER_STALL_TIMEOUT_MS`
 * small. `transfers` downloads and exports (the server's limit: 256) are
 * opened from `addresses` loopback addresses, at most 32 from each (the
 * demo's per-client cap), by a crowd process that never reads them.
 *
 * - While all are held, a transfer from another address is refused: `503`
 *   with `Retry-After` and a JSON body, counted as shed for `transfers`.
 * - The stall timeout cuts each (the server logs "transfer stalled" for
 *   each), the transfer count in `/metrics` comes back to 0, and new
 *   transfers from other clients are served whole.
 * - Read out afterwards, every held response ends truncated: cut, not
 *   completed.
 *
 * Memory is reported, not asserted: the server's resident memory before
 * (after a full GC), at its peak while the transfers were held, and after
 * (after a full GC), with the peak's growth per stalled transfer.
 */
import { type ReleaseReport, loopbackAddresses, type StallReport, startCrowd } from "../support/crowd.ts"
import { startDemo } from "../support/demoProcess.ts"
import { probe, type ProbeResult, query, residentBytes, sleep } from "../support/overload.ts"
import { activeNow, scrape, shedOf, streamsAfter, type StreamsAfter, type Watched, watchServer } from "../support/serverWatch.ts"

export interface StalledOptions {
  readonly stallTimeoutMs: number
  readonly transfers: number
  readonly addresses: number
  /** How many of the transfers are downloads (the rest are exports). */
  readonly downloads: number
  /** Sizes: far more than the socket buffers and the server's buffer hold. */
  readonly downloadMb: number
  readonly exportRows: number
  readonly probeEveryMs: number
  /** How long to wait for every transfer to be held, then for the stall timeout to cut them all. */
  readonly heldWithinMs: number
  readonly releasedWithinMs: number
}

export interface StalledReport {
  readonly opened: StallReport
  /** Most transfers open at once on the server, and whether all were at once. */
  readonly peakHeld: number
  readonly allHeld: boolean
  /** Seconds from the first request to all held, and from all held to the last cut. */
  readonly heldAfterMs: number | undefined
  readonly releasedAfterMs: number | undefined
  /** A transfer from another address while all were held. */
  readonly refused: ProbeResult | undefined
  /** Shed for `transfers` (by `/metrics`) by that attempt. */
  readonly shedTransfers: number
  readonly activeAfterCut: number | undefined
  /** "transfer stalled" lines the server logged. */
  readonly stalledInLog: number
  /** New transfers from other clients after the cut: served whole. */
  readonly servedAfter: number
  readonly triedAfter: number
  readonly released: ReleaseReport
  readonly memory: { readonly rssBefore: number; readonly rssPeak: number; readonly rssAfter: number; readonly perTransfer: number }
  readonly watched: Watched
  readonly after: StreamsAfter
  readonly exitCode: number | null
  readonly output: string
}

export const stalledTransfers = async (options: StalledOptions): Promise<StalledReport> => {
  const demo = await startDemo({ shutdownDeadlineMs: 5_000, inspect: true, env: { TRANSFER_STALL_TIMEOUT_MS: String(options.stallTimeoutMs) } })
  const crowd = await startCrowd()
  try {
    const downloadUrl = (sizeMb: number) => `${demo.url}/rpc/downloadReport?${query({ sizeMb })}`
    const exportUrl = (count: number) => `${demo.url}/rpc/exportOrders?${query({ count })}&format=ndjson`
    const held = () => activeNow(demo).then((active) => active === undefined ? undefined : active["download"]! + active["export"]!)
    // Warm-up, then the baseline after a full collection.
    await probe(downloadUrl(1), { read: "body" })
    await probe(exportUrl(1_000), { read: "body" })
    await sleep(1_000)
    await demo.collectGarbage()
    const rssBefore = residentBytes(demo.pid) ?? 0

    const watch = watchServer(demo, options.probeEveryMs)
    const addresses = loopbackAddresses("127.0.4.1", options.addresses)
    const perAddress = Math.ceil(options.transfers / options.addresses)
    // Downloads spread evenly among the exports; each address's (at most) 32 one after another.
    const isDownload = (i: number) => Math.floor(((i + 1) * options.downloads) / options.transfers) > Math.floor((i * options.downloads) / options.transfers)
    const requests = Array.from({ length: options.transfers }, (_, i) => ({
      url: isDownload(i) ? downloadUrl(options.downloadMb) : exportUrl(options.exportRows),
      address: addresses[Math.floor(i / perAddress)]!
    }))
    const started = Date.now()
    const opening = crowd.stall(requests, options.heldWithinMs)

    // All held at once (each answered and still open on the server); the server's own count decides.
    let peakHeld = 0
    let heldAfterMs: number | undefined
    for (const deadline = started + options.heldWithinMs; Date.now() < deadline;) {
      const now = (await held()) ?? 0
      peakHeld = Math.max(peakHeld, now)
      if (now >= options.transfers) {
        heldAfterMs = Date.now() - started
        break
      }
      await sleep(100)
    }
    const allHeld = heldAfterMs !== undefined
    let refused: ProbeResult | undefined
    let shedTransfers = 0
    if (allHeld) {
      const before = shedOf((await scrape(demo)).metrics ?? []).byReason["transfers"] ?? 0
      refused = await probe(exportUrl(100), { read: "body", localAddress: "127.0.5.1" })
      shedTransfers = (shedOf((await scrape(demo)).metrics ?? []).byReason["transfers"] ?? 0) - before
    }
    const opened = await opening

    // The stall timeout cuts them all: the server's transfer count back to 0.
    let releasedAfterMs: number | undefined
    let activeAfterCut: number | undefined
    for (const deadline = Date.now() + options.releasedWithinMs; Date.now() < deadline;) {
      activeAfterCut = await held()
      if (activeAfterCut === 0) {
        releasedAfterMs = heldAfterMs === undefined ? undefined : Date.now() - started - heldAfterMs
        break
      }
      await sleep(250)
    }
    const watched = await watch.stop()

    // New transfers from other clients are served whole.
    const afterAddresses = loopbackAddresses("127.0.5.2", 8)
    const tried = await Promise.all(afterAddresses.map((address, i) =>
      probe(i % 2 === 0 ? downloadUrl(4) : exportUrl(10_000), { read: "body", localAddress: address, timeoutMs: 30_000 })
    ))
    const servedAfter = tried.filter((result) => result.status === 200 && result.complete).length

    // Every held response, read out now, ends short: cut, not completed.
    const released = await crowd.release(30_000)
    await crowd.close()
    await sleep(1_000)
    const stalledInLog = (demo.output().match(/transfer stalled/g) ?? []).length
    await demo.collectGarbage()
    const rssAfter = residentBytes(demo.pid) ?? 0
    const after = await streamsAfter(demo)
    const exit = await demo.stop({ timeoutMs: 20_000 }).catch(() => ({ code: null }))
    return {
      opened,
      peakHeld,
      allHeld,
      heldAfterMs,
      releasedAfterMs,
      refused,
      shedTransfers,
      activeAfterCut,
      stalledInLog,
      servedAfter,
      triedAfter: tried.length,
      released,
      memory: { rssBefore, rssPeak: watched.rssPeak, rssAfter, perTransfer: (watched.rssPeak - rssBefore) / options.transfers },
      watched,
      after,
      exitCode: exit.code,
      output: demo.output()
    }
  } finally {
    crowd.kill()
    await demo.stop({ timeoutMs: 10_000 }).catch(() => undefined)
  }
}
