/**
 * A subscription: one Server-Sent Events request after another until the
 * stream ends, fails or is closed.
 *
 * It reconnects on transport failures, on a body that ends without
 * `event: end` and on heartbeat silence, with exponential backoff and full
 * jitter, resuming resumable procedures with `Last-Event-ID`. It stops for
 * good on `event: end`, on a typed error, on a `ClientError` that a retry
 * cannot fix (an undecodable value, an oversized event, an HTTP error other
 * than 502/503/504) and when closed by the caller. `event: dropped` reaches
 * `onDropped` with a positive count, or `null` for a gap of unknown size.
 *
 * No runtime import of `effect`: the Effect-flavoured client builds its
 * `Stream` on `Opened.take`.
 */
import * as Names from "../src/protocol/Names.ts"
import * as Sse from "../src/protocol/Sse.ts"
import * as SseParser from "../src/protocol/SseParser.ts"
import { ClientError } from "./ClientError.ts"
import { type ClientProcedure, decodeOrThrow, failureOf, failureOfResponse, type Transport } from "./ClientProcedure.ts"
import { invokeCallback } from "./DownloadProgress.ts"

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed"

export interface ReconnectOptions {
  /** Base of the exponential backoff. Default 500 ms; the server's `retry:` replaces it when sent. */
  readonly initialDelayMs?: number
  /** Longest wait between two attempts. Default 30 s. */
  readonly maxDelayMs?: number
  /** Reconnection attempts in a row without receiving an event before giving up. Default `Infinity`. */
  readonly maxAttempts?: number
}

export interface SubscribeOptions<A, E> {
  /** Aborting closes the subscription, like `unsubscribe()`. */
  readonly signal?: AbortSignal
  /** Called for every value, as soon as it is parsed (independently of the iterator). */
  readonly onData?: (value: A) => void
  /** Called once when the subscription fails for good: a typed error or a `ClientError`. */
  readonly onError?: (error: E | ClientError) => void
  /**
   * Called when the server reports values this subscriber will never get: dropped by the
   * sliding policy, or no longer kept for a resume. `null` is a gap whose size the server
   * cannot know (a resume cursor from before a server restart).
   */
  readonly onDropped?: (count: number | null) => void
  /** Called on every change of the connection state. */
  readonly onState?: (state: ConnectionState) => void
  readonly reconnect?: ReconnectOptions
  /** Longest silence (not a byte, not even a heartbeat comment) before reconnecting. Default 60 s. */
  readonly heartbeatTimeoutMs?: number
  /** Start after this cursor (resumable procedures). */
  readonly lastEventId?: string
  /** Largest SSE event accepted, in characters. Default 1 MiB. */
  readonly maxEventSize?: number
}

/**
 * A live subscription. Values reach `onData` and, once iterated, the async
 * iterator (or the Effect-flavoured client's `stream`), which reads the
 * network only as fast as it is consumed: at most `queueCapacity` values
 * wait in the client, then reading pauses and the server's sliding policy
 * drops (and counts) stale values.
 *
 * Without `onData`, values are queued from the start, so none is missed
 * before the iteration begins; with `onData` and no iterator, nothing is
 * queued. `_E`: the typed errors its iterator throws (besides `ClientError`).
 */
export interface Subscription<A, _E> extends AsyncIterable<A> {
  /** Closes the subscription: aborts the request; the iterator ends. */
  readonly unsubscribe: () => void
  readonly state: ConnectionState
  /**
   * The cursor of the last value handed to the consumer: the one the
   * iterator (or `stream`) took last when it is iterated, else the one
   * `onData` saw last. Pass it as `options.lastEventId` to resume later
   * without a gap. (Reconnections send the last cursor received, since the
   * values in the queue are still delivered.)
   */
  readonly lastEventId: string | undefined
}

