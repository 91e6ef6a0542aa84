/**
 * Subscriptions in a TanStack Query cache (`@tanstack/query-core`, under
 * React, Vue, Svelte, Solid, Angular or no framework): options for
 * `useQuery` / `QueryObserver` whose data a subscription keeps current.
 *
 * ```ts
 * const price = liveQueryOptions({
 *   queryKey: ["price", "ACME"],
 *   subscribe: (callbacks) => api.watchPrices({ symbols: ["ACME"] }, callbacks)
 * })
 * useQuery(price)                              // data: the latest Price
 * useQuery(statusQueryOptions(price.queryKey)) // data: { state, dropped, gaps }
 * ```
 *
 * - `liveQueryOptions`: the data is the latest value.
 * - `streamedQueryOptions`: the data is the last `max` values, oldest first.
 * - `statusQueryOptions`: the subscription's connection state and what it
 *   lost (`dropped`, `gaps`), under `[...queryKey, "status"]`.
 *
 * The lifecycle is the cache's: the query's fetch opens the subscription and
 * resolves with the first value (a streamed query: once open); values then
 * go to the cache with `setQueryData`, and the query counts as fresh while
 * the subscription is open. When the query has had no observer for a
 * macrotask, or leaves the cache, the subscription closes; the data stays
 * for `gcTime`, stale, and the next observer opens a new subscription. A
 * failure (a typed error, or a `ClientError` the client gives up on) is the
 * query's error, through a fetch that fails, so `QueryCache` `onError`,
 * `throwOnError` and `retry` see it as they see any failed fetch.
 *
 * `subscribe` is how the adapter opens a subscription: it passes its
 * callbacks, and the function hands them to a generated client's method or
 * to `StreamClient.subscribe` (with any options of its own). Only types are
 * imported from `@tanstack/query-core` (an optional peer dependency), and
 * nothing from `effect`.
 */
import type {
  DataTag,
  Query,
  QueryCacheNotifyEvent,
  QueryClient,
  QueryFunction,
  QueryFunctionContext,
  QueryKey
} from "@tanstack/query-core"
import { ClientError } from "./ClientError.ts"
import type { ConnectionState, Subscription } from "./Subscription.ts"

export { ClientError, type ClientErrorReason } from "./ClientError.ts"
export type { ConnectionState } from "./Subscription.ts"

/**
 * The callbacks the adapter gives `subscribe`, to pass on to the client as
 * subscribe options (they fit `SubscribeOptions` of any procedure).
 */
export interface Callbacks {
  readonly onData: (value: unknown) => void
  readonly onDropped: (count: number | null) => void
  readonly onState: (state: ConnectionState) => void
  readonly onError: (error: unknown) => void
}

/** Opens the subscription with the adapter's callbacks: `(callbacks) => api.watchPrices(payload, callbacks)`. */
export type Subscribe<A, E> = (callbacks: Callbacks) => Subscription<A, E>

/** The data of a status query: the subscription's state, and what it lost since it opened. */
export interface SubscriptionStatus {
  /** `connecting`, `open`, `reconnecting`; `closed` once ended, failed, or closed for want of observers. */
  readonly state: ConnectionState
  /** Values the subscription will never get, as counted by the server (or by a multiplexed client). */
  readonly dropped: number
  /** Gaps of unknown size (`onDropped(null)`: a resume across a server restart). */
  readonly gaps: number
}

export interface LiveQueryInput<A, E, K extends QueryKey> {
  /** The query's key; it should identify the payload, as any query key identifies its inputs. */
  readonly queryKey: K
  readonly subscribe: Subscribe<A, E>
}

export interface StreamedQueryInput<A, E, K extends QueryKey> extends LiveQueryInput<A, E, K> {
  /** Most values kept; past it the oldest go. Default 1000 (`defaultMax`). */
  readonly max?: number
}

/**
 * Options for `useQuery`, `QueryObserver` and the other frameworks' hooks
 * (spread them to add your own): the data is `D`, the error a typed error
 * `E` of the procedure or a `ClientError`.
 */
