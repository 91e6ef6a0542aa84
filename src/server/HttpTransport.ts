/**
 * Wire protocol v1 over HTTP: serves an `RpcGroup` whose handlers come from
 * `group.toLayer({...})`. Every procedure is at `<base>/<Tag>`, by GET with
 * `?payload=` (URL-encoded JSON) or POST with a JSON body.
 *
 * The path from a handler to the socket is bounded end to end: handler
 * stream → the kind's policy in `StreamingService` → encoder → a write that
 * waits for the socket's `drain`. @effect/rpc's own HTTP protocol (an
 * unbounded mailbox) is not on this path.
 *
 * Errors before a stream starts are answered with a status and a JSON body
 * `{"_tag", "message"}` (see `ProtocolError`); bad input is never a 5xx.
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as RuntimeFlagsPatch from "effect/RuntimeFlagsPatch"
import type * as Scope from "effect/Scope"
import * as Drains from "./internal/Drains.ts"
import * as ConnectionRelay from "./ConnectionRelay.ts"
import * as GracefulShutdown from "./GracefulShutdown.ts"
import * as Admission from "./internal/Admission.ts"
import * as Cors from "./internal/Cors.ts"
import * as Scheduling from "./internal/Scheduling.ts"
import * as Failures from "./internal/Failures.ts"
import * as Invocation from "./internal/Invocation.ts"
import * as Multiplexed from "./internal/Multiplexed.ts"
import * as RequestParsing from "./internal/RequestParsing.ts"
import * as Platform from "./internal/Platform.ts"
import * as Responses from "./internal/Responses.ts"
import * as Served from "./internal/Served.ts"
import type * as NodeFrontDoor from "./internal/NodeFrontDoor.ts"
import * as SseResponse from "./internal/SseResponse.ts"
import * as Spans from "./internal/Spans.ts"
import { MetricsService } from "./MetricsService.ts"
import * as Multiplex from "../protocol/Multiplex.ts"
import * as Names from "../protocol/Names.ts"
import * as ProtocolError from "../contract/ProtocolError.ts"

export type CorsOptions = Cors.CorsOptions

export interface Options {
  /** Base path of the procedures. Default `/rpc`. */
  readonly path?: string | undefined
  /**
   * Cross-origin access. Without it no CORS header is sent, so only pages of
   * the same origin can call (the safe default). `origins: "*"` cannot be
   * combined with `credentials: true`.
   */
  readonly cors?: CorsOptions | undefined
  /** Largest accepted request body (POST) or `?payload=` in bytes. Default 1 MiB. */
  readonly maxPayloadBytes?: number | undefined
  /** How long a request body may take to arrive; past it the answer is 408 and the connection closes. Default 10 seconds. */
  readonly bodyTimeout?: Duration.DurationInput | undefined
  /**
   * Past these limits new calls are answered `503` with `Retry-After`
   * (see `Admission`): open subscriptions (default 20,000), running transfers
   * (default 256; per client when set), event-loop delay (default 1 second)
   * and, when set, event-loop utilization (new streams only).
   */
  readonly admission?: Admission.AdmissionOptions | undefined
  /**
   * Node only. Subscriptions answered in `node:http`'s `request` event,
   * before the platform's server and router make a fiber of the request:
   * opening one then costs about what a hand-written `node:http` SSE handler
   * costs, where through the router it costs several times that (what a
   * reconnect storm pays thousands of times at once). Only the plain case is
   * served there — a `GET` of a subscription without RPC middleware whose
   * payload decodes synchronously, admitted, no tracer provided — and every
   * other request goes through the router, unchanged. Requests served there
   * do not pass HTTP middleware applied at the router, nor the platform's
   * request logger and `http.server` span. Default `false`.
   */
  readonly frontDoor?: boolean | undefined
}

export const defaultPath = Names.basePath

export const defaultMaxPayloadBytes = 1024 * 1024

const basePath = (options: Options | undefined) => (options?.path ?? defaultPath).replace(/\/+$/, "")

/**
 * The procedures of `group` as an `HttpApp`, answering `<path>/<Tag>`.
 * Needs the group's handlers (`group.toLayer`) and middlewares. Everything
 * in the context it is built in (the handlers, `StreamingConfig`,
 * `MetricsService`, `GracefulShutdown`, any service of the application)
 * reaches every request and every response body.
 */
