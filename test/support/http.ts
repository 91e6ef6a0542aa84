/**
 * Test support: a real NodeHttpServer on a loopback port, and real clients.
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type * as Scope from "effect/Scope"
import { createParser, type EventSourceMessage } from "eventsource-parser"
import * as Http from "node:http"
import * as HttpTransport from "../../src/server/HttpTransport.ts"

/** Serves `app` on 127.0.0.1 and an OS-chosen port for the lifetime of the scope. */
export const listen = <E>(app: HttpApp.Default<E, Scope.Scope>): Effect.Effect<string, never, Scope.Scope> =>
  Effect.gen(function*() {
    const server = yield* NodeHttpServer.make(() => Http.createServer(), { port: 0, host: "127.0.0.1" }).pipe(
      Effect.orDie
    )
    yield* server.serve(app)
    const address = server.address as HttpServer.TcpAddress
    return `http://127.0.0.1:${address.port}`
  })

/** Keeps test output readable: logs of the streams under test are not printed. */
export const quiet = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provide(self, Logger.minimumLogLevel(LogLevel.None))

export interface ParsedEvent {
  readonly event: string
  readonly data: string
  readonly id: string | undefined
}

/** An independent SSE parser (eventsource-parser), collecting events and comments. */
export const sseCollector = () => {
  const events: Array<ParsedEvent> = []
  const comments: Array<string> = []
  const parser = createParser({
    onEvent: (message: EventSourceMessage) =>
      events.push({ event: message.event ?? "message", data: message.data, id: message.id }),
    onComment: (comment: string) => comments.push(comment.trim())
  })
  const decoder = new TextDecoder()
  return {
    events,
    comments,
    feed: (bytes: Uint8Array) => parser.feed(decoder.decode(bytes, { stream: true }))
  }
}

/** A GET with node:http whose response the caller can pause and resume (real socket backpressure). */
export const get = (url: string, headers: Record<string, string> = {}): Promise<Http.IncomingMessage> =>
  new Promise((resolve, reject) => {
    const request = Http.get(url, { headers, agent: false }, resolve)
    request.on("error", reject)
  })

/** The tests' one wait on a condition (test/support/eventually.ts). */
export { eventually } from "./eventually.ts"

/** Resolves once `read()` returns the same value on `times` consecutive checks: a producer that has stalled. */
export const settled = async (read: () => number, times = 10): Promise<number> => {
  let last = read()
  let same = 0
  while (same < times) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    const now = read()
    same = now === last ? same + 1 : 0
    last = now
  }
  return last
}

/** A raw node:http server on a loopback port, closed (with its connections) with the scope; its `/rpc` base URL. */
export const rawServer = (
  handler: (request: Http.IncomingMessage, response: Http.ServerResponse) => void
): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<Http.Server>((resume) => {
      const server = Http.createServer(handler)
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as import("node:net").AddressInfo).port}/rpc`))

/** Serves `group` with `handlers` on a loopback port for the lifetime of the scope; its base URL (`…/rpc`). */
export const serveGroup = <Rpcs extends Rpc.Any, E>(
  group: RpcGroup.RpcGroup<Rpcs>,
  handlers: Layer.Layer<Rpc.ToHandler<Rpcs> | Rpc.Middleware<Rpcs>, E>
): Effect.Effect<string, E, Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Layer.build(handlers)
    const app = yield* HttpTransport.toHttpApp(group).pipe(Effect.provide(context))
    return `${yield* listen(app as HttpApp.Default<never, Scope.Scope>)}/rpc`
  })
