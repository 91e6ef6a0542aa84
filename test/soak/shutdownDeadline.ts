/**
 * A stalled client cannot hold a shutdown. The demo server as a real process
 * (`SHUTDOWN_DEADLINE_MS`), with `subscriptions` subscriptions, `stalled`
 * downloads whose clients stopped reading (their socket buffers full) and
 * `reading` downloads in progress whose clients read at full speed, gets
 * SIGTERM. Reported: the time from the signal to the process's exit (the
 * soak run checks it against the deadline + 1 s), the exit code, how the
 * stalled downloads ended (truncated: fewer bytes than their Content-Length)
 * and the reading ones (complete, every byte there), and how the
 * subscriptions ended.
 */
import * as Http from "node:http"
import { startDemo } from "../support/demoProcess.ts"
import { query, sleep } from "../support/overload.ts"

export interface ShutdownDeadlineOptions {
  readonly subscriptions: number
  readonly stalled: number
  /** Size of each stalled download: far more than the socket buffers hold. */
  readonly stalledMb: number
  readonly reading: number
  /** Size of each reading download: in progress at the signal, done well before the deadline. */
  readonly readingMb: number
  readonly shutdownDeadlineMs: number
}

export interface ShutdownDeadlineReport {
  readonly exitCode: number | null
  readonly exitSignal: string | null
  /** From sending SIGTERM to the exit event of the child. */
  readonly sigtermToExitMs: number
  readonly subscriptionsOpen: number
  /** Subscriptions whose responses ended (cleanly or not) by the exit. */
  readonly subscriptionsEnded: number
  readonly stalledTruncated: number
  /** Reading downloads still in progress (bytes short of the total) when the signal was sent. */
  readonly readingInProgressAtSigterm: number
  readonly readingComplete: number
  /** The server logged that it cut transfers at the deadline, and how many. */
  readonly cutAtDeadline: number | undefined
  readonly output: string
}

interface Transfer {
  readonly expected: number
  received: number
  outcome: "running" | "complete" | "truncated"
  response: Http.IncomingMessage | undefined
}

const transfer = (url: string, read: boolean, expected: number): Promise<Transfer> =>
  new Promise((resolve, reject) => {
    const state: Transfer = { expected, received: 0, outcome: "running", response: undefined }
    const request = Http.get(url, { agent: false }, (response) => {
      state.response = response
      const end = (outcome: "complete" | "truncated") => {
        if (state.outcome === "running") state.outcome = outcome
      }
      response.on("data", (chunk: Buffer) => {
        state.received += chunk.byteLength
      })
      response.on("end", () => end(state.received === expected ? "complete" : "truncated"))
      response.on("aborted", () => end("truncated"))
      response.on("error", () => end("truncated"))
      response.on("close", () => end(state.received === expected && response.complete ? "complete" : "truncated"))
      if (!read) response.pause()
      resolve(state)
    })
    request.on("error", (error) => {
      if (state.response === undefined) reject(error)
      else if (state.outcome === "running") state.outcome = "truncated"
    })
  })

export const shutdownAtDeadline = async (options: ShutdownDeadlineOptions): Promise<ShutdownDeadlineReport> => {
  const demo = await startDemo({ shutdownDeadlineMs: options.shutdownDeadlineMs })
  const subscriptions: Array<Http.IncomingMessage> = []
  try {
    const watchUrl = `${demo.url}/rpc/watchPrices?${query({ symbols: ["ACME", "HOOLI"] })}`
    for (let opened = 0; opened < options.subscriptions; opened += 100) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(100, options.subscriptions - opened) }, () =>
          new Promise<Http.IncomingMessage>((resolve, reject) =>
            Http.get(watchUrl, { agent: false }, (response) => {
              response.resume()
              response.on("error", () => {})
              resolve(response)
            }).on("error", reject)
          ))
      )
      subscriptions.push(...batch)
    }
    const downloadUrl = (mb: number) => `${demo.url}/rpc/downloadReport?${query({ sizeMb: mb })}`
    const stalled = await Promise.all(
      Array.from({ length: options.stalled }, () => transfer(downloadUrl(options.stalledMb), false, options.stalledMb * 1024 * 1024))
    )
    // The stalled downloads fill their socket buffers.
    await sleep(500)
    const reading = await Promise.all(
      Array.from({ length: options.reading }, () => transfer(downloadUrl(options.readingMb), true, options.readingMb * 1024 * 1024))
    )
    const readingInProgressAtSigterm = reading.filter((state) => state.outcome === "running" && state.received < state.expected).length

    const signalled = performance.now()
    let exitedAt = Number.NaN
    void demo.exited.then(() => {
      exitedAt = performance.now()
    })
    const exit = await demo.stop({ timeoutMs: options.shutdownDeadlineMs + 30_000 })
    await demo.exited
    const sigtermToExitMs = exitedAt - signalled

    // What the stalled clients read once they resume: what was buffered, then the cut.
    for (const state of stalled) state.response?.resume()
    const settled = Date.now() + 10_000
    while ([...stalled, ...reading].some((state) => state.outcome === "running") && Date.now() < settled) await sleep(50)
    const output = demo.output()
    const cut = /drain deadline passed; cut the remaining transfers\s*\n\s*transfers: (\d+)/.exec(output)
    return {
      exitCode: exit.code,
      exitSignal: exit.signal,
      sigtermToExitMs,
      subscriptionsOpen: subscriptions.length,
      subscriptionsEnded: subscriptions.filter((response) => response.complete || response.destroyed || response.readableEnded).length,
      stalledTruncated: stalled.filter((state) => state.outcome === "truncated").length,
      readingInProgressAtSigterm,
      readingComplete: reading.filter((state) => state.outcome === "complete").length,
      cutAtDeadline: cut === null ? undefined : Number(cut[1]),
      output
    }
  } finally {
    for (const response of subscriptions) response.destroy()
    await demo.stop({ timeoutMs: 10_000 }).catch(() => undefined)
  }
}
