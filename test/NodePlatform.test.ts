/**
 * The contract with `@effect/platform-node` that the hand-over of an SSE
 * answer relies on (src/server/internal/NodePlatform.ts). Each test pins one
 * behaviour of the platform's server; an upgrade that changes it fails here,
 * loudly, instead of leaking request fibers or cutting subscriptions in
 * production.
 */
import { describe, expect, it } from "@effect/vitest"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Http from "node:http"
import * as NodePlatform from "../src/server/internal/NodePlatform.ts"
import { get, listen } from "./support/http.ts"

/** Reads the whole body of `response`. */
const bodyOf = (response: Http.IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    let text = ""
    response.setEncoding("utf8")
    response.on("data", (chunk: string) => (text += chunk))
    response.on("end", () => resolve(text))
    response.on("error", reject)
  })

describe("@effect/platform-node, as the hand-over relies on it", () => {
  it.scopedLive("a request's source is its IncomingMessage, with a socket, and toServerResponse gives its node:http response", () =>
    Effect.gen(function*() {
      const seen = yield* Deferred.make<{ socket: boolean; response: boolean }>()
      const url = yield* listen(Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
        const response = NodePlatform.responseOf(request)
        return Deferred.succeed(seen, {
          socket: NodePlatform.socketOf(request) !== undefined,
          response: response instanceof Http.ServerResponse
        }).pipe(Effect.as(HttpServerResponse.text("ok")))
      }))
      const response = yield* Effect.promise(() => get(url))
      expect(yield* Effect.promise(() => bodyOf(response))).toBe("ok")
      expect(yield* Deferred.await(seen)).toEqual({ socket: true, response: true })
    }))

  it.scopedLive("the server listens for the response's close once the request's fiber has started (to interrupt it)", () =>
    Effect.gen(function*() {
      const listeners = yield* Deferred.make<number>()
      const url = yield* listen(Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
        Effect.sync(() => {
          const response = NodePlatform.responseOf(request)!
          // after the handler's synchronous part, as `handOver` removes them
          queueMicrotask(() => Deferred.unsafeDone(listeners, Effect.succeed(response.listenerCount("close"))))
          return HttpServerResponse.text("ok")
        })))
      yield* Effect.promise(() => get(url).then(bodyOf))
      expect(yield* Deferred.await(listeners)).toBeGreaterThan(0)
    }))

  it.scopedLive("handOver removes the server's close listeners once the handler has returned, and keeps the answer's own", () =>
    Effect.gen(function*() {
      const counts = yield* Deferred.make<{ before: number; after: number; ours: boolean }>()
      const url = yield* listen(Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
        Effect.sync(() => {
          const response = NodePlatform.responseOf(request)!
          const sink = new NodePlatform.NodeSink(response)
          sink.open({ "content-type": "text/plain" })
          sink.listen(() => {}, () => {})
          NodePlatform.handOver(response, sink.listeners)
          const before = response.listenerCount("close")
          setTimeout(() => {
            const after = response.listeners("close")
            Deferred.unsafeDone(counts, Effect.succeed({ before, after: after.length, ours: sink.listeners.has(after[0]) }))
            sink.unlisten()
            sink.end("done")
          }, 10)
          return HttpServerResponse.empty()
        })))
      const response = yield* Effect.promise(() => get(url))
      expect(yield* Effect.promise(() => bodyOf(response))).toBe("done")
      // one listener is the answer's, the other the server's, which is gone once the handler returned
      expect(yield* Deferred.await(counts)).toEqual({ before: 1, after: 1, ours: true })
    }))

  it.scopedLive("the server answers with the response's writeHead and end when the handler returns: handed over, it writes nothing", () =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      const serve = (handOver: boolean) =>
        listen(Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
          const response = NodePlatform.responseOf(request)!
          const writeHead = response.writeHead
          const end = response.end
          response.writeHead = function(this: Http.ServerResponse, ...args: Array<unknown>) {
            calls.push(`${handOver ? "handed" : "plain"} writeHead`)
            return (writeHead as (...a: Array<unknown>) => Http.ServerResponse).apply(this, args)
          } as typeof response.writeHead
          response.end = function(this: Http.ServerResponse, ...args: Array<unknown>) {
            calls.push(`${handOver ? "handed" : "plain"} end`)
            return (end as (...a: Array<unknown>) => Http.ServerResponse).apply(this, args)
          } as typeof response.end
          if (!handOver) return Effect.succeed(HttpServerResponse.text("plain"))
          const sink = new NodePlatform.NodeSink(response)
          sink.open({ "content-type": "text/event-stream" })
          sink.write("a")
          NodePlatform.handOver(response, new Set())
          calls.length = 0
          // written after the server has answered the request
          setTimeout(() => {
            sink.write("b")
            sink.end("c")
          }, 20)
          return Effect.succeed(HttpServerResponse.empty({ status: 204 }))
        }))
      const url = yield* serve(false)
      expect(yield* Effect.promise(() => get(url).then(bodyOf))).toBe("plain")
      // The platform answers through the response's own writeHead and end.
      expect(calls).toEqual(["plain writeHead", "plain end"])
      const handed = yield* serve(true)
      const response = yield* Effect.promise(() => get(handed))
      const body = yield* Effect.promise(() => bodyOf(response))
      // Handed over, the server's answer (a 204) touches nothing: the head and body are the answer's own.
      expect(response.statusCode).toBe(200)
      expect(response.headers["content-type"]).toBe("text/event-stream")
      expect(body).toBe("abc")
    }))
})
