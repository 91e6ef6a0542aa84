/**
 * The machinery of a transfer (a download or an export) between its source
 * and the socket:
 *
 * - the source runs as ONE producer, wrapped once for the whole transfer
 *   (`around`: the `wrap` middlewares, the handler's context and span), into
 *   the suspend policy's buffer (`BackpressurePolicy.SuspendBuffer`). A Node
 *   `Readable` or a web `ReadableStream` source (`fromReadable`) is read by
 *   callbacks, paused while the buffer is full: no fiber step per chunk;
 * - on Node the body is a `Readable` that the platform pipes to the response:
 *   it writes what the buffer holds in batches (16 chunks of a download, all
 *   buffered rows of an export as one text) straight to the response, then
 *   waits for `drain`. Plain JavaScript per chunk, no fiber switch. A
 *   download's chunks wait in reusable memory (`Slabs`), so that the 256
 *   chunks held do not cost full garbage collections;
 * - elsewhere (`toWebHandler`) the body is a Stream pulling batches from the
 *   same buffer.
 *
 * A failure before the first value is the call's failure (an HTTP error);
 * after it, the transfer is aborted: on Node the socket is destroyed, on the
 * web the body errors. Either way the client sees a truncated transfer.
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { Readable } from "node:stream"
import { forkInto, pullInto, SuspendBuffer } from "../BackpressurePolicy.ts"

// ---------------------------------------------------------------------------
// sources
// ---------------------------------------------------------------------------

/** What `fromReadable` accepts: a Node `Readable` of bytes, or a web `ReadableStream` of bytes. */
export type ReadableSource = NodeJS.ReadableStream | ReadableStream<Uint8Array>

const SourceTypeId: unique symbol = Symbol.for("effect-stream-rpc/Transfer/ReadableSource")

const isWebStream = (u: unknown): u is ReadableStream<Uint8Array> =>
  typeof u === "object" && u !== null && typeof (u as { getReader?: unknown }).getReader === "function"

/** A Node `Readable` (duck-typed: `fs.ReadStream`, `http.IncomingMessage`, any byte `Readable`). */
export const isNodeReadable = (u: unknown): u is NodeJS.ReadableStream =>
  typeof u === "object" && u !== null &&
  typeof (u as { pipe?: unknown }).pipe === "function" &&
  typeof (u as { on?: unknown }).on === "function" &&
  typeof (u as { pause?: unknown }).pause === "function" &&
  typeof (u as { resume?: unknown }).resume === "function"

/** A Node `Readable` or a web `ReadableStream`. */
export const isReadableSource = (u: unknown): u is ReadableSource => isNodeReadable(u) || isWebStream(u)

const bytesOf = (chunk: unknown): Uint8Array =>
  typeof chunk === "string" ? Buffer.from(chunk, "utf8") : (chunk as Uint8Array)

/**
 * A Node `Readable` or web `ReadableStream` of bytes as a `Stream` a download
 * handler returns, e.g. `() => StreamingService.fromReadable(createReadStream(path))`.
 * Served as a download, the readable is read directly (paused while the
 * policy's 256 chunks are held, destroyed or cancelled when the transfer ends
 * early); run as a plain Stream it reads the same bytes. A read error is a
 * defect: before the first byte an HTTP 500, after it an aborted transfer.
 */
export const fromReadable = (readable: ReadableSource): Stream.Stream<Uint8Array> => {
  const stream: Stream.Stream<Uint8Array> = isWebStream(readable)
    ? Stream.orDie(Stream.fromReadableStream(() => readable, (error) => error))
    : Stream.orDie(Stream.fromAsyncIterable(readable as AsyncIterable<unknown>, (error) => error)).pipe(
      Stream.map(bytesOf)
    )
  return Object.assign(stream, { [SourceTypeId]: readable })
}

/** The readable a `fromReadable` stream reads, if it is one. */
const readableOf = (stream: unknown): ReadableSource | undefined =>
  typeof stream === "object" && stream !== null && SourceTypeId in stream
    ? (stream as { readonly [SourceTypeId]: ReadableSource })[SourceTypeId]
    : undefined

// ---------------------------------------------------------------------------
// slabs
// ---------------------------------------------------------------------------

/**
 * Reusable memory for the bytes of one download written to a Node response.
 *
 * Why: the policy holds up to 256 chunks between the source and the socket,
 * so with a source faster than the client every chunk waits behind 255
 * others. Fresh buffers that wait that long survive two young-generation
 * collections and are promoted; freed only by full collections, they make
 * V8 run one every ~64 MiB of external memory, each marking the whole heap
 * (measured: 3–15 full collections per GiB, up to a third more CPU than
 * `pipeline`, which holds one chunk and whose buffers die young).
 *
 * So each chunk of 16 KiB or more is copied, as it enters the buffer, into a
 * slab taken from this pool; the source's own buffer dies young. The writer
 * hands a slab back once the socket has taken it (the write's callback), and
 * the next chunk reuses it: the transfer allocates about as many slabs as
 * it ever holds at once (the policy's 256, the batch being written), and
 * the copy costs ~60 ms per GiB. Smaller chunks pass as they are. Once the
 * body is read some other way than piped to a response (nothing reports
 * when its consumer is done with a chunk), chunks pass as they are too.
 */