export interface SubscriptionQueryOptions<D, E, K extends QueryKey> {
  readonly queryKey: DataTag<K, D, E | ClientError>
  readonly queryFn: QueryFunction<D, K>
  /** Fresh while the subscription is open (nothing to refetch), stale once it is closed. */
  readonly staleTime: (query: Query<D, E | ClientError, D, K>) => number
  /** A subscription reconnects by itself; what reaches the query failed for good. */
  readonly retry: false
  /** Off for streamed queries: a window that slides by one shares little with the previous one. */
  readonly structuralSharing: boolean
}

export type LiveQueryOptions<A, E, K extends QueryKey> = SubscriptionQueryOptions<A, E, K>
export type StreamedQueryOptions<A, E, K extends QueryKey> = SubscriptionQueryOptions<ReadonlyArray<A>, E, K>

/** Options for a status query (never fetched: the subscription writes it). */
export interface StatusQueryOptions {
  readonly queryKey: DataTag<ReadonlyArray<unknown>, SubscriptionStatus, never>
  /** Reads the cache: a status query has nothing to fetch. */
  readonly queryFn: QueryFunction<SubscriptionStatus>
  readonly enabled: false
}

/** Values a streamed query keeps by default. */
export const defaultMax = 1000

/** The key of a query's status: `[...queryKey, "status"]`. */
export const statusKey = (queryKey: QueryKey): DataTag<ReadonlyArray<unknown>, SubscriptionStatus, never> =>
  [...queryKey, "status"] as unknown as DataTag<ReadonlyArray<unknown>, SubscriptionStatus, never>

const closedStatus: SubscriptionStatus = { state: "closed", dropped: 0, gaps: 0 }

/**
 * The status of the subscription behind the query `queryKey` (pass the live
 * or streamed query's `queryKey`): written by the subscription, `undefined`
 * until one opens.
 */
export const statusQueryOptions = (queryKey: QueryKey): StatusQueryOptions => ({
  queryKey: statusKey(queryKey),
  queryFn: ({ client, queryKey }) => client.getQueryData<SubscriptionStatus>(queryKey) ?? closedStatus,
  enabled: false
})

/** A live query: its data is the latest value of the subscription. */
export const liveQueryOptions = <A, E, const K extends QueryKey>(
  input: LiveQueryInput<A, E, K>
): LiveQueryOptions<A, E, K> =>
  optionsOf<A, A, E, K>(input.queryKey, input.subscribe, {
    empty: undefined,
    add: (_, values) => values[values.length - 1]
  }, true)

/** A streamed query: its data is the last `max` values of the subscription, oldest first. */
export const streamedQueryOptions = <A, E, const K extends QueryKey>(
  input: StreamedQueryInput<A, E, K>
): StreamedQueryOptions<A, E, K> => {
  const max = input.max ?? defaultMax
  if (!Number.isInteger(max) || max < 1) throw new RangeError(`max must be a positive integer, got ${max}`)
  const empty: ReadonlyArray<unknown> = []
  return optionsOf<ReadonlyArray<A>, A, E, K>(input.queryKey, input.subscribe, {
    empty,
    add: (data, values) => {
      const window = data as ReadonlyArray<unknown>
      const kept = Math.max(0, Math.min(window.length, max - values.length))
      return [...window.slice(window.length - kept), ...values.slice(Math.max(0, values.length - max))]
    }
  }, false)
}

// ---------------------------------------------------------------------------
// The subscription behind a query
// ---------------------------------------------------------------------------

/** How a query's data follows the values: from `empty` (undefined: no data before a value), by `add`. */
interface Fold {
  readonly empty: unknown
  readonly add: (data: unknown, values: ReadonlyArray<unknown>) => unknown
}

/** The subscription open for a query, while it is. */
interface Entry {
  /** A fetch of the query: the data now, or once there is some. */
  readonly serve: (signal: AbortSignal) => Promise<unknown>
}

type AnyQuery = Query<unknown, unknown, unknown, QueryKey>

/** By query (a query belongs to one cache): the subscription open for it. */
const entries = new WeakMap<AnyQuery, Entry>()
/** By query: a failure waiting to be the result of its next fetch. */
const failures = new WeakMap<AnyQuery, { readonly error: unknown }>()

