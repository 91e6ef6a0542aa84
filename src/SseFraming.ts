/**
 * Server-Sent Events framing for wire protocol v1, on top of the
 * `@effect/experimental` Sse encoder. Guards the fields that would break a
 * frame (an `event` or `id` holding CR or LF) instead of emitting it broken.
 */
import * as Sse from "@effect/experimental/Sse"
import * as Duration from "effect/Duration"

/** Event types of the protocol; values use the default type so `EventSource.onmessage` sees them. */
export const eventTypes = {
  message: "message",
  dropped: "dropped",
  end: "end",
  error: "error"
} as const

const unsafeField = /[\r\n\0]/

export class SseFramingError extends Error {
  readonly _tag = "SseFramingError"
}

/** One event frame. `data` is split on line breaks into several `data:` lines. */
export const event = (options: {
  readonly type?: string | undefined
  readonly id?: string | undefined
  readonly data: string
}): string => {
  const type = options.type ?? eventTypes.message
  if (unsafeField.test(type)) throw new SseFramingError("SSE event type must not contain CR, LF or NUL")
  if (options.id !== undefined && unsafeField.test(options.id)) {
    throw new SseFramingError("SSE event id must not contain CR, LF or NUL")
  }
  // The Sse encoder splits on LF only; a lone CR would end a line for the parser.
  const data = options.data.includes("\r") ? options.data.replace(/\r\n?/g, "\n") : options.data
  return Sse.encoder.write({ _tag: "Event", event: type, id: options.id, data })
}

/** A comment line: ignored by parsers, keeps proxies and watchdogs aware the connection lives. */
export const comment = (text: string): string => `: ${text.replace(/[\r\n]+/g, " ")}\n\n`

export const heartbeat = comment("heartbeat")

export const retry = (duration: Duration.DurationInput): string =>
  Sse.encoder.write(
    new Sse.Retry({ duration: Duration.decode(duration), lastEventId: undefined })
  )

/**
 * `event: dropped` telling the consumer exactly how many values it missed;
 * `null` when the server cannot know (a resume cursor from before a restart).
 */
export const dropped = (count: number | null): string =>
  event({ type: eventTypes.dropped, data: JSON.stringify({ count }) })

/** `event: end` — with a non-empty `data:` line so every client dispatches it. */
export const end: string = event({ type: eventTypes.end, data: "{}" })

/** `event: error` carrying a JSON error object with its `_tag`. */
export const error = (json: string): string => event({ type: eventTypes.error, data: json })