export const defaults = {
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  maxAttempts: Infinity,
  heartbeatTimeoutMs: 60_000,
  maxEventSize: 1024 * 1024,
  /** Values a subscription keeps for a consumer that is not pulling before it stops reading the network. */
  queueCapacity: 64
} as const

/** HTTP statuses of a subscription request that are retried (a proxy or a server restarting). */
const transientStatuses: ReadonlySet<number> = new Set([502, 503, 504])

const sleep = (millis: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener("abort", done)
      resolve()
    }
    const timer = setTimeout(done, millis)
    signal.addEventListener("abort", done)
  })

type Outcome =
  | { readonly _tag: "Closed" }
  | { readonly _tag: "End" }
  | { readonly _tag: "Fatal"; readonly error: unknown }
  | { readonly _tag: "Retry"; readonly error: ClientError; readonly progressed: boolean }

/** What the consumer side takes at once: the values waiting, or how the subscription ended. */
export type Batch =
  | { readonly _tag: "Values"; readonly values: Array<unknown> }
  | { readonly _tag: "Done" }
  | { readonly _tag: "Failure"; readonly error: unknown }

/** Thrown inside the parser's callback to stop feeding after a terminal event. */
const stop = Symbol("stop")

/** An open subscription, and how to take its values in batches (what an Effect Stream pulls). */
export interface Opened {
  readonly subscription: Subscription<unknown, unknown>
  /** Up to `max` values waiting, or the end, waiting for it when nothing is there yet. */
  readonly take: (max: number) => Promise<Batch>
}

