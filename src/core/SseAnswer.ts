/**
 * One Server-Sent Events answer, written once for every way it is fed and
 * every place it is written: the head and opening line, the heartbeat
 * (one timer per interval shared by every answer), ending without
 * `event: end` when the server drains, stopping when the client goes, the
 * metrics of its start, deliveries and end, and what is logged when it
 * stops. It writes to an `SseSink` (a Node response, or a web
 * `ReadableStream`, see `WebSink`), and is fed either
 *
 * - by a Topic (`attach`): the topic writes shared, pre-encoded frames and
 *   pauses while the sink is full — no ring, fiber or queue of its own; or
 * - by a stream of values (`offer`, `report`, `finish`): while the sink takes
 *   what is written, values are written as they come; while it is full, the
 *   newest 64 wait in a ring, older ones are overwritten and counted, and the
 *   next write starts with `event: dropped` and that count.
 *
 * Plain JavaScript: the Effect side (what runs the handler's stream, reads
 * the configuration, logs) lives in `server/internal/SseResponse`.
 */
import * as Names from "../protocol/Names.ts"
import * as Sse from "../protocol/Sse.ts"
import type { Metrics, Termination } from "./Metrics.ts"
import { SlidingRing } from "./SlidingRing.ts"

/** Where an answer is written. */
export interface SseSink {
  /** Writes the head of the answer (status 200 and `headers`). */
  open(headers: Readonly<Record<string, string>>): void
  /** Writes `text`; false once the receiver's buffer is full (the text is still taken). */
  write(text: string): boolean
  /** Ends the answer, after `text` when given. */
  end(text?: string): void
  /** The receiver has gone: nothing written reaches it. */
  readonly gone: boolean
  /** `onDrain`: the receiver takes writes again; `onClose`: it went, or the answer ended. */
  listen(onDrain: () => void, onClose: () => void): void
  unlisten(): void
}

/** The server's drain (see `GracefulShutdown`), as an answer watches it. */
export interface Draining {
  isDraining(): boolean
  watch(callback: () => void): void
  unwatch(callback: () => void): void
}

/**
 * Where a Topic's fast-path subscriber writes (`Topic.Sink`): SSE frames as
 * text. `write` returns false when the receiver's buffer is full (the text
 * was still accepted): the topic stops writing to it until
 * `Attachment.resume()`.
 */
export interface FrameSink {
  /** `values` values and `dropped` missed values announced (exact counts only) are in `text`. */
  readonly write: (text: string, values: number, dropped: number) => boolean
  /** The topic has ended: no value will follow. */
  readonly end: () => void
}

/** A Topic's delivery to one fast-path subscriber (`Topic.Attachment`). */
export interface Attachment {
  /** The receiver accepts writes again (e.g. the socket's `drain`). */
  resume(): void
  /** Stops delivery at once and forgets the subscriber. Idempotent. */
  detach(): void
}

/** The fast-path handle of a Topic subscription (`Topic.Handle`). */
export interface FrameSource<A> {
  /**
   * Starts delivering to `sink`: first a `dropped` event if the resume cursor
   * cannot be fully replayed, then the replay, then live values. `encode` is
   * the JSON of a value; frames are cached per encoder function, so pass the
   * same function to every subscriber of a procedure.
   */
  attach(sink: FrameSink, encode: (value: A) => string): Attachment
}

/** How a stream of values ended. */
export type Outcome =
  | { readonly _tag: "completed" }
  | { readonly _tag: "failed"; readonly errorJson: string }

export interface Options<A> {
  /** Procedure name, for logs and metrics. */
  readonly name: string
  /** Headers besides the SSE head (CORS, for one). */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** The first line(s): a comment or `retry:`, then any preamble. */
  readonly opening: string
  /** 0: no heartbeat of its own (a subscription on a multiplexed connection, whose connection beats). */
  readonly heartbeatMillis: number
  /** The clock of the heartbeats. */
  readonly every: Every
  readonly draining: Draining
  readonly metrics?: Metrics | undefined
  /** Values a stream-fed answer holds while the sink is full (the sliding policy's 64). */
  readonly capacity: number
  /** The SSE frame of a value (stream-fed answers). */
  readonly frame?: ((value: A) => string) | undefined
  /** Called once when the answer stops, however it stops (after its metrics). */
  readonly stopped: (answer: SseAnswer<A>) => void
}

