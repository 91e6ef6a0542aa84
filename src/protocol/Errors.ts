/**
 * Errors of the protocol itself, as they travel: the JSON body
 * `{"_tag", "message"}` of an answer given before a stream starts (and the
 * data of `event: error`), and the HTTP status of each protocol error. The
 * table is the one place a status is chosen: `ProtocolError` annotates its
 * schemas from it, the generator documents it, clients read it back.
 */

/** HTTP status of each error the protocol defines. Bad input is always a 4xx, never a 500. */
export const statuses = {
  MalformedJson: 400,
  InvalidPayload: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  MethodNotAllowed: 405,
  NotAcceptable: 406,
  RequestTimeout: 408,
  PayloadTooLarge: 413,
  UnsupportedMediaType: 415,
  InternalError: 500,
  ServiceUnavailable: 503
} as const

export type ProtocolErrorTag = keyof typeof statuses

/** The tags of `statuses` with this status, in table order. */
export const tagsWithStatus = (status: number): ReadonlyArray<ProtocolErrorTag> =>
  (Object.keys(statuses) as Array<ProtocolErrorTag>).filter((tag) => statuses[tag] === status)

/**
 * Tags the transport answers itself, before or instead of a handler; the
 * others (`Unauthorized`, `Forbidden`) are middleware failures, typed errors
 * of the procedures that use that middleware.
 */
export const transportTags: ReadonlySet<string> = new Set(
  (Object.keys(statuses) as Array<ProtocolErrorTag>).filter((tag) => tag !== "Unauthorized" && tag !== "Forbidden")
)

/** The wire shape of an error. Typed errors carry their own fields besides these. */
export interface ErrorBody {
  readonly _tag: string
  readonly message?: unknown
}

export const encodeBody = (tag: string, message: string): string => JSON.stringify({ _tag: tag, message })

export const isErrorBody = (u: unknown): u is ErrorBody =>
  typeof u === "object" && u !== null && typeof (u as { _tag?: unknown })._tag === "string"

/** The body's non-empty `message`, else `fallback`. */
export const messageOf = (u: unknown, fallback: string): string =>
  isErrorBody(u) && typeof u.message === "string" && u.message !== "" ? u.message : fallback

/** The body of a defect's error, answered or sent as `event: error`: no message of the defect, no stack. */
export const internalError = encodeBody("InternalError", "Internal server error")
