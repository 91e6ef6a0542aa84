/**
 * Truncation: real responses of our server (a subscription, a download, an
 * export in each format, a unary call), recorded byte for byte with their
 * HTTP framing, then replayed cut at every offset k by a raw TCP server that
 * closes the connection cleanly after byte k. Both clients — `StreamClient`
 * and `RpcClient.make` over `RpcProtocol` — must report a typed error for
 * every k short of a complete response: never a success, never a hang.
 *
 * "Complete" is the whole response, except for a subscription, which is
 * complete once its `event: end` has arrived (what follows is the HTTP
 * framing of the end of the body).
 */
import * as RpcClient from "@effect/rpc/RpcClient"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as RpcProtocol from "../../client/effect/RpcProtocol.ts"
import * as StreamClient from "../../client/effect/StreamClient.ts"
import * as Procedure from "../../src/contract/Procedure.ts"
import { rawPost, recordResponse, startReplayServer } from "../support/faultProxy.ts"
import { pool, serve, within } from "./harness.ts"

const Row = Schema.Struct({ id: Schema.Int, name: Schema.String })

const tinySubscription = Procedure.subscription("tinySubscription", {
  success: Row,
  cursor: (row) => String(row.id)
})
const tinyDownload = Procedure.download("tinyDownload", {
  filename: "tiny.bin",
  contentLength: () => 64
})
const tinyExport = Procedure.export("tinyExport", { row: Row, columns: ["id", "name"] })
const tinyUnary = Procedure.unary("tinyUnary", { success: Row })

export const TruncationApi = RpcGroup.make(tinySubscription, tinyDownload, tinyExport, tinyUnary)

const rows = [{ id: 1, name: "one, \"uno\"" }, { id: 2, name: "=two" }]

const handlers = TruncationApi.toLayer({
  tinySubscription: () => Stream.fromIterable(rows),
  tinyDownload: () => Stream.make(Uint8Array.from({ length: 64 }, (_, i) => i % 251)),
  tinyExport: () => Stream.fromIterable(rows),
  tinyUnary: () => Effect.succeed(rows[0]!)
})

type Target = "subscription" | "download" | "export.json" | "export.csv" | "export.ndjson" | "unary"

export interface TruncationRow {
  readonly client: "StreamClient" | "RpcClient"
  readonly target: Target
  /** Bytes of the recorded response. */
  readonly length: number
  /** Offsets tried: 0 … length (the last one is the whole response). */
  readonly offsets: number
  /** Offsets short of complete that were reported as a typed error. */
  readonly errors: number
  /** Offsets short of complete that the client took for a success (each is a bug). */
  readonly falseSuccesses: number
  /** Offsets where the client neither failed nor succeeded in time (each is a bug). */
  readonly hangs: number
  /** Errors that were not the client's typed error (each is a bug). */
  readonly untyped: number
  /** Whether the whole response succeeded, with the right content. */
  readonly wholeOk: boolean
  /** The first offsets that went wrong, for the report. */
  readonly examples: ReadonlyArray<string>
}

type Attempt = { readonly _tag: "ok"; readonly value: unknown } | { readonly _tag: "error"; readonly error: unknown } | {
  readonly _tag: "hang"
}

const attempt = async (run: () => Promise<unknown>, timeoutMs: number): Promise<Attempt> => {
  try {
    return { _tag: "ok", value: await within(run(), timeoutMs, "hang") }
  } catch (error) {
    if (error instanceof Error && error.message.startsWith("hang")) return { _tag: "hang" }
    return { _tag: "error", error }
  }
}

const collect = async <A>(iterable: AsyncIterable<A>): Promise<Array<A>> => {
  const out: Array<A> = []
  for await (const a of iterable) out.push(a)
  return out
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b)

export interface TruncationOptions {
  /** Longest wait for one attempt before it counts as a hang. */
  readonly timeoutMs?: number
  /** Offsets tried at once. Default 16. */
  readonly concurrency?: number
}

