/**
 * The consumer side of a subscription, whatever carries it (its own request,
 * or a multiplexed connection): the values waiting for the iterator or
 * `take`, the callbacks, the state, the end, and the `Subscription` handle.
 * A carrier feeds it (`deliver`, `dropped`, `setState`, `finish`) and stops
 * when its `signal` aborts.
 */
import { decodeOrThrow } from "../ClientProcedure.ts"
import { invokeCallback } from "../DownloadProgress.ts"
import {
  type Batch,
  type ConnectionState,
  defaults,
  type Opened,
  type SubscribeOptions,
  type Subscription
} from "../Subscription.ts"

/**
 * What happens to a value arriving while `queueCapacity` values wait:
 * `grow` keeps it (the carrier stops reading once `full`), `dropOldest`
 * drops the oldest waiting value and reports it with `onDropped`.
 */
export type Overflow = "grow" | "dropOldest"

export interface Consumer {
  readonly tag: string
  readonly options: SubscribeOptions<unknown, unknown>
  readonly opened: Opened
  /** Aborts once the subscription is over (ended, failed, closed by the caller). */
  readonly signal: AbortSignal
  readonly finished: boolean
  readonly state: ConnectionState
  /** The cursor of the last event received: the one a reconnection resumes after. */
  received: string | undefined
  readonly setState: (state: ConnectionState) => void
  /** A value received, its cursor being `received`: to `onData`, and queued for the iterator. */
  readonly deliver: (value: unknown, overflow: Overflow) => void
  /** Values reported lost by the server. */
  readonly dropped: (count: number | null) => void
  /** True while the iterator is `queueCapacity` values behind. */
  readonly full: boolean
  /** Resolves once the iterator takes values, or the subscription is over. */
  readonly drained: () => Promise<void>
  /** Ends the subscription, with its error when it failed; `discard` forgets the values still waiting. */
  readonly finish: (outcome?: { readonly error: unknown }, discard?: boolean) => void
}

/**
 * A subscription's consumer side, in state `connecting` (reported to
 * `onState`), or already finished: with `invalid` (a request that cannot be
 * made), or when `options.signal` has aborted.
 */
export const make = (
  tag: string,
  options: SubscribeOptions<unknown, unknown>,
  invalid?: { readonly error: unknown }
): Consumer => {
  const capacity = defaults.queueCapacity
  let state: ConnectionState = "connecting"
  let received = options.lastEventId === "" ? undefined : options.lastEventId
  /** The cursor of the last value the iterator (or stream) has taken. */
  let consumedId = received
  const closer = new AbortController()

  // The values waiting, and the cursor after each at the same index.
  const queue: Array<unknown> = []
  const queueIds: Array<string | undefined> = []
  let queueing = options.onData === undefined
  let finished = false
  let failure: { readonly error: unknown } | undefined
  let failureTaken = false
  let consumers: Array<() => void> = []
  let producer: (() => void) | undefined
  /** Values dropped by `dropOldest` and not reported yet: reported once per task, not once per value. */
  let overflowed = 0

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
    if (state === next || state === "closed") return
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

  const reportOverflow = () => {
    const count = overflowed
    overflowed = 0
    if (count > 0 && !closer.signal.aborted) invokeCallback(options.onDropped, count)
  }

  const deliver = (value: unknown, overflow: Overflow) => {
    if (finished) return
    invokeCallback(options.onData, value)
    if (!queueing) return
    queue.push(value)
    queueIds.push(received)
    if (overflow === "dropOldest" && queue.length > capacity) {
      queue.shift()
      queueIds.shift()
      if (overflowed++ === 0) queueMicrotask(reportOverflow)
    }
    wakeConsumers()
  }

  /** Up to `max` values waiting, or the end, waiting for it when nothing is there yet. */
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

  const subscription: Subscription<unknown, unknown> = {
    unsubscribe,
    get state() {
      return state
    },
    get lastEventId() {
      return queueing ? consumedId : received
    },
    [Symbol.asyncIterator]() {
      queueing = true
      return iterator
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
  }

  return {
    tag,
    options,
    opened: { subscription, take },
    signal: closer.signal,
    get finished() {
      return finished
    },
    get state() {
      return state
    },
    get received() {
      return received
    },
    set received(cursor: string | undefined) {
      received = cursor
    },
    setState,
    deliver,
    dropped: (count) => {
      if (!finished) invokeCallback(options.onDropped, count)
    },
    get full() {
      return queueing && queue.length >= capacity
    },
    drained: () =>
      finished ? Promise.resolve() : new Promise<void>((resolve) => {
        producer = resolve
      }),
    finish
  }
}

/**
 * A value's JSON, decoded by `decode` and delivered with `dropOldest` (a
 * shared connection never waits for one iterator); a value off the contract
 * ends the subscription with its error.
 */
export const deliverJson = (consumer: Consumer, decode: (json: unknown) => unknown, json: unknown): void => {
  let value: unknown
  try {
    value = decodeOrThrow(decode, json, consumer.tag, "a value")
  } catch (error) {
    consumer.finish({ error })
    return
  }
  consumer.deliver(value, "dropOldest")
}
