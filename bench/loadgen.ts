/**
 * The load generator's HTTP client: HTTP/1.1 over a raw `net` socket, written
 * by hand. A `node:http` client saturates its own CPU long before a good SSE
 * server does (~250k events/s), so the response is parsed here with byte
 * loops and no allocation per event: the status line and headers once, then
 * the body, de-chunked when `Transfer-Encoding: chunked`, handed to a sink as
 * ranges.
 */
import * as Net from "node:net"
import type { Route } from "./harness.ts"

/** Receives the body as ranges of the socket's buffers (already de-chunked). */
export interface BodySink {
  data(buffer: Uint8Array, start: number, end: number): void
}

export interface Response {
  readonly status: number
  readonly headers: ReadonlyMap<string, string>
}

export interface Connection {
  /** Resolves once the status line and headers are in. */
  readonly response: Promise<Response>
  /** Resolves when the body is complete, rejects on a socket error or a truncated body. */
  readonly done: Promise<void>
  /** Body bytes received so far (after de-chunking). */
  readonly bodyBytes: () => number
  /** Whether the TCP connection was established (a dropped SYN leaves it connecting). */
  readonly connected: () => boolean
  /** Stops reading: the kernel buffers fill, then the server's writes see backpressure. */
  readonly pause: () => void
  readonly resume: () => void
  /** Closes the connection. */
  readonly close: () => void
  /** Closes with a reset (no TIME_WAIT left behind: thousands of sockets are closed at once). */
  readonly reset: () => void
}

const CR = 13
const LF = 10

/**
 * Incremental `Transfer-Encoding: chunked` decoder: size lines (with optional
 * extensions), data, the CRLF after data, and trailers after the last chunk.
 */
class ChunkedDecoder {
  private state: "size" | "extension" | "sizeLf" | "data" | "dataEnd" | "trailer" | "done" = "size"
  private size = 0
  private sizeDigits = 0
  private remaining = 0
  private lineLength = 0
  constructor(private readonly sink: BodySink) {}
  get finished(): boolean {
    return this.state === "done"
  }
  feed(buffer: Uint8Array, start: number, end: number): void {
    let i = start
    while (i < end) {
      switch (this.state) {
        case "data": {
          const stop = Math.min(end, i + this.remaining)
          this.sink.data(buffer, i, stop)
          this.remaining -= stop - i
          i = stop
          if (this.remaining === 0) this.state = "dataEnd"
          break
        }
        case "size": {
          const b = buffer[i++]!
          const digit = hexValue(b)
          if (digit >= 0) {
            this.size = this.size * 16 + digit
            this.sizeDigits++
          } else if (b === CR) this.state = "sizeLf"
          else if (b === LF) this.endOfSizeLine()
          else if (b === 0x3b || b === 0x20 || b === 0x09) this.state = "extension"
          else throw new Error(`malformed chunk size line (byte ${b})`)
          break
        }
        case "extension": {
          if (buffer[i++] === LF) this.endOfSizeLine()
          break
        }
        case "sizeLf": {
          if (buffer[i++] !== LF) throw new Error("malformed chunk size line (CR without LF)")
          this.endOfSizeLine()
          break
        }
        case "dataEnd": {
          const b = buffer[i++]!
          if (b === LF) {
            this.state = "size"
            this.size = 0
            this.sizeDigits = 0
          } else if (b !== CR) throw new Error("malformed chunk: data longer than its size")
          break
        }
        case "trailer": {
          const b = buffer[i++]!
          if (b === LF) {
            if (this.lineLength === 0) this.state = "done"
            this.lineLength = 0
          } else if (b !== CR) this.lineLength++
          break
        }
        case "done":
          return
      }
    }
  }
  private endOfSizeLine(): void {
    if (this.sizeDigits === 0) throw new Error("malformed chunk size line (no digits)")
    if (this.size === 0) {
      this.state = "trailer"
      this.lineLength = 0
    } else {
      this.state = "data"
      this.remaining = this.size
    }
  }
}

const hexValue = (b: number): number => {
  if (b >= 48 && b <= 57) return b - 48
  if (b >= 97 && b <= 102) return b - 87
  if (b >= 65 && b <= 70) return b - 55
  return -1
}

