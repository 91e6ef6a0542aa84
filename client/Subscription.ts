/**
 * A subscription as its caller sees it: the options, the live handle
 * (`unsubscribe`, `state`, `lastEventId`, the async iterator) and how the
 * Effect-flavoured client takes its values in batches (`Opened.take`).
 *
 * Two carriers, one behaviour: a subscription either has its own request
 * (wire protocol v1: one POST streaming SSE, `client/internal/OwnConnection.ts`)
 * or shares one connection with every other subscription of its client
 * (v1.1, multiplexed: `client/internal/Multiplexer.ts`). Either way it
 * reconnects on transport failures, on a body that ends without
 * `event: end` and on heartbeat silence, with exponential backoff and full
 * jitter, resuming resumable procedures after the last cursor received. It
 * stops for good on `event: end`, on a typed error, on a `ClientError` that a
 * retry cannot fix (an undecodable value, an oversized event, an HTTP error
 * other than 502/503/504), after `reconnect.maxAttempts` failed attempts in a
 * row and when closed by the caller. `event: dropped` reaches `onDropped`
 * with a positive count, or `null` for a gap of unknown size.
 *
 * No runtime import of `effect`: the Effect-flavoured client builds its
 * `Stream` on `Opened.take`.
 */
import type { ClientError } from "./ClientError.ts"

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
   * Called when values this subscriber will never get are reported: dropped by the server's
   * sliding policy, or no longer kept for a resume (`null` is a gap whose size the server
   * cannot know: a resume cursor from before a server restart); or, on a multiplexed
   * connection, dropped by the client: the oldest values waiting for an iterator that is
   * `queueCapacity` behind (see `Subscription`). Called right before the consumer gets the
   * value that follows the loss: as the iterator (or `stream`) takes it when the subscription
   * is iterated, else before `onData` sees it — so a loss can be placed exactly between two
   * values.
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
 * iterator (or the Effect-flavoured client's `stream`). At most
 * `queueCapacity` values wait in the client for the iterator. On its own
 * connection (v1) the subscription then stops reading the network, and the
 * server's sliding policy drops (and counts) stale values. On a multiplexed
 * connection (v1.1) a slow iterator cannot pause the connection the other
 * subscriptions share: the client drops the oldest value waiting instead,
 * and reports it with `onDropped` ("dropped by the client").
 *
 * Without `onData`, values are queued from the start, so none is missed
 * before the iteration begins; with `onData` and no iterator, nothing is
 * queued. `_E`: the typed errors its iterator throws (besides `ClientError`).
 */
export interface Subscription<A, _E> extends AsyncIterable<A> {
  /** Closes the subscription: aborts its request (or leaves the shared connection); the iterator ends. */
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
  /**
   * Values a subscription keeps for a consumer that is not pulling, before it stops reading
   * the network (its own connection) or drops the oldest (a multiplexed one).
   */
  queueCapacity: 64
} as const

/** What the consumer side takes at once: the values waiting, or how the subscription ended. */
export type Batch =
  | { readonly _tag: "Values"; readonly values: Array<unknown> }
  | { readonly _tag: "Done" }
  | { readonly _tag: "Failure"; readonly error: unknown }

/** An open subscription, and how to take its values in batches (what an Effect Stream pulls). */
export interface Opened {
  readonly subscription: Subscription<unknown, unknown>
  /** Up to `max` values waiting, or the end, waiting for it when nothing is there yet. */
  readonly take: (max: number) => Promise<Batch>
}
