/**
 * The machinery of a transfer (a download or an export) between its source
 * and the socket:
 *
 * - the source runs as ONE producer, wrapped once for the whole transfer
 *   (`around`: the `wrap` middlewares, the handler's context and span), into
 *   the suspend policy's buffer (`BackpressurePolicy.SuspendBuffer`). A Node
 *   `Readable` or a web `ReadableStream` source (`fromReadable`) is read by
 *   callbacks, paused while the buffer is full: no fiber step per chunk;
 * - on Node the body is a `Readable` that the platform pipes to the response
 *   (`core/NodeBody.ts`): it writes what the buffer holds in batches (16
 *   chunks of a download, all buffered rows of an export as one text)
 *   straight to the response, then waits for `drain`. Plain JavaScript per
 *   chunk, no fiber switch. A download's chunks wait in reusable memory
 *   (`core/Slabs.ts`), so that the 256 chunks held do not cost full garbage
 *   collections;
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
import { forkInto, pullInto, SuspendBuffer } from "./SuspendBuffer.ts"
import type * as Core from "../../core/NodeBody.ts"
import type { Encoding } from "../../core/NodeBody.ts"
import { Slabs } from "../../core/Slabs.ts"

/** Reusable memory for a download's chunks (`core/Slabs.ts`). */
export { Slabs }

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

export type { Encoding }

/** What a body reports to the transfer's lifecycle; a failure is told with its `Cause`. */
export type Observer = Core.Observer<Cause.Cause<unknown>>

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
