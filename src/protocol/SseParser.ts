/**
 * The incremental Server-Sent Events parser both clients read with (the
 * frames it reads are written by `Sse.ts`).
 *
 * It follows the WHATWG HTML standard, "Interpreting an event stream":
 * https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 * Input can be fed in arbitrary pieces, as text (`feed`) or as raw bytes
 * (`feedBytes`, streaming UTF-8 decode). Lines are found with `indexOf`, so
 * the cost is linear in the input and no per-character string building
 * happens. Memory is bounded by `maxEventSize`: a server that never ends a
 * line, or never ends an event, makes `feed` throw `SseEventTooLarge` as soon
 * as the limit is crossed instead of buffering without bound.
 *
 * Browser-safe: only web-standard APIs (`TextDecoder`), no Node built-ins.
 */

/** One dispatched event. */
export interface SseEvent {
  /** The event type: the last `event:` field of the event, `"message"` when absent or empty. */
  readonly type: string
  /** The data: every `data:` line of the event joined with `"\n"`. */
  readonly data: string
  /**
   * The `id:` field given in this event itself, or `undefined` when this event
   * had none (or only ids containing U+0000, which are ignored).
   */
  readonly id: string | undefined
  /**
   * The stream's last event ID after this event: the parser's running
   * last-event-id buffer, which persists across events (WHATWG `lastEventId`).
   * An `id:` field with an empty value resets it to `""`.
   */
  readonly lastEventId: string
}

export interface SseParserOptions {
  /**
   * The most characters (UTF-16 code units; bytes for ASCII) one pending event
   * may hold: the sum of its field lines (`data:`, `event:`, `id:`, `retry:`,
   * unknown fields; comments do not count) plus the line not yet terminated.
   * Default 1 MiB.
   */
  readonly maxEventSize?: number
}

/** Thrown by `feed`/`feedBytes` when one event exceeds `maxEventSize`. */
export class SseEventTooLarge extends Error {
  readonly _tag = "SseEventTooLarge"
  readonly limit: number
  constructor(limit: number) {
    super(`Server-Sent Events: an event exceeded the maximum size of ${limit} characters`)
    this.name = "SseEventTooLarge"
    this.limit = limit
  }
}

/**
 * The callbacks run synchronously inside `feed`/`feedBytes`. They must not
 * call back into the same parser; one that throws aborts that `feed` call
 * (the rest of that piece is lost), so hand the values on (e.g. to a queue)
 * rather than doing fallible work here.
 */
export interface SseParserCallbacks {
  /** Called for every dispatched event, in order. */
  readonly onEvent: (event: SseEvent) => void
  /** Called for a `retry:` field whose value is only ASCII digits, with its base-ten value. */
  readonly onRetry?: (millis: number) => void
  /**
   * Called for every comment line (starting with `:`), with the text after the
   * colon and one optional leading space: `": heartbeat"` gives `"heartbeat"`.
   */
  readonly onComment?: (text: string) => void
  /**
   * Called for every field line other than `data`, `event`, `id` and `retry`
   * (which the standard ignores), as it is read: before the event it belongs
   * to is dispatched. Wire protocol v1.1 reads its `sub` field here.
   */
  readonly onField?: (field: string, value: string) => void
}

export interface SseParser {
  /**
   * Feed decoded text. The text should be decoded without stripping a
   * byte-order mark (the parser strips exactly one U+FEFF at stream start, as
   * the standard's decode does); `feedBytes` does this for you.
   * Throws `SseEventTooLarge` when an event exceeds `maxEventSize`; after that
   * every `feed`/`feedBytes` throws again until `reset()`.
   */
  feed(text: string): void
  /** Feed raw bytes (streaming UTF-8 decode; multi-byte sequences split across calls are handled). */
  feedBytes(bytes: Uint8Array): void
  /**
   * End of stream: an incomplete final event (or line) is discarded, as the
   * standard requires. The parser is then ready for a new stream (e.g. after a
   * reconnect): the byte-order-mark check is re-armed and the decoder flushed;
   * the last event ID persists, as it does across EventSource reconnections
   * (an `id:` in the discarded incomplete event does not count, since the
   * standard commits the last event ID only at a blank line).
   * After `SseEventTooLarge` it does nothing: only `reset()` revives the parser.
   */
  end(): void
  /** Forget everything, including the last event ID and a `SseEventTooLarge` failure. */
  reset(): void
}