const optionsOf = <D, A, E, K extends QueryKey>(
  queryKey: K,
  subscribe: Subscribe<A, E>,
  fold: Fold,
  structuralSharing: boolean
): SubscriptionQueryOptions<D, E, K> => ({
  queryKey: queryKey as DataTag<K, D, E | ClientError>,
  queryFn: ((context: QueryFunctionContext<K>) => fetchOf(context, subscribe as Subscribe<unknown, unknown>, fold)) as QueryFunction<D, K>,
  staleTime: (query) => (entries.has(query as unknown as AnyQuery) ? Infinity : 0),
  retry: false,
  structuralSharing
})

/** A fetch: a failure waiting for it, else the data of the query's subscription (opened if none is). */
const fetchOf = (context: QueryFunctionContext<QueryKey>, subscribe: Subscribe<unknown, unknown>, fold: Fold): Promise<unknown> => {
  const { client, queryKey } = context
  const query = client.getQueryCache().find<unknown, unknown, unknown>({ queryKey, exact: true }) as AnyQuery | undefined
  if (query === undefined) return Promise.reject(new Error("effect-stream-rpc/client/query: a fetch of a query not in the cache"))
  const failure = failures.get(query)
  if (failure !== undefined) {
    failures.delete(query)
    return Promise.reject(failure.error)
  }
  // Read once: a fetch whose signal is read is cancelled (and reverted) when its last observer leaves.
  const signal = context.signal
  return (entries.get(query) ?? open(query, client, queryKey, subscribe, fold)).serve(signal)
}

interface Waiter {
  readonly resolve: (data: unknown) => void
  readonly reject: (error: unknown) => void
}

/**
 * Opens the subscription of `query`. Values, losses and states are taken
 * in batches (a microtask) and written to the cache together. Fetches
 * waiting for data get it when it comes; later data goes to the cache with
 * `setQueryData`. A fetch resolves with a value that the cache takes a few
 * microtasks later, so newer data written meanwhile is written again after.
 */