/** The head of every SSE answer. */
export const headers: Readonly<Record<string, string>> = {
  [Names.headers.contentType]: Names.contentTypes.eventStream,
  [Names.headers.cacheControl]: "no-cache, no-transform",
  [Names.headers.accelBuffering]: "no"
}

const encoder = new TextEncoder()

/** Bytes of `text` in UTF-8: Node's count where there is one, else the encoder's. */
const utf8Length: (text: string) => number = typeof Buffer === "function"
  ? (text) => Buffer.byteLength(text)
  : (text) => encoder.encode(text).byteLength

/** What a heartbeat timer calls. */
export interface Beating {
  beat(): void
}

// ---------------------------------------------------------------------------
// shared heartbeats
// ---------------------------------------------------------------------------

/**
 * Calls `tick` every `millis` until the function it returns is called: the
 * clock of the heartbeats (the server's runs on its Effect `Clock`, so a
 * test's `TestClock` drives them).
 */
export type Every = (millis: number, tick: () => void) => () => void

interface HeartbeatGroup {
  readonly stop: () => void
  readonly members: Set<Beating>
}

/** One timer per clock and heartbeat interval, removed with its last answer. */
const heartbeatGroups = new Map<Every, Map<number, HeartbeatGroup>>()

/** Joins the heartbeat group of `every` and `millis` (one timer for all its members). */
export const joinHeartbeat = (every: Every, millis: number, member: Beating): void => {
  let byMillis = heartbeatGroups.get(every)
  if (byMillis === undefined) {
    byMillis = new Map()
    heartbeatGroups.set(every, byMillis)
  }
  let group = byMillis.get(millis)
  if (group === undefined) {
    const members = new Set<Beating>()
    const stop = every(millis, () => {
      for (const m of members) m.beat()
    })
    group = { stop, members }
    byMillis.set(millis, group)
  }
  group.members.add(member)
}

export const leaveHeartbeat = (every: Every, millis: number, member: Beating): void => {
  const byMillis = heartbeatGroups.get(every)
  const group = byMillis?.get(millis)
  if (byMillis === undefined || group === undefined) return
  group.members.delete(member)
  if (group.members.size === 0) {
    group.stop()
    byMillis.delete(millis)
    if (byMillis.size === 0) heartbeatGroups.delete(every)
  }
}

// ---------------------------------------------------------------------------
// tallied deliveries (Topic-fed answers)
// ---------------------------------------------------------------------------

/**
 * A Topic-fed answer's deliveries are tallied per procedure and handed to
 * the metrics once a second (and when an answer ends) by one shared timer: a
 * metric update per write would cost more than the write.
 */
interface Tally {
  values: number
  bytes: number
  dropped: number
}

const tallies = new Map<Metrics, Map<string, Tally>>()
let tallyUsers = 0
let tallyTimer: ReturnType<typeof setInterval> | undefined

const flushTally = (metrics: Metrics, name: string, tally: Tally): void => {
  if (tally.dropped > 0) metrics.dropped("subscription", name, tally.dropped)
  if (tally.values > 0 || tally.bytes > 0) metrics.delivered("subscription", name, tally.values, tally.bytes)
  tally.values = 0
  tally.bytes = 0
  tally.dropped = 0
}

const flushTallies = (): void => {
  for (const [metrics, byName] of tallies) for (const [name, tally] of byName) flushTally(metrics, name, tally)
}

const acquireTally = (metrics: Metrics, name: string): Tally => {
  let byName = tallies.get(metrics)
  if (byName === undefined) {
    byName = new Map()
    tallies.set(metrics, byName)
  }
  let tally = byName.get(name)
  if (tally === undefined) {
    tally = { values: 0, bytes: 0, dropped: 0 }
    byName.set(name, tally)
  }
  tallyUsers++
  if (tallyTimer === undefined) {
    tallyTimer = setInterval(flushTallies, 1000)
    tallyTimer.unref?.()
  }
  return tally
}

