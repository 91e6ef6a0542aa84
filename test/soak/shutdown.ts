/**
 * Graceful shutdown under load: two demo server processes behind a fixed
 * "load balancer" (a TCP proxy on loopback that sends each new connection to
 * the first instance that accepts it). While `subscriptions` StreamClient
 * subscriptions and `downloads` downloads run on instance A, instance B is
 * started (a rolling deploy) and A gets SIGTERM:
 *
 * - A stops accepting, so the balancer sends new connections to B;
 * - A's subscriptions end without `event: end`; every client reconnects,
 *   through the balancer, to B, with its `Last-Event-ID`; B cannot replay
 *   A's prices, so each client is told of a gap (`onDropped(null)`), and no
 *   sequence number is ever repeated or goes backwards;
 * - the downloads in progress on A run to their end, every byte right
 *   (`o % 251`), before A's deadline: A logs "drained", not "drain deadline
 *   passed";
 * - A exits with code 0.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as StreamClient from "../../client/effect/StreamClient.ts"
import { DemoApi } from "../../examples/demo/contract.ts"
import { startFaultProxy } from "../support/faultProxy.ts"
import { type DemoServer, startDemoServer } from "./demoServer.ts"
import { waitUpTo, within } from "./harness.ts"

export interface ShutdownOptions {
  readonly subscriptions: number
  readonly downloads: number
  /** Size of each download: well over what the socket buffers between A and the client hold. */
  readonly downloadMb: number
  readonly shutdownDeadlineMs: number
}

export interface ShutdownReport {
  readonly subscriptions: number
  readonly downloads: number
  /** Transfers A reported running when it began draining. */
  readonly transfersAtSigterm: number | undefined
  readonly exitCode: number | null
  readonly exitSignal: string | null
  /** A logged "drained" (every transfer finished before the deadline) and not "drain deadline passed". */
  readonly drained: boolean
  readonly downloadsComplete: number
  readonly downloadByteErrors: number
  /** Subscriptions that received a price from B while A was still draining (its downloads held open). */
  readonly resumedOnB: number
  /** Subscriptions whose sequence numbers repeated or went backwards. */
  readonly repeated: number
  /** Subscriptions told of the gap between A and B (`onDropped`). */
  readonly gapsReported: number
  /** Subscriptions that failed for good (each is a failure: they should reconnect). */
  readonly failed: number
  readonly connectionsToB: number
  readonly bExitCode: number | null
  readonly output: string
  /** The connection history of one subscription that did not resume on B, if any. */
  readonly trace: ReadonlyArray<string>
}

/** The report's bytes: `o % 251` at offset `o`, long enough to compare any chunk at any phase. */
const pattern = Buffer.from(Uint8Array.from({ length: 251 * 2048 }, (_, i) => i % 251))

/** Bytes of `chunk` (at `offset` in the download) that are not `o % 251`. */
const mismatches = (chunk: Uint8Array, offset: number): number => {
  let errors = 0
  for (let at = 0; at < chunk.byteLength; at += 251 * 2000) {
    const piece = Buffer.from(chunk.buffer, chunk.byteOffset + at, Math.min(251 * 2000, chunk.byteLength - at))
    const phase = (offset + at) % 251
    if (piece.equals(pattern.subarray(phase, phase + piece.byteLength))) continue
    for (let i = 0; i < piece.byteLength; i++) if (piece[i] !== (offset + at + i) % 251) errors++
  }
  return errors
}

interface Watch {
  readonly seqs: Array<number>
  readonly dropped: Array<number | null>
  error: unknown
  readonly trace: Array<string>
  subscription: StreamClient.Subscription<{ readonly seq: number }, unknown> | undefined
}

