/**
 * Wire protocol v1.1 on the server: `POST <base>/_mux` opens a connection
 * carrying the subscriptions its body names, `POST <base>/_mux/<connection>`
 * adds and removes subscriptions on an open one. Each subscription is what a
 * v1 request for it would be — parsed, admitted, its middlewares run, its
 * handler invoked, an `SseAnswer` of its own (sliding 64, exact `dropped`,
 * typed error, cursor) — written to a channel of the connection
 * (`core/MuxConnection`). What would have been a v1 request's error answer
 * is that subscription's `error` event; the others go on.
 *
 * Connections are held by the instance that opened them. A change for a
 * connection this instance does not hold is a 404: the client reopens, with
 * every subscription and its cursor, wherever its request lands.
 */
import * as Headers from "@effect/platform/Headers"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import type * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import { type Channel, MuxConnection } from "../../core/MuxConnection.ts"
import { randomId } from "../../core/RandomId.ts"
import type { SseSink } from "../../core/SseAnswer.ts"
import * as ProtocolError from "../../contract/ProtocolError.ts"
import * as Errors from "../../protocol/Errors.ts"
import * as Multiplex from "../../protocol/Multiplex.ts"
import * as Names from "../../protocol/Names.ts"
import * as Sse from "../../protocol/Sse.ts"
import * as Topic from "../../topic/Topic.ts"
import type { ConnectionRelay } from "../ConnectionRelay.ts"
import type { StreamMetrics } from "../MetricsService.ts"
import { StreamingConfig } from "../StreamingConfig.ts"
import type * as Admission from "./Admission.ts"
import type { Drain } from "./Drains.ts"
import * as Failures from "./Failures.ts"
import * as Invocation from "./Invocation.ts"
import * as Platform from "./Platform.ts"
import * as RequestParsing from "./RequestParsing.ts"
import type { Served } from "./Served.ts"
import * as SseResponse from "./SseResponse.ts"
import * as Spans from "./Spans.ts"

export interface Settings {
  readonly base: string
  readonly maxPayloadBytes: number
  readonly bodyTimeout: Duration.Duration
  readonly procedures: ReadonlyMap<string, Served>
  /** The application's context: handlers, middlewares, services. */
  readonly context: Context.Context<never>
  readonly admission: Admission.Admission
  readonly metrics: StreamMetrics | undefined
  readonly drain: Drain
  /** Forwards changes to the instance holding a connection (see `ConnectionRelay`). */
  readonly relay: ConnectionRelay | undefined
  /** Runs the changes the relay brings (the application's runtime). */
  readonly runtime: Runtime.Runtime<never>
}

/** One subscription asked for, ready to start, or the error event it gets instead. */
type Prepared =
  | { readonly _tag: "Ready"; readonly entry: Multiplex.Entry; readonly served: Served; readonly invocation: Extract<Invocation.Invocation, { _tag: "Stream" }>; readonly slot: Admission.Slot }
  | { readonly _tag: "Refused"; readonly entry: Multiplex.Entry; readonly errorJson: string; readonly shed: boolean }

const refused = (entry: Multiplex.Entry, error: ProtocolError.ProtocolError, shed = false): Prepared => ({
  _tag: "Refused",
  entry,
  errorJson: Failures.protocolErrorJson(error),
  shed
})

/** A defect while invoking a handler: logged, answered as `InternalError`. */
const internal = Symbol("internal")

/** Open connections of every app in the process: for leak tests. */
let openConnections = 0
export const counts = (): { readonly connections: number } => ({ connections: openConnections })

export interface Multiplexer {
  /** Whether `url` is `<base>/_mux` or under it. */
  readonly handles: (url: URL) => boolean
  /** The answer to a request for `<base>/_mux[/<connection>]` (a URL `handles` accepts). */
  readonly handle: (
    request: HttpServerRequest.HttpServerRequest,
    url: URL,
    headers: Readonly<Record<string, string>> | undefined
  ) => Effect.Effect<HttpServerResponse.HttpServerResponse, ProtocolError.ProtocolError, Scope.Scope>
}