export const toHttpApp = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options?: Options
): Effect.Effect<
  HttpApp.Default<never, Scope.Scope>,
  never,
  Rpc.ToHandler<Rpcs> | Rpc.Middleware<Rpcs>
> =>
  Effect.gen(function*() {
    const invalid = Cors.validate(options?.cors)
    if (invalid !== undefined) return yield* Effect.dieMessage(invalid)
    const provided = yield* Effect.context<never>()
    // A server without a GracefulShutdown layer still has a drain of its own (one that never begins).
    const drain = Option.getOrElse(
      Context.getOption(provided, GracefulShutdown.GracefulShutdown),
      Drains.unsafeMake
    )
    const context = Context.add(provided, GracefulShutdown.GracefulShutdown, drain) as Context.Context<never>
    const parsing = {
      base: basePath(options),
      maxPayloadBytes: options?.maxPayloadBytes ?? defaultMaxPayloadBytes,
      bodyTimeout: Duration.decode(options?.bodyTimeout ?? "10 seconds")
    }
    const admission = Admission.make(options?.admission)
    const metrics = Option.getOrUndefined(Context.getOption(provided, MetricsService))
    const procedures = new Map<string, Served.Served>()
    for (const rpc of group.requests.values()) {
      if (rpc._tag === Multiplex.pathSegment) {
        return yield* Effect.dieMessage(`A procedure cannot be named ${Multiplex.pathSegment}: <base>/${Multiplex.pathSegment} is the multiplexed connection (wire protocol v1.1)`)
      }
      const served = Served.make(rpc as unknown as Rpc.AnyWithProps)
      procedures.set(rpc._tag, served)
      metrics?.declared?.(served.spec._tag, rpc._tag, admission.reasons(served.spec._tag))
    }
    const relay = Option.getOrUndefined(Context.getOption(provided, ConnectionRelay.ConnectionRelay))
    const runtime = yield* Effect.runtime<never>()
    // Spans need the request's fiber: with a tracer provided, every request goes through the router.
    const frontDoor: NodeFrontDoor.Settings | undefined = options?.frontDoor === true && !(yield* Spans.enabled)
      ? {
        ...parsing,
        procedures,
        admission,
        drain,
        context,
        cors: options.cors,
        // Answers started there run and log as a request's: on its scheduler (and, as every answer's fibers,
        // without Effect's fiber metrics).
        starter: SseResponse.starterOf(
          FiberRefs.updateAs(runtime.fiberRefs, {
            fiberId: FiberId.none,
            fiberRef: FiberRef.currentScheduler,
            value: Scheduling.scheduler
          }),
          context
        )
      }
      : undefined
    const multiplexer = Multiplexed.make({ ...parsing, procedures, context, admission, metrics, drain, relay,
      runtime: Runtime.make({ context, fiberRefs: runtime.fiberRefs, runtimeFlags: runtime.runtimeFlags })
    })

    /**
     * Admission, decided as soon as the request arrives: on the default
     * scheduler (not behind other requests' work on the request scheduler)
     * and before the body is read. A procedure's call is admitted or shed by
     * what the URL names; a multiplexed connection admits each of its
     * subscriptions once its body is read.
     */
    const admit = (request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function*() {
        // A draining server starts nothing new: a request on a kept-alive connection would
        // otherwise get a stream that ends at once, again and again, until the process exits.
        if (drain.isDraining()) {
          return yield* new ProtocolError.ServiceUnavailable({ message: "The server is shutting down: retry" })
        }
        // The client left while the request waited (an overloaded loop reads requests late).
        const node = yield* Platform.node(request)
        if (node?.clientGone(request) === true) return yield* Effect.interrupt
        if (node !== undefined && frontDoor !== undefined) {
          const server = node.serverOf(request)
          if (server !== undefined) (yield* Platform.frontDoor).install(server, frontDoor)
        }
        const url = RequestParsing.urlOf(request)
        if (multiplexer.handles(url)) return { url, served: undefined, slot: undefined, node }
        const served = yield* RequestParsing.procedureOf(procedures, parsing.base, url)
        const kind = served.spec._tag
        const admitted = yield* admission.admit(kind, request)
        if (typeof admitted === "string") {
          const shed = admitted
          metrics?.shed(kind, served.rpc._tag, shed)
          return yield* new ProtocolError.ServiceUnavailable({
            message: shed === "event_loop_delay" || shed === "request_delay" || shed === "event_loop_utilization" ||
                shed === "fan_out_delay" || shed === "memory"
              ? "The server is overloaded: retry"
              : shed === "client_transfers"
              ? "This client has too many downloads and exports running: retry when one ends"
              : `The server has too many ${shed} open: retry`
          })
        }
        return { url, served, slot: admitted, node }
      })

    /** An admitted request: its body read, its handler invoked, its answer. */
    const serve = (
      request: HttpServerRequest.HttpServerRequest,
      allow: Record<string, string> | undefined,
      { served, slot: admitted, url, node }: Effect.Effect.Success<ReturnType<typeof admit>>
    ) =>
      Effect.gen(function*() {
        if (served === undefined) return yield* multiplexer.handle(request, url, allow)
        const call = yield* RequestParsing.parse(request, url, served, parsing)
        // The client left while the request waited for its turn (or its body): no stream starts for it.
        // A request read late comes with its client's close, but Node reads that close only in the
        // next turn of the loop (a read short of the buffer ends the turn's reading): the stream
        // starts after that turn's reads.
        if (node !== undefined && call.served.spec._tag !== "unary") {
          yield* node.afterNextReads
          if (node.clientGone(request)) return yield* Effect.interrupt
        }
        const invocation = yield* Effect.mapError(
          Invocation.invoke(call, context),
          (error) => new Failures.TypedFailure(call.served, error)
        )
        return yield* Responses.respond(call, invocation, request, {
          slot: admitted,
          headers: allow
        })
      }).pipe(
        // Busy fibers give the event loop a turn often: requests keep being read under load.
        Effect.withScheduler(Scheduling.scheduler)
      )

    const handle = (request: HttpServerRequest.HttpServerRequest, allow: Record<string, string> | undefined) =>
      Failures.respond(Effect.flatMap(admit(request), (admitted) => serve(request, allow, admitted))).pipe(
        // What the application provided reaches the request, whatever fiber the server runs it in.
        Effect.mapInputContext((ctx: Context.Context<Scope.Scope>) => Context.merge(context, ctx)),
        // Effect counts every fiber's start, end and lifetime in its metric registry by default (a
        // tagged lookup per update): the fibers a request starts are not counted there.
        Effect.withRuntimeFlagsPatch(withoutRuntimeMetrics)
      )

    return Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const allow = Cors.headers(options?.cors, request.headers["origin"])
      if (request.method === "OPTIONS" && allow !== undefined && request.headers["access-control-request-method"] !== undefined) {
        return Effect.succeed(Cors.preflight(options?.cors, allow))
      }
      const response = handle(request, allow)
      return allow === undefined ? response : Effect.map(response, HttpServerResponse.setHeaders(allow))
    })
  })