export class Slabs {
  /** Chunks smaller than this are not copied. */
  static readonly minBytes = 16 * 1024
  /** The size of a slab, or of the smallest power of two holding a larger chunk. */
  static readonly slabBytes = 64 * 1024
  private readonly free = new Map<number, Array<ArrayBuffer>>()
  private readonly mine = new WeakSet<ArrayBuffer>()
  private copying = true
  /** Whether chunks are copied into slabs (not stopped). */
  get active(): boolean {
    return this.copying
  }
  /** Slabs allocated so far (reused ones are not counted again). */
  allocated = 0

  /** The chunk in a slab of this pool, or the chunk itself (too small, or copying has stopped). */
  readonly copy = (chunk: Uint8Array): Uint8Array => {
    const length = chunk.byteLength
    if (!this.copying || length < Slabs.minBytes) return chunk
    const size = length <= Slabs.slabBytes ? Slabs.slabBytes : 2 ** Math.ceil(Math.log2(length))
    let slab = this.free.get(size)?.pop()
    if (slab === undefined) {
      slab = new ArrayBuffer(size)
      this.mine.add(slab)
      this.allocated++
    }
    const view = new Uint8Array(slab, 0, length)
    view.set(chunk)
    return view
  }

  /** Whether `part` lies in a slab of this pool. */
  owns(part: Uint8Array): boolean {
    return this.mine.has(part.buffer as ArrayBuffer)
  }

  /** The socket has taken `part`: its slab may hold the next chunk. */
  release(part: Uint8Array): void {
    const slab = part.buffer as ArrayBuffer
    const list = this.free.get(slab.byteLength)
    if (list === undefined) this.free.set(slab.byteLength, [slab])
    else list.push(slab)
  }

  /** Chunks pass as they are from now on. */
  stop(): void {
    this.copying = false
    this.free.clear()
  }
}

/** Reads a Node `Readable` into `buffer`, pausing it while the buffer is full. */
const readNode = (readable: NodeJS.ReadableStream, buffer: SuspendBuffer<Uint8Array>): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    let over = false
    const resumeReading = () => readable.resume()
    const onData = (chunk: unknown) => {
      if (!buffer.pushValue(bytesOf(chunk))) {
        readable.pause()
        buffer.whenSpace(resumeReading)
      }
    }
    const finish = (effect: Effect.Effect<void>) => {
      if (over) return
      over = true
      readable.removeListener("data", onData)
      readable.removeListener("end", onEnd)
      readable.removeListener("error", onError)
      readable.removeListener("close", onClose)
      resume(effect)
    }
    const onEnd = () => finish(Effect.void)
    const onError = (error: unknown) => finish(Effect.die(error))
    // Destroyed without an error and without its end: the bytes stop short.
    const onClose = () => finish(Effect.dieMessage("the readable closed before its end"))
    readable.on("data", onData)
    readable.on("end", onEnd)
    readable.on("error", onError)
    readable.on("close", onClose)
    readable.resume()
    return Effect.sync(() => {
      if (over) return
      over = true
      readable.removeListener("data", onData)
      ;(readable as { destroy?: () => void }).destroy?.()
    })
  })

/** Reads a web `ReadableStream` into `buffer`, reading no further while the buffer is full. */
const readWeb = (readable: ReadableStream<Uint8Array>, buffer: SuspendBuffer<Uint8Array>): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const reader = readable.getReader()
    let over = false
    const step = (): void => {
      if (over) return
      reader.read().then(
        ({ done, value }) => {
          if (over) return
          if (done) {
            over = true
            return resume(Effect.void)
          }
          if (buffer.pushValue(value)) step()
          else buffer.whenSpace(step)
        },
        (error: unknown) => {
          if (over) return
          over = true
          resume(Effect.die(error))
        }
      )
    }
    step()
    return Effect.sync(() => {
      if (over) return
      over = true
      reader.cancel().catch(() => {})
    })
  })

/** How the producer's whole run is wrapped (e.g. the procedure's `wrap` middlewares, context and span). */
export type Around<E, R> = ((run: Effect.Effect<void, E, R>) => Effect.Effect<void, E, R>) | undefined

/**
 * Starts `source` into a suspend buffer of `capacity` values, in the current
 * scope, and waits for its first values: a typed failure before them fails
 * this effect (the caller answers it as an HTTP error). With `slabs` (bytes
 * only), chunks enter the buffer copied into them.
 */
