/**
 * A server composed the way the README's "Serve them" section composes it:
 * what the application provides with `Layer.provide` reaches every request
 * and every response body, and each server owns its drain.
 */
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import type { AddressInfo } from "node:net"
import * as Http from "node:http"
import { DemoApi } from "../examples/demo/contract.ts"
import { AuthenticationLive, DemoHandlers } from "../examples/demo/handlers.ts"
import * as PriceFeed from "../examples/demo/PriceFeed.ts"
import * as GracefulShutdown from "../src/server/GracefulShutdown.ts"
import * as HttpTransport from "../src/server/HttpTransport.ts"
import * as MetricsService from "../src/server/MetricsService.ts"
import * as Prometheus from "../src/server/Prometheus.ts"
import * as StreamingConfig from "../src/server/StreamingConfig.ts"
import * as SseResponse from "../src/server/internal/SseResponse.ts"
import { eventually, get, quiet, sseCollector } from "./support/http.ts"

const Settings = StreamingConfig.layer({ heartbeatInterval: "50 millis", retry: "2 seconds" })

/**
 * The README's composition, on a node:http server the test can read the port
 * of. The settings and metrics are provided to the application's layer (as the
 * README shows) or to the served app as a whole: both must reach the requests.
 */
const serverLayer = (server: Http.Server, providedTo: "application" | "server", pricesPerSecond: number) => {
  const Api = Layer.mergeAll(
    HttpTransport.layer(DemoApi),
    HttpLayerRouter.add("GET", "/metrics", Prometheus.response)
  ).pipe(
    Layer.provide(DemoHandlers),
    Layer.provide(AuthenticationLive),
    Layer.provide(PriceFeed.layer({ pricesPerSecond }))
  )
  const App = providedTo === "application"
    ? Api.pipe(Layer.provide(Settings), Layer.provide(MetricsService.layer))
    : Api
  const Served = HttpLayerRouter.serve(App, { disableLogger: true }).pipe(
    Layer.provide(GracefulShutdown.layer({ deadline: "1 minute" }))
  )
  return (providedTo === "server" ? Served.pipe(Layer.provide(Settings), Layer.provide(MetricsService.layer)) : Served)
    .pipe(Layer.provide(NodeHttpServer.layer(() => server, { port: 0, host: "127.0.0.1" })))
}

/** Builds the server in a scope of its own, so the test decides when it shuts down. */
const start = (providedTo: "application" | "server", pricesPerSecond: number) => Effect.gen(function*() {
  const server = Http.createServer()
  const scope = yield* Scope.make()
  yield* Layer.buildWithScope(serverLayer(server, providedTo, pricesPerSecond), scope)
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    base,
    server,
    shutdown: Scope.close(scope, Exit.void),
    dispose: Effect.sync(() => server.closeAllConnections())
  }
})

const watch = (base: string) => `${base}/rpc/watchPrices?payload=${encodeURIComponent(JSON.stringify({ symbols: ["ACME"] }))}`

const activeSubscriptions = (base: string) =>
  fetch(`${base}/metrics`).then((r) => r.text()).then((text) => {
    const line = text.split("\n").find((l) => l.startsWith("stream_active{") && l.includes("stream=\"watchPrices\""))
    return line === undefined ? undefined : Number(line.split(" ").pop())
  })

describe("a server composed as the README shows", () => {
  it.scopedLive.each(["application", "server"] as const)("settings and metrics provided to the %s: the configured retry and heartbeats, and the open subscription counted in /metrics", (providedTo) =>
    Effect.gen(function*() {
      // A quiet feed (a price a second): heartbeats fill the silence, as they are sent only to idle connections.
      const { base, dispose, shutdown } = yield* start(providedTo, 1)
      yield* Effect.addFinalizer(() => Effect.zipRight(dispose, shutdown))
      const response = yield* Effect.promise(() => get(watch(base)))
      const sse = sseCollector()
      let text = ""
      response.on("data", (bytes: Buffer) => {
        text += bytes.toString("utf8")
        sse.feed(bytes)
      })
      yield* Effect.promise(() => eventually(() => sse.comments.filter((c) => c === "heartbeat").length >= 3))
      expect(text.startsWith("retry: 2000\n")).toBe(true)
      expect(yield* Effect.promise(() => activeSubscriptions(base))).toBe(1)
      // watchPrices returns a Topic subscription: the transport serves it on the fast path
      expect(SseResponse.counts().answers).toBe(1)
      response.destroy()
      yield* Effect.promise(() =>
        eventually(async () => (await activeSubscriptions(base)) === 0, 20_000, "stream_active back to 0")
      )
      expect(SseResponse.counts()).toEqual({ answers: 0, timers: 0, drainWatchers: 0 })
    }).pipe(quiet))

  it.scopedLive("a drain affects its own server and not a second one in the same process", () =>
    Effect.gen(function*() {
      const first = yield* start("application", 50)
      const second = yield* start("application", 50)
      yield* Effect.addFinalizer(() =>
        Effect.all([first.dispose, second.dispose, first.shutdown, second.shutdown], { discard: true })
      )
      // A download the client does not read keeps the first server draining.
      const stalled = yield* Effect.promise(() =>
        get(`${first.base}/rpc/downloadReport?payload=${encodeURIComponent(JSON.stringify({ sizeMb: 64 }))}`)
      )
      stalled.pause()
      const onFirst = yield* Effect.promise(() => get(watch(first.base)))
      const onSecond = yield* Effect.promise(() => get(watch(second.base)))
      const firstEnded = new Promise<void>((resolve) => onFirst.on("end", resolve).resume())
      const secondEvents = sseCollector()
      onSecond.on("data", (bytes: Buffer) => secondEvents.feed(bytes))
      // The second server's feed has published (a quote needs a price) before the first drains.
      yield* Effect.promise(() => eventually(() => secondEvents.events.some((e) => e.event === "message")))

      yield* Effect.forkDaemon(first.shutdown)
      yield* Effect.promise(() => firstEnded)
      const afterDrain = secondEvents.events.length
      const refused = yield* Effect.promise(() => fetch(watch(first.base)))
      expect(refused.status).toBe(503)
      expect(refused.headers.get("retry-after")).not.toBe(null)
      expect(((yield* Effect.promise(() => refused.json())) as { _tag: string })._tag).toBe("ServiceUnavailable")

      const quote = yield* Effect.promise(() =>
        fetch(`${second.base}/rpc/getQuote`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ symbol: "ACME" })
        })
      )
      expect(quote.status).toBe(200)
      yield* Effect.promise(() => eventually(() => secondEvents.events.length > afterDrain + 2))
      expect(secondEvents.events.every((e) => e.event === "message")).toBe(true)
      stalled.destroy()
      onSecond.destroy()
    }).pipe(quiet))
})