const releaseTally = (metrics: Metrics, name: string, tally: Tally): void => {
  flushTally(metrics, name, tally)
  tallyUsers--
  if (tallyUsers === 0) {
    clearInterval(tallyTimer)
    tallyTimer = undefined
    tallies.clear()
  }
}

/** Open answers (members of a heartbeat group) and the timers they share: for leak tests. */
export const counts = (): { readonly answers: number; readonly timers: number } => {
  let answers = 0
  let timers = tallyTimer === undefined ? 0 : 1
  for (const byMillis of heartbeatGroups.values()) {
    timers += byMillis.size
    for (const group of byMillis.values()) answers += group.members.size
  }
  return { answers, timers }
}

// ---------------------------------------------------------------------------
// one answer
// ---------------------------------------------------------------------------

/** A Topic-fed answer's `FrameSink`: methods on a prototype, not two closures per subscriber. */
class TopicFrames<A> implements FrameSink {
  constructor(private readonly answer: SseAnswer<A>) {}
  write(text: string, values: number, dropped: number): boolean {
    return this.answer.deliverFrames(text, values, dropped)
  }
  end(): void {
    this.answer.finish({ _tag: "completed" })
  }
}

export class SseAnswer<A> implements Beating {
  termination: Termination = "interrupted"
  values = 0
  bytes = 0
  /** Missed values announced with an exact count. */
  dropped = 0
  /** The `error` event's JSON, once the answer has failed. */
  errorJson: string | undefined = undefined
  readonly startedAt = Date.now()
  /** Set when the answer stops. */
  durationMillis = 0
  private stopped = false
  /** The sink's buffer is full: nothing is written until it drains. */
  private blocked = false
  /** A value was written since the last heartbeat tick: no heartbeat needed (the opening line does not count). */
  private active = false
  private ring: SlidingRing<A> | undefined = undefined
  private attachment: Attachment | undefined = undefined
  private tally: Tally | undefined = undefined
  /** Releases what feeds the answer (interrupts a handler's stream); set by the feeder. */
  release: (() => void) | undefined = undefined

  constructor(readonly sink: SseSink, readonly options: Options<A>) {}

  get isStopped(): boolean {
    return this.stopped
  }

  /**
   * Writes the head and the opening line; false when the answer ended at
   * once (the server is draining, or the client has gone).
   */
  start(): boolean {
    const { sink, options } = this
    sink.open(options.headers === undefined ? headers : { ...headers, ...options.headers })
    options.metrics?.started("subscription", options.name)
    if (!sink.write(options.opening)) this.blocked = true
    if (options.draining.isDraining() || sink.gone) {
      this.onDraining()
      return false
    }
    sink.listen(this.onDrain, this.onClose)
    if (options.heartbeatMillis > 0) joinHeartbeat(options.every, options.heartbeatMillis, this)
    options.draining.watch(this.onDraining)
    return true
  }

  // ------------------------------------------------------------ fed by a Topic

  /** Delivers `source` to this answer: its frames are written as the topic writes them. */
  attach(source: FrameSource<A>, encode: (value: A) => string): void {
    if (this.stopped) return
    const metrics = this.options.metrics
    if (metrics !== undefined) this.tally = acquireTally(metrics, this.options.name)
    this.attachment = source.attach(this.frameSink, encode)
  }

  /** What the topic writes: counted, tallied, sent. Called by `TopicFrames`. */
  deliverFrames(text: string, values: number, dropped: number): boolean {
    if (this.stopped) return false
    const bytes = utf8Length(text)
    this.values += values
    this.bytes += bytes
    this.dropped += dropped
    const tally = this.tally
    if (tally !== undefined) {
      tally.values += values
      tally.bytes += bytes
      tally.dropped += dropped
    }
    return this.send(text)
  }

  private readonly frameSink: FrameSink = new TopicFrames(this)