const open = (query: AnyQuery, client: QueryClient, queryKey: QueryKey, subscribe: Subscribe<unknown, unknown>, fold: Fold): Entry => {
  const cache = client.getQueryCache()
  const status = statusKey(queryKey)
  let current: SubscriptionStatus = { state: "connecting", dropped: 0, gaps: 0 }
  let statusChanged = true
  let data: unknown = fold.empty
  let has = false
  /** The data the last fetch resolved with. */
  let served: unknown
  let waiters: Array<Waiter> = []
  let values: Array<unknown> = []
  let flushQueued = false
  /** No longer the query's subscription: closed by us, ended or failed. */
  let over = false
  let closedByUs = false
  let failure: { readonly error: unknown } | undefined
  let closeTimer: ReturnType<typeof setTimeout> | undefined
  let subscription: Subscription<unknown, unknown> | undefined

  const write = (key: QueryKey, value: unknown) => client.setQueryData(key, () => value)

  const resolveWaiters = () => {
    if (waiters.length === 0) return
    const ready = waiters
    waiters = []
    served = data
    for (const waiter of ready) waiter.resolve(data)
  }
  const rejectWaiters = (error: unknown) => {
    const ready = waiters
    waiters = []
    for (const waiter of ready) waiter.reject(error)
  }

  /** Writes what changed: the status, then the data (to the fetches waiting for it, else to the cache). */
  const flush = () => {
    flushQueued = false
    if (statusChanged) {
      statusChanged = false
      write(status, current)
    }
    if (closedByUs || values.length === 0) return
    const batch = values
    values = []
    data = fold.add(has ? data : fold.empty, batch)
    has = true
    publish()
  }
  const queueFlush = () => {
    if (flushQueued) return
    flushQueued = true
    queueMicrotask(flush)
  }
  const publish = () => {
    if (waiters.length > 0) resolveWaiters()
    else write(queryKey, data)
    if (query.getObserversCount() === 0) scheduleClose()
  }
  const setStatus = (next: Partial<SubscriptionStatus>) => {
    current = { ...current, ...next }
    statusChanged = true
    queueFlush()
  }

  /** No longer the query's subscription; the cache is still watched until the query's fetch is over. */
  const detach = (): boolean => {
    if (over) return false
    over = true
    clearTimeout(closeTimer)
    if (entries.get(query) === entry) entries.delete(query)
    settle()
    return true
  }
  /** Once detached and the query's fetch over: a failure becomes the result of a new fetch. */
  const settle = () => {
    if (!over || query.state.fetchStatus !== "idle") return
    unlisten()
    if (failure !== undefined && cache.get(query.queryHash) === query) {
      failures.set(query, failure)
      query.fetch().catch(() => undefined)
    }
  }

  /** Closes the subscription: no observer left, or the query left the cache. */
  const close = () => {
    if (over) return
    closedByUs = true
    values = []
    rejectWaiters(new ClientError("Aborted", "the query has no observer left"))
    detach()
    subscription?.unsubscribe()
  }
  const scheduleClose = () => {
    if (over) return
    clearTimeout(closeTimer)
    closeTimer = setTimeout(() => {
      if (query.getObserversCount() === 0) close()
    }, 0)
  }

  /** `event: end`: the data so far stays, and a fetch still waiting gets it (a live query with none fails). */
  const end = () => {
    flush()
    if (!has && fold.empty !== undefined) {
      data = fold.empty
      has = true
    }
    if (has) resolveWaiters()
    else rejectWaiters(new ClientError("Protocol", "the subscription ended before its first value"))
    detach()
  }
  const fail = (error: unknown) => {
    flush()
    if (waiters.length > 0) rejectWaiters(error)
    else failure = { error }
    detach()
  }

  const unlisten = cache.subscribe((event: QueryCacheNotifyEvent) => {
    if (event.query !== query) return
    if (over && entries.has(query)) {
      // A newer subscription has the query now, and watches it.
      unlisten()
      return
    }
    switch (event.type) {
      case "observerRemoved":
        if (query.getObserversCount() === 0) scheduleClose()
        return
      case "removed":
        close()
        unlisten()
        return
      case "updated":
        // A fetch's data taken by the cache, older than what came since.
        if (event.action.type === "success" && event.action.manual !== true && has && served !== data) {
          served = data
          write(queryKey, data)
        }
        settle()
        return
    }
  })

  const entry: Entry = {
    serve: (signal) => {
      if (failure !== undefined) {
        // Failed at once (a request that cannot be made), within this fetch.
        const { error } = failure
        failure = undefined
        return Promise.reject(error)
      }
      if (has) {
        served = data
        if (query.getObserversCount() === 0) scheduleClose()
        return Promise.resolve(data)
      }
      if (over) return Promise.reject(new ClientError("Protocol", "the subscription ended before its first value"))
      return new Promise((resolve, reject) => {
        const waiter: Waiter = { resolve, reject }
        waiters.push(waiter)
        signal.addEventListener("abort", () => {
          if (!waiters.includes(waiter)) return
          waiters = waiters.filter((w) => w !== waiter)
          reject(signal.reason)
          if (query.getObserversCount() === 0) scheduleClose()
        }, { once: true })
      })
    }
  }
  entries.set(query, entry)
  write(status, current)
  statusChanged = false

  const callbacks: Callbacks = {
    onData: (value) => {
      if (over) return
      values.push(value)
      queueFlush()
    },
    onDropped: (count) => {
      if (over) return
      setStatus(count === null ? { gaps: current.gaps + 1 } : { dropped: current.dropped + count })
    },
    onState: (state) => {
      setStatus({ state })
      if (over) return
      if (state === "open" && !has && fold.empty !== undefined) {
        // A streamed query has data once open: none yet.
        data = fold.empty
        has = true
        publish()
      } else if (state === "closed") {
        // Neither closed by us nor failed (onError comes first): the subscription ended.
        end()
      }
    },
    onError: (error) => {
      if (!over) fail(error)
    }
  }
  try {
    subscription = subscribe(callbacks)
  } catch (error) {
    fail(error)
  }
  return entry
}
