/**
 * Resume under faults: a resumable subscription read through a TCP proxy on
 * loopback that cuts each connection at a random point (from the status
 * line to well into the body), `cuts` times in a row. The client
 * (`StreamClient.subscribe`) must reconnect with `Last-Event-ID` and receive
 * every value of the sequence exactly once, in order, with no gap reported.
 */
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as StreamClient from "../../client/effect/StreamClient.ts"
import * as Procedure from "../../src/contract/Procedure.ts"
import { between, prng, startFaultProxy } from "../support/faultProxy.ts"
import { activeStreams, serve, waitUpTo, within } from "./harness.ts"

const Value = Schema.Struct({ n: Schema.Int })

/** The values 1..last; resumable: a connection continues after its `Last-Event-ID`. */
export const sequence = Procedure.subscription("sequence", {
  payload: { last: Schema.Int },
  success: Value,
  cursor: (value) => String(value.n)
})

export const ResumeApi = RpcGroup.make(sequence)

/** The handler: a deterministic sequence, a few values per millisecond (a source that yields). */
export const resumeHandlers = (connections: Array<string | undefined>) =>
  ResumeApi.toLayer({
    sequence: ({ last }, { headers }) => {
      const cursor = Procedure.lastEventId(headers)
      connections.push(cursor)
      const after = cursor !== undefined && /^\d{1,15}$/.test(cursor) ? Number(cursor) : 0
      if (after >= last) return Stream.empty
      return Stream.range(after + 1, last, 4).pipe(
        Stream.map((n) => ({ n })),
        Stream.mapChunksEffect((chunk) => Effect.as(Effect.sleep("1 millis"), chunk))
      )
    }
  })

export interface ResumeOptions {
  /** Connections cut before one is let through whole. */
  readonly cuts: number
  readonly seed: number
}

export interface ResumeReport {
  readonly cuts: number
  readonly seed: number
  readonly values: number
  readonly expected: number
  /** Values received more than once. */
  readonly duplicates: number
  /** Values of 1..expected never received. */
  readonly missing: number
  /** Values received after a larger one. */
  readonly outOfOrder: number
  /** Gaps the client was told about (`onDropped`). */
  readonly dropped: number
  readonly connections: number
  /** Connections cut before the response head was complete. */
  readonly cutInHead: number
  readonly outcome: "end" | string
  readonly activeAfter: number
}

const headBytes = 200 // about the size of the SSE response head

export const resumeUnderFaults = (options: ResumeOptions): Effect.Effect<ResumeReport, never, Scope.Scope> =>
  Effect.gen(function*() {
    const connections: Array<string | undefined> = []
    const served = yield* serve(ResumeApi, resumeHandlers(connections))
    const random = prng(options.seed)
    const budgets: Array<number> = []
    const proxy = yield* Effect.acquireRelease(
      Effect.promise(() =>
        startFaultProxy({
          targets: () => [served.port],
          cutAfter: (index) => {
            if (index >= options.cuts) return undefined
            const budget = between(random, 0, 1500)
            budgets.push(budget)
            return budget
          }
        })
      ),
      (proxy) => Effect.promise(() => proxy.close())
    )
    // Enough values that every cut lands before the end: a connection carries at most ~50.
    const last = options.cuts * 60 + 200
    const client = StreamClient.make(ResumeApi, { baseUrl: `${proxy.url}/rpc` })
    const values: Array<number> = []
    let dropped = 0
    const outcome = yield* Effect.promise(() =>
      within(
        new Promise<string>((resolve) => {
          client.subscribe("sequence", { last }, {
            reconnect: { initialDelayMs: 1, maxDelayMs: 5 },
            heartbeatTimeoutMs: 10_000,
            onData: (value) => values.push(value.n),
            onDropped: () => dropped++,
            onError: (error) => resolve(`error: ${String(error)}`),
            onState: (state) => {
              if (state === "closed") resolve("end")
            }
          })
        }),
        120_000,
        "the subscription through the cutting proxy"
      ).catch((error: unknown) => String(error))
    )
    yield* Effect.promise(() => waitUpTo(() => activeStreams("subscription", "sequence") === 0))
    const seen = new Set<number>()
    let duplicates = 0
    let outOfOrder = 0
    let previous = 0
    for (const n of values) {
      if (seen.has(n)) duplicates++
      seen.add(n)
      if (n < previous) outOfOrder++
      previous = n
    }
    let missing = 0
    for (let n = 1; n <= last; n++) if (!seen.has(n)) missing++
    return {
      cuts: proxy.cuts(),
      seed: options.seed,
      values: values.length,
      expected: last,
      duplicates,
      missing,
      outOfOrder,
      dropped,
      connections: connections.length,
      cutInHead: budgets.filter((budget) => budget < headBytes).length,
      outcome,
      activeAfter: activeStreams("subscription", "sequence")
    }
  })