export const start = <A, E, R>(
  source: Stream.Stream<A, E, R>,
  capacity: number,
  around: Around<E, R>,
  slabs?: Slabs | undefined
): Effect.Effect<SuspendBuffer<A, E>, E, R | Scope.Scope> =>
  Effect.gen(function*() {
    const buffer = new SuspendBuffer<A, E>(capacity, slabs?.copy as ((value: A) => A) | undefined)
    const readable = readableOf(source)
    const bytes = buffer as unknown as SuspendBuffer<Uint8Array>
    const run: Effect.Effect<void, E, R> = readable === undefined
      ? pullInto(source, buffer)
      : isWebStream(readable)
      ? readWeb(readable, bytes)
      : readNode(readable, bytes)
    yield* forkInto(buffer, run, around)
    yield* buffer.awaitReady
    const exit = buffer.exit
    if (buffer.size === 0 && exit !== undefined && exit._tag === "Failure") {
      const failure = Cause.failureOption(exit.cause)
      return yield* Option.isSome(failure) ? Effect.fail(failure.value) : Effect.failCause(exit.cause as Cause.Cause<never>)
    }
    return buffer
  })

// ---------------------------------------------------------------------------
// bodies
// ---------------------------------------------------------------------------

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

/** What a body reports to the transfer's lifecycle. */
export interface Observer {
  /** `values` values written as `bytes` bytes. */
  readonly delivered: (values: number, bytes: number) => void
  /** The last byte was handed to the socket. */
  readonly completed: () => void
  /** The source failed after the first byte: the body is about to be aborted. */
  readonly failed: (cause: Cause.Cause<unknown>) => void
}

interface Writable {
  write(chunk: Uint8Array, callback?: (error?: Error | null) => void): boolean
  once(event: "drain", listener: () => void): unknown
  removeListener(event: "drain", listener: () => void): unknown
  readonly destroyed?: boolean
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
export class NodeBody<A, E> extends Readable {
  private started = false
  private over = false
  private waiting = false
  private target: Writable | undefined = undefined
  /** Parts in slabs handed to the target and not yet taken by the socket, oldest first. */
  private inFlight: Array<Uint8Array> = []
  private inFlightHead = 0
  /** Values of the batch last taken that the buffer lent (see `SuspendBuffer.takeInto`). */
  private lentNow = 0
  constructor(
    private readonly buffer: SuspendBuffer<A, E>,
    private readonly encoding: Encoding<A>,
    private readonly observer: Observer,
    private readonly slabs?: Slabs | undefined
  ) {
    super()
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
    this.destroy(new Error("the transfer failed after it started", { cause: Cause.squash(exit.cause) }))
    return undefined
  }

  private readonly wake = () => {
    this.waiting = false
    if (this.destroyed) return
    if (this.target === undefined) this.fill()
    else this.flush()
  }

  /** Piped: batches written to the response, `drain` awaited between them. */
  private readonly flush = () => {
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
    callback(error)
  }
}

const empty = new Uint8Array(0)

/**
 * The web body: a Stream pulling batches from the same buffer. `onStart`
 * receives the fiber running it (interrupting it errors the web body).
 */
export const webBody = <A, E>(
  buffer: SuspendBuffer<A, E>,
  encoding: Encoding<A>,
  observer: Observer,
  onStart: (fiber: Fiber.RuntimeFiber<unknown, unknown>) => void
): Stream.Stream<Uint8Array, E> => {
  const utf8 = new TextEncoder()
  let started = false
  let over = false
  const toBytes = (encoded: string | ReadonlyArray<Uint8Array>): Array<Uint8Array> =>
    typeof encoded === "string" ? (encoded === "" ? [] : [utf8.encode(encoded)]) : encoded.filter((part) => part.byteLength > 0)
  const pull: Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<E>> = Effect.suspend(() => {
    const parts: Array<Uint8Array> = []
    if (!started) {
      started = true
      parts.push(...toBytes(encoding.header))
    }
    if (buffer.size > 0) {
      const values: Array<A> = []
      const count = buffer.takeInto(values, encoding.batch)
      const encoded = toBytes(encoding.encode(values))
      let bytes = 0
      for (const part of encoded) {
        bytes += part.byteLength
        parts.push(part)
      }
      observer.delivered(count, bytes)
      return Effect.succeed(Chunk.unsafeFromArray(parts))
    }
    const exit = buffer.exit
    if (exit === undefined) {
      if (parts.length > 0) return Effect.succeed(Chunk.unsafeFromArray(parts))
      return Effect.zipRight(buffer.awaitReady, pull)
    }
    if (exit._tag === "Success") {
      if (over) return Effect.fail(Option.none())
      over = true
      const footer = toBytes(encoding.footer())
      for (const part of footer) observer.delivered(0, part.byteLength)
      observer.completed()
      parts.push(...footer)
      return parts.length > 0 ? Effect.succeed(Chunk.unsafeFromArray(parts)) : Effect.fail(Option.none())
    }
    observer.failed(exit.cause)
    return Effect.failCause(Cause.map(exit.cause, Option.some))
  })
  return Stream.unwrap(Effect.withFiberRuntime<Stream.Stream<Uint8Array, E>>((fiber) => {
    onStart(fiber)
    return Effect.succeed(Stream.repeatEffectChunkOption(pull))
  }))
}

/** Interrupts a web body's fiber: the web `Response` body errors. */
export const interruptBody = (fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined): void => {
  fiber?.unsafeInterruptAsFork(FiberId.none)
}
