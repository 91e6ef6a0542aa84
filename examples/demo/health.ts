/**
 * `GET /health` of the demo, for load balancers and orchestrators: `200
 * {"status":"ok"}` while serving, `503 {"status":"draining"}` once shutdown
 * has begun (answered on connections already open: a draining server accepts
 * no new ones).
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as GracefulShutdown from "../../src/server/GracefulShutdown.ts"

export const health = Effect.map(GracefulShutdown.current, (drain) =>
  drain.isDraining()
    ? HttpServerResponse.unsafeJson({ status: "draining" }, { status: 503 })
    : HttpServerResponse.unsafeJson({ status: "ok" }))