export const truncationAtEveryOffset = (
  options: TruncationOptions = {}
): Effect.Effect<ReadonlyArray<TruncationRow>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const timeoutMs = options.timeoutMs ?? 5_000
    const concurrency = options.concurrency ?? 16
    const served = yield* serve(TruncationApi, handlers)
    const record = (path: string) =>
      Effect.promise(() => recordResponse(served.port, rawPost(`/rpc/${path}`, undefined)))
    const recorded: Record<Target, Buffer> = {
      subscription: yield* record("tinySubscription"),
      download: yield* record("tinyDownload"),
      "export.json": yield* record("tinyExport?format=json"),
      "export.csv": yield* record("tinyExport?format=csv"),
      "export.ndjson": yield* record("tinyExport?format=ndjson"),
      unary: yield* record("tinyUnary")
    }
    const replay = yield* Effect.acquireRelease(
      Effect.promise(startReplayServer),
      (server) => Effect.promise(() => server.close())
    )
    /** Runs `use` with an RpcClient of the group at `url`, and its outcome as a promise. */
    const withRpcClient = <A, E>(
      url: string,
      use: (client: RpcClient.FromGroup<typeof TruncationApi, RpcClientError>) => Effect.Effect<A, E, Scope.Scope>
    ) =>
      Effect.runPromise(
        Effect.gen(function*() {
          const context = yield* Layer.build(RpcProtocol.layer(TruncationApi, { url, heartbeatTimeout: "10 seconds" }))
          const client = yield* RpcClient.make(TruncationApi).pipe(Effect.provide(context))
          return yield* use(client)
        }).pipe(Effect.scoped, Effect.exit)
      ).then((exit) => {
        if (Exit.isSuccess(exit)) return exit.value
        throw exit.cause._tag === "Fail" ? exit.cause.error : new Error(`defect: ${String(exit.cause)}`)
      })

    const bytesOf = async (blob: Blob) => Array.from(new Uint8Array(await blob.arrayBuffer()))
    const downloadBytes = Array.from({ length: 64 }, (_, i) => i % 251)
    const streamClient = (url: string) => StreamClient.make(TruncationApi, { baseUrl: url })

    interface Case {
      readonly client: TruncationRow["client"]
      readonly target: Target
      readonly run: (url: string) => Promise<unknown>
      readonly expected: unknown
      readonly isTyped: (error: unknown) => boolean
    }
    const isClientError = (error: unknown) => error instanceof StreamClient.ClientError
    const isRpcClientError = (error: unknown) => error instanceof RpcClientError
    const cases: ReadonlyArray<Case> = [
      {
        client: "StreamClient",
        target: "subscription",
        run: (url) => collect(streamClient(url).subscribe("tinySubscription", undefined, { reconnect: { maxAttempts: 0 } })),
        expected: rows,
        isTyped: isClientError
      },
      {
        client: "StreamClient",
        target: "download",
        run: (url) => streamClient(url).download("tinyDownload", undefined).then((download) => download.blob()).then(bytesOf),
        expected: downloadBytes,
        isTyped: isClientError
      },
      ...(["json", "csv", "ndjson"] as const).map((format): Case => ({
        client: "StreamClient",
        target: `export.${format}`,
        run: (url) => streamClient(url).export("tinyExport", undefined, { format }).then(collect),
        expected: rows,
        isTyped: isClientError
      })),
      {
        client: "StreamClient",
        target: "unary",
        run: (url) => streamClient(url).call("tinyUnary", undefined),
        expected: rows[0],
        isTyped: isClientError
      },
      {
        client: "RpcClient",
        target: "subscription",
        run: (url) => withRpcClient(url, (client) => Stream.runCollect(client.tinySubscription())).then((c) => Array.from(c)),
        expected: rows,
        isTyped: isRpcClientError
      },
      {
        client: "RpcClient",
        target: "download",
        run: (url) =>
          withRpcClient(url, (client) => Stream.runCollect(client.tinyDownload())).then((chunk) =>
            Array.from(chunk).flatMap((bytes) => Array.from(bytes))
          ),
        expected: downloadBytes,
        isTyped: isRpcClientError
      },
      {
        client: "RpcClient",
        target: "export.ndjson",
        run: (url) => withRpcClient(url, (client) => Stream.runCollect(client.tinyExport())).then((c) => Array.from(c)),
        expected: rows,
        isTyped: isRpcClientError
      },
      {
        client: "RpcClient",
        target: "unary",
        run: (url) => withRpcClient(url, (client) => client.tinyUnary()),
        expected: rows[0],
        isTyped: isRpcClientError
      }
    ]

    const results: Array<TruncationRow> = []
    for (const testCase of cases) {
      const bytes = recorded[testCase.target]
      const endEvent = bytes.indexOf("event: end\ndata: {}\n\n")
      const complete = testCase.target === "subscription" && endEvent !== -1
        ? endEvent + "event: end\ndata: {}\n\n".length
        : bytes.length
      let errors = 0
      let falseSuccesses = 0
      let hangs = 0
      let untyped = 0
      let wholeOk = false
      const examples: Array<string> = []
      replay.serve(bytes)
      const outcomes = new Array<Attempt>(bytes.length + 1)
      yield* Effect.promise(() =>
        pool(bytes.length + 1, concurrency, async (k) => {
          outcomes[k] = await attempt(() => testCase.run(`${replay.cutAt(k)}/rpc`), timeoutMs)
        })
      )
      for (let k = 0; k <= bytes.length; k++) {
        const result = outcomes[k]!
        if (k >= complete) {
          const ok = result._tag === "ok" && sameJson(result.value, testCase.expected)
          if (k === bytes.length) wholeOk = ok
          else if (!ok && examples.length < 5) examples.push(`k=${k} (complete): ${result._tag}`)
          continue
        }
        switch (result._tag) {
          case "ok":
            falseSuccesses++
            if (examples.length < 5) examples.push(`k=${k}: success ${JSON.stringify(result.value).slice(0, 80)}`)
            break
          case "hang":
            hangs++
            if (examples.length < 5) examples.push(`k=${k}: hang`)
            break
          case "error":
            errors++
            if (!testCase.isTyped(result.error)) {
              untyped++
              if (examples.length < 5) examples.push(`k=${k}: untyped ${String(result.error).slice(0, 80)}`)
            }
        }
      }
      results.push({
        client: testCase.client,
        target: testCase.target,
        length: bytes.length,
        offsets: bytes.length + 1,
        errors,
        falseSuccesses,
        hangs,
        untyped,
        wholeOk,
        examples
      })
    }
    return results
  })
