/**
 * Our SSE frame writer (src/protocol/Sse.ts: `event`, `retry`, `dropped`,
 * `end`, `error`, `comment`/`heartbeat`) against the encoder of
 * `@effect/experimental/Sse` (`encoder.write`), the Effect 3 module the server
 * could have written its frames with.
 *
 * Where the two agree the frames are compared byte for byte. Frames are
 * strings; equal strings are equal bytes once the server encodes them as
 * UTF-8, which the tests also check explicitly.
 *
 * They agree on every event whose `data` holds no CR and is not empty, and
 * whose type and id hold no CR, LF or NUL: same field order (`id:`, `event:`,
 * `data:`), `event:` left out for "message", `data` split into one `data:`
 * line per LF, one space after every colon, a blank line to end the frame.
 * On every non-negative integer delay `retry` agrees too, and so do
 * `dropped`, `end` and `error`, which are `event` frames of fixed types.
 *
 * Where they differ, and why ours is the one the server keeps:
 *
 * 1. CR in `data`. Ours turns every CR LF and every lone CR into LF before it
 *    splits the data into lines (a parser ends a line at any of the three).
 *    Experimental's splits on LF only and leaves each CR in place:
 *    - a CR LF becomes `\r\ndata: ` where ours writes `\ndata: ` (one byte
 *      more per CR LF); both decode to the same event;
 *    - a lone CR (one not followed by LF) ends the `data:` line early, and
 *      what follows it on that line is read as a line of its own: an unknown
 *      field (silently dropped), a field that rewrites the event
 *      (`"x\revent: end"` turns a value into an end event, `"x\rid: 7"` sets
 *      its id), or, for a second CR, a blank line that dispatches the event
 *      there and then. Ours decodes to the data with its CRs made LFs, which
 *      is the most the format can carry (no SSE field value holds a CR).
 * 2. Empty `data`. Experimental's writes no `data:` line at all, so the frame
 *    is an id and/or type followed by a blank line, which no parser (its own
 *    included) dispatches: the event is lost. Ours writes `data: ` (an empty
 *    value), so the event is dispatched with data "". Exactly:
 *    ours = experimental's frame of the CR-normalised data, with the line
 *    `data: \n` added before the closing blank line when that data is empty.
 * 3. CR, LF or NUL in the type or id. Ours throws `SseFramingError`;
 *    experimental's writes the character raw. An LF or CR breaks the frame
 *    (`id: "7\ndata: injected"` adds a data line); a NUL in the id makes
 *    parsers ignore the id (WHATWG); a NUL in the type would be carried, so
 *    there ours is stricter than the format needs.
 * 4. `retry` with a delay that is not a non-negative integer. Ours rounds
 *    (`retry(1.5)` is `retry: 2`); experimental's writes the number as
 *    `Duration.toMillis` gives it (`retry: 1.5`), which parsers ignore, the
 *    value not being all ASCII digits. NaN: ours writes `retry: NaN`
 *    (ignored by parsers), experimental's `retry: 0` (Duration.millis(NaN) is
 *    zero). Both write `retry: 0` for a negative delay and `retry: Infinity`
 *    (ignored) for an infinite one.
 * 5. Comments (`comment`, `heartbeat`): experimental's encoder has none, so
 *    there is nothing to compare; its parser, like ours and
 *    eventsource-parser, dispatches nothing for one.
 *
 * Every frame of ours is also decoded with three parsers: ours, the
 * `eventsource-parser` package and experimental's own `makeParser`, and must
 * give back the event it was written from. Experimental's parser (0.61.1)
 * misreads CR line endings: its line scan restarts at the start of the
 * buffer for every line, so any earlier CR makes it skip the LF that starts
 * the next line, often the blank line that ends the event. It therefore
 * loses its own encoder's frames for data with CR LF; ours hold no CR, so it
 * reads them. Frames with a CR are decoded with the other two only.
 */
import * as ExperimentalSse from "@effect/experimental/Sse"
import * as Duration from "effect/Duration"
import { createParser } from "eventsource-parser"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as Sse from "../../src/protocol/Sse.ts"

// ---------------------------------------------------------------------------
// The two writers
// ---------------------------------------------------------------------------