const headerEnd = Buffer.from("\r\n\r\n")

/** Opens a connection and sends the request of `route`; the body goes to `sink`. */
export const request = (port: number, route: Route, sink: BodySink): Connection => {
  const socket = Net.connect({ port, host: "127.0.0.1", noDelay: true })
  let head: Buffer | undefined = Buffer.alloc(0)
  let contentLength: number | undefined
  let chunked: ChunkedDecoder | undefined
  let received = 0
  let closedByUs = false
  let connected = false
  socket.once("connect", () => {
    connected = true
  })
  let resolveResponse!: (response: Response) => void
  let rejectResponse!: (error: Error) => void
  let resolveDone!: () => void
  let rejectDone!: (error: Error) => void
  const response = new Promise<Response>((resolve, reject) => {
    resolveResponse = resolve
    rejectResponse = reject
  })
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve
    rejectDone = reject
  })
  // Callers may await only one of the two; neither rejection is left unhandled.
  response.catch(() => {})
  done.catch(() => {})
  const counting: BodySink = {
    data(buffer, start, end) {
      received += end - start
      sink.data(buffer, start, end)
    }
  }
  const complete = (): boolean =>
    chunked !== undefined ? chunked.finished : contentLength !== undefined && received >= contentLength
  const body = (buffer: Uint8Array, start: number): void => {
    if (chunked !== undefined) chunked.feed(buffer, start, buffer.length)
    else counting.data(buffer, start, buffer.length)
    if (complete()) {
      resolveDone()
      socket.destroy()
    }
  }
  socket.on("data", (data: Buffer) => {
    try {
      if (head === undefined) return body(data, 0)
      head = Buffer.concat([head, data])
      const at = head.indexOf(headerEnd)
      if (at < 0) {
        if (head.length > 64 * 1024) throw new Error("response headers larger than 64 KiB")
        return
      }
      const lines = head.subarray(0, at).toString("latin1").split("\r\n")
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "")?.[1])
      if (!Number.isInteger(status)) throw new Error(`malformed status line: ${lines[0]}`)
      const headers = new Map<string, string>()
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(":")
        if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
      }
      if (/\bchunked\b/i.test(headers.get("transfer-encoding") ?? "")) chunked = new ChunkedDecoder(counting)
      else if (headers.has("content-length")) contentLength = Number(headers.get("content-length"))
      const rest = head
      head = undefined
      resolveResponse({ status, headers })
      body(rest, at + headerEnd.length)
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error))
      rejectResponse(failure)
      rejectDone(failure)
      socket.destroy()
    }
  })
  socket.on("error", (error) => {
    rejectResponse(error)
    rejectDone(error)
  })
  socket.on("close", () => {
    const error = new Error(
      closedByUs ? "closed by the load generator" : `connection closed after ${received} body bytes`
    )
    rejectResponse(error)
    // A body without a length ends with the connection.
    if (head === undefined && chunked === undefined && contentLength === undefined) resolveDone()
    else rejectDone(error)
  })
  const method = route.method ?? "GET"
  let text = `${method} ${route.path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: */*\r\nConnection: close\r\n`
  for (const [name, value] of Object.entries(route.headers ?? {})) text += `${name}: ${value}\r\n`
  const payload = route.body === undefined ? undefined : Buffer.from(route.body)
  if (payload !== undefined || method === "POST") text += `Content-Length: ${payload?.length ?? 0}\r\n`
  socket.write(payload === undefined ? `${text}\r\n` : Buffer.concat([Buffer.from(`${text}\r\n`), payload]))
  return {
    response,
    done,
    bodyBytes: () => received,
    connected: () => connected,
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    close: () => {
      closedByUs = true
      socket.destroy()
    },
    reset: () => {
      closedByUs = true
      if (socket.readyState === "open") socket.resetAndDestroy()
      else socket.destroy()
    }
  }
}

/**
 * Finds every `"<field>":<digits>` in a byte stream and hands over the
 * number. Matching is byte by byte (KMP), so a field split across reads is
 * found, and nothing is allocated per event.
 */
