/**
 * The response of each kind of procedure, through the policies of
 * `StreamingService`. A download or export whose stream fails before its
 * first chunk is answered as an HTTP error; after it, the transfer is cut.
 * A subscription whose handler returns a `Topic` subscription is served on
 * the fast path (`TopicResponse`: shared frames written straight to the
 * socket) when the request is a Node one; elsewhere (`toWebHandler`) it is
 * a Stream like any other.
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as StreamingService from "../StreamingService.ts"
import * as Topic from "../../topic/Topic.ts"
import * as TopicResponse from "./TopicResponse.ts"
import { TypedFailure } from "./Failures.ts"
import type * as Admission from "./Admission.ts"
import type { Invocation } from "./Invocation.ts"
import type { Call } from "./RequestParsing.ts"
import * as StreamResponse from "./StreamResponse.ts"

/** The node:http response of a request served by Node, else undefined. */
const nodeResponseOf = (request: HttpServerRequest.HttpServerRequest) => {
  if (typeof (request.source as { readonly socket?: unknown } | null)?.socket !== "object") return undefined
  const response = NodeHttpServerRequest.toServerResponse(request) as ReturnType<typeof NodeHttpServerRequest.toServerResponse> | undefined
  return typeof response?.writeHead === "function" ? response : undefined
}

export interface RespondOptions {
  /** The call's admission: a subscription handed over to a topic frees it when it ends. */
  readonly slot: Admission.Slot
  /** Headers the answer carries whatever it is (CORS). */
  readonly headers: Readonly<Record<string, string>> | undefined
}

export const respond = (
  call: Call,
  invocation: Invocation,
  request: HttpServerRequest.HttpServerRequest,
  options: RespondOptions
): Effect.Effect<HttpServerResponse.HttpServerResponse, TypedFailure, Scope.Scope> => {
  const { served } = call
  const typed = (error: unknown) => new TypedFailure(served, error)
  if (invocation._tag === "Unary") {
    return invocation.effect.pipe(
      // JSON has no undefined: a void result is sent as null
      Effect.map((value) => HttpServerResponse.unsafeJson(served.encodeSuccess(value) ?? null)),
      Effect.mapError(typed)
    )
  }
  const { around, stream } = invocation
  const name = served.rpc._tag
  const spec = served.spec
  switch (spec._tag) {
    case "unary":
    case "subscription": {
      const node = Topic.isSubscription(invocation.source) ? nodeResponseOf(request) : undefined
      if (node !== undefined) {
        const source = invocation.source as Topic.Subscription<unknown>
        const serveOptions = { name, encode: served.successJson, headers: options.headers }
        if (!invocation.wrapped) {
          // The topic owns the response from here; the request's fiber ends at once.
          const onStop = options.slot.keep()
          return Effect.as(
            TopicResponse.handOver(node, source, { ...serveOptions, onStop }),
            HttpServerResponse.empty({ status: 200 })
          )
        }
        // Wrap middlewares run around the whole subscription: the request's fiber serves it.
        return Effect.as(Effect.mapError(around(TopicResponse.serve(node, source, serveOptions)), typed), HttpServerResponse.empty())
      }
      const response = nodeResponseOf(request)
      if (response !== undefined) {
        // The subscription owns the response from here; the request's fiber ends at once.
        const onStop = options.slot.keep()
        return Effect.as(
          StreamResponse.handOver(response, {
            name,
            stream: invocation.handlerStream(),
            context: invocation.handlerContext(),
            inside: invocation.withSpan,
            serialize: served.successJson,
            id: spec._tag === "subscription" ? spec.cursor : undefined,
            serializeError: served.failureJson,
            around: invocation.wrapped ? around : undefined,
            headers: options.headers,
            onStop
          }),
          HttpServerResponse.empty({ status: 200 })
        )
      }
      return StreamingService.sse({
        name,
        stream,
        serialize: served.successJson,
        id: spec._tag === "subscription" ? spec.cursor : undefined,
        serializeError: served.failureJson,
        around
      })
    }
    // A transfer runs the handler's stream wrapped once for its whole run, not at every pull.
    case "download":
      return StreamingService.download({
        name,
        stream: invocation.transferStream as Stream.Stream<Uint8Array, unknown>,
        contentType: spec.contentType,
        filename: spec.filename(call.payload),
        contentLength: spec.contentLength?.(call.payload),
        around: invocation.transferAround
      }).pipe(Effect.mapError(typed))
    case "export":
      return StreamingService.export({
        name,
        stream: invocation.transferStream,
        format: call.format ?? spec.defaultFormat,
        serialize: served.encodeSuccess,
        json: served.successJson,
        columns: spec.columns,
        filename: spec.filename(call.payload),
        around: invocation.transferAround
      }).pipe(Effect.mapError(typed))
  }
}