const LF = 10
const SPACE = 32
const COLON = 58
const BOM = 0xfeff
const DEFAULT_MAX_EVENT_SIZE = 1024 * 1024

export const makeSseParser = (callbacks: SseParserCallbacks, options?: SseParserOptions): SseParser => {
  const onEvent = callbacks.onEvent
  const onRetry = callbacks.onRetry
  const onComment = callbacks.onComment
  const onField = callbacks.onField
  const maxEventSize = options?.maxEventSize ?? DEFAULT_MAX_EVENT_SIZE
  if (!(maxEventSize > 0)) {
    throw new RangeError(`maxEventSize must be a positive number, got ${maxEventSize}`)
  }

  let decoder: TextDecoder | undefined
  let held: Uint8Array | undefined = undefined // an incomplete UTF-8 sequence from the last piece

  // Stream-level state.
  let bomPending = true // strip one U+FEFF at the start of the stream
  let skipLF = false // the previous piece ended with CR: a leading LF completes that CR LF
  let lastEventId = "" // the last event ID buffer
  let committedLastEventId = "" // the event source's last event ID, updated at each blank line
  let failed = false

  // The line not yet terminated, as fragments joined only once its end arrives
  // (joining per piece would be quadratic for a long line fed in small pieces).
  const partial: Array<string> = []
  let partialLength = 0

  // The pending event.
  let data = ""
  let dataLines = 0
  let eventType = ""
  let eventId: string | undefined = undefined
  let eventSize = 0

  /** Forget the line and the event being read. */
  const clearEvent = (): void => {
    partial.length = 0
    partialLength = 0
    data = ""
    dataLines = 0
    eventType = ""
    eventId = undefined
    eventSize = 0
  }

  const fail = (): never => {
    failed = true
    clearEvent()
    throw new SseEventTooLarge(maxEventSize)
  }

  const dispatch = (): void => {
    committedLastEventId = lastEventId
    if (dataLines !== 0) {
      const event: SseEvent = {
        type: eventType === "" ? "message" : eventType,
        data,
        id: eventId,
        lastEventId
      }
      data = ""
      dataLines = 0
      eventType = ""
      eventId = undefined
      eventSize = 0
      onEvent(event)
      return
    }
    eventType = ""
    eventId = undefined
    eventSize = 0
  }

  /** Processes the field line `text[start, end)`; `text[end]` is a line terminator or past the end. */
  const fieldLine = (text: string, start: number, end: number, c0: number): void => {
    let colon = start
    while (colon < end && text.charCodeAt(colon) !== COLON) colon++
    const field = text.slice(start, colon)
    let value = ""
    if (colon < end) {
      const valueStart = text.charCodeAt(colon + 1) === SPACE ? colon + 2 : colon + 1
      value = valueStart < end ? text.slice(valueStart, end) : ""
    }
    switch (c0) {
      case 100: // d
        if (field === "data") {
          data = dataLines === 0 ? value : data + "\n" + value
          dataLines++
          return
        }
        break
      case 101: // e
        if (field === "event") {
          eventType = value
          return
        }
        break
      case 105: // i
        if (field === "id") {
          if (value.indexOf("\0") === -1) {
            eventId = value
            lastEventId = value
          }
          return
        }
        break
      case 114: // r
        if (field === "retry") {
          if (onRetry !== undefined && isAsciiDigits(value)) onRetry(parseInt(value, 10))
          return
        }
    }
    onField?.(field, value)
  }

  /** Processes the line `text[start, end)`; `text[end]` is a line terminator or past the end. */
  const line = (text: string, start: number, end: number): void => {
    if (start === end) {
      dispatch()
      return
    }
    const c0 = text.charCodeAt(start)
    if (c0 === COLON) {
      if (onComment !== undefined) {
        onComment(text.slice(text.charCodeAt(start + 1) === SPACE ? start + 2 : start + 1, end))
      }
      return
    }
    eventSize += end - start
    if (eventSize > maxEventSize) fail()
    if (c0 === 105 && text.charCodeAt(start + 1) === 100 && text.charCodeAt(start + 2) === COLON) {
      // "id:"
      const valueStart = text.charCodeAt(start + 3) === SPACE ? start + 4 : start + 3
      const value = valueStart < end ? text.slice(valueStart, end) : ""
      if (value.indexOf("\0") === -1) {
        eventId = value
        lastEventId = value
      }
      return
    }
    if (
      c0 === 100 &&
      text.charCodeAt(start + 1) === 97 &&
      text.charCodeAt(start + 2) === 116 &&
      text.charCodeAt(start + 3) === 97 &&
      text.charCodeAt(start + 4) === COLON
    ) {
      // "data:" — by far the most common line
      const valueStart = text.charCodeAt(start + 5) === SPACE ? start + 6 : start + 5
      const value = valueStart < end ? text.slice(valueStart, end) : ""
      data = dataLines === 0 ? value : data + "\n" + value
      dataLines++
      return
    }
    fieldLine(text, start, end, c0)
  }

  const feed = (text: string): void => {
    if (failed) throw new SseEventTooLarge(maxEventSize)
    const length = text.length
    if (length === 0) return
    let start = 0
    if (bomPending) {
      bomPending = false
      if (text.charCodeAt(0) === BOM) start = 1
    }
    if (skipLF) {
      skipLF = false
      if (start < length && text.charCodeAt(start) === LF) start++
    }

    let lf = text.indexOf("\n", start)
    let cr = text.indexOf("\r", start)
    // The line ending first: it ends at `end`, the next one starts at `next` (CR, LF or CRLF).
    let end = 0
    let next = 0
    const lineEnd = (): void => {
      if (cr === -1 || (lf !== -1 && lf < cr)) {
        end = lf
        next = lf + 1
        lf = text.indexOf("\n", next)
      } else {
        end = cr
        next = cr + 1
        if (next === length) skipLF = true
        else if (text.charCodeAt(next) === LF) {
          next++
          lf = text.indexOf("\n", next)
        }
        cr = text.indexOf("\r", next)
      }
    }

    if (partialLength !== 0) {
      if (lf === -1 && cr === -1) {
        partial.push(start === 0 ? text : text.slice(start))
        partialLength += length - start
        if (eventSize + partialLength > maxEventSize) fail()
        return
      }
      lineEnd()
      partial.push(text.slice(start, end))
      const whole = partial.length === 1 ? partial[0]! : partial.join("")
      partial.length = 0
      partialLength = 0
      line(whole, 0, whole.length)
      start = next
    }

    if (cr === -1) {
      // Fast path: only LF line endings in the rest of this piece.
      while (lf !== -1) {
        if (
          dataLines === 0 &&
          text.charCodeAt(lf + 1) === LF &&
          text.charCodeAt(start) === 100 &&
          text.charCodeAt(start + 1) === 97 &&
          text.charCodeAt(start + 2) === 116 &&
          text.charCodeAt(start + 3) === 97 &&
          text.charCodeAt(start + 4) === COLON
        ) {
          // "data:...\n\n" closing an event with a single data line (the
          // common shape): dispatch without going through the data buffer.
          eventSize += lf - start
          if (eventSize > maxEventSize) fail()
          const valueStart = text.charCodeAt(start + 5) === SPACE ? start + 6 : start + 5
          committedLastEventId = lastEventId
          const event: SseEvent = {
            type: eventType === "" ? "message" : eventType,
            data: valueStart < lf ? text.slice(valueStart, lf) : "",
            id: eventId,
            lastEventId
          }
          eventType = ""
          eventId = undefined
          eventSize = 0
          start = lf + 2
          lf = text.indexOf("\n", start)
          onEvent(event)
          continue
        }
        line(text, start, lf)
        start = lf + 1
        lf = text.indexOf("\n", start)
      }
    } else {
      while (lf !== -1 || cr !== -1) {
        lineEnd()
        line(text, start, end)
        start = next
      }
    }

    if (start < length) {
      partial.push(start === 0 ? text : text.slice(start))
      partialLength = length - start
      if (eventSize + partialLength > maxEventSize) fail()
    }
  }

  // Streaming UTF-8 decode. The output is that of `decode(bytes, { stream: true })`,
  // but made with the one-shot `decode(bytes)`, which is several times faster
  // on some engines (Node's streaming mode goes through ICU). An incomplete,
  // so far valid, multi-byte sequence at the end of a piece (at most 3 bytes)
  // is held back and completed with the next piece; anything invalid decodes
  // to U+FFFD exactly as the streaming decoder would.
  const feedBytes = (bytes: Uint8Array): void => {
    if (failed) throw new SseEventTooLarge(maxEventSize)
    if (decoder === undefined) decoder = new TextDecoder("utf-8", { ignoreBOM: true })
    let from = 0
    if (held !== undefined) {
      const missing = sequenceLength(held[0]!) - held.length
      while (from < missing && from < bytes.length && (bytes[from]! & 0xc0) === 0x80) from++
      const joined = new Uint8Array(held.length + from)
      joined.set(held)
      joined.set(bytes.subarray(0, from), held.length)
      held = undefined
      if (from < missing && from === bytes.length) {
        // Still incomplete: hold it again if it is still a valid prefix.
        const tail = incompleteTail(joined)
        if (tail === 0) {
          held = joined
          return
        }
      }
      // Complete, or broken by a byte that cannot continue it: either way the
      // one-shot decode gives what the streaming decoder would.
      feed(decoder.decode(joined))
    }
    const rest = from === 0 ? bytes : bytes.subarray(from)
    const tail = incompleteTail(rest)
    if (tail < rest.length) held = rest.slice(tail)
    if (tail > 0) feed(decoder.decode(tail === rest.length ? rest : rest.subarray(0, tail)))
  }

  const clearStream = (): void => {
    held = undefined
    bomPending = true
    skipLF = false
    clearEvent()
  }

  const end = (): void => {
    if (failed) return
    // Whatever the decoder still holds is an incomplete sequence at the end of
    // an unterminated line: discarded with the rest of the incomplete event.
    clearStream()
    // An `id:` of the discarded event never took effect (the standard updates
    // the source's last event ID only at a blank line).
    lastEventId = committedLastEventId
  }

  const reset = (): void => {
    clearStream()
    lastEventId = ""
    committedLastEventId = ""
    failed = false
  }

  return { feed, feedBytes, end, reset }
}

