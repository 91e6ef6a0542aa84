/**
 * Cross-origin access. Without options no CORS header is sent, so only pages
 * of the same origin can call: the safe default.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Names from "../../protocol/Names.ts"

export interface CorsOptions {
  readonly origins: "*" | ReadonlyArray<string>
  /** Allow cookies and `Authorization` from the allowed origins. Default false. */
  readonly credentials?: boolean | undefined
  /** How long browsers may cache a preflight answer, in seconds. Default 600. */
  readonly maxAge?: number | undefined
}

const allowHeaders = [
  Names.headers.contentType,
  Names.headers.authorization,
  Names.headers.lastEventId,
  Names.headers.traceparent,
  Names.headers.tracestate
].join(", ")
const exposeHeaders = [Names.headers.contentDisposition, Names.headers.contentLength].join(", ")

/** Refuses a configuration browsers would reject: a wildcard with credentials. */
export const validate = (cors: CorsOptions | undefined): string | undefined =>
  cors !== undefined && cors.origins === "*" && cors.credentials === true
    ? "CORS: origins \"*\" cannot be combined with credentials: list the origins"
    : undefined

/** CORS response headers for a request from `origin`, or undefined when it is not allowed. */
export const headers = (cors: CorsOptions | undefined, origin: string | undefined): Record<string, string> | undefined => {
  if (cors === undefined || origin === undefined) return undefined
  const allowed = cors.origins === "*" || cors.origins.includes(origin)
  if (!allowed) return undefined
  return {
    "access-control-allow-origin": cors.origins === "*" ? "*" : origin,
    ...(cors.credentials === true ? { "access-control-allow-credentials": "true" } : {}),
    "access-control-expose-headers": exposeHeaders,
    ...(cors.origins === "*" ? {} : { vary: "Origin" })
  }
}

/** The answer to a preflight request from an allowed origin. */
export const preflight = (cors: CorsOptions | undefined, allow: Record<string, string>): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.empty({
    status: 204,
    headers: {
      ...allow,
      "access-control-allow-methods": "GET, POST",
      "access-control-allow-headers": allowHeaders,
      "access-control-max-age": String(cors?.maxAge ?? 600)
    }
  })