const withoutRuntimeMetrics = RuntimeFlagsPatch.disable(RuntimeFlags.RuntimeMetrics)

/** Mounts the procedures of `group` on `HttpLayerRouter` at `<path>/*`. */
export const layer = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options?: Options
): Layer.Layer<never, never, HttpLayerRouter.HttpRouter | Rpc.ToHandler<Rpcs> | Rpc.Middleware<Rpcs>> =>
  HttpLayerRouter.use((router) =>
    Effect.flatMap(
      toHttpApp(group, options),
      (app) => router.add("*", `${basePath(options)}/*` as HttpLayerRouter.PathInput, app)
    )
  )

/**
 * A web-standard `(Request) => Promise<Response>` handler for runtimes other
 * than Node (Deno, Bun, workers). `handlers` provides `group.toLayer(...)`
 * and the middlewares.
 */
export const toWebHandler = <Rpcs extends Rpc.Any, E>(
  group: RpcGroup.RpcGroup<Rpcs>,
  handlers: Layer.Layer<Rpc.ToHandler<Rpcs> | Rpc.Middleware<Rpcs>, E>,
  options?: Options
): {
  readonly handler: (request: Request) => Promise<Response>
  readonly dispose: () => Promise<void>
} => {
  const web = HttpLayerRouter.toWebHandler(
    layer(group, options).pipe(Layer.provide(handlers)),
    { disableLogger: true }
  )
  // Every requirement is provided above; the generic group keeps TypeScript from seeing it.
  const handler = web.handler as (request: Request) => Promise<Response>
  return { handler, dispose: web.dispose }
}