interface Sent {
  /** `undefined`: our default type, "message"; experimental's needs it spelled out. */
  readonly type: string | undefined
  readonly id: string | undefined
  readonly data: string
}

const ours = (e: Sent): string => Sse.event({ type: e.type, id: e.id, data: e.data })

const theirs = (e: Sent): string =>
  ExperimentalSse.encoder.write({ _tag: "Event", event: e.type ?? "message", id: e.id, data: e.data })

const theirRetry = (millis: number): string =>
  ExperimentalSse.encoder.write(
    new ExperimentalSse.Retry({ duration: Duration.millis(millis), lastEventId: undefined })
  )

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

/** Byte for byte: the strings, and their UTF-8 encodings. */
const expectSameBytes = (actual: string, expected: string): void => {
  expect(actual).toBe(expected)
  expect(Buffer.from(utf8(actual)).equals(Buffer.from(utf8(expected)))).toBe(true)
}

/** What a parser can give back of `data`: CR LF and lone CR become LF. */
const normalizeCr = (data: string): string => data.replace(/\r\n?/g, "\n")

// ---------------------------------------------------------------------------
// Three decoders
// ---------------------------------------------------------------------------

interface Decoded {
  readonly type: string
  readonly id: string | undefined
  readonly data: string
}

/** Ours, fed the UTF-8 bytes as the clients are. */
const decodeOurs = (stream: string): Array<Decoded> => {
  const out: Array<Decoded> = []
  const parser = Sse.makeSseParser({ onEvent: (e) => out.push({ type: e.type, id: e.id, data: e.data }) })
  parser.feedBytes(utf8(stream))
  parser.end()
  return out
}

/** eventsource-parser leaves `event` undefined for a missing or empty `event:` field. */
const decodeEventsourceParser = (stream: string): Array<Decoded> => {
  const out: Array<Decoded> = []
  const parser = createParser({ onEvent: (e) => out.push({ type: e.event ?? "message", id: e.id, data: e.data }) })
  parser.feed(stream)
  return out
}

/**
 * Experimental's own parser. It gives an empty `event:` field as type ""
 * where the standard (and the other two) say "message"; that is normalised
 * here, it is not a property of the frames.
 */
const decodeExperimental = (stream: string): Array<Decoded> => {
  const out: Array<Decoded> = []
  const parser = ExperimentalSse.makeParser((e) => {
    if (e._tag === "Event") out.push({ type: e.event === "" ? "message" : e.event, id: e.id, data: e.data })
  })
  expect(parser.feed(stream)).toBeUndefined()
  return out
}

/**
 * The parsers a stream is checked with. Experimental's parser (0.61.1) does
 * not read CR line endings reliably (see the test "experimental's own parser
 * misreads CR line endings"), so it is a witness only for a stream without
 * CR. Our frames never hold one.
 */
const decodersFor = (stream: string) =>
  stream.includes("\r")
    ? { ours: decodeOurs, "eventsource-parser": decodeEventsourceParser }
    : { ours: decodeOurs, "eventsource-parser": decodeEventsourceParser, experimental: decodeExperimental }

const expectDecodes = (stream: string, expected: ReadonlyArray<Decoded>): void => {
  for (const [name, decode] of Object.entries(decodersFor(stream))) expect(decode(stream), name).toEqual(expected)
}

/** The event a parser should give back for what was sent. */
const meant = (e: Sent): Decoded => ({
  type: e.type === undefined || e.type === "" ? "message" : e.type,
  id: e.id,
  data: normalizeCr(e.data)
})

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

/** Text with the characters that matter to SSE framing mixed into arbitrary unicode. */
const text = (specials: ReadonlyArray<string>) =>
  fc
    .array(
      fc.oneof(
        fc.string({ unit: "binary", maxLength: 8 }),
        fc.string({ unit: "grapheme", maxLength: 4 }),
        fc.constantFrom(...specials)
      ),
      { maxLength: 10 }
    )
    .map((parts) => parts.join(""))

const framingSpecials = [":", " ", ": ", "data: ", "id: ", "event: ", "\uFEFF", "é", "🎉", "\u2028", "\t", "{\"a\":1}"]

