/**
 * Leaks: subscribe/disconnect cycles and downloads aborted in the middle of
 * their body, against the demo contract served in this process. After the
 * cycles the server must be back where it started: the active-streams gauge
 * at 0, no Effect fiber, socket or handle left behind, the heap back to its
 * baseline within a tolerance.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as StreamClient from "../../client/effect/StreamClient.ts"
import { DemoApi } from "../../examples/demo/contract.ts"
import { AuthenticationLive, DemoHandlers } from "../../examples/demo/handlers.ts"
import * as PriceFeed from "../../examples/demo/PriceFeed.ts"
import {
  activeStreams,
  fiberCount,
  handleCount,
  pool,
  serve,
  settledHeap,
  waitUpTo,
  within
} from "./harness.ts"

export interface LeakOptions {
  /** Subscribe, receive a value, disconnect: this many times. */
  readonly subscriptions: number
  /** Start a 16 MiB download, read its first chunk, abort: this many times. */
  readonly downloads: number
  /** Cycles in flight at once. */
  readonly concurrency: number
}

export interface LeakReport {
  readonly subscriptions: number
  readonly downloads: number
  /** Cycles that did not reach their first value or chunk (each is a failure). */
  readonly failedCycles: number
  readonly heapBaseline: number
  readonly heapAfter: number
  /** Heap after each quarter of the subscription cycles (settled, after a full GC). */
  readonly heapSeries: ReadonlyArray<number>
  readonly gauge: { readonly subscription: number; readonly download: number }
  readonly fibers: { readonly baseline: number; readonly after: number }
  readonly handles: { readonly baseline: number; readonly after: number }
  readonly serverSockets: number
}

export const leakCycles = (options: LeakOptions): Effect.Effect<LeakReport, never, import("effect/Scope").Scope> =>
  Effect.gen(function*() {
    const served = yield* serve(
      DemoApi,
      Layer.mergeAll(DemoHandlers, AuthenticationLive).pipe(Layer.provide(PriceFeed.layer({ pricesPerSecond: 1000 })))
    )
    const client = StreamClient.make(DemoApi, { baseUrl: served.url })
    let failedCycles = 0

    const subscribeOnce = () =>
      within(
        new Promise<void>((resolve, reject) => {
          const subscription = client.subscribe("watchPrices", { symbols: ["ACME"] }, {
            onData: () => {
              subscription.unsubscribe()
              resolve()
            },
            onError: reject,
            reconnect: { maxAttempts: 0 }
          })
        }),
        10_000,
        "a subscription cycle"
      ).catch(() => {
        failedCycles++
      })

    const downloadOnce = async () => {
      const controller = new AbortController()
      try {
        // A download shed by admission (503: a loaded machine's late loop) is asked again, as a
        // client would after Retry-After: what is measured is what a cycle leaves behind.
        const start = async (attempt: number): Promise<Awaited<ReturnType<typeof client.download>>> => {
          try {
            return await client.download("downloadReport", { sizeMb: 16 }, { signal: controller.signal })
          } catch (error) {
            if (attempt >= 20 || (error as { status?: unknown }).status !== 503) throw error
            await new Promise((resolve) => setTimeout(resolve, 100))
            return start(attempt + 1)
          }
        }
        const download = await within(start(1), 10_000, "a download cycle")
        const reader = download.body.getReader()
        const first = await within(reader.read(), 10_000, "the first chunk of a download")
        if (first.done || first.value.byteLength === 0) failedCycles++
        controller.abort()
        await reader.read().catch(() => undefined)
      } catch {
        failedCycles++
        controller.abort()
      }
    }

    /** Streams ended; with `sockets`, also every server socket closed (fetch keeps unused sockets ~4 s). */
    const settle = (sockets: boolean) =>
      Effect.promise(async () => {
        await waitUpTo(() =>
          activeStreams("subscription", "watchPrices") === 0 && activeStreams("download", "downloadReport") === 0
        )
        if (!sockets) return
        served.server.closeIdleConnections()
        await waitUpTo(() => served.sockets() === 0)
      })

    // Warm up: the code paths are compiled and the pools are made before the baseline is taken.
    yield* Effect.promise(() => pool(50, options.concurrency, (i) => (i % 2 === 0 ? subscribeOnce() : downloadOnce())))
    yield* settle(true)
    const heapBaseline = yield* Effect.promise(settledHeap)
    const fibersBaseline = fiberCount()
    const handlesBaseline = handleCount()
    failedCycles = 0

    const heapSeries: Array<number> = []
    const quarter = Math.ceil(options.subscriptions / 4)
    for (let done = 0; done < options.subscriptions; done += quarter) {
      yield* Effect.promise(() => pool(Math.min(quarter, options.subscriptions - done), options.concurrency, subscribeOnce))
      yield* settle(false)
      heapSeries.push(yield* Effect.promise(settledHeap))
    }
    yield* Effect.promise(() => pool(options.downloads, options.concurrency, downloadOnce))
    yield* settle(true)
    yield* Effect.promise(() =>
      waitUpTo(() => fiberCount() <= fibersBaseline && handleCount() <= handlesBaseline, 5_000)
    )
    const heapAfter = yield* Effect.promise(settledHeap)

    return {
      subscriptions: options.subscriptions,
      downloads: options.downloads,
      failedCycles,
      heapBaseline,
      heapAfter,
      heapSeries,
      gauge: {
        subscription: activeStreams("subscription", "watchPrices"),
        download: activeStreams("download", "downloadReport")
      },
      fibers: { baseline: fibersBaseline, after: fiberCount() },
      handles: { baseline: handlesBaseline, after: handleCount() },
      serverSockets: served.sockets()
    }
  })
