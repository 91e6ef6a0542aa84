/**
 * Truncation at every byte offset: real responses of our server (a
 * subscription, a download, an export in json, csv and ndjson, a unary
 * call) replayed cut after byte k, for every k. StreamClient and RpcClient
 * (over RpcProtocol) report a typed error every time the response is short
 * of complete — never a success, never a hang — and succeed on the whole.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { quiet } from "../soak/harness.ts"
import { truncationAtEveryOffset } from "../soak/truncation.ts"

describe("truncation", () => {
  it.scopedLive("every offset of every kind: a typed error, never a success, never a hang", () =>
    Effect.gen(function*() {
      const rows = yield* truncationAtEveryOffset()
      expect(rows.map((row) => `${row.client} ${row.target}`)).toEqual([
        "StreamClient subscription",
        "StreamClient download",
        "StreamClient export.json",
        "StreamClient export.csv",
        "StreamClient export.ndjson",
        "StreamClient unary",
        "RpcClient subscription",
        "RpcClient download",
        "RpcClient export.ndjson",
        "RpcClient unary"
      ])
      for (const row of rows) {
        const what = `${row.client} ${row.target}: ${row.examples.join("; ")}`
        expect(row.falseSuccesses, what).toBe(0)
        expect(row.hangs, what).toBe(0)
        expect(row.untyped, what).toBe(0)
        expect(row.wholeOk, what).toBe(true)
        // Every offset short of complete was tried and failed: for a subscription, up to its `event: end`.
        expect(row.errors, what).toBeGreaterThan(row.length - 40)
      }
    }).pipe(quiet), 60_000)
})