class NumberField {
  private readonly pattern: Buffer
  private readonly failure: Array<number>
  private matched = 0
  private inNumber = false
  private number = 0
  constructor(field: string, private readonly onNumber: (n: number) => void) {
    this.pattern = Buffer.from(`"${field}":`)
    this.failure = new Array<number>(this.pattern.length).fill(0)
    for (let i = 1, k = 0; i < this.pattern.length; i++) {
      while (k > 0 && this.pattern[i] !== this.pattern[k]) k = this.failure[k - 1]!
      if (this.pattern[i] === this.pattern[k]) k++
      this.failure[i] = k
    }
  }
  scan(buffer: Uint8Array, start: number, end: number): void {
    const pattern = this.pattern
    let matched = this.matched
    for (let i = start; i < end; i++) {
      const b = buffer[i]!
      if (this.inNumber) {
        if (b >= 48 && b <= 57) {
          this.number = this.number * 10 + (b - 48)
          continue
        }
        this.inNumber = false
        this.onNumber(this.number)
      }
      while (matched > 0 && pattern[matched] !== b) matched = this.failure[matched - 1]!
      if (pattern[matched] === b) matched++
      if (matched === pattern.length) {
        this.inNumber = true
        this.number = 0
        matched = 0
      }
    }
    this.matched = matched
  }
}

/**
 * Counts benchmark ticks in a body, whatever the peer's framing (SSE, ndjson
 * of chunks): each `"seq":<digits>` is one delivered tick, and the digits
 * give the producer's sequence number, so `lastSeq + 1 - count` is how many
 * were produced but never delivered. (`event: dropped` frames carry
 * `"count"`, never `"seq"`.)
 */
export class TickCounter implements BodySink {
  count = 0
  lastSeq = -1
  bytes = 0
  private readonly seq = new NumberField("seq", (n) => {
    this.count++
    this.lastSeq = n
  })
  data(buffer: Uint8Array, start: number, end: number): void {
    this.bytes += end - start
    this.seq.scan(buffer, start, end)
  }
}

/**
 * Hands over every tick's `"ts"` (stamped by the server with the machine's
 * monotonic clock) with the reading of the same clock when the bytes were
 * read: their difference is the delivery latency.
 */
export class StampReader implements BodySink {
  count = 0
  private now = 0
  private readonly ts: NumberField
  constructor(private readonly clock: () => number, onStamp: (stamp: number, now: number) => void) {
    this.ts = new NumberField("ts", (stamp) => {
      this.count++
      onStamp(stamp, this.now)
    })
  }
  data(buffer: Uint8Array, start: number, end: number): void {
    this.now = this.clock()
    this.ts.scan(buffer, start, end)
  }
}

/**
 * `StampReader` that also hands over each tick's `"seq"` (it precedes `"ts"`
 * in a tick's JSON), for feeds whose ticks go to some subscribers only.
 */
export class SeqStampReader implements BodySink {
  private now = 0
  /** Seqs found and not yet paired with their ts (scans run a whole range at a time). */
  private readonly seqs: Array<number> = []
  private readonly seqField: NumberField
  private readonly ts: NumberField
  constructor(private readonly clock: () => number, onStamp: (seq: number, stamp: number, now: number) => void) {
    this.seqField = new NumberField("seq", (seq) => {
      this.seqs.push(seq)
    })
    this.ts = new NumberField("ts", (stamp) => onStamp(this.seqs.shift() ?? -1, stamp, this.now))
  }
  data(buffer: Uint8Array, start: number, end: number): void {
    this.now = this.clock()
    this.seqField.scan(buffer, start, end)
    this.ts.scan(buffer, start, end)
  }
}

/** Counts body bytes and line feeds (rows of CSV and ndjson). */
export class LineCounter implements BodySink {
  bytes = 0
  lines = 0
  data(buffer: Uint8Array, start: number, end: number): void {
    this.bytes += end - start
    const bytes = buffer as Buffer
    let lines = 0
    for (let i = bytes.indexOf(LF, start); i >= 0 && i < end; i = bytes.indexOf(LF, i + 1)) lines++
    this.lines += lines
  }
}

