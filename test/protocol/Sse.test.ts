import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import * as fc from "fast-check"
import {
  makeSseParser,
  type SseEvent,
  SseEventTooLarge,
  type SseParser,
  type SseParserOptions
} from "../../src/protocol/SseParser.ts"
import * as SseFraming from "../../src/protocol/Sse.ts"

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

type Record =
  | { readonly _tag: "event"; readonly event: SseEvent }
  | { readonly _tag: "retry"; readonly millis: number }
  | { readonly _tag: "comment"; readonly text: string }

interface Recorder {
  readonly parser: SseParser
  readonly records: Array<Record>
  readonly events: () => Array<SseEvent>
  readonly retries: () => Array<number>
  readonly comments: () => Array<string>
}

const record = (options?: SseParserOptions): Recorder => {
  const records: Array<Record> = []
  const parser = makeSseParser(
    {
      onEvent: (event) => records.push({ _tag: "event", event }),
      onRetry: (millis) => records.push({ _tag: "retry", millis }),
      onComment: (text) => records.push({ _tag: "comment", text })
    },
    options
  )
  return {
    parser,
    records,
    events: () => records.flatMap((r) => (r._tag === "event" ? [r.event] : [])),
    retries: () => records.flatMap((r) => (r._tag === "retry" ? [r.millis] : [])),
    comments: () => records.flatMap((r) => (r._tag === "comment" ? [r.text] : []))
  }
}

const encoder = new TextEncoder()
const utf8 = (text: string): Uint8Array => encoder.encode(text)

/** Shorthand for an expected event. */
const ev = (data: string, rest: { type?: string; id?: string; lastEventId?: string } = {}): SseEvent => ({
  type: rest.type ?? "message",
  data,
  id: rest.id,
  lastEventId: rest.lastEventId ?? rest.id ?? ""
})

/**
 * One conformance case: each entry of `streams` is one connection's body; the
 * parser sees the body then `end()`, as on a reconnect.
 */
interface FormatCase {
  readonly name: string
  readonly streams: ReadonlyArray<string>
  readonly events: ReadonlyArray<SseEvent>
  readonly retries?: ReadonlyArray<number>
  readonly comments?: ReadonlyArray<string>
}

type Feeding = (parser: SseParser, body: string) => void

const wholeText: Feeding = (parser, body) => parser.feed(body)
const splitBytesAt =
  (at: number): Feeding =>
  (parser, body) => {
    const bytes = utf8(body)
    parser.feedBytes(bytes.subarray(0, at))
    parser.feedBytes(bytes.subarray(at))
  }
const byteByByte: Feeding = (parser, body) => {
  const bytes = utf8(body)
  for (let i = 0; i < bytes.length; i++) parser.feedBytes(bytes.subarray(i, i + 1))
}

const run = (streams: ReadonlyArray<string>, feeding: Feeding, options?: SseParserOptions): Array<Record> => {
  const recorder = record(options)
  for (const body of streams) {
    feeding(recorder.parser, body)
    recorder.parser.end()
  }
  return recorder.records
}

// ---------------------------------------------------------------------------
// WHATWG / web-platform-tests "eventsource/format-*" cases
// ---------------------------------------------------------------------------

// The wpt test server (eventsource/resources/message.py) answers
// `message + ("\n\n" unless newline=none) + "\n"`; the bodies below are that.
const message = (text: string, newline: "default" | "none" = "default") =>
  text + (newline === "none" ? "" : "\n\n") + "\n"
// eventsource/resources/last-event-id.py: "data: <Last-Event-ID>" when the
// request carries one, else an event with `id: <idvalue>`.
const lastEventIdHello = (idvalue: string) => `id: ${idvalue}\nretry: 200\ndata: hello\n\n`
const lastEventIdEcho = (lastEventId: string) => `data: ${lastEventId}\n\n`

const longComment = "x".repeat(2 * 1024)

