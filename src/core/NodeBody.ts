/**
 * The Node body of a transfer (a download or an export). Piped to the
 * response (how the platform serves a `Readable` body), it writes what the
 * suspend buffer holds in batches (16 chunks of a download, all buffered
 * rows of an export as one text) straight to the response, then waits for
 * `drain`: plain JavaScript per chunk, no fiber switch. A download's chunks
 * wait in reusable memory (`Slabs`), lent by the buffer until the socket
 * has taken them.
 */
import { Readable } from "node:stream"
import type { Slabs } from "./Slabs.ts"
import type { SuspendBuffer } from "./SuspendBuffer.ts"

/** How the values of a transfer become bytes. */
export interface Encoding<A> {
  /** Most values taken from the buffer at once: one batch, written before waiting for `drain`. */
  readonly batch: number
  /** Sent before the first value (e.g. `[`); may be empty. */
  readonly header: string
  /** The wire form of a batch: download chunks as they are, rows as one text. */
  readonly encode: (values: ReadonlyArray<A>) => string | ReadonlyArray<Uint8Array>
  /** Sent after the last value (asked once the values are over). */
  readonly footer: () => string
}

/** What a body reports to the transfer's lifecycle; `C` is how the producer's failures are told (its `End`). */
export interface Observer<C = unknown> {
  /** `values` values written as `bytes` bytes. */
  readonly delivered: (values: number, bytes: number) => void
  /** The last byte was handed to the socket. */
  readonly completed: () => void
  /** The source failed after the first byte: the body is about to be aborted. */
  readonly failed: (cause: C) => void
  /** The client took no byte for the stall timeout while the socket was full: cut it. */
  readonly stalled?: (() => void) | undefined
}

interface Writable {
  write(chunk: Uint8Array, callback?: (error?: Error | null) => void): boolean
  once(event: "drain", listener: () => void): unknown
  removeListener(event: "drain", listener: () => void): unknown
  readonly destroyed?: boolean
  readonly writableLength?: number
}

const isWritable = (u: unknown): u is Writable =>
  typeof u === "object" && u !== null &&
  typeof (u as Writable).write === "function" &&
  typeof (u as Writable).once === "function" &&
  typeof (u as Writable).removeListener === "function"

/**
 * The Node body. Piped (how the platform serves a `Readable` body:
 * `pipeline(body, response)`), it writes batches straight to the response
 * and waits for `drain` between them; read any other way (async iteration,
 * `read()`), it is an ordinary `Readable` over the same buffer.
 */
export class NodeBody<A, C = unknown> extends Readable {
  private started = false
  private over = false
  private waiting = false
  private target: Writable | undefined = undefined
  /** Parts in slabs handed to the target and not yet taken by the socket, oldest first. */
  private inFlight: Array<Uint8Array> = []
  private inFlightHead = 0
  /** Values of the batch last taken that the buffer lent (see `SuspendBuffer.takeInto`). */
  private lentNow = 0
  /** When the socket last refused more (0: it takes writes); what the stall timeout measures. */
  private fullSince = 0
  /** What the socket held when the stall clock last (re)started. */
  private heldAtCheck = 0
  private stallTimer: ReturnType<typeof setTimeout> | undefined = undefined
  constructor(
    private readonly buffer: SuspendBuffer<A, C>,
    private readonly encoding: Encoding<A>,
    private readonly observer: Observer<C>,
    private readonly slabs?: Slabs | undefined,
    /** How long the socket may stay full (the client taking nothing) before `observer.stalled`. */
    private readonly stallMillis: number = Infinity
  ) {
    super()
  }

  /**
   * The socket is full: the stall clock runs. A stall is the socket taking no
   * byte for `stallMillis` (what it holds not shrinking), not a slow reader:
   * one timer, re-armed only when it fires.
   */
  private full(): void {
    if (this.stallMillis === Infinity) return
    this.fullSince = Date.now()
    this.heldAtCheck = this.target?.writableLength ?? 0
    if (this.stallTimer === undefined) this.armStall(this.stallMillis)
  }

  private armStall(millis: number): void {
    const timer = setTimeout(this.checkStall, millis)
    timer.unref?.()
    this.stallTimer = timer
  }

  private readonly checkStall = (): void => {
    this.stallTimer = undefined
    if (this.fullSince === 0 || this.destroyed) return
    const held = this.target?.writableLength ?? 0
    if (held < this.heldAtCheck) {
      // The client took bytes since: still reading, slowly.
      this.fullSince = Date.now()
      this.heldAtCheck = held
    }
    const waited = Date.now() - this.fullSince
    if (waited >= this.stallMillis) this.observer.stalled?.()
    else this.armStall(this.stallMillis - waited)
  }

