import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { MuxConnection } from "../../src/core/MuxConnection.ts"
import type { Draining, SseSink } from "../../src/core/SseAnswer.ts"
import * as Multiplex from "../../src/protocol/Multiplex.ts"
import * as Sse from "../../src/protocol/Sse.ts"
import { everySplit, splitBytesAt, utf8 } from "./support.ts"

/** A sink keeping what is written; `full` makes writes answer false (the text is still taken). */
const memorySink = () => {
  let text = ""
  let ended = false
  const sink: SseSink & { full: boolean; drain: () => void; readonly text: string; readonly ended: boolean } = {
    full: false,
    open: () => {},
    write: (t) => {
      text += t
      return !sink.full
    },
    end: (t) => {
      if (t !== undefined) text += t
      ended = true
    },
    get gone() {
      return ended
    },
    listen: (onDrain) => {
      sink.drain = () => {
        sink.full = false
        onDrain()
      }
    },
    unlisten: () => {},
    drain: () => {},
    get text() {
      return text
    },
    get ended() {
      return ended
    }
  }
  return sink
}

const never: Draining = { isDraining: () => false, watch: () => {}, unwatch: () => {} }

const connectionOn = (sink: SseSink) =>
  new MuxConnection(sink, {
    id: "c1",
    opening: Sse.comment("ok"),
    heartbeatMillis: 1000,
    every: () => () => {},
    draining: never,
    stopped: () => {}
  })

type Step =
  | { readonly _tag: "value"; readonly sub: number; readonly id: string | undefined; readonly json: unknown }
  | { readonly _tag: "dropped"; readonly sub: number; readonly count: number | null }
  | { readonly _tag: "heartbeat" }

const subIds = ["a", "b-2", "c.3", "~d"]

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    _tag: fc.constant("value" as const),
    sub: fc.integer({ min: 0, max: subIds.length - 1 }),
    id: fc.option(fc.stringMatching(/^[a-z0-9-]{1,12}$/), { nil: undefined }),
    json: fc.jsonValue()
  }),
  fc.record({
    _tag: fc.constant("dropped" as const),
    sub: fc.integer({ min: 0, max: subIds.length - 1 }),
    count: fc.option(fc.integer({ min: 1, max: 1000 }), { nil: null })
  }),
  fc.constant({ _tag: "heartbeat" as const })
)

/** Writes `steps` through a real connection, then ends every subscription (even: `end`, odd: `error`). */
const write = (steps: ReadonlyArray<Step>) => {
  const sink = memorySink()
  const connection = connectionOn(sink)
  connection.start()
  const channels = subIds.map((id) => connection.channel(id)!)
  channels.forEach((channel) => channel.write(Multiplex.subscribed("exact")))
  const expected: Array<Multiplex.MultiplexEvent> = [{ _tag: "Connection", id: "c1", version: Multiplex.version }]
  subIds.forEach((sub) => expected.push({ _tag: "Subscribed", sub, resume: "exact" }))
  for (const s of steps) {
    if (s._tag === "heartbeat") {
      connection.beat()
      continue
    }
    const sub = subIds[s.sub]!
    if (s._tag === "value") {
      const data = JSON.stringify(s.json)
      channels[s.sub]!.write(Sse.event({ id: s.id, data }))
      expected.push({ _tag: "Event", sub, event: { _tag: "Value", json: JSON.parse(data) }, id: s.id })
    } else {
      channels[s.sub]!.write(Sse.dropped(s.count))
      expected.push({ _tag: "Event", sub, event: { _tag: "Dropped", count: s.count }, id: undefined })
    }
  }
  channels.forEach((channel, i) => {
    const error = { _tag: "Boom", message: `m${i}` }
    channel.end(i % 2 === 0 ? Sse.end : Sse.error(JSON.stringify(error)))
    expected.push({
      _tag: "Event",
      sub: subIds[i]!,
      event: i % 2 === 0 ? { _tag: "End" } : { _tag: "Failure", error },
      id: undefined
    })
  })
  return { text: sink.text, expected }
}

const decodeAll = (pieces: ReadonlyArray<Uint8Array>): Array<Multiplex.MultiplexEvent> => {
  const out: Array<Multiplex.MultiplexEvent> = []
  const decoder = Multiplex.makeDecoder({ onEvent: (e) => out.push(e) })
  for (const piece of pieces) decoder.feedBytes(piece)
  decoder.end()
  return out
}