export const shutdownUnderLoad = (options: ShutdownOptions): Effect.Effect<ShutdownReport, never, Scope.Scope> =>
  Effect.gen(function*() {
    const instances: Array<DemoServer> = []
    yield* Effect.addFinalizer(() => Effect.sync(() => instances.forEach((instance) => instance.kill())))
    const start = () =>
      Effect.promise(() => startDemoServer({ shutdownDeadlineMs: options.shutdownDeadlineMs, pricesPerSecond: 20 })).pipe(
        Effect.tap((instance) => Effect.sync(() => instances.push(instance)))
      )
    const a = yield* start()
    const balancer = yield* Effect.acquireRelease(
      Effect.promise(() => startFaultProxy({ targets: () => instances.map((instance) => instance.port) })),
      (proxy) => Effect.promise(() => proxy.close())
    )
    const client = StreamClient.make(DemoApi, { baseUrl: `${balancer.url}/rpc` })

    // The subscriptions, all on A.
    const watches: Array<Watch> = []
    for (let i = 0; i < options.subscriptions; i++) {
      const watch: Watch = { seqs: [], dropped: [], error: undefined, trace: [], subscription: undefined }
      watch.subscription = client.subscribe("watchPrices", { symbols: ["ACME", "HOOLI"] }, {
        reconnect: { initialDelayMs: 50, maxDelayMs: 1_000 },
        onData: (price) => watch.seqs.push(price.seq),
        onState: (state) => watch.trace.push(`${state} after ${watch.subscription?.lastEventId}`),
        onDropped: (count) => {
          watch.trace.push(`dropped ${count}`)
          watch.dropped.push(count)
        },
        onError: (error) => {
          watch.error = error
        }
      })
      watches.push(watch)
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => watches.forEach((watch) => watch.subscription?.unsubscribe())))
    yield* Effect.promise(() => waitUpTo(() => watches.every((watch) => watch.seqs.length > 0), 60_000))

    // The downloads: read a little, then held (A cannot finish draining) until every
    // subscription is back on B, then read to the end, each byte checked.
    const size = Math.round(options.downloadMb * 1024 * 1024)
    let openGate!: () => void
    const gate = new Promise<void>((resolve) => {
      openGate = resolve
    })
    const progress = Array.from({ length: options.downloads }, () => ({ received: 0, errors: 0, done: false }))
    const downloads = progress.map((state) =>
      (async () => {
        const download = await client.download("downloadReport", { sizeMb: options.downloadMb })
        const reader = download.body.getReader()
        for (;;) {
          if (state.received >= 1024 * 1024) await gate
          const { done, value } = await reader.read()
          if (done) break
          state.errors += mismatches(value, state.received)
          state.received += value.byteLength
        }
        state.done = state.received === size
      })().catch((error: unknown) => {
        state.errors++
        return error
      })
    )
    yield* Effect.promise(() => waitUpTo(() => progress.every((state) => state.received >= 1024 * 1024), 30_000))

    // A rolling deploy: B starts (its sequence numbers start above all of A's), then A gets SIGTERM.
    const bFirstSeq = Date.now() * 1000
    const b = yield* start()
    let aExited = false
    void a.exited.then(() => {
      aExited = true
    })
    a.signal("SIGTERM")
    const onB = (watch: Watch) => (watch.seqs.at(-1) ?? 0) > bFirstSeq
    yield* Effect.promise(() =>
      waitUpTo(() => watches.every(onB) || aExited, options.shutdownDeadlineMs / 2)
    )
    const resumedOnB = watches.filter(onB).length
    openGate()
    const exit = yield* Effect.promise(() =>
      within(a.exited, options.shutdownDeadlineMs + 30_000, "instance A after SIGTERM").catch(() => ({
        code: null,
        signal: "timeout" as NodeJS.Signals
      }))
    )
    yield* Effect.promise(() =>
      within(Promise.all(downloads), options.shutdownDeadlineMs + 30_000, "the downloads").catch(() => undefined)
    )
    yield* Effect.promise(() => waitUpTo(() => watches.every(onB), 30_000))

    let repeated = 0
    for (const watch of watches) {
      for (let i = 1; i < watch.seqs.length; i++) {
        if (watch.seqs[i]! <= watch.seqs[i - 1]!) {
          repeated++
          break
        }
      }
    }
    const output = a.output()
    const draining = /: draining\s*\n\s*transfers: (\d+)/.exec(output)
    for (const watch of watches) watch.subscription?.unsubscribe()
    b.signal("SIGTERM")
    const bExit = yield* Effect.promise(() =>
      within(b.exited, options.shutdownDeadlineMs + 30_000, "instance B after SIGTERM").catch(() => ({ code: null }))
    )
    return {
      subscriptions: options.subscriptions,
      downloads: options.downloads,
      transfersAtSigterm: draining === null ? undefined : Number(draining[1]),
      exitCode: exit.code,
      exitSignal: exit.signal,
      drained: /: drained\b/.test(output) && !/drain deadline passed/.test(output),
      downloadsComplete: progress.filter((state) => state.done).length,
      downloadByteErrors: progress.reduce((sum, state) => sum + state.errors, 0),
      resumedOnB,
      repeated,
      gapsReported: watches.filter((watch) => watch.dropped.length > 0).length,
      failed: watches.filter((watch) => watch.error !== undefined).length,
      connectionsToB: balancer.routed().get(b.port) ?? 0,
      bExitCode: bExit.code,
      output,
      trace: watches.find((watch) => !onB(watch))?.trace ?? watches[0]?.trace ?? []
    }
  })