export const make = (settings: Settings): Multiplexer => {
  const { admission, context, metrics, procedures } = settings
  const connections = new Map<string, MuxConnection>()
  const endpoint = Multiplex.pathOf(settings.base)
  const instance = settings.relay?.instance ?? randomId(4)

  /** Parses, admits and invokes one subscription as a v1 request for it would be. */
  const prepare = (
    entry: Multiplex.Entry,
    requestHeaders: Headers.Headers
  ): Effect.Effect<Prepared, never, Scope.Scope> =>
    Effect.gen(function*() {
      const served = procedures.get(entry.tag)
      if (served === undefined) {
        return refused(entry, new ProtocolError.NotFound({ message: `Unknown procedure: ${entry.tag.slice(0, 200)}` }))
      }
      if (served.spec._tag !== "subscription") {
        return refused(
          entry,
          new ProtocolError.NotFound({ message: `${entry.tag.slice(0, 200)} is a ${served.spec._tag}, not a subscription` })
        )
      }
      const payload = yield* Effect.either(RequestParsing.decodePayload(served, entry.payload))
      if (Either.isLeft(payload)) return refused(entry, payload.left)
      const admitted = yield* admission.admit("subscription")
      if (typeof admitted === "string") {
        metrics?.shed("subscription", entry.tag, admitted)
        return refused(entry, new ProtocolError.ServiceUnavailable({ message: "The server is overloaded: retry" }), true)
      }
      const headers = entry.lastEventId === undefined
        ? Headers.remove(requestHeaders, Names.headers.lastEventId)
        : Headers.set(requestHeaders, Names.headers.lastEventId, entry.lastEventId)
      const invoked = yield* Invocation.invoke({ served, payload: payload.right, headers, format: undefined }, context).pipe(
        Effect.either,
        Effect.catchAllDefect((defect) =>
          Effect.as(Effect.logError("procedure defect", Cause.die(defect)), Either.left(internal))
        )
      )
      if (Either.isLeft(invoked)) {
        admitted.release()
        const errorJson = invoked.left === internal
          ? Errors.internalError
          : Failures.typedFailureJson(served, invoked.left) ?? Errors.internalError
        return { _tag: "Refused", entry, errorJson, shed: false } as const
      }
      if (invoked.right._tag !== "Stream") return yield* Effect.dieMessage("a subscription's handler returned no stream")
      return { _tag: "Ready", entry, served, invocation: invoked.right, slot: admitted } as const
    })

  /** Starts a prepared subscription on its channel (its `subscribed` event, then its values), or its error. */
  const begin = (channel: Channel | undefined, prepared: Prepared): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (prepared._tag === "Refused") {
        channel?.end(Sse.error(prepared.errorJson))
        return Effect.void
      }
      if (channel === undefined) {
        // The connection went before this subscription started: it ends unstarted.
        const span = prepared.invocation.span
        return Effect.clockWith((clock) =>
          Effect.sync(() => {
            prepared.slot.release()
            if (span !== undefined) Spans.endUnstarted(span, clock.unsafeCurrentTimeNanos(), { dropped: 0, termination: "interrupted" })
          })
        )
      }
      const { invocation, served } = prepared
      const spec = served.spec
      const cursor = spec._tag === "subscription" ? spec.cursor : undefined
      const resume: Multiplex.Resume = Topic.isSubscription(invocation.source) ? "exact" : cursor !== undefined ? "handler" : "none"
      return Effect.asVoid(SseResponse.start(channel, {
        name: served.rpc._tag,
        source: invocation.source,
        serialize: served.successJson,
        id: cursor,
        serializeError: served.failureJson,
        run: invocation.run,
        context: Context.empty(),
        wrapped: invocation.wrapped,
        onStop: prepared.slot.keep(),
        span: invocation.span,
        multiplexed: { opening: Multiplex.subscribed(resume) }
      }))
    })

  /**
   * A new connection, registered until it stops. Built apart from `open`: a
   * closure made there would keep all of its scope (the request, its body,
   * every subscription's invocation) for as long as the connection is open.
   */
  const openConnection = (
    sink: SseSink,
    config: StreamingConfig["Type"],
    clock: Clock.Clock,
    headers: Readonly<Record<string, string>> | undefined
  ): MuxConnection => {
    // Unguessable: knowing a connection's id is what it takes to change it.
    const id = `${instance}.${randomId(12)}`
    const connection = new MuxConnection(sink, {
      id,
      headers,
      opening: SseResponse.openingOf(config),
      heartbeatMillis: SseResponse.heartbeatMillisOf(config),
      every: SseResponse.everyOf(clock),
      draining: SseResponse.drainingOf(settings.drain),
      stopped: stoppedOf(id)
    })
    connections.set(id, connection)
    openConnections++
    metrics?.connection?.(1)
    return connection
  }

  const stoppedOf = (id: string) => (): void => {
    connections.delete(id)
    openConnections--
    metrics?.connection?.(-1)
  }

  const open = (request: HttpServerRequest.HttpServerRequest, headers: Readonly<Record<string, string>> | undefined) =>
    Effect.gen(function*() {
      if (request.method !== "POST") {
        return yield* new ProtocolError.MethodNotAllowed({ message: `Use POST to open a multiplexed connection, not ${request.method.slice(0, 20)}` })
      }
      const body = yield* RequestParsing.jsonBody(request, settings.maxPayloadBytes, settings.bodyTimeout)
      const parsed = Multiplex.parseOpen(body)
      if (!parsed.ok) return yield* new ProtocolError.InvalidPayload({ message: parsed.message })
      // The client left while the request waited for its turn or its body: nothing starts for it
      // (known once the next turn of the loop has read its close; see `NodePlatform.afterNextReads`).
      const node = yield* Platform.node(request)
      if (node !== undefined) {
        yield* node.afterNextReads
        if (node.clientGone(request)) return yield* Effect.interrupt
      }
      const prepared = yield* Effect.forEach(parsed.value.subscriptions, (entry) => prepare(entry, request.headers))
      if (prepared.length > 0 && prepared.every((p) => p._tag === "Refused" && p.shed)) {
        return yield* new ProtocolError.ServiceUnavailable({ message: "The server is overloaded: retry" })
      }
      const config = yield* StreamingConfig
      const start = (sink: SseSink) =>
        Effect.clockWith((clock) =>
          Effect.suspend(() => {
            const connection = openConnection(sink, config, clock, headers)
            if (!connection.start()) return Effect.void
            return Effect.forEach(prepared, (p) => begin(connection.channel(p.entry.id), p), { discard: true })
          })
        )
      const response = node?.responseOf(request)
      return node !== undefined && response !== undefined
        ? yield* SseResponse.handOverTo(node, response, start)
        : yield* SseResponse.webResponseOf(start, headers)
    })

  /**
   * Removes, then takes the ids of the additions, at once and before any
   * middleware runs (two changes cannot add the same id); a message when the
   * change cannot be applied as a whole.
   */
  const reserve = (
    connection: MuxConnection,
    change: Multiplex.Change
  ): { readonly channels: ReadonlyArray<Channel | undefined> } | { readonly refused: string } => {
    const { add, remove } = change
    const removed = remove.filter((sub) => connection.has(sub)).length
    if (connection.size - removed + add.length > Multiplex.maxSubscriptions) {
      return { refused: `add: at most ${Multiplex.maxSubscriptions} subscriptions per connection (${connection.size} now)` }
    }
    for (let i = 0; i < add.length; i++) {
      if (connection.has(add[i]!.id) && !remove.includes(add[i]!.id)) {
        return { refused: `add.${i}.id: ${add[i]!.id} is already on the connection` }
      }
    }
    for (const sub of remove) connection.remove(sub)
    return { channels: add.map((entry) => connection.channel(entry.id)) }
  }

  /** Starts the additions of a change on the channels reserved for them; the others are not touched. */
  const startAll = (channels: ReadonlyArray<Channel | undefined>, add: ReadonlyArray<Multiplex.Entry>, headers: Headers.Headers) =>
    Effect.forEach(add, (entry, i) => Effect.flatMap(prepare(entry, headers), (prepared) => begin(channels[i], prepared)), {
      discard: true
    })

  const relay = settings.relay
  if (relay !== undefined) {
    // Changes other instances received for connections held here.
    relay.receive((message) => {
      let forwarded: { readonly connection?: unknown; readonly change?: unknown; readonly headers?: unknown }
      try {
        forwarded = JSON.parse(message) as typeof forwarded
      } catch {
        return
      }
      const connection = typeof forwarded.connection === "string" ? connections.get(forwarded.connection) : undefined
      const change = Multiplex.parseChange(forwarded.change)
      if (connection === undefined || connection.isStopped || !change.ok) return
      // A change that cannot be applied is not answered 400 from here: it is left out.
      const reserved = reserve(connection, change.value)
      if ("refused" in reserved) return
      const headers = Headers.fromInput(forwarded.headers as Headers.Input)
      Runtime.runFork(settings.runtime)(Effect.scoped(startAll(reserved.channels, change.value.add, headers)))
    })
  }

  const change = (request: HttpServerRequest.HttpServerRequest, id: string) =>
    Effect.gen(function*() {
      if (request.method !== "POST") {
        return yield* new ProtocolError.MethodNotAllowed({ message: `Use POST to change a connection, not ${request.method.slice(0, 20)}` })
      }
      const body = yield* RequestParsing.jsonBody(request, settings.maxPayloadBytes, settings.bodyTimeout)
      const parsed = Multiplex.parseChange(body)
      if (!parsed.ok) return yield* new ProtocolError.InvalidPayload({ message: parsed.message })
      const connection = connections.get(id)
      const holder = id.slice(0, id.indexOf("."))
      if ((connection === undefined || connection.isStopped) && relay !== undefined && holder !== "" && holder !== instance) {
        const message = JSON.stringify({ connection: id, change: parsed.value, headers: request.headers })
        if (yield* Effect.promise(() => relay.forward(holder, message))) {
          return HttpServerResponse.unsafeJson({}, { status: 202 })
        }
      }
      if (connection === undefined || connection.isStopped) {
        return yield* new ProtocolError.NotFound({ message: `Unknown connection: ${id.slice(0, 100)} (reopen it)` })
      }
      const reserved = reserve(connection, parsed.value)
      if ("refused" in reserved) return yield* new ProtocolError.InvalidPayload({ message: reserved.refused })
      yield* startAll(reserved.channels, parsed.value.add, request.headers)
      return HttpServerResponse.unsafeJson({})
    })

  return {
    handles: (url) => url.pathname === endpoint || url.pathname.startsWith(`${endpoint}/`),
    handle: (request, url, headers) => {
      if (url.pathname === endpoint) return open(request, headers)
      let id: string
      try {
        id = decodeURIComponent(url.pathname.slice(endpoint.length + 1))
      } catch {
        return Effect.fail(new ProtocolError.NotFound({ message: "The connection id is not valid URL encoding" }))
      }
      return change(request, id)
    }
  }
}