const formatCases: ReadonlyArray<FormatCase> = [
  {
    name: "format-bom: one leading BOM is stripped; a BOM later in the stream makes an unknown field",
    streams: [message("\uFEFFdata:1\n\n\uFEFFdata:2\n\ndata:3")],
    events: [ev("1"), ev("3")]
  },
  {
    name: "format-bom-2: of two leading BOMs only the first is stripped",
    streams: [message("\uFEFF\uFEFFdata:1\n\ndata:2\n\ndata:3")],
    events: [ev("2"), ev("3")]
  },
  {
    name: "format-comments: comments with any line ending are skipped between data lines",
    streams: [
      message(
        "data:1\r:\0\n:\r\ndata:2\n:" + longComment + "\rdata:3\n:data:fail\r:" + longComment + "\ndata:4\n",
        "none"
      )
    ],
    events: [ev("1\n2\n3\n4")],
    comments: ["\0", "", longComment, "data:fail", longComment]
  },
  {
    name: "format-data-before-final-empty-line: an event without its final blank line is never dispatched, nor is its id kept",
    streams: [
      message("retry:1000\ndata:test1\n\nid:test\ndata:test2", "none"),
      message("retry:1000\ndata:test1\n\nid:test\ndata:test2", "none")
    ],
    events: [ev("test1"), ev("test1")],
    retries: [1000, 1000]
  },
  {
    name: "format-field-data: empty data, data without colon, multi-line data",
    streams: [message("data:\n\ndata\ndata\n\ndata:test")],
    events: [ev(""), ev("\n"), ev("test")]
  },
  {
    name: "format-field-event: the event field names the event type, which resets after dispatch",
    streams: [message("event:test\ndata:x\n\ndata:x")],
    events: [ev("x", { type: "test" }), ev("x")]
  },
  {
    name: "format-field-event-empty: an empty event field gives the default type message",
    streams: [message("event: \ndata:data")],
    events: [ev("data")]
  },
  {
    name: "format-field-id: the id sets lastEventId, which persists across a reconnect",
    streams: [lastEventIdHello("…"), lastEventIdEcho("…")],
    events: [ev("hello", { id: "…" }), ev("…", { lastEventId: "…" })],
    retries: [200]
  },
  {
    name: "format-field-id-2: lastEventId persists across several reconnects",
    streams: [lastEventIdHello("…"), lastEventIdEcho("…"), lastEventIdEcho("…")],
    events: [ev("hello", { id: "…" }), ev("…", { lastEventId: "…" }), ev("…", { lastEventId: "…" })],
    retries: [200]
  },
  {
    name: "format-field-id-3: lastEventId persists over events without id",
    streams: ["id: 1\ndata: 1\n\ndata:2\n\n"],
    events: [ev("1", { id: "1" }), ev("2", { lastEventId: "1" })]
  },
  {
    name: "format-field-id-3: lastEventId changes with a new id and persists",
    streams: ["id: 1\ndata: 1\n\nid: 2\ndata:2\n\ndata:3\n\n"],
    events: [ev("1", { id: "1" }), ev("2", { id: "2" }), ev("3", { lastEventId: "2" })]
  },
  {
    name: "format-field-id-3: an empty id resets lastEventId",
    streams: ["id: 1\ndata: 1\n\nid:\ndata:2\n\ndata:3\n\n"],
    events: [ev("1", { id: "1" }), ev("2", { id: "" }), ev("3")]
  },
  {
    name: "format-field-id-null: an id containing U+0000 is ignored",
    streams: [lastEventIdHello("\0\0"), lastEventIdHello("\0\0")],
    events: [ev("hello"), ev("hello")],
    retries: [200, 200]
  },
  {
    name: "format-field-parsing: field names are case-sensitive and exact; one space after the colon is stripped",
    streams: [
      message(
        "data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\rdata:\r\n data:32\ndata:4\n",
        "none"
      )
    ],
    events: [ev("\0\n 2\n1\n3\n\n4")]
  },
  {
    name: "format-field-retry: retry is read in base ten (leading zero is not octal)",
    streams: [message("retry:02000\ndata:x")],
    events: [ev("x")],
    retries: [2000]
  },
  {
    name: "format-field-retry-bogus: a retry value with a non-digit is ignored",
    streams: [message("retry:2000\nretry:1000x\ndata:x")],
    events: [ev("x")],
    retries: [2000]
  },
  {
    name: "format-field-retry-empty: an empty retry field is ignored",
    streams: [message("retry\ndata:test")],
    events: [ev("test")],
    retries: []
  },
  {
    name: "format-field-unknown: unknown fields, lines without colon and comments are ignored",
    streams: [message("data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test")],
    events: [ev("test\n\ntest")],
    comments: ["thisisacommentyay"]
  },
  {
    name: "format-leading-space: only one leading space is stripped, a tab is kept",
    streams: [message("data:\ttest\rdata: \ndata:test")],
    events: [ev("\ttest\n\ntest")]
  },
  {
    name: "format-newlines: CRLF, LF and CR line endings mix",
    streams: [message("data:test\r\ndata\ndata:test\r\n\r", "none")],
    events: [ev("test\n\ntest")]
  },
  {
    name: "format-null-character: U+0000 in data is kept",
    streams: [message("data:\0\n\n")],
    events: [ev("\0")]
  },
  {
    name: "format-utf-8: the stream is always UTF-8",
    streams: [message("data:ok…")],
    events: [ev("ok…")]
  },
  // The format-mime-* cases (bogus, valid-bogus, trailing-semicolon) check the
  // Content-Type of the response, which is the transport's job, not the parser's.
  {
    name: "CR-only line endings",
    streams: ["event: a\rid: 7\rdata: one\rdata: two\r\rdata: three\r\r"],
    events: [ev("one\ntwo", { type: "a", id: "7" }), ev("three", { lastEventId: "7" })]
  },
  {
    name: "CRLF-only line endings",
    streams: ["event: a\r\nid: 7\r\ndata: one\r\ndata: two\r\n\r\ndata: three\r\n\r\n"],
    events: [ev("one\ntwo", { type: "a", id: "7" }), ev("three", { lastEventId: "7" })]
  },
  {
    name: "a blank line without data dispatches nothing and resets the event type",
    streams: ["event: a\n\ndata: x\n\n"],
    events: [ev("x")]
  },
  {
    name: "multi-byte UTF-8 in every field",
    streams: ["event: ünïcödé\nid: 𝒾𝒹\ndata: 日本語 🎉\n\n"],
    events: [ev("日本語 🎉", { type: "ünïcödé", id: "𝒾𝒹" })]
  },
  {
    name: "a final line ending in CR at the end of the stream still dispatches",
    streams: ["data: x\r\r"],
    events: [ev("x")]
  }
]

