/**
 * The clients — StreamClient, RpcClient over RpcProtocol, and the client the
 * generator writes (compiled codecs, no Effect) — read the same bytes the
 * same way: a raw loopback server replays fixed responses (the body ends
 * where the case says, the connection closes cleanly), and each case is run
 * against all three. Truncations give the same `ClientError` reason
 * (RpcProtocol carries it as the cause of its RpcClientError); `dropped` is
 * reported with the same counts (a positive count or `null`; 0 and malformed
 * counts are no loss and are not reported).
 */
import type * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as RpcProtocol from "../../client/effect/RpcProtocol.ts"
import * as StreamClient from "../../client/effect/StreamClient.ts"
import * as Procedure from "../../src/contract/Procedure.ts"
import * as Names from "../../src/protocol/Names.ts"
import * as Sse from "../../src/protocol/Sse.ts"
import * as GeneratedClient from "../support/generatedClient.ts"
import { rawServer } from "../support/http.ts"

const Row = Schema.Struct({ id: Schema.Int, name: Schema.String })
const live = Procedure.subscription("live", { success: Row })
const rows = Procedure.export("rows", { row: Row, formats: ["ndjson"] })
const file = Procedure.download("file", { filename: "f.bin" })
const one = Procedure.unary("one", { success: Row })
const Api = RpcGroup.make(live, rows, file, one)

const row = (id: number) => ({ id, name: `row ${id}` })
const value = (id: number) => Sse.event({ data: JSON.stringify(row(id)) })
const line = (id: number) => `${JSON.stringify(row(id))}\n`

type Kind = "subscription" | "export" | "download" | "unary"

interface Case {
  readonly name: string
  readonly kind: Kind
  /** Response headers besides the content type (no Content-Length unless given). */
  readonly headers?: Record<string, string>
  readonly body: string
  /** The outcome both clients must report. */
  readonly expected:
    | { readonly _tag: "ok"; readonly values: ReadonlyArray<unknown>; readonly dropped?: ReadonlyArray<number | null> }
    | { readonly _tag: "error"; readonly reason: StreamClient.ClientErrorReason }
}

const contentTypes: Record<Kind, string> = {
  subscription: Names.contentTypes.eventStream,
  export: Names.contentTypes.ndjson,
  download: Names.contentTypes.octetStream,
  unary: Names.contentTypes.json
}

const cases: ReadonlyArray<Case> = [
  {
    name: "a subscription that ends with event: end",
    kind: "subscription",
    body: Sse.comment("ok") + value(1) + value(2) + Sse.end,
    expected: { _tag: "ok", values: [row(1), row(2)] }
  },
  {
    name: "a subscription whose body ends without event: end",
    kind: "subscription",
    body: Sse.comment("ok") + value(1),
    expected: { _tag: "error", reason: "Truncated" }
  },
  {
    name: "a subscription cut inside an event",
    kind: "subscription",
    body: Sse.comment("ok") + value(1) + value(2).slice(0, 8),
    expected: { _tag: "error", reason: "Truncated" }
  },
  {
    name: "a subscription cut inside event: end",
    kind: "subscription",
    body: value(1) + Sse.end.slice(0, -1),
    expected: { _tag: "error", reason: "Truncated" }
  },
  {
    name: "dropped counts: positive and null are reported, 0, negative and malformed are not",
    kind: "subscription",
    body: Sse.dropped(3) + value(1) + Sse.dropped(0) + Sse.dropped(null) + value(2) +
      Sse.event({ type: "dropped", data: "{\"count\":-2}" }) + Sse.event({ type: "dropped", data: "x" }) + Sse.end,
    expected: { _tag: "ok", values: [row(1), row(2)], dropped: [3, null] }
  },
  {
    name: "a subscription event that is not JSON",
    kind: "subscription",
    body: Sse.event({ data: "{nope" }) + Sse.end,
    expected: { _tag: "error", reason: "Protocol" }
  },
  {
    name: "an NDJSON export ending with its newline",
    kind: "export",
    body: line(1) + line(2),
    expected: { _tag: "ok", values: [row(1), row(2)] }
  },
  {
    name: "an NDJSON export whose last line has no newline",
    kind: "export",
    body: line(1) + line(2).trimEnd(),
    expected: { _tag: "error", reason: "Truncated" }
  },
  {
    name: "an NDJSON export cut inside a line",
    kind: "export",
    body: line(1) + line(2).slice(0, 5),
    expected: { _tag: "error", reason: "Truncated" }
  },
  {
    name: "an NDJSON export with a line that is not JSON",
    kind: "export",
    body: line(1) + "{nope\n",
    expected: { _tag: "error", reason: "Protocol" }
  },
  {
    name: "a download with all its Content-Length",
    kind: "download",
    headers: { "content-length": "6" },
    body: "abcdef",
    expected: { _tag: "ok", values: ["abcdef"] }
  },
  {
    name: "a download short of its Content-Length",
    kind: "download",
    headers: { "content-length": "10" },
    body: "abcdef",
    expected: { _tag: "error", reason: "Truncated" }
  },
  {
    name: "a unary answer cut short",
    kind: "unary",
    body: JSON.stringify(row(1)).slice(0, 6),
    expected: { _tag: "error", reason: "Protocol" }
  }
]