  // ------------------------------------------------------------ fed by a stream

  private frameAll(values: ReadonlyArray<A>): string {
    const frame = this.options.frame!
    let text = ""
    for (let i = 0; i < values.length; i++) text += frame(values[i]!)
    return text
  }

  private deliver(text: string, values: number, dropped: number): void {
    const bytes = utf8Length(text)
    this.values += values
    this.bytes += bytes
    this.dropped += dropped
    const metrics = this.options.metrics
    if (metrics !== undefined) {
      if (dropped > 0) metrics.dropped("subscription", this.options.name, dropped)
      metrics.delivered("subscription", this.options.name, values, bytes)
    }
    this.send(text)
  }

  /** Writes what the ring holds: the count it overwrote (or an unknown gap), then its values. */
  private flush(): void {
    const ring = this.ring
    if (ring === undefined || (ring.size === 0 && ring.dropped === 0 && !ring.unknownGap)) return
    const batch = ring.take()
    const gap = batch.unknownGap || batch.dropped > 0 ? Sse.dropped(batch.unknownGap ? null : batch.dropped) : ""
    this.deliver(gap + this.frameAll(batch.values), batch.values.length, batch.dropped)
  }

  private ringOf(): SlidingRing<A> {
    return this.ring ??= new SlidingRing<A>(this.options.capacity)
  }

  /** Values from the stream: written at once, or held in the ring while the sink is full. */
  offer(values: ReadonlyArray<A>): void {
    if (this.stopped) return
    if (this.blocked) {
      this.ringOf().pushAll(values)
      return
    }
    const text = this.frameAll(values)
    if (text !== "") this.deliver(text, values.length, 0)
  }

  /** The producer missed `count` values (`undefined`: a gap of unknown size), after those already held. */
  report(count: number | undefined): void {
    if (this.stopped) return
    this.flush()
    const ring = this.ringOf()
    if (count === undefined) ring.unknownGap = true
    else if (count > 0) ring.dropped += count
    if (!this.blocked) this.flush()
  }

  /** The source ended: what the ring holds, then `end` or `error`, then the answer stops. */
  finish(outcome: Outcome): void {
    if (this.stopped) return
    this.flush()
    if (outcome._tag === "completed") {
      this.termination = "completed"
      this.sink.end(Sse.end)
    } else {
      this.termination = "failed"
      this.errorJson = outcome.errorJson
      this.sink.end(Sse.error(outcome.errorJson))
    }
    this.stop()
  }

  // ------------------------------------------------------------ lifecycle

  /** Writes values' frames; false once the sink's buffer is full. */
  private send(text: string): boolean {
    this.active = true
    if (this.sink.write(text)) return true
    this.blocked = true
    return false
  }

  private readonly onDrain = (): void => {
    this.blocked = false
    if (this.attachment !== undefined) this.attachment.resume()
    else this.flush()
  }

  /** Client gone, or the answer finished. */
  private readonly onClose = (): void => this.stop()

  /** Draining: end without `event: end`, so the client reconnects and resumes. */
  private readonly onDraining = (): void => {
    if (this.stopped) return
    this.sink.end()
    this.stop()
  }

  beat(): void {
    if (!this.active && !this.blocked && !this.stopped) {
      if (!this.sink.write(Sse.heartbeat)) this.blocked = true
    }
    this.active = false
  }

  /** Idempotent: releases the source, leaves every shared resource, ends the sink, reports. */
  stop(): void {
    if (this.stopped) return
    this.stopped = true
    this.attachment?.detach()
    this.release?.()
    const { sink, options } = this
    sink.unlisten()
    if (options.heartbeatMillis > 0) leaveHeartbeat(options.every, options.heartbeatMillis, this)
    options.draining.unwatch(this.onDraining)
    sink.end()
    this.durationMillis = Date.now() - this.startedAt
    if (options.metrics !== undefined && this.tally !== undefined) releaseTally(options.metrics, options.name, this.tally)
    options.metrics?.ended("subscription", options.name, this.termination, this.durationMillis, this.values)
    options.stopped(this)
  }
}