/** A type or id both writers accept: no CR, LF or NUL (unit "binary" can produce them). */
const lineSafe = text(framingSpecials).map((s) => s.replace(/[\r\n\0]/g, ""))

const eventType: fc.Arbitrary<string | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom("message", "", "dropped", "end", "error", "tick", " message"),
  lineSafe
)

const eventId: fc.Arbitrary<string | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom("", "0", "42", "1700000000000-0", " "),
  lineSafe
)

/** Data of any shape: line breaks of all three kinds, empty, unicode. */
const anyData = fc.oneof(
  fc.constantFrom("", "\n", "\r", "\r\n", "\n\n", "\r\r", "a\r\nb", "a\rb", "a\nb", "\r\n\r\n"),
  text([...framingSpecials, "\n", "\r", "\r\n", "\n\n", "\r\r", "\0", ""])
)

/** Data on which the two writers agree: no CR, not empty. */
const agreedData = anyData.map((s) => s.replace(/\r/g, "")).filter((s) => s !== "")

const sent = (data: fc.Arbitrary<string>): fc.Arbitrary<Sent> => fc.record({ type: eventType, id: eventId, data })

const runs = { numRuns: 500 }

// ---------------------------------------------------------------------------
// Where the writers agree
// ---------------------------------------------------------------------------

describe("SSE writer vs @effect/experimental/Sse encoder: byte-identical frames", () => {
  it("an event whose data holds no CR and is not empty is written byte for byte as experimental's encoder writes it", () => {
    fc.assert(
      fc.property(sent(agreedData), (e) => {
        expectSameBytes(ours(e), theirs(e))
      }),
      runs
    )
  })

  it("a few frames spelled out", () => {
    const cases: ReadonlyArray<readonly [Sent, string]> = [
      [{ type: undefined, id: undefined, data: "{}" }, "data: {}\n\n"],
      [{ type: "message", id: "7", data: "{\"a\":1}" }, "id: 7\ndata: {\"a\":1}\n\n"],
      [{ type: "tick", id: "", data: "a\nb" }, "id: \nevent: tick\ndata: a\ndata: b\n\n"],
      [{ type: "", id: undefined, data: "\n" }, "event: \ndata: \ndata: \n\n"],
      [{ type: undefined, id: "é🎉", data: " x " }, "id: é🎉\ndata:  x \n\n"]
    ]
    for (const [e, frame] of cases) {
      expectSameBytes(ours(e), frame)
      expectSameBytes(theirs(e), frame)
    }
  })

  it("dropped, end and error frames are experimental's frames of the same type and data", () => {
    fc.assert(
      fc.property(fc.option(fc.nat(), { nil: null }), (count) => {
        const data = JSON.stringify({ count })
        expectSameBytes(Sse.dropped(count), theirs({ type: "dropped", id: undefined, data }))
      }),
      runs
    )
    expectSameBytes(Sse.end, theirs({ type: "end", id: undefined, data: "{}" }))
    // The server's error data is JSON.stringify output: never a raw CR or LF, never empty.
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const json = JSON.stringify({ _tag: "Failure", value })
        expectSameBytes(Sse.error(json), theirs({ type: "error", id: undefined, data: json }))
      }),
      runs
    )
  })

  it("retry frames are identical for every integer delay (a negative one is 0 in both)", () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: -1000, max: 100_000 }), fc.maxSafeInteger()), (millis) => {
        expectSameBytes(Sse.retry(millis), theirRetry(millis))
      }),
      runs
    )
    expectSameBytes(Sse.retry(-5), "retry: 0\n\n")
    expectSameBytes(theirRetry(-5), "retry: 0\n\n")
    expectSameBytes(Sse.retry(Infinity), theirRetry(Infinity))
  })
})

// ---------------------------------------------------------------------------
// Where they differ, exactly
// ---------------------------------------------------------------------------