describe("SseParser: web-platform-tests eventsource format cases", () => {
  for (const c of formatCases) {
    describe(c.name, () => {
      const check = (records: Array<Record>) => {
        expect(records.flatMap((r) => (r._tag === "event" ? [r.event] : []))).toEqual(c.events)
        if (c.retries !== undefined) {
          expect(records.flatMap((r) => (r._tag === "retry" ? [r.millis] : []))).toEqual(c.retries)
        }
        if (c.comments !== undefined) {
          expect(records.flatMap((r) => (r._tag === "comment" ? [r.text] : []))).toEqual(c.comments)
        }
      }

      it("gives the expected events when the whole body is fed at once", () => {
        check(run(c.streams, wholeText))
      })

      it("gives the same callbacks when the bytes are split into two pieces at every byte boundary", () => {
        const reference = run(c.streams, wholeText)
        const longest = Math.max(...c.streams.map((s) => utf8(s).length))
        for (let at = 0; at <= longest; at++) {
          const records = run(c.streams, splitBytesAt(at))
          if (JSON.stringify(records) !== JSON.stringify(reference)) {
            expect({ at, records }).toEqual({ at, records: reference })
          }
        }
      })

      it("gives the same callbacks when fed one byte at a time", () => {
        expect(run(c.streams, byteByByte)).toEqual(run(c.streams, wholeText))
      })
    })
  }
})

