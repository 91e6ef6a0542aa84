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
 *
 * A loss is reported to `onDropped` right before the consumer gets the value
 * that follows it: when the subscription is iterated (or streamed), as the
 * iterator takes that value — losses travel in the queue with the values —
 * else before `onData` sees it.
 */
export type Overflow = "grow" | "dropOldest"

/** Values lost before a value: an exact count, and whether a loss of unknown size is among them. */
interface Gap {
  count: number
  unknown: boolean
}

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
  /** Values reported lost by the server, before the next value delivered. */
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

  // The values waiting, the cursor after each and the loss before each, at the same index.
  const queue: Array<unknown> = []
  const queueIds: Array<string | undefined> = []
  const queueGaps: Array<Gap | undefined> = []
  /** A loss not yet before any value: it goes before the next one queued. */
  let pendingGap: Gap | undefined
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
      queueGaps.length = 0
      pendingGap = undefined
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

  const report = (gap: Gap | undefined) => {
    // After the end too: the values still waiting, and the losses between them, are delivered.
    if (gap === undefined) return
    if (gap.count > 0) invokeCallback(options.onDropped, gap.count)
    if (gap.unknown) invokeCallback(options.onDropped, null)
  }

  const deliver = (value: unknown, overflow: Overflow) => {
    if (finished) return
    invokeCallback(options.onData, value)
    if (!queueing) return
    queue.push(value)
    queueIds.push(received)
    queueGaps.push(pendingGap)
    pendingGap = undefined
    if (overflow === "dropOldest" && queue.length > capacity) {
      // The oldest goes: it, and the loss before it, become the loss before the new oldest.
      queue.shift()
      queueIds.shift()
      const lost = queueGaps.shift()
      const next = (queueGaps[0] ??= { count: 0, unknown: false })
      next.count += 1 + (lost?.count ?? 0)
      next.unknown ||= lost?.unknown ?? false
    }
    wakeConsumers()
  }

  /** Values lost before the next value: reported at once, or queued before the next value for the iterator. */
  const dropped = (count: number | null) => {
    if (finished) return
    if (!queueing) {
      invokeCallback(options.onDropped, count)
      return
    }
    pendingGap ??= { count: 0, unknown: false }
    if (count === null) pendingGap.unknown = true
    else pendingGap.count += count
  }

  /** Up to `max` values waiting, or the end, waiting for it when nothing is there yet. */
  const take = async (max: number): Promise<Batch> => {
    queueing = true
    for (;;) {
      if (queue.length > 0) {
        const count = Math.min(max, queue.length)
        const values = queue.splice(0, count)
        consumedId = queueIds.splice(0, count)[count - 1]
        for (const gap of queueGaps.splice(0, count)) report(gap)
        wakeProducer()
        return { _tag: "Values", values }
      }
      if (finished) {
        // A loss after the last value: told before the end.
        report(pendingGap)
        pendingGap = undefined
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
    dropped,
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