const isAsciiDigits = (value: string): boolean => {
  const length = value.length
  if (length === 0) return false
  for (let i = 0; i < length; i++) {
    const c = value.charCodeAt(i)
    if (c < 48 || c > 57) return false
  }
  return true
}

/** The length of the UTF-8 sequence a lead byte starts; 0 for a byte that cannot start one. */
const sequenceLength = (lead: number): number =>
  lead < 0x80 ? 1 : lead < 0xc2 ? 0 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : lead < 0xf5 ? 4 : 0

/**
 * Where an incomplete but so far valid multi-byte sequence starts at the end
 * of `bytes`, or `bytes.length` when there is none (the end is complete, or
 * invalid in a way the decoder already reports there).
 */
const incompleteTail = (bytes: Uint8Array): number => {
  const length = bytes.length
  const stop = length > 3 ? length - 3 : 0
  for (let i = length - 1; i >= stop; i--) {
    const b = bytes[i]!
    if (b < 0x80) return length
    if (b < 0xc0) continue // continuation byte: look further back for its lead
    const needed = sequenceLength(b)
    if (needed === 0 || length - i >= needed) return length
    if (i + 1 < length) {
      // The second byte has a narrower range after some lead bytes (WHATWG UTF-8
      // decoder): out of it the sequence is already invalid, so it is decoded
      // (to U+FFFD) now rather than held. Holding it would give the same text,
      // only later.
      const second = bytes[i + 1]!
      const lower = b === 0xe0 ? 0xa0 : b === 0xf0 ? 0x90 : 0x80
      const upper = b === 0xed ? 0x9f : b === 0xf4 ? 0x8f : 0xbf
      if (second < lower || second > upper) return length
    }
    return i
  }
  return length
}