// ---------------------------------------------------------------------------
// Line endings across pieces
// ---------------------------------------------------------------------------

describe("SseParser: line endings across pieces", () => {
  it("a CR at the end of a chunk and LF at the start of the next is one line ending", () => {
    const r = record()
    r.parser.feed("data: a\r")
    r.parser.feed("\ndata: b\n\n")
    expect(r.events()).toEqual([ev("a\nb")])
  })

  it("a CR at the end of a byte chunk and LF at the start of the next is one line ending", () => {
    const r = record()
    r.parser.feedBytes(utf8("data: a\r"))
    r.parser.feedBytes(utf8("\ndata: b\n\n"))
    expect(r.events()).toEqual([ev("a\nb")])
  })

  it("an empty chunk between the CR and the LF does not separate them", () => {
    const r = record()
    r.parser.feed("data: a\r")
    r.parser.feed("")
    r.parser.feedBytes(new Uint8Array(0))
    r.parser.feed("\ndata: b\n\n")
    expect(r.events()).toEqual([ev("a\nb")])
  })

  it("a CR at the end of a chunk followed by another line is a line ending by itself", () => {
    const r = record()
    r.parser.feed("data: a\r")
    r.parser.feed("data: b\r")
    r.parser.feed("\r")
    expect(r.events()).toEqual([ev("a\nb")])
  })

  it("a CR that ends an event dispatches it at once, without waiting for the next chunk", () => {
    const r = record()
    r.parser.feed("data: a\r\r")
    expect(r.events()).toEqual([ev("a")])
    r.parser.feed("\ndata: b\n\n")
    expect(r.events()).toEqual([ev("a"), ev("b")])
  })

  it("a line split across many chunks is reassembled", () => {
    const r = record()
    for (const piece of ["da", "ta", ": he", "llo", " world", "\n", "\n"]) r.parser.feed(piece)
    expect(r.events()).toEqual([ev("hello world")])
  })

  it("a multi-byte character split across byte chunks is decoded once", () => {
    const r = record()
    const bytes = utf8("data: 🎉\n\n")
    r.parser.feedBytes(bytes.subarray(0, 7))
    r.parser.feedBytes(bytes.subarray(7, 8))
    r.parser.feedBytes(bytes.subarray(8))
    expect(r.events()).toEqual([ev("🎉")])
  })

  it("the BOM is stripped when its bytes arrive one at a time", () => {
    const r = record()
    for (const b of [0xef, 0xbb, 0xbf]) r.parser.feedBytes(new Uint8Array([b]))
    r.parser.feedBytes(utf8("data: x\n\n"))
    expect(r.events()).toEqual([ev("x")])
  })

  it("invalid UTF-8 is decoded to U+FFFD, not an error", () => {
    const r = record()
    r.parser.feedBytes(new Uint8Array([...utf8("data: a"), 0xff, ...utf8("b\n\n")]))
    expect(r.events()).toEqual([ev("a\uFFFDb")])
  })
})

// ---------------------------------------------------------------------------
// Comments, retry, end and reset
// ---------------------------------------------------------------------------

