/**
 * The response of each kind of procedure, through the policies of
 * `StreamingService`. A download or export whose stream fails before its
 * first chunk is answered as an HTTP error; after it, the transfer is cut.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as StreamingService from "../StreamingService.ts"
import { TypedFailure } from "./Failures.ts"
import type { Invocation } from "./Invocation.ts"
import type { Call } from "./RequestParsing.ts"

export const respond = (
  call: Call,
  invocation: Invocation
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
    case "subscription":
      return StreamingService.sse({
        name,
        stream,
        serialize: (value) => JSON.stringify(served.encodeSuccess(value)),
        id: spec._tag === "subscription" ? spec.cursor : undefined,
        serializeError: (error) => JSON.stringify(served.encodeFailure(error)),
        around
      })
    case "download":
      return StreamingService.download({
        name,
        stream: stream as Stream.Stream<Uint8Array, unknown>,
        contentType: spec.contentType,
        filename: spec.filename(call.payload),
        contentLength: spec.contentLength?.(call.payload),
        around
      }).pipe(Effect.mapError(typed))
    case "export":
      return StreamingService.export({
        name,
        stream,
        format: call.format ?? spec.defaultFormat,
        serialize: served.encodeSuccess,
        columns: spec.columns,
        filename: spec.filename(call.payload),
        around
      }).pipe(Effect.mapError(typed))
  }
}
