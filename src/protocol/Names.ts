/**
 * The names of wire protocol v1: where procedures live, the query parameters
 * and headers they read, the content types they answer with and the SSE
 * event types. Server, generator and both clients use these and nothing else.
 */

/** Where the procedures are mounted unless configured otherwise. */
export const basePath = "/rpc"

/** `<base>/<Tag>`: the URL of one procedure (the tag is URL-encoded). */
export const pathOf = (base: string, tag: string): string => `${base.replace(/\/+$/, "")}/${encodeURIComponent(tag)}`

/** Query parameters. */
export const query = {
  /** The schema-encoded payload as URL-encoded JSON (GET). */
  payload: "payload",
  /** The cursor to resume after, for clients that cannot set `Last-Event-ID`. */
  lastEventId: "lastEventId",
  /** The export format: `csv`, `json` or `ndjson`. */
  format: "format"
} as const

/** Header names, lower-case as HTTP/2 and `Headers` spell them. */
export const headers = {
  lastEventId: "last-event-id",
  accept: "accept",
  contentType: "content-type",
  contentDisposition: "content-disposition",
  contentLength: "content-length",
  contentEncoding: "content-encoding",
  cacheControl: "cache-control",
  accelBuffering: "x-accel-buffering",
  authorization: "authorization",
  traceparent: "traceparent",
  tracestate: "tracestate"
} as const

export const contentTypes = {
  eventStream: "text/event-stream",
  json: "application/json",
  ndjson: "application/x-ndjson",
  csv: "text/csv; charset=utf-8",
  octetStream: "application/octet-stream"
} as const

/**
 * SSE event types. Values use the default type (`message`, no `event:` line)
 * so `EventSource.onmessage` sees them.
 */
export const events = {
  message: "message",
  dropped: "dropped",
  end: "end",
  error: "error"
} as const

/** The media type of a `Content-Type` value, without parameters, lower-case. */
export const mediaTypeOf = (contentType: string | null | undefined): string =>
  (contentType ?? "").split(";")[0]!.trim().toLowerCase()
