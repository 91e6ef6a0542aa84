/**
 * Everything this library knows of `@effect/platform-node`'s HTTP server, and
 * what it writes with `node:stream`, in one module, loaded only when a
 * request served by Node arrives (see `Platform.node`): a web runtime
 * (`toWebHandler`) never loads it.
 *
 * What it relies on, pinned by test/NodePlatform.test.ts (a platform release
 * that changes any of it fails that test, not production):
 * - `NodeHttpServerRequest.toServerResponse(request)` is the `node:http`
 *   response of the request, and `request.source` its `IncomingMessage`;
 * - the server answers a request when its handler returns, with that
 *   response's `writeHead` and `end` (`handOver` neutralises both);
 * - the server listens for the response's `close` to interrupt the request's
 *   fiber, registered right after the fiber starts (`handOver` removes those
 *   listeners once the handler's synchronous part has returned: the fiber
 *   has ended by then, and they would keep it reachable for as long as the
 *   subscription is open).
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import type * as Http from "node:http"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Core from "../../core/NodeBody.ts"
import type { SseSink } from "../../core/SseAnswer.ts"

/** The socket of a request served by Node, else undefined. */
export const socketOf = (request: HttpServerRequest.HttpServerRequest): Http.IncomingMessage["socket"] | undefined => {
  const socket = (request.source as Partial<Http.IncomingMessage> | null)?.socket
  return typeof socket === "object" && socket !== null ? socket : undefined
}

/** The `node:http` server a request served by Node arrived on (its socket's `server`), else undefined. */
export const serverOf = (request: HttpServerRequest.HttpServerRequest): Http.Server | undefined => {
  const server = (socketOf(request) as { readonly server?: unknown } | undefined)?.server
  return typeof server === "object" && server !== null && typeof (server as Http.Server).listeners === "function"
    ? server as Http.Server
    : undefined
}

/** The `node:http` response of a request served by Node, else undefined. */
export const responseOf = (request: HttpServerRequest.HttpServerRequest): Http.ServerResponse | undefined => {
  if (socketOf(request) === undefined) return undefined
  const response = NodeHttpServerRequest.toServerResponse(request) as Http.ServerResponse | undefined
  return typeof response?.writeHead === "function" ? response : undefined
}

/**
 * True when the client has gone: its connection is closed, or it has sent
 * its end (a request read late, together with its client's close: Node's
 * server, not half-open, then aborts the request and ends the connection).
 */
export const clientGone = (request: HttpServerRequest.HttpServerRequest): boolean => {
  const socket = socketOf(request)
  if (socket === undefined) return false
  return socket.destroyed || socket.readableEnded
}

/**
 * After the event loop's next turn has read its sockets: a `setImmediate`
 * runs after this turn's reads, one set from it after the next turn's.
 * A request read late comes with its client's close, but Node reads that
 * close only in the next turn (a read short of the buffer ends a turn's
 * reading): whether the client is gone is known after it.
 */
export const afterNextReads: Effect.Effect<void> = Effect.async<void>((resume) => {
  const cancel = afterNextTurnsReads(() => resume(Effect.void))
  return Effect.sync(cancel)
})

/** `afterNextReads` for code outside a fiber: calls `callback` then; the function returned cancels it. */
export const afterNextTurnsReads = (callback: () => void): () => void => {
  let batch = arriving
  if (batch === undefined) {
    batch = arriving = new Set()
    setImmediate(turned, batch)
  }
  batch.add(callback)
  const waiting = batch
  return () => {
    waiting.delete(callback)
  }
}

/**
 * The requests that arrived in this turn of the loop: they all wait for the
 * same two immediates (a storm brings thousands in a few turns), not two each.
 */
let arriving: Set<() => void> | undefined = undefined

const turned = (batch: Set<() => void>): void => {
  if (arriving === batch) arriving = undefined
  setImmediate(read, batch)
}

const read = (batch: Set<() => void>): void => {
  for (const waiter of batch) waiter()
}

/** Ends a transfer by force: the connection is destroyed, so the client sees a truncated body. */
export const cut = (request: HttpServerRequest.HttpServerRequest): void => {
  socketOf(request)?.destroy()
}

function returnThis<T>(this: T): T {
  return this
}

type Listener = (...args: Array<unknown>) => void

/** `end` of a response as Node defines it, whatever `handOver` did to the instance. */
type End = (this: Http.ServerResponse, chunk?: string) => unknown

/**
 * Takes `response` from the server that will answer its request when the
 * handler returns: its own `writeHead` and `end` become no-ops (a callback
 * given to `end` is still called), and once the handler's synchronous part
 * has returned (the server registers its listener right after starting the
 * request's fiber), every `close` listener but `keep` is removed: the
 * server's would interrupt the request's fiber, which has ended by then, and
 * keep it reachable for as long as the answer is open.
 */
export const handOver = (response: Http.ServerResponse, keep: ReadonlySet<unknown>): void => {
  const own = response as unknown as Record<"writeHead" | "end", unknown>
  own.writeHead = returnThis
  own.end = function(this: Http.ServerResponse, ...args: ReadonlyArray<unknown>) {
    const callback = args.find((arg) => typeof arg === "function") as (() => void) | undefined
    if (callback !== undefined) process.nextTick(callback)
    return this
  }
  queueMicrotask(() => {
    for (const listener of response.listeners("close") as Array<Listener>) {
      if (!keep.has(listener)) response.off("close", listener)
    }
  })
}

/** An SSE answer written straight to a `node:http` response. */
export class NodeSink implements SseSink {
  /** `end` as Node defines it: `handOver` replaces the instance's own. */
  private readonly endResponse: End
  private onDrain: (() => void) | undefined = undefined
  private onClose: (() => void) | undefined = undefined

  constructor(readonly response: Http.ServerResponse) {
    this.endResponse = response.end as End
  }

  get gone(): boolean {
    return this.response.destroyed
  }

  open(headers: Readonly<Record<string, string>>): void {
    this.response.writeHead(200, headers)
  }

  write(text: string): boolean {
    return this.response.write(text)
  }

  end(text?: string): void {
    if (!this.response.writableEnded) this.endResponse.call(this.response, text)
  }

  listen(onDrain: () => void, onClose: () => void): void {
    this.onDrain = onDrain
    this.onClose = onClose
    this.response.on("drain", onDrain)
    this.response.on("close", onClose)
  }

  /** The listeners this sink added (see `handOver`). */
  get listeners(): ReadonlySet<unknown> {
    return new Set([this.onDrain, this.onClose])
  }

  unlisten(): void {
    if (this.onDrain !== undefined) this.response.off("drain", this.onDrain)
    if (this.onClose !== undefined) this.response.off("close", this.onClose)
    this.onDrain = undefined
    this.onClose = undefined
  }
}

/**
 * The body of a transfer served by Node (`core/NodeBody.ts`, a `Readable`):
 * piped to the response, it writes batches straight to it and waits for
 * `drain` between them; read any other way, it is an ordinary `Readable`
 * over the same buffer. A failure after the first byte destroys it with the
 * failure's squashed cause.
 */
export class NodeBody<A, E> extends Core.NodeBody<A, Cause.Cause<E>> {
  protected override errorOf(cause: Cause.Cause<E>): unknown {
    return Cause.squash(cause)
  }
}
