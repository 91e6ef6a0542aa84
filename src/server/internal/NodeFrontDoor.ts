/**
 * The front door (`HttpTransport` option `frontDoor`, Node only): a
 * subscription answered in `node:http`'s `request` event itself, before the
 * platform's HTTP server and router turn the request into a fiber. Opening
 * a subscription then costs about what a hand-written `node:http` SSE
 * handler costs (a reconnect storm is thousands of such requests at once);
 * through the router it costs several times that (measured in the bench's
 * `idle` and `storm` scenarios).
 *
 * It takes only the plain case and hands every other request, unchanged, to
 * the listeners it stands in front of (the platform's): a `GET` of a
 * subscription procedure without RPC middleware, whose `?payload=` decodes
 * synchronously, admitted, on a server not draining, with no tracer
 * provided (spans need the request's fiber). Anything else (another
 * method, a download, an export, a bad payload, a call that would be shed
 * (`503`), a middleware to run) goes through the router as before, which
 * answers it as it always has.
 *
 * What a request served here does not get: HTTP middleware applied at the
 * router (`HttpLayerRouter.serve`'s `middleware`, `HttpLayerRouter.middleware`)
 * and the platform's request logger and `http.server` span. RPC middlewares
 * still apply (their procedures are not served here), and so do CORS,
 * admission, metrics, the drain and everything the application provides.
 *
 * Installed by the first call of a procedure (through the router: the
 * server is reached through the request's socket, `socket.server`); listeners added to the server's
 * `request` event after that are called for every request, served here or
 * not.
 */
import type * as Http from "node:http"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Runtime from "effect/Runtime"
import * as Headers from "@effect/platform/Headers"
import * as Errors from "../../protocol/Errors.ts"
import * as Names from "../../protocol/Names.ts"
import type * as Admission from "./Admission.ts"
import * as Cors from "./Cors.ts"
import type { Drain } from "./Drains.ts"
import * as Invocation from "./Invocation.ts"
import * as RequestParsing from "./RequestParsing.ts"
import { afterNextTurnsReads, NodeSink } from "./NodePlatform.ts"
import type { Served } from "./Served.ts"
import * as SseResponse from "./SseResponse.ts"

export interface Settings {
  readonly base: string
  readonly maxPayloadBytes: number
  readonly procedures: ReadonlyMap<string, Served>
  readonly admission: Admission.Admission
  readonly drain: Drain
  /** The application's context: the handlers, their layers' services. */
  readonly context: Context.Context<never>
  /** What answers started here read (configuration, metrics, the drain) and log with. */
  readonly starter: SseResponse.Starter
  readonly cors: Cors.CorsOptions | undefined
}

type Listener = (request: Http.IncomingMessage, response: Http.ServerResponse) => void

/** The servers a front door stands on, per transport. */
const installed = new WeakMap<Settings, WeakSet<Http.Server>>()

/** Puts the front door of `settings` before the `request` listeners `server` has now (once per server). */
export const install = (server: Http.Server, settings: Settings): void => {
  let servers = installed.get(settings)
  if (servers === undefined) {
    servers = new WeakSet()
    installed.set(settings, servers)
  }
  if (servers.has(server)) return
  servers.add(server)
  const behind = server.listeners("request") as Array<Listener>
  server.removeAllListeners("request")
  const serve = door(settings)
  server.on("request", (request: Http.IncomingMessage, response: Http.ServerResponse) => {
    if (serve(request, response)) return
    for (const listener of behind) listener.call(server, request, response)
  })
}

/** The call a request makes, when it is the plain case; else undefined. */
const callOf = (settings: Settings, request: Http.IncomingMessage) => {
  if (request.method !== "GET") return undefined
  const target = request.url ?? ""
  const prefix = `${settings.base}/`
  if (!target.startsWith(prefix)) return undefined
  const query = target.indexOf("?")
  let tag: string
  try {
    tag = decodeURIComponent(target.slice(prefix.length, query < 0 ? undefined : query))
  } catch {
    return undefined
  }
  const served = settings.procedures.get(tag)
  if (served === undefined || served.spec._tag !== "subscription" || served.rpc.middlewares.size > 0) return undefined
  const params = new URLSearchParams(query < 0 ? "" : target.slice(query + 1))
  const text = params.get(Names.query.payload)
  let raw: unknown = undefined
  if (text !== null && text !== "") {
    if (text.length > settings.maxPayloadBytes) return undefined
    try {
      raw = JSON.parse(text)
    } catch {
      return undefined
    }
  }
  let decoded = served.decodePayloadEither(raw)
  // An absent payload stands for an empty object when the schema accepts one (as `RequestParsing`).
  if (Either.isLeft(decoded) && raw === undefined) decoded = served.decodePayloadEither({})
  if (Either.isLeft(decoded)) return undefined
  const headers = RequestParsing.withResumeCursor(Headers.fromInput(request.headers as Headers.Input), params)
  return { served, payload: decoded.right, headers, format: undefined }
}

const door = (settings: Settings) => (request: Http.IncomingMessage, response: Http.ServerResponse): boolean => {
  if (settings.drain.isDraining()) return false
  const call = callOf(settings, request)
  if (call === undefined) return false
  const origin = request.headers["origin"]
  const allow = Cors.headers(settings.cors, typeof origin === "string" ? origin : undefined)
  const slot = settings.admission.subscribe()
  // Shed: the router answers it (503, Retry-After, the shed counted).
  if (typeof slot === "string") return false
  // As through the router: the stream starts once the next turn has read the client's close, if
  // it has gone while its request waited (see `NodePlatform.afterNextReads`).
  afterNextTurnsReads(() => {
    const socket = request.socket
    if (socket.destroyed || socket.readableEnded || response.destroyed) return slot.release()
    let invocation: Invocation.Invocation | undefined
    try {
      invocation = Invocation.invokeStreamUntraced(call, settings.context)
    } catch (defect) {
      invocation = undefined
      Runtime.runFork(settings.starter.runtime)(Effect.logError("procedure defect", Cause.die(defect)))
    }
    if (invocation === undefined || invocation._tag !== "Stream") {
      // As the router answers a defect: logged, never sent.
      slot.release()
      response.writeHead(500, { "content-type": Names.contentTypes.json, ...allow }).end(Errors.internalError)
      return
    }
    const spec = call.served.spec
    SseResponse.begin(settings.starter, new NodeSink(response), {
      name: call.served.rpc._tag,
      source: invocation.source,
      serialize: call.served.successJson,
      id: spec._tag === "subscription" ? spec.cursor : undefined,
      serializeError: call.served.failureJson,
      run: invocation.run,
      // `run` gives the source the handler's context and the application's.
      context: Context.empty(),
      wrapped: invocation.wrapped,
      headers: allow,
      onStop: slot.keep(),
      span: undefined
    })
  })
  return true
}