/** Keeps the body as text: a small page (`/metrics`), read once. */
export class BodyText implements BodySink {
  private readonly parts: Array<Buffer> = []
  data(buffer: Uint8Array, start: number, end: number): void {
    this.parts.push(Buffer.from(buffer.subarray(start, end)))
  }
  text(): string {
    return Buffer.concat(this.parts).toString("utf8")
  }
}

/** Counts body bytes only. */
export class ByteCounter implements BodySink {
  bytes = 0
  data(_buffer: Uint8Array, start: number, end: number): void {
    this.bytes += end - start
  }
}

/**
 * What `SubscriptionReader` hands over: one value event of subscription `sub`
 * (its `data:` parsed), with the monotonic clock read when its bytes arrived.
 */
export interface SubscriptionCallbacks {
  readonly onValue: (sub: string, data: string, now: number) => void
  /** `event: dropped`, `event: error`, `event: end` of subscription `sub`. */
  readonly onOther: (sub: string, type: string, data: string) => void
}

const SUB = Buffer.from("sub:")
const EVENT = Buffer.from("event:")
const DATA = Buffer.from("data:")

const startsWith = (buffer: Uint8Array, start: number, end: number, prefix: Uint8Array): boolean => {
  if (end - start < prefix.length) return false
  for (let i = 0; i < prefix.length; i++) if (buffer[start + i] !== prefix[i]) return false
  return true
}

/**
 * Reads an SSE body event by event, for v1 streams (one subscription: the
 * one given to the constructor) and multiplexed ones (wire protocol v1.1):
 * the `sub:` field is sticky, so an event belongs to the subscription named
 * by the last `sub:` read, in that event or an earlier one. Events before
 * any `sub:` (the `connection` event), `subscribed` events, comments and
 * `id:` lines are skipped. Lines are cut from the bytes; only the values of
 * `sub:`, `event:` and `data:` become strings.
 */
export class SubscriptionReader implements BodySink {
  private pending: Buffer | undefined = undefined
  private type: string | undefined = undefined
  private eventData: string | undefined = undefined
  private now = 0
  constructor(
    private readonly clock: () => number,
    private readonly callbacks: SubscriptionCallbacks,
    private current: string | undefined = undefined
  ) {}
  private scan(buffer: Uint8Array, start: number, end: number): void {
    let lineStart = start
    for (let i = start; i < end; i++) {
      if (buffer[i] !== LF) continue
      if (this.pending !== undefined) {
        const line = Buffer.concat([this.pending, buffer.subarray(lineStart, i)])
        this.pending = undefined
        this.line(line, 0, line.length)
      } else this.line(buffer, lineStart, i)
      lineStart = i + 1
    }
    if (lineStart < end) {
      const rest = Buffer.from(buffer.subarray(lineStart, end))
      this.pending = this.pending === undefined ? rest : Buffer.concat([this.pending, rest])
    }
  }
  data(buffer: Uint8Array, start: number, end: number): void {
    this.now = this.clock()
    this.scan(buffer, start, end)
  }
  private value(buffer: Uint8Array, start: number, end: number, prefix: number): string {
    let from = start + prefix
    if (buffer[from] === 0x20) from++
    return Buffer.from(buffer.buffer, buffer.byteOffset + from, end - from).toString("utf8")
  }
  private line(buffer: Uint8Array, start: number, end: number): void {
    if (end > start && buffer[end - 1] === CR) end--
    if (end === start) return this.dispatch()
    if (startsWith(buffer, start, end, SUB)) this.current = this.value(buffer, start, end, SUB.length)
    else if (startsWith(buffer, start, end, DATA)) this.eventData = this.value(buffer, start, end, DATA.length)
    else if (startsWith(buffer, start, end, EVENT)) this.type = this.value(buffer, start, end, EVENT.length)
  }
  private dispatch(): void {
    const { type, eventData: data, current } = this
    this.type = undefined
    this.eventData = undefined
    if (current === undefined || data === undefined) return
    if (type === undefined || type === "" || type === "message") this.callbacks.onValue(current, data, this.now)
    else if (type !== "subscribed" && type !== "connection") this.callbacks.onOther(current, type, data)
  }
}