describe("SseParser: comments, retry, end and reset", () => {
  it("a comment reaches onComment with the one leading space stripped", () => {
    const r = record()
    r.parser.feed(": heartbeat\n:  two spaces\n:\n:no space\n")
    expect(r.comments()).toEqual(["heartbeat", " two spaces", "", "no space"])
  })

  it("comments are reported as they arrive, even in the middle of an event", () => {
    const r = record()
    r.parser.feed("data: a\n: heartbeat\n")
    expect(r.comments()).toEqual(["heartbeat"])
    expect(r.events()).toEqual([])
    r.parser.feed("\n")
    expect(r.events()).toEqual([ev("a")])
  })

  it("works without the optional callbacks", () => {
    const events: Array<SseEvent> = []
    const parser = makeSseParser({ onEvent: (e) => events.push(e) })
    parser.feed(": c\nretry: 10\ndata: x\n\n")
    expect(events).toEqual([ev("x")])
  })

  it("retry is reported at once, without waiting for the end of the event", () => {
    const r = record()
    r.parser.feed("retry: 3000\n")
    expect(r.retries()).toEqual([3000])
    r.parser.feed("retry: -1\nretry: 1.5\nretry:  10\nretry: 0\n")
    expect(r.retries()).toEqual([3000, 0])
  })

  it("end() discards an incomplete event and an incomplete line", () => {
    const r = record()
    r.parser.feed("data: complete\n\ndata: incomplete\n")
    r.parser.end()
    r.parser.feed("data: partial line")
    r.parser.end()
    r.parser.feed("\n\ndata: next\n\n")
    expect(r.events()).toEqual([ev("complete"), ev("next")])
  })

  it("end() re-arms the BOM check for the next stream", () => {
    const r = record()
    r.parser.feed("\uFEFFdata: 1\n\n")
    r.parser.end()
    r.parser.feed("\uFEFFdata: 2\n\n")
    expect(r.events()).toEqual([ev("1"), ev("2")])
  })

  it("end() discards an incomplete multi-byte sequence", () => {
    const r = record()
    r.parser.feedBytes(utf8("data: x\n\n"))
    r.parser.feedBytes(new Uint8Array([0xf0, 0x9f]))
    r.parser.end()
    r.parser.feedBytes(utf8("data: y\n\n"))
    expect(r.events()).toEqual([ev("x"), ev("y")])
  })

  it("reset() forgets the last event id", () => {
    const r = record()
    r.parser.feed("id: 1\ndata: a\n\n")
    r.parser.reset()
    r.parser.feed("data: b\n\n")
    expect(r.events()).toEqual([ev("a", { id: "1" }), ev("b")])
  })

  it("an id without data is committed at the blank line", () => {
    const r = record()
    r.parser.feed("id: 5\n\n")
    r.parser.end()
    r.parser.feed("data: x\n\n")
    expect(r.events()).toEqual([ev("x", { lastEventId: "5" })])
  })

  it("the event type of a later event line wins", () => {
    const r = record()
    r.parser.feed("event: a\nevent: b\ndata: x\n\n")
    expect(r.events()).toEqual([ev("x", { type: "b" })])
  })
})

// ---------------------------------------------------------------------------
// Maximum event size
// ---------------------------------------------------------------------------