/** What a client reported, in terms both clients share. */
type Outcome =
  | { readonly _tag: "ok"; readonly values: ReadonlyArray<unknown>; readonly dropped?: ReadonlyArray<number | null> }
  | { readonly _tag: "error"; readonly reason: string }

const reasonOf = (error: unknown): string => {
  if (error instanceof StreamClient.ClientError) return error.reason
  if (error instanceof RpcClientError && error.cause instanceof StreamClient.ClientError) return error.cause.reason
  return `untyped: ${String(error)}`
}

const collect = async <A>(iterable: AsyncIterable<A>): Promise<Array<A>> => {
  const out: Array<A> = []
  for await (const a of iterable) out.push(a)
  return out
}

const text = (bytes: ReadonlyArray<Uint8Array>) => new TextDecoder().decode(Buffer.concat(bytes.map((b) => Buffer.from(b))))

const generated = GeneratedClient.asStreamClient(
  new Map([[Api as unknown as RpcGroup.RpcGroup<Rpc.Any>, await GeneratedClient.load(Api, "Api")]])
)

const viaStreamClient = async (url: string, kind: Kind, make: typeof StreamClient.make = StreamClient.make): Promise<Outcome> => {
  const client = make(Api, { baseUrl: url })
  const dropped: Array<number | null> = []
  try {
    switch (kind) {
      case "subscription": {
        const values = await collect(client.subscribe("live", undefined, {
          reconnect: { maxAttempts: 0 },
          onDropped: (count) => dropped.push(count)
        }))
        return { _tag: "ok", values, ...(dropped.length > 0 ? { dropped } : {}) }
      }
      case "export":
        return { _tag: "ok", values: await collect(await client.export("rows", undefined, { format: "ndjson" })) }
      case "download": {
        const download = await client.download("file", undefined)
        return { _tag: "ok", values: [await (await download.blob()).text()] }
      }
      case "unary":
        return { _tag: "ok", values: [await client.call("one", undefined)] }
    }
  } catch (error) {
    return { _tag: "error", reason: reasonOf(error) }
  }
}

const viaRpcClient = async (url: string, kind: Kind): Promise<Outcome> => {
  const dropped: Array<number | null> = []
  const exit = await Effect.runPromiseExit(
    Effect.gen(function*() {
      const context = yield* Layer.build(RpcProtocol.layer(Api, {
        baseUrl: url,
        heartbeatTimeoutMs: 10_000,
        onDropped: (_tag, count) => dropped.push(count)
      }))
      const client = yield* RpcClient.make(Api).pipe(Effect.provide(context))
      switch (kind) {
        case "subscription":
          return Array.from(yield* Stream.runCollect(client.live()))
        case "export":
          return Array.from(yield* Stream.runCollect(client.rows()))
        case "download":
          return [text(Array.from(yield* Stream.runCollect(client.file())))]
        case "unary":
          return [yield* client.one()]
      }
    }).pipe(Effect.scoped)
  )
  if (Exit.isSuccess(exit)) {
    return { _tag: "ok", values: exit.value, ...(dropped.length > 0 ? { dropped } : {}) }
  }
  return { _tag: "error", reason: exit.cause._tag === "Fail" ? reasonOf(exit.cause.error) : `defect: ${String(exit.cause)}` }
}

describe("StreamClient, RpcClient and the generated client read the same bytes the same way", () => {
  for (const testCase of cases) {
    it.scopedLive(testCase.name, () =>
      Effect.gen(function*() {
        const url = yield* rawServer((_request, response) => {
          response.writeHead(200, {
            "content-type": contentTypes[testCase.kind],
            connection: "close",
            ...testCase.headers
          })
          response.end(testCase.body)
        })
        const streamClient = yield* Effect.promise(() => viaStreamClient(url, testCase.kind))
        const rpcClient = yield* Effect.promise(() => viaRpcClient(url, testCase.kind))
        const generatedClient = yield* Effect.promise(() => viaStreamClient(url, testCase.kind, generated))
        expect(streamClient, "StreamClient").toEqual(testCase.expected)
        expect(generatedClient, "the generated client").toEqual(testCase.expected)
        expect(rpcClient, "RpcClient").toEqual(testCase.expected)
      }))
  }
})