describe("SSE writer vs @effect/experimental/Sse encoder: the differences", () => {
  it("for any data: ours is experimental's frame of the CR-normalised data, plus `data: ` when that data is empty", () => {
    fc.assert(
      fc.property(sent(anyData), (e) => {
        const data = normalizeCr(e.data)
        const frame = theirs({ ...e, data })
        expectSameBytes(ours(e), data === "" ? `${frame.slice(0, -1)}data: \n\n` : frame)
      }),
      runs
    )
  })

  it("CR LF in data: experimental's keeps the CR before each continuation line; both decode to the same event", () => {
    const e: Sent = { type: undefined, id: "1", data: "a\r\nb" }
    expectSameBytes(theirs(e), "id: 1\ndata: a\r\ndata: b\n\n")
    expectSameBytes(ours(e), "id: 1\ndata: a\ndata: b\n\n")
    fc.assert(
      fc.property(sent(anyData.map((s) => s.replace(/\r(?!\n)/g, "")).filter((s) => s !== "")), (e) => {
        const expected = [meant(e)]
        expectDecodes(ours(e), expected)
        expectDecodes(theirs(e), expected)
      }),
      runs
    )
  })

  it("experimental's own parser misreads CR line endings, its encoder's CR LF frames included", () => {
    // Its line scan restarts at the start of the buffer for every line, so a
    // CR met earlier in the buffer marks the next LF as the second half of a
    // CR LF and skips it: here the blank line that ends the event is lost.
    const frame = theirs({ type: undefined, id: "1", data: "a\r\nb" })
    expect(decodeExperimental(frame)).toEqual([])
    expect(decodeOurs(frame)).toEqual([{ type: "message", id: "1", data: "a\nb" }])
    expect(decodeEventsourceParser(frame)).toEqual([{ type: "message", id: "1", data: "a\nb" }])
    // Ours for the same event holds no CR, and experimental's parser reads it.
    expect(decodeExperimental(ours({ type: undefined, id: "1", data: "a\r\nb" }))).toEqual([
      { type: "message", id: "1", data: "a\nb" }
    ])
  })

  it("a lone CR in data: experimental's frame ends the data line there and reads the rest as a line of its own", () => {
    const cases: ReadonlyArray<readonly [string, string, ReadonlyArray<Decoded>]> = [
      // the rest of the line is an unknown field: dropped
      ["a\rb", "data: a\rb\n\n", [{ type: "message", id: undefined, data: "a" }]],
      // the rest of the line is a field: it rewrites the event
      ["x\revent: end", "data: x\revent: end\n\n", [{ type: "end", id: undefined, data: "x" }]],
      ["x\rid: 7", "data: x\rid: 7\n\n", [{ type: "message", id: "7", data: "x" }]],
      // a second CR is a blank line: the event is dispatched early, the rest lost
      ["a\r\rb", "data: a\r\rb\n\n", [{ type: "message", id: undefined, data: "a" }]],
      // a trailing CR is lost
      ["a\r", "data: a\r\n\n", [{ type: "message", id: undefined, data: "a" }]]
    ]
    for (const [data, frame, decoded] of cases) {
      const e: Sent = { type: undefined, id: undefined, data }
      expectSameBytes(theirs(e), frame)
      expectDecodes(theirs(e), decoded)
      expectDecodes(ours(e), [meant(e)])
    }
    fc.assert(
      fc.property(sent(anyData.filter((s) => /\r(?!\n)/.test(s))), (e) => {
        expectDecodes(ours(e), [meant(e)])
        const frame = theirs(e)
        for (const [name, decode] of Object.entries(decodersFor(frame))) {
          expect(decode(frame), name).not.toEqual([meant(e)])
        }
      }),
      runs
    )
  })

  it("empty data: experimental's writes no data line, so no parser dispatches the event; ours writes `data: `", () => {
    fc.assert(
      fc.property(eventType, eventId, (type, id) => {
        const e: Sent = { type, id, data: "" }
        const frame = theirs(e)
        expect(frame.split("\n").filter((line) => line.startsWith("data:"))).toEqual([])
        expectSameBytes(ours(e), `${frame.slice(0, -1)}data: \n\n`)
        expectDecodes(frame, [])
        expectDecodes(ours(e), [meant(e)])
      }),
      runs
    )
    expectSameBytes(theirs({ type: undefined, id: undefined, data: "" }), "\n")
    expectSameBytes(ours({ type: undefined, id: undefined, data: "" }), "data: \n\n")
  })

  it("CR, LF or NUL in a type or id: ours throws, experimental's writes it raw", () => {
    const unsafe = fc
      .tuple(lineSafe, fc.constantFrom("\r", "\n", "\r\n", "\0"), lineSafe)
      .map(([a, c, b]) => a + c + b)
    fc.assert(
      fc.property(unsafe, agreedData, (bad, data) => {
        expect(() => ours({ type: bad, id: undefined, data })).toThrow(Sse.SseFramingError)
        expect(() => ours({ type: undefined, id: bad, data })).toThrow(Sse.SseFramingError)
        expect(theirs({ type: bad, id: undefined, data })).toContain(`event: ${bad}\n`)
        expect(theirs({ type: undefined, id: bad, data })).toContain(`id: ${bad}\n`)
      }),
      runs
    )
    // An LF in an id, written raw, injects a line into the frame.
    const injected = theirs({ type: undefined, id: "7\ndata: injected", data: "x" })
    expectSameBytes(injected, "id: 7\ndata: injected\ndata: x\n\n")
    expectDecodes(injected, [{ type: "message", id: "7", data: "injected\nx" }])
    // A NUL in an id makes parsers ignore the id.
    expectDecodes(theirs({ type: undefined, id: "a\0b", data: "x" }), [{ type: "message", id: undefined, data: "x" }])
    // A NUL in a type is carried by the format; ours refuses it all the same.
    expectDecodes(theirs({ type: "a\0b", id: undefined, data: "x" }), [{ type: "a\0b", id: undefined, data: "x" }])
  })

  it("retry with a fractional or NaN delay: ours rounds a fraction, experimental's writes it as is (ignored); NaN differs", () => {
    expectSameBytes(Sse.retry(1.5), "retry: 2\n\n")
    expectSameBytes(theirRetry(1.5), "retry: 1.5\n\n")
    expectSameBytes(Sse.retry(NaN), "retry: NaN\n\n")
    expectSameBytes(theirRetry(NaN), "retry: 0\n\n")
    expectSameBytes(Sse.retry(Infinity), "retry: Infinity\n\n")
    const retries = (stream: string): Array<number> => {
      const out: Array<number> = []
      Sse.makeSseParser({ onEvent: () => {}, onRetry: (millis) => out.push(millis) }).feed(stream)
      return out
    }
    expect(retries(Sse.retry(1.5))).toEqual([2])
    expect(retries(theirRetry(1.5))).toEqual([])
    expect(retries(Sse.retry(NaN))).toEqual([])
    expect(retries(theirRetry(NaN))).toEqual([0])
    expect(retries(Sse.retry(Infinity))).toEqual([])
  })

  it("comments: experimental's encoder has none; every parser dispatches nothing for ours", () => {
    fc.assert(
      fc.property(text([...framingSpecials, "\n", "\r", "\r\n"]), (note) => {
        const frame = Sse.comment(note)
        expect(frame.startsWith(": ")).toBe(true)
        expectDecodes(frame, [])
        expectDecodes(frame + Sse.end, [{ type: "end", id: undefined, data: "{}" }])
      }),
      runs
    )
    expectSameBytes(Sse.heartbeat, ": heartbeat\n\n")
  })
})

// ---------------------------------------------------------------------------
// Every frame of ours decodes to what it was written from
// ---------------------------------------------------------------------------

describe("SSE writer: our frames decode with ours, eventsource-parser and experimental's parser", () => {
  it("one frame gives back its event; no frame of ours holds a CR", () => {
    fc.assert(
      fc.property(sent(anyData), (e) => {
        expect(ours(e)).not.toContain("\r")
        expectDecodes(ours(e), [meant(e)])
      }),
      runs
    )
  })

  it("a stream of frames, with heartbeats and retries between them, gives back its events in order", () => {
    const between = fc.constantFrom("", Sse.heartbeat, Sse.retry(1000), Sse.comment("x\ry"))
    fc.assert(
      fc.property(fc.array(fc.tuple(sent(anyData), between), { maxLength: 8 }), (frames) => {
        const stream = frames.map(([e, extra]) => extra + ours(e)).join("")
        expectDecodes(stream, frames.map(([e]) => meant(e)))
      }),
      runs
    )
  })
})
