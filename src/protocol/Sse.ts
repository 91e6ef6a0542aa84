/**
 * Server-Sent Events as this protocol writes and reads them: the frames the
 * server writes (an event, a comment, the heartbeat, `retry:`, and the
 * `dropped`, `end` and `error` events), and what one parsed event means to a
 * client (`subscriptionEvent`). The incremental parser that turns a body into
 * events is `SseParser.ts`.
 *
 * The encoder guards the fields that would break a frame (an `event` or `id`
 * holding CR, LF or NUL) instead of emitting it broken.
 *
 * Browser-safe: no Node built-ins.
 */
import { events } from "./Names.ts"
import type { SseEvent } from "./SseParser.ts"

/** The parser, also reachable here as it was before it had its own module. */
export {
  makeSseParser,
  type SseEvent,
  SseEventTooLarge,
  type SseParser,
  type SseParserCallbacks,
  type SseParserOptions
} from "./SseParser.ts"

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

const unsafeField = /[\r\n\0]/

export class SseFramingError extends Error {
  readonly _tag = "SseFramingError"
}

/**
 * One event frame. `data` is split on line breaks into several `data:` lines;
 * an empty `data` still gets its `data:` line, so the event is dispatched.
 */
export const event = (options: {
  readonly type?: string | undefined
  readonly id?: string | undefined
  readonly data: string
}): string => {
  const type = options.type ?? events.message
  if (unsafeField.test(type)) throw new SseFramingError("SSE event type must not contain CR, LF or NUL")
  const id = options.id
  if (id !== undefined && unsafeField.test(id)) throw new SseFramingError("SSE event id must not contain CR, LF or NUL")
  // A lone CR ends a line for the parser just as LF does.
  const data = options.data.includes("\r") ? options.data.replace(/\r\n?/g, "\n") : options.data
  let frame = id === undefined ? "" : `id: ${id}\n`
  if (type !== events.message) frame += `event: ${type}\n`
  return `${frame}data: ${data.includes("\n") ? data.replace(/\n/g, "\ndata: ") : data}\n\n`
}

/** A comment line: ignored by parsers, keeps proxies and watchdogs aware the connection lives. */
export const comment = (text: string): string => `: ${text.replace(/[\r\n]+/g, " ")}\n\n`

export const heartbeat = comment("heartbeat")

/** The reconnection delay a client should use, in milliseconds. */
export const retry = (millis: number): string => `retry: ${Math.max(0, Math.round(millis))}\n\n`

/**
 * `event: dropped` telling the consumer exactly how many values it missed;
 * `null` when the server cannot know (a resume cursor from before a restart).
 */
export const dropped = (count: number | null): string => event({ type: events.dropped, data: JSON.stringify({ count }) })

/** `event: end` — with a non-empty `data:` line so every client dispatches it. */
export const end: string = event({ type: events.end, data: "{}" })

/** `event: error` carrying a JSON error object with its `_tag`. */
export const error = (json: string): string => event({ type: events.error, data: json })

// ---------------------------------------------------------------------------
// What an event means to a client
// ---------------------------------------------------------------------------

/**
 * The count of a `dropped` event as clients report it: a positive integer, or
 * `null` for a gap of unknown size. Anything else — a count of 0 (the server
 * never sends one), a negative or fractional count, data that is not
 * `{"count": …}` — is `undefined`: not a loss, and not reported.
 */
export const droppedCount = (data: string): number | null | undefined => {
  let count: unknown
  try {
    count = (JSON.parse(data) as { readonly count?: unknown } | null)?.count
  } catch {
    return undefined
  }
  if (count === null) return null
  return typeof count === "number" && Number.isInteger(count) && count > 0 ? count : undefined
}

/** What one event of a subscription means to a client. */
export type SubscriptionEvent =
  /** A value: its JSON, still to be decoded with the contract's schema. */
  | { readonly _tag: "Value"; readonly json: unknown }
  /** Values the subscriber will never get (`droppedCount`). */
  | { readonly _tag: "Dropped"; readonly count: number | null }
  /** The normal end. */
  | { readonly _tag: "End" }
  /** A failure: the JSON error (the raw data when it is not JSON), still to be decoded. */
  | { readonly _tag: "Failure"; readonly error: unknown }
  /** A value event whose data is not JSON. */
  | { readonly _tag: "Invalid"; readonly cause: unknown }
  /** Nothing to report: an unknown event type, or a `dropped` event without a loss. */
  | { readonly _tag: "Ignored" }

const ignored: SubscriptionEvent = { _tag: "Ignored" }
const ended: SubscriptionEvent = { _tag: "End" }

export const subscriptionEvent = (event: SseEvent): SubscriptionEvent => {
  switch (event.type) {
    case events.message:
      try {
        return { _tag: "Value", json: JSON.parse(event.data) }
      } catch (cause) {
        return { _tag: "Invalid", cause }
      }
    case events.dropped: {
      const count = droppedCount(event.data)
      return count === undefined ? ignored : { _tag: "Dropped", count }
    }
    case events.end:
      return ended
    case events.error: {
      let error: unknown
      try {
        error = JSON.parse(event.data)
      } catch {
        error = event.data
      }
      return { _tag: "Failure", error }
    }
    default:
      return ignored
  }
}