export const open = (
  procedure: ClientProcedure,
  body: string | undefined,
  options: SubscribeOptions<unknown, unknown>,
  transport: Transport,
  invalid: { readonly error: unknown } | undefined
): Opened => {
  const tag = procedure.tag
  const initialDelayMs = Math.max(0, options.reconnect?.initialDelayMs ?? defaults.initialDelayMs)
  const maxDelayMs = Math.max(0, options.reconnect?.maxDelayMs ?? defaults.maxDelayMs)
  const maxAttempts = options.reconnect?.maxAttempts ?? defaults.maxAttempts
  const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? defaults.heartbeatTimeoutMs
  const capacity = defaults.queueCapacity

  let state: ConnectionState = "connecting"
  /** The cursor of the last event received: the `Last-Event-ID` of a reconnection. */
  let lastEventId = options.lastEventId === "" ? undefined : options.lastEventId
  /** The cursor of the last value the iterator (or stream) has taken. */
  let consumedId = lastEventId
  let retryMs: number | undefined
  const closer = new AbortController()

  // The consumer side: the values waiting, and the cursor after each at the same index.
  const queue: Array<unknown> = []
  const queueIds: Array<string | undefined> = []
  let queueing = options.onData === undefined
  let finished = false
  let failure: { readonly error: unknown } | undefined
  let failureTaken = false
  let consumers: Array<() => void> = []
  let producer: (() => void) | undefined

  const wakeConsumers = () => {
    const waiting = consumers
    consumers = []
    for (const wake of waiting) wake()
  }
  const wakeProducer = () => {
    const wake = producer
    producer = undefined
    wake?.()
  }

  const setState = (next: ConnectionState) => {
    if (state === next) return
    state = next
    invokeCallback(options.onState, next)
  }

  const finish = (outcome?: { readonly error: unknown }, discard = false) => {
    if (finished) return
    finished = true
    if (discard) {
      queue.length = 0
      queueIds.length = 0
    }
    if (outcome !== undefined) {
      failure = outcome
      invokeCallback(options.onError, outcome.error)
    }
    closer.abort()
    options.signal?.removeEventListener("abort", onSignal)
    setState("closed")
    wakeConsumers()
    wakeProducer()
  }

  const unsubscribe = () => finish(undefined, true)
  const onSignal = () => unsubscribe()

  const deliver = (value: unknown) => {
    invokeCallback(options.onData, value)
    if (queueing && !finished) {
      queue.push(value)
      queueIds.push(lastEventId)
      wakeConsumers()
    }
  }

  const parser = SseParser.makeSseParser({
    onEvent: (event) => {
      if (event.id !== undefined) lastEventId = event.id === "" ? undefined : event.id
      connection.progressed = true
      const meaning = Sse.subscriptionEvent(event)
      switch (meaning._tag) {
        case "Value": {
          let value: unknown
          try {
            value = decodeOrThrow(procedure.decodeSuccess, meaning.json, tag, "a value")
          } catch (error) {
            connection.terminal = { _tag: "Fatal", error }
            throw stop
          }
          deliver(value)
          return
        }
        case "Invalid":
          connection.terminal = {
            _tag: "Fatal",
            error: new ClientError("Protocol", `${tag}: an event is not JSON`, { cause: meaning.cause })
          }
          throw stop
        case "Dropped":
          invokeCallback(options.onDropped, meaning.count)
          return
        case "End":
          connection.terminal = { _tag: "End" }
          throw stop
        case "Failure":
          connection.terminal = { _tag: "Fatal", error: failureOf(procedure, meaning.error, "the subscription failed") }
          throw stop
        case "Ignored":
          return
      }
    },
    onRetry: (millis) => {
      retryMs = Math.min(Math.max(0, millis), maxDelayMs)
    }
  }, { maxEventSize: options.maxEventSize ?? defaults.maxEventSize })

  /** State of the connection being read, shared with the parser's callback. */
  const connection: { progressed: boolean; terminal: Outcome | undefined } = { progressed: false, terminal: undefined }

  const connect = async (): Promise<Outcome> => {
    const controller = new AbortController()
    const abort = () => controller.abort()
    closer.signal.addEventListener("abort", abort)
    let timer: ReturnType<typeof setTimeout> | undefined
    let timedOut = false
    const disarm = () => {
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
    }
    const arm = () => {
      disarm()
      timer = setTimeout(() => {
        timedOut = true
        controller.abort()
      }, heartbeatTimeoutMs)
    }
    connection.progressed = false
    connection.terminal = undefined
    try {
      arm()
      let headers: Headers
      try {
        headers = await transport.headers()
      } catch (cause) {
        return {
          _tag: "Retry",
          error: new ClientError("Transport", `${tag}: the headers could not be computed`, { cause }),
          progressed: false
        }
      }
      headers.set(Names.headers.contentType, Names.contentTypes.json)
      headers.set(Names.headers.accept, Names.contentTypes.eventStream)
      if (lastEventId !== undefined) headers.set(Names.headers.lastEventId, lastEventId)
      if (closer.signal.aborted) return { _tag: "Closed" }
      const response = await transport.fetch(procedure.path, {
        method: "POST",
        headers,
        ...(body === undefined ? {} : { body }),
        signal: controller.signal
      })
      if (!response.ok) {
        const error = await failureOfResponse(procedure, response)
        if (error instanceof ClientError && transientStatuses.has(response.status)) {
          return { _tag: "Retry", error, progressed: false }
        }
        return { _tag: "Fatal", error }
      }
      const contentType = response.headers.get(Names.headers.contentType) ?? ""
      if (Names.mediaTypeOf(contentType) !== Names.contentTypes.eventStream || response.body === null) {
        return {
          _tag: "Fatal",
          error: new ClientError("Protocol", `${tag}: expected text/event-stream, got ${contentType || "no body"}`, {
            status: response.status
          })
        }
      }
      setState("open")
      const reader = response.body.getReader()
      for (;;) {
        if (queueing && queue.length >= capacity) {
          // The consumer is behind: stop reading (the silence is ours, not the server's).
          disarm()
          await new Promise<void>((resolve) => {
            producer = resolve
          })
          if (closer.signal.aborted) return { _tag: "Closed" }
        }
        arm()
        const result = await reader.read()
        if (result.done) {
          return connection.terminal ?? {
            _tag: "Retry",
            error: new ClientError("Truncated", `${tag}: the connection ended without an end event`),
            progressed: connection.progressed
          }
        }
        try {
          parser.feedBytes(result.value)
        } catch (error) {
          if (error === stop) return connection.terminal ?? { _tag: "End" }
          if (error instanceof SseParser.SseEventTooLarge) {
            return { _tag: "Fatal", error: new ClientError("EventTooLarge", `${tag}: ${error.message}`, { cause: error }) }
          }
          throw error
        }
        if (connection.terminal !== undefined) return connection.terminal
      }
    } catch (cause) {
      if (closer.signal.aborted) return { _tag: "Closed" }
      if (timedOut) {
        return {
          _tag: "Retry",
          error: new ClientError("Timeout", `${tag}: no byte for ${heartbeatTimeoutMs} ms`, { cause }),
          progressed: connection.progressed
        }
      }
      return {
        _tag: "Retry",
        error: new ClientError("Transport", `${tag}: the connection failed`, { cause }),
        progressed: connection.progressed
      }
    } finally {
      disarm()
      closer.signal.removeEventListener("abort", abort)
      controller.abort()
      parser.end()
    }
  }

  const run = async () => {
    let failures = 0
    while (!finished) {
      const outcome = await connect()
      if (finished) return
      switch (outcome._tag) {
        case "Closed":
        case "End":
          finish()
          return
        case "Fatal":
          finish({ error: outcome.error })
          return
        case "Retry": {
          failures = outcome.progressed ? 1 : failures + 1
          if (failures > maxAttempts) {
            finish({ error: outcome.error })
            return
          }
          setState("reconnecting")
          const base = retryMs ?? initialDelayMs
          const ceiling = Math.min(maxDelayMs, base * 2 ** (failures - 1))
          await sleep(Math.random() * ceiling, closer.signal)
        }
      }
    }
  }

  /** Everything queued, or the end, waiting for it when nothing is there yet. */
  const take = async (max: number): Promise<Batch> => {
    queueing = true
    for (;;) {
      if (queue.length > 0) {
        const count = Math.min(max, queue.length)
        const values = queue.splice(0, count)
        consumedId = queueIds.splice(0, count)[count - 1]
        wakeProducer()
        return { _tag: "Values", values }
      }
      if (finished) {
        if (failure !== undefined && !failureTaken) {
          failureTaken = true
          return { _tag: "Failure", error: failure.error }
        }
        return { _tag: "Done" }
      }
      await new Promise<void>((resolve) => consumers.push(resolve))
    }
  }

  const iterator: AsyncIterableIterator<unknown> = {
    next: async () => {
      const batch = await take(1)
      switch (batch._tag) {
        case "Values":
          return { done: false, value: batch.values[0] }
        case "Done":
          return { done: true, value: undefined }
        case "Failure":
          throw batch.error
      }
    },
    return: async () => {
      unsubscribe()
      return { done: true, value: undefined }
    },
    [Symbol.asyncIterator]() {
      return this
    }
  }

  if (invalid !== undefined) {
    // A request that cannot be made (wrong kind of procedure, payload off the contract) fails at once.
    finish(invalid)
  } else if (options.signal?.aborted) {
    finish()
  } else {
    options.signal?.addEventListener("abort", onSignal)
    invokeCallback(options.onState, state)
    run().catch((cause: unknown) =>
      finish({ error: new ClientError("Protocol", `${tag}: the subscription failed unexpectedly`, { cause }) })
    )
  }

  const subscription: Subscription<unknown, unknown> = {
    unsubscribe,
    get state() {
      return state
    },
    get lastEventId() {
      return queueing ? consumedId : lastEventId
    },
    [Symbol.asyncIterator]() {
      queueing = true
      return iterator
    }
  }
  return { subscription, take }
}