describe("SseParser: maximum event size", () => {
  const KiB = 1024
  const MiB = 1024 * KiB

  it("a 10 MB line without newline fed in 64 KiB pieces throws SseEventTooLarge as soon as it crosses the 1 MiB default", () => {
    const r = record()
    const piece = "x".repeat(64 * KiB)
    let fedPieces = 0
    let thrown: unknown = undefined
    try {
      r.parser.feed("data: ")
      for (let total = 0; total < 10 * 1000 * 1000; total += piece.length) {
        r.parser.feed(piece)
        fedPieces++
      }
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(SseEventTooLarge)
    expect((thrown as SseEventTooLarge)._tag).toBe("SseEventTooLarge")
    expect((thrown as SseEventTooLarge).limit).toBe(MiB)
    // 6 + 16 * 64 KiB > 1 MiB: the 16th piece (index 15) is the one that crosses it.
    expect(fedPieces).toBe(15)
    expect(r.records).toEqual([])
  })

  it("the same holds for bytes", () => {
    const r = record()
    const piece = new Uint8Array(64 * KiB).fill(0x78)
    let fedPieces = 0
    expect(() => {
      r.parser.feedBytes(utf8(": "))
      for (let total = 0; total < 10 * 1000 * 1000; total += piece.length) {
        r.parser.feedBytes(piece)
        fedPieces++
      }
    }).toThrow(SseEventTooLarge)
    expect(fedPieces).toBe(15)
  })

  it("after SseEventTooLarge the parser throws again and calls nothing until reset()", () => {
    const r = record({ maxEventSize: 100 })
    expect(() => r.parser.feed("data: " + "x".repeat(200))).toThrow(SseEventTooLarge)
    expect(() => r.parser.feed("\n\ndata: ok\n\n")).toThrow(SseEventTooLarge)
    expect(() => r.parser.feedBytes(utf8("data: ok\n\n"))).toThrow(SseEventTooLarge)
    r.parser.end()
    expect(() => r.parser.feed("data: ok\n\n")).toThrow(SseEventTooLarge)
    expect(r.records).toEqual([])
    r.parser.reset()
    r.parser.feed("data: ok\n\n")
    expect(r.events()).toEqual([ev("ok")])
  })

  it("an event of many data lines that never ends throws once its lines exceed the limit", () => {
    const r = record({ maxEventSize: 10 * KiB })
    const line = "data: " + "y".repeat(94) + "\n" // 100 characters of field line + LF
    let lines = 0
    expect(() => {
      for (let i = 0; i < 1000; i++) {
        r.parser.feed(line)
        lines++
      }
    }).toThrow(SseEventTooLarge)
    // 102 lines of 100 characters are 10200 <= 10240; the 103rd crosses it.
    expect(lines).toBe(102)
    expect(r.events()).toEqual([])
  })

  it("an event exactly at the limit is accepted; one character more is not", () => {
    const atLimit = record({ maxEventSize: 100 })
    atLimit.parser.feed("data:" + "a".repeat(95) + "\n\n")
    expect(atLimit.events()).toEqual([ev("a".repeat(95))])

    const over = record({ maxEventSize: 100 })
    expect(() => over.parser.feed("data:" + "a".repeat(96) + "\n\n")).toThrow(SseEventTooLarge)
  })

  it("the limit is per event: a long stream of small events never throws", () => {
    const chunk = "id: 1\nevent: tick\ndata: " + "z".repeat(100) + "\ndata: " + "z".repeat(100) + "\n\n"
    let count = 0
    const parser = makeSseParser({ onEvent: () => count++ }, { maxEventSize: 1 * KiB })
    for (let i = 0; i < 10_000; i++) parser.feed(chunk) // 2.3 MB in all
    expect(count).toBe(10_000)
  })

  it("comments do not count towards the event size", () => {
    const r = record({ maxEventSize: 1 * KiB })
    r.parser.feed("data: a\n")
    for (let i = 0; i < 1000; i++) r.parser.feed(": heartbeat\n")
    r.parser.feed("\n")
    expect(r.events()).toEqual([ev("a")])
    expect(r.comments()).toHaveLength(1000)
  })

  it("an unterminated comment line does count, so memory stays bounded", () => {
    const r = record({ maxEventSize: 1 * KiB })
    expect(() => {
      for (let i = 0; i < 100; i++) r.parser.feed(":" + "c".repeat(100))
    }).toThrow(SseEventTooLarge)
  })

  it("rejects a maxEventSize that is not positive", () => {
    expect(() => makeSseParser({ onEvent: () => {} }, { maxEventSize: 0 })).toThrow(RangeError)
  })
})

// ---------------------------------------------------------------------------
// Round trip property
// ---------------------------------------------------------------------------

interface Sent {
  readonly type: string | undefined
  readonly data: string
  readonly id: string | undefined
  readonly comment: string | undefined
}

/** The server's own encoder: what the parser must read back. */
const encodeEvent = (event: Sent): string =>
  (event.comment === undefined ? "" : SseFraming.comment(event.comment)) +
  SseFraming.event({ type: event.type, id: event.id, data: event.data })

const normalizeNewlines = (s: string) => s.replace(/\r\n|\r|\n/g, "\n")

const noLineBreak = (s: string) => s.indexOf("\n") === -1 && s.indexOf("\r") === -1

const anyText = fc
  .array(
    fc.oneof(
      fc.string({ unit: "binary" }),
      fc.constantFrom("\n", "\r", "\r\n", "\n\n", "\r\r", "\0", ":", " ", "\uFEFF", "data: ", "é", "🎉")
    ),
    { maxLength: 12 }
  )
  .map((parts) => parts.join(""))

const lineText = anyText.map((s) => s.replace(/[\r\n]/g, ""))

const sentEvent: fc.Arbitrary<Sent> = fc.record({
  type: fc.option(lineText.map((s) => s.replace(/\0/g, "")).filter((s) => s.length > 0), { nil: undefined }),
  // the server always sends JSON, never an empty data field (which the format does not dispatch)
  data: anyText.filter((s) => s.length > 0),
  id: fc.option(
    lineText.map((s) => s.replace(/\0/g, "")),
    { nil: undefined }
  ),
  comment: fc.option(lineText, { nil: undefined })
})

const expectedEvents = (sent: ReadonlyArray<Sent>): Array<SseEvent> => {
  let lastEventId = ""
  return sent.map((e) => {
    if (e.id !== undefined) lastEventId = e.id
    return { type: e.type ?? "message", data: normalizeNewlines(e.data), id: e.id, lastEventId }
  })
}

const cutsOf = (length: number, cuts: ReadonlyArray<number>): Array<number> =>
  [...new Set(cuts.map((c) => (length === 0 ? 0 : c % (length + 1))))].sort((a, b) => a - b)

describe("SseParser: round trip", () => {
  it("encoded events split into arbitrary byte pieces parse back to the same events", () => {
    fc.assert(
      fc.property(fc.array(sentEvent, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (sent, cuts) => {
        const bytes = utf8(sent.map(encodeEvent).join(""))
        const r = record()
        let from = 0
        for (const cut of cutsOf(bytes.length, cuts)) {
          r.parser.feedBytes(bytes.subarray(from, cut))
          from = cut
        }
        r.parser.feedBytes(bytes.subarray(from))
        r.parser.end()
        expect(r.events()).toEqual(expectedEvents(sent))
        expect(r.comments()).toEqual(sent.flatMap((e) => (e.comment === undefined ? [] : [e.comment])))
      }),
      { numRuns: 500 }
    )
  })

  it("encoded events cut in two at every byte offset parse back to the same events", () => {
    fc.assert(
      fc.property(fc.array(sentEvent, { maxLength: 5 }), (sent) => {
        const bytes = utf8(sent.map(encodeEvent).join(""))
        for (let k = 0; k <= bytes.length; k++) {
          const r = record()
          r.parser.feedBytes(bytes.subarray(0, k))
          r.parser.feedBytes(bytes.subarray(k))
          r.parser.end()
          expect(r.events()).toEqual(expectedEvents(sent))
        }
      }),
      { numRuns: 100 }
    )
  })

  it("dropped, end and error frames mean the same to every client; a count of 0 is no loss", () => {
    const meaning = (frame: string) => {
      const events: Array<SseFraming.SubscriptionEvent> = []
      const parser = makeSseParser({ onEvent: (event) => events.push(SseFraming.subscriptionEvent(event)) })
      parser.feed(frame)
      return events
    }
    expect(meaning(SseFraming.dropped(3))).toEqual([{ _tag: "Dropped", count: 3 }])
    expect(meaning(SseFraming.dropped(null))).toEqual([{ _tag: "Dropped", count: null }])
    expect(meaning(SseFraming.dropped(0))).toEqual([{ _tag: "Ignored" }])
    expect(meaning("event: dropped\ndata: {\"count\":-1}\n\n")).toEqual([{ _tag: "Ignored" }])
    expect(meaning("event: dropped\ndata: nope\n\n")).toEqual([{ _tag: "Ignored" }])
    expect(meaning(SseFraming.end)).toEqual([{ _tag: "End" }])
    expect(meaning(SseFraming.error("{\"_tag\":\"Nope\"}"))).toEqual([{ _tag: "Failure", error: { _tag: "Nope" } }])
    expect(meaning(SseFraming.event({ data: "[1]" }))).toEqual([{ _tag: "Value", json: [1] }])
    expect(meaning(SseFraming.event({ data: "" }))[0]?._tag).toBe("Invalid")
  })

  it("encoded events split into arbitrary text pieces parse back to the same events", () => {
    fc.assert(
      fc.property(fc.array(sentEvent, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (sent, cuts) => {
        const text = sent.map(encodeEvent).join("")
        const r = record()
        let from = 0
        for (const cut of cutsOf(text.length, cuts)) {
          r.parser.feed(text.slice(from, cut))
          from = cut
        }
        r.parser.feed(text.slice(from))
        expect(r.events()).toEqual(expectedEvents(sent))
      }),
      { numRuns: 500 }
    )
  })

  it("arbitrary bytes, valid UTF-8 or not, split anywhere, decode as one streaming TextDecoder would", () => {
    const piece = fc.oneof(
      fc.string({ unit: "binary", maxLength: 6 }).map(utf8),
      fc.constantFrom("data: ", "\n\n", "\r\n", "\r", ": c\n", "id: ").map(utf8),
      fc.uint8Array({ maxLength: 4 }),
      fc
        .array(
          fc.constantFrom(0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe2, 0xed, 0xef, 0xf0),
          { maxLength: 4 }
        )
        .map((a) => Uint8Array.from(a)),
      fc
        .array(fc.constantFrom(0xf1, 0xf4, 0xf5, 0xff, 0xbb, 0x0a, 0x41), { maxLength: 4 })
        .map((a) => Uint8Array.from(a))
    )
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 24 }), fc.array(fc.nat(), { maxLength: 16 }), (pieces, cuts) => {
        const bytes = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0))
        let at = 0
        for (const p of pieces) {
          bytes.set(p, at)
          at += p.length
        }
        const body = new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes)
        const reference = record()
        reference.parser.feed(body + "\n\n")

        const r = record()
        let from = 0
        for (const cut of cutsOf(bytes.length, cuts)) {
          r.parser.feedBytes(bytes.subarray(from, cut))
          from = cut
        }
        r.parser.feedBytes(bytes.subarray(from))
        r.parser.feedBytes(utf8("\n\n"))
        expect(r.records).toEqual(reference.records)
      }),
      { numRuns: 2000 }
    )
  })

  it("the test generators keep ids and event types on one line", () => {
    fc.assert(
      fc.property(sentEvent, (e) => {
        expect(e.type === undefined || noLineBreak(e.type)).toBe(true)
        expect(e.id === undefined || (noLineBreak(e.id) && !e.id.includes("\0"))).toBe(true)
      })
    )
  })
})

// ---------------------------------------------------------------------------
// Browser safety
// ---------------------------------------------------------------------------

describe("SseParser: browser safety", () => {
  it("the parser module uses no Node built-ins or Node globals", () => {
    const source = readFileSync(new URL("../../src/protocol/SseParser.ts", import.meta.url), "utf8")
    expect(source).not.toMatch(/from\s+["']node:/)
    expect(source).not.toMatch(/\brequire\s*\(/)
    expect(source).not.toMatch(/\bBuffer\b/)
    expect(source).not.toMatch(/\bprocess\./)
    expect(source).not.toMatch(/\bglobal\./)
  })
})