  /** A write's callback: writes complete in order, so the oldest part in flight is the one taken. */
  private readonly written = () => {
    const part = this.inFlight[this.inFlightHead]
    if (part === undefined) return
    this.inFlight[this.inFlightHead++] = empty
    if (this.inFlightHead === this.inFlight.length) {
      this.inFlight = []
      this.inFlightHead = 0
    }
    this.slabs!.release(part)
    this.buffer.giveBack(1)
  }

  // The next parts to write: the header once, then a batch, then the footer at the end.
  // Undefined when nothing is there yet (a wake-up is registered); null at the end.
  private next(): Array<Uint8Array> | null | undefined {
    const parts: Array<Uint8Array> = []
    if (!this.started) {
      this.started = true
      if (this.encoding.header !== "") parts.push(Buffer.from(this.encoding.header, "utf8"))
    }
    const buffer = this.buffer
    if (buffer.size > 0) {
      // A fresh array per batch: a download's encoding hands the values back as they are.
      const values: Array<A> = []
      // Written to the response in slabs, the values stay lent until the socket has taken them.
      const lend = this.target !== undefined && this.slabs !== undefined && this.slabs.active
      const count = buffer.takeInto(values, this.encoding.batch, lend)
      this.lentNow = lend ? count : 0
      const encoded = this.encoding.encode(values)
      let bytes = 0
      if (typeof encoded === "string") {
        const part = Buffer.from(encoded, "utf8")
        bytes = part.byteLength
        if (bytes > 0) parts.push(part)
      } else {
        for (let i = 0; i < encoded.length; i++) {
          const part = encoded[i]!
          bytes += part.byteLength
          if (part.byteLength > 0) parts.push(part)
        }
      }
      this.observer.delivered(count, bytes)
      return parts
    }
    const exit = buffer.exit
    if (exit === undefined) {
      if (parts.length > 0) return parts
      this.waiting = true
      buffer.whenReady(this.wake)
      return undefined
    }
    if (exit._tag === "Success") {
      if (this.over) return null
      this.over = true
      const footer = this.encoding.footer()
      if (footer !== "") {
        const part = Buffer.from(footer, "utf8")
        parts.push(part)
        this.observer.delivered(0, part.byteLength)
      }
      this.observer.completed()
      return parts.length > 0 ? parts : null
    }
    this.over = true
    this.observer.failed(exit.cause)
    this.destroy(new Error("the transfer failed after it started", { cause: this.errorOf(exit.cause) }))
    return undefined
  }

  /** The error a failure of the producer destroys the body with (its cause as it is, by default). */
  protected errorOf(cause: C): unknown {
    return cause
  }

  private readonly wake = () => {
    this.waiting = false
    if (this.destroyed) return
    if (this.target === undefined) this.fill()
    else this.flush()
  }

  /** Piped: batches written to the response, `drain` awaited between them. */
  private readonly flush = () => {
    this.fullSince = 0
    const target = this.target!
    while (!this.destroyed && !target.destroyed) {
      const parts = this.next()
      if (parts === undefined) return
      if (parts === null) {
        // Ends the Readable (nothing was pushed through it): `pipeline` then ends the response.
        this.push(null)
        this.resume()
        return
      }
      let full = false
      const slabs = this.slabs
      const lent = this.lentNow
      this.lentNow = 0
      let owned = 0
      for (let i = 0; i < parts.length; i++) {
        const part = parts[i]!
        let more: boolean
        if (lent > 0 && slabs !== undefined && slabs.owns(part)) {
          owned++
          this.inFlight.push(part)
          more = target.write(part, this.written)
        } else {
          more = target.write(part)
        }
        if (!more) full = true
      }
      // Lent values not in a slab (small chunks, empty ones) are done with once written.
      this.buffer.giveBack(lent - owned)
      if (this.over && this.buffer.exit !== undefined && this.buffer.exit._tag === "Success") {
        this.push(null)
        this.resume()
        return
      }
      if (full) {
        target.once("drain", this.flush)
        this.full()
        return
      }
    }
  }

  /** Read as an ordinary Readable. */
  private fill(): void {
    // Nothing reports when the reader is done with a chunk: no slab could be reused.
    this.slabs?.stop()
    while (!this.destroyed) {
      const parts = this.next()
      if (parts === undefined) return
      if (parts === null) {
        this.push(null)
        return
      }
      let more = true
      for (let i = 0; i < parts.length; i++) more = this.push(parts[i]!)
      if (this.over) {
        this.push(null)
        return
      }
      if (!more) return
    }
  }

  override _read(): void {
    if (this.target !== undefined || this.waiting) return
    this.fill()
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    if (this.target !== undefined || this.started || !isWritable(destination)) return super.pipe(destination, options)
    // `pipeline` pipes with `end: false` and ends the destination itself when this ends.
    this.target = destination
    if (options?.end !== false) this.once("end", () => (destination as unknown as { end: () => void }).end())
    this.flush()
    return destination
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.target?.removeListener("drain", this.flush)
    if (this.stallTimer !== undefined) clearTimeout(this.stallTimer)
    callback(error)
  }
}

const empty = new Uint8Array(0)
