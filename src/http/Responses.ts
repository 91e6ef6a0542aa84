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
import * as Topic from "../Topic.ts"
import * as TopicResponse from "../TopicResponse.ts"
import { TypedFailure } from "./Failures.ts"
import type { Invocation } from "./Invocation.ts"
import type { Call } from "./RequestParsing.ts"

/** The node:http response of a request served by Node, else undefined. */
const nodeResponseOf = (request: HttpServerRequest.HttpServerRequest) => {
  if (typeof (request.source as { readonly socket?: unknown } | null)?.socket !== "object") return undefined
  const response = NodeHttpServerRequest.toServerResponse(request) as ReturnType<typeof NodeHttpServerRequest.toServerResponse> | undefined
  return typeof response?.writeHead === "function" ? response : undefined
}

export const respond = (
  call: Call,
  invocation: Invocation,
  request: HttpServerRequest.HttpServerRequest
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
        // The response is written and ended by the topic; the server finds it ended.
        const serve = TopicResponse.serve(node, invocation.source as Topic.Subscription<unknown>, {
          name,
          encode: served.successJson
        })
        return Effect.as(Effect.mapError(around(serve), typed), HttpServerResponse.empty())
      }
      return StreamingService.sse({
        name,
        stream,
        serialize: served.successJson,
        id: spec._tag === "subscription" ? spec.cursor : undefined,
        serializeError: (error) => JSON.stringify(served.encodeFailure(error)),
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