describe("wire protocol v1.1: a multiplexed stream written by MuxConnection and read by the decoder", () => {
  it("round-trips every event to its subscription at every split of the body", () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 12 }), (steps) => {
        const { expected, text } = write(steps)
        for (const pieces of everySplit(utf8(text))) expect(decodeAll(pieces)).toEqual(expected)
      }),
      { numRuns: 40 }
    )
  })

  it("round-trips long interleavings cut at random places", () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 200 }), fc.array(fc.nat(), { maxLength: 30 }), (steps, cuts) => {
        const { expected, text } = write(steps)
        expect(decodeAll(splitBytesAt(utf8(text), cuts))).toEqual(expected)
      }),
      { numRuns: 200 }
    )
  })

  it("writes `sub:` only when the subscription changes, so a shared frame goes out unchanged", () => {
    const sink = memorySink()
    const connection = connectionOn(sink)
    connection.start()
    const a = connection.channel("a")!
    const b = connection.channel("b")!
    const frame = Sse.event({ id: "e-1", data: "1" })
    a.write(frame)
    a.write(frame)
    b.write(frame)
    expect(sink.text).toBe(
      `: ok\n\n${Multiplex.connection("c1")}sub: a\n${frame}${frame}sub: b\n${frame}`
    )
  })

  it("bounds the writer as a whole: once the socket is full every channel is told, and they resume in the order they waited", () => {
    const sink = memorySink()
    const connection = connectionOn(sink)
    connection.start()
    const order: Array<string> = []
    const channels = ["a", "b", "c"].map((id) => {
      const channel = connection.channel(id)!
      channel.listen(() => order.push(id), () => {})
      return channel
    })
    sink.full = true
    expect(channels[1]!.write("data: 1\n\n")).toBe(false)
    sink.full = false
    // The connection is blocked until the sink drains, whatever the sink says now.
    expect(channels[2]!.write("data: 2\n\n")).toBe(false)
    expect(channels[0]!.write("data: 3\n\n")).toBe(false)
    sink.drain()
    expect(order).toEqual(["b", "c", "a"])
    expect(channels[0]!.write("data: 4\n\n")).toBe(true)
  })

  it("ends one subscription without ending the connection, and stops every subscription when the connection stops", () => {
    const sink = memorySink()
    const connection = connectionOn(sink)
    connection.start()
    const closed: Array<string> = []
    for (const id of ["a", "b", "c"]) connection.channel(id)!.listen(() => {}, () => closed.push(id))
    connection.channel("x")
    expect(connection.channel("a")).toBeUndefined()
    connection.remove("b")
    expect(closed).toEqual(["b"])
    expect(connection.size).toBe(3)
    connection.stop()
    expect(closed).toEqual(["b", "a", "c"])
    expect(connection.size).toBe(0)
    expect(sink.ended).toBe(true)
  })

  it("ignores events before any `sub:` other than `connection`, and reads an unknown `resume` as none", () => {
    const out: Array<Multiplex.MultiplexEvent> = []
    const decoder = Multiplex.makeDecoder({ onEvent: (e) => out.push(e) })
    decoder.feed("data: 1\n\nevent: connection\ndata: {\"id\":\"k\",\"version\":\"1.1\"}\n\nsub: s\nevent: subscribed\ndata: {\"resume\":\"maybe\"}\n\n")
    decoder.end()
    decoder.feed("data: 2\n\n")
    expect(out).toEqual([
      { _tag: "Connection", id: "k", version: "1.1" },
      { _tag: "Subscribed", sub: "s", resume: "none" }
    ])
  })
})

describe("wire protocol v1.1: request bodies", () => {
  it("reads an open request and refuses what is off the contract", () => {
    expect(Multiplex.parseOpen({ subscriptions: [{ id: "1", tag: "t", payload: { a: 1 }, lastEventId: "e-1" }] })).toEqual({
      ok: true,
      value: { subscriptions: [{ id: "1", tag: "t", payload: { a: 1 }, lastEventId: "e-1" }] }
    })
    const refusals: Array<[unknown, string]> = [
      [null, "Expected"],
      [{ subscriptions: 1 }, "subscriptions: expected an array"],
      [{ subscriptions: [{ id: "", tag: "t" }] }, "subscriptions.0.id"],
      [{ subscriptions: [{ id: "a b", tag: "t" }] }, "subscriptions.0.id"],
      [{ subscriptions: [{ id: "a", tag: "t" }, { id: "a", tag: "t" }] }, "appears twice"],
      [{ subscriptions: [{ id: "a" }] }, "subscriptions.0.tag"],
      [{ subscriptions: [{ id: "a", tag: "t", lastEventId: "x\ny" }] }, "lastEventId"],
      [{ subscriptions: Array.from({ length: Multiplex.maxSubscriptions + 1 }, (_, i) => ({ id: `${i}`, tag: "t" })) }, "at most"]
    ]
    for (const [body, message] of refusals) {
      const parsed = Multiplex.parseOpen(body)
      expect(parsed.ok).toBe(false)
      if (!parsed.ok) expect(parsed.message).toContain(message)
    }
  })

  it("reads a change request", () => {
    expect(Multiplex.parseChange({ remove: ["a"] })).toEqual({ ok: true, value: { add: [], remove: ["a"] } })
    expect(Multiplex.parseChange({ add: [{ id: "b", tag: "t" }] })).toEqual({ ok: true, value: { add: [{ id: "b", tag: "t" }], remove: [] } })
    expect(Multiplex.parseChange({ remove: [1] }).ok).toBe(false)
    expect(Multiplex.parseChange([]).ok).toBe(false)
  })
})
