/**
 * Middlewares have `@effect/rpc`'s `RpcServer` semantics over HTTP: a `wrap`
 * middleware receives the handler's run as `next` (for a stream, from its
 * first pull to its end), an `optional` one's failure is ignored, and what a
 * middleware `provides` reaches the handler.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcMiddleware from "@effect/rpc/RpcMiddleware"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as HttpTransport from "../src/server/HttpTransport.ts"
import * as Procedure from "../src/contract/Procedure.ts"
import { listen, quiet, sseCollector } from "./support/http.ts"

/** What happened, in order: the middleware's and the handler's steps. */
const journal: Array<string> = []

class Timing extends RpcMiddleware.Tag<Timing>()("test/Timing", { wrap: true }) {}

class Refused extends Schema.TaggedError<Refused>()(
  "Refused",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 429 })
) {}

class Refuse extends RpcMiddleware.Tag<Refuse>()("test/Refuse", { wrap: true, failure: Refused }) {}

class Greeting extends Context.Tag("test/Greeting")<Greeting, string>() {}

class Greeter extends RpcMiddleware.Tag<Greeter>()("test/Greeter", {
  optional: true,
  provides: Greeting,
  failure: Refused
}) {}

const ticks = Procedure.subscription("ticks", { success: Schema.Number }).middleware(Timing)
const refusedTicks = Procedure.subscription("refusedTicks", { success: Schema.Number }).middleware(Refuse)
const timedCall = Procedure.unary("timedCall", { success: Schema.String }).middleware(Timing)
const refusedCall = Procedure.unary("refusedCall", { success: Schema.String }).middleware(Refuse)
const refusedDownload = Procedure.download("refusedDownload", { filename: "x.bin" }).middleware(Refuse)
const timedExport = Procedure.export("timedExport", { row: Schema.Struct({ n: Schema.Number }) }).middleware(Timing)
const greet = Procedure.unary("greet", { success: Schema.String }).middleware(Greeter)

class Api extends RpcGroup.make(ticks, refusedTicks, timedCall, refusedCall, refusedDownload, timedExport, greet) {}

const Handlers = Api.toLayer({
  ticks: () =>
    Stream.make(1, 2, 3).pipe(
      Stream.tap((n) => Effect.sync(() => journal.push(`value ${n}`)))
    ),
  refusedTicks: () => Stream.make(1),
  timedCall: () => Effect.sync(() => (journal.push("call"), "done")),
  refusedCall: () => Effect.succeed("never"),
  refusedDownload: () => Stream.make(new Uint8Array(1)),
  timedExport: () =>
    Stream.range(1, 3).pipe(Stream.map((n) => ({ n })), Stream.tap(({ n }) => Effect.sync(() => journal.push(`row ${n}`)))),
  greet: () =>
    Effect.map(Effect.serviceOption(Greeting), (greeting) => `hello ${Option.getOrElse(greeting, () => "anonymous")}`)
})

const Middlewares = Layer.mergeAll(
  Layer.succeed(
    Timing,
    Timing.of(({ next, rpc }) =>
      Effect.sync(() => journal.push(`start ${rpc._tag}`)).pipe(
        Effect.zipRight(next),
        Effect.ensuring(Effect.sync(() => journal.push(`end ${rpc._tag}`)))
      )
    )
  ),
  Layer.succeed(Refuse, Refuse.of(() => Effect.fail(new Refused({ message: "Not now" })))),
  Layer.succeed(
    Greeter,
    Greeter.of(({ headers }) => {
      const name = headers["x-name"]
      return name === undefined ? Effect.fail(new Refused({ message: "no name" })) : Effect.succeed(name)
    })
  )
)

const serve = Effect.flatMap(
  HttpTransport.toHttpApp(Api).pipe(Effect.provide(Layer.merge(Handlers, Middlewares))),
  listen
)

const sse = async (url: string) => {
  const response = await fetch(url)
  const collector = sseCollector()
  collector.feed(new Uint8Array(await response.arrayBuffer()))
  return collector.events
}

describe("middleware", () => {
  it.scopedLive("a wrap middleware around a subscription sees it start before the first value and end after the last", () =>
    Effect.gen(function*() {
      journal.length = 0
      const url = yield* serve
      const events = yield* Effect.promise(() => sse(`${url}/rpc/ticks`))
      expect(events.map((e) => e.event)).toEqual(["message", "message", "message", "end"])
      expect(journal).toEqual(["start ticks", "value 1", "value 2", "value 3", "end ticks"])
    }).pipe(quiet))

  it.scopedLive("a wrap middleware around an export and a unary call sees each run", () =>
    Effect.gen(function*() {
      journal.length = 0
      const url = yield* serve
      const rows = yield* Effect.promise(() => fetch(`${url}/rpc/timedExport?format=ndjson`).then((r) => r.text()))
      expect(rows).toBe("{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n")
      expect(journal).toEqual(["start timedExport", "row 1", "row 2", "row 3", "end timedExport"])
      journal.length = 0
      const call = yield* Effect.promise(() => fetch(`${url}/rpc/timedCall`).then((r) => r.json()))
      expect(call).toBe("done")
      expect(journal).toEqual(["start timedCall", "call", "end timedCall"])
    }).pipe(quiet))

  it.scopedLive("a failing wrap middleware is the procedure's typed error: HTTP status before a transfer, `event: error` in a subscription", () =>
    Effect.gen(function*() {
      const url = yield* serve
      for (const tag of ["refusedCall", "refusedDownload"]) {
        const response = yield* Effect.promise(() => fetch(`${url}/rpc/${tag}`))
        expect(response.status).toBe(429)
        expect(yield* Effect.promise(() => response.json())).toEqual({ _tag: "Refused", message: "Not now" })
      }
      const events = yield* Effect.promise(() => sse(`${url}/rpc/refusedTicks`))
      expect(events.map((e) => e.event)).toEqual(["error"])
      expect(JSON.parse(events[0]!.data)).toEqual({ _tag: "Refused", message: "Not now" })
    }).pipe(quiet))

  it.scopedLive("an optional middleware provides its service when it succeeds and is skipped when it fails", () =>
    Effect.gen(function*() {
      const url = yield* serve
      const named = yield* Effect.promise(() => fetch(`${url}/rpc/greet`, { headers: { "x-name": "Ada" } }).then((r) => r.json()))
      expect(named).toBe("hello Ada")
      const anonymous = yield* Effect.promise(() => fetch(`${url}/rpc/greet`).then((r) => r.json()))
      expect(anonymous).toBe("hello anonymous")
    }).pipe(quiet))
})
