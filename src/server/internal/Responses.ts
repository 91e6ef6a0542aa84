/**
 * The response of each kind of procedure. A subscription is an SSE answer
 * (`SseResponse`): handed over on the Node response when the request is a
 * Node one, the body of a web response elsewhere (`toWebHandler`). A
 * download or export goes through the policies of `StreamingService`; one
 * whose stream fails before its first chunk is answered as an HTTP error,
 * after it the transfer is cut.
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as StreamingService from "../StreamingService.ts"
import type * as Admission from "./Admission.ts"
import { TypedFailure } from "./Failures.ts"
import type { Invocation } from "./Invocation.ts"
import * as Platform from "./Platform.ts"
import type { Call } from "./RequestParsing.ts"
import * as SseResponse from "./SseResponse.ts"

export interface RespondOptions {
  /** The call's admission: a subscription frees it when it ends. */
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
  const { run, source, span } = invocation
  const name = served.rpc._tag
  const spec = served.spec
  switch (spec._tag) {
    case "unary":
    case "subscription": {
      return Effect.flatMap(Platform.node(request), (node) => {
        const answer: SseResponse.Options<unknown, unknown> = {
          name,
          source,
          serialize: served.successJson,
          id: spec._tag === "subscription" ? spec.cursor : undefined,
          serializeError: served.failureJson,
          run,
          // `run` gives the source the request's and the handler's context: nothing else is needed under it.
          context: Context.empty(),
          wrapped: invocation.wrapped,
          headers: options.headers,
          // Taken where nothing waits before the answer starts: the answer frees it when it ends.
          onStop: options.slot.keep(),
          span
        }
        const response = node?.responseOf(request)
        return node !== undefined && response !== undefined
          ? SseResponse.handOver(node, response, answer)
          : SseResponse.webResponse(answer)
      })
    }
    case "download":
      return StreamingService.download({
        name,
        stream: source as Stream.Stream<Uint8Array, unknown>,
        contentType: spec.contentType,
        filename: spec.filename(call.payload),
        contentLength: spec.contentLength?.(call.payload),
        around: run,
        span
      }).pipe(Effect.mapError(typed))
    case "export":
      return StreamingService.export({
        name,
        stream: source,
        format: call.format ?? spec.defaultFormat,
        serialize: served.encodeSuccess,
        json: served.successJson,
        columns: served.csvColumns,
        filename: spec.filename(call.payload),
        around: run,
        span
      }).pipe(Effect.mapError(typed))
  }
}
