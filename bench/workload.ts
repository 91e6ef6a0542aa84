/**
 * The workload every server implementation serves, defined once so the
 * implementations differ only in their transport, never in their source.
 *
 * Sources are realistic: they yield to the event loop the way I/O, timers or
 * a PubSub do. A source that never yields would starve the event loop
 * (corked sockets never flush), and no real source behaves that way.
 */

import { Readable } from "node:stream"

/**
 * Microseconds of the machine's monotonic clock (CLOCK_MONOTONIC, shared by
 * every process of the machine): the server stamps an event with it, the load
 * process subtracts it from its own reading on arrival.
 */
export const nowMicros = (): number => Number(process.hrtime.bigint() / 1000n)

/**
 * Events produced per batch; the full-speed source yields to the event loop
 * (`setImmediate`) between batches. 64 is the library's sliding capacity for
 * subscriptions: a larger batch would overflow the ring as soon as it is pushed
 * and be dropped by construction, whatever the consumer's speed.
 */
export const sseBatchSize = 64

/** A tick of the benchmark's market feed: ~100 bytes of JSON. */
export interface Tick {
  readonly seq: number
  readonly symbol: string
  readonly price: number
  /** `nowMicros()` when the tick was produced. */
  readonly ts: number
  readonly pad: string
}

const pad = "x".repeat(30)

/** Quarter prices stay short and exact in JSON. */
export const makeTick = (seq: number, ts: number, symbol = "ACME"): Tick => ({
  seq,
  symbol,
  price: 100 + (seq % 200) / 4,
  ts,
  pad
})

/** Every implementation serializes with plain `JSON.stringify` (schema-based ones encode first). */
export const serializeTick = (tick: Tick): string => JSON.stringify(tick)

/** One batch of ticks, numbered from `firstSeq`; the clock is read once per batch. */
export const makeBatch = (firstSeq: number): Array<Tick> => {
  const ts = nowMicros()
  const batch = new Array<Tick>(sseBatchSize)
  for (let i = 0; i < sseBatchSize; i++) batch[i] = makeTick(firstSeq + i, ts)
  return batch
}

/** One event-loop turn: lets I/O callbacks (socket writes, `drain`) run. */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/**
 * The full-speed source as an async generator (what tRPC and oRPC handlers
 * are): batches of `sseBatchSize`, an event-loop turn between batches. Pulled:
 * it produces only as fast as its consumer asks.
 */
export async function* tickGenerator(signal?: AbortSignal): AsyncGenerator<Tick> {
  let seq = 0
  while (signal?.aborted !== true) {
    const batch = makeBatch(seq)
    seq += batch.length
    for (const tick of batch) yield tick
    await nextTurn()
  }
}

/**
 * The full-speed source as a push source (an emitter, a feed): calls `emit`
 * for every tick, a batch per event-loop turn, until stopped. It does not
 * wait for anyone.
 */
export const pumpTicks = (emit: (tick: Tick) => void): (() => void) => {
  let seq = 0
  let stopped = false
  const pump = (): void => {
    if (stopped) return
    const batch = makeBatch(seq)
    seq += batch.length
    for (let i = 0; i < batch.length && !stopped; i++) emit(batch[i]!)
    setImmediate(pump)
  }
  setImmediate(pump)
  return () => {
    stopped = true
  }
}

/**
 * A server-wide feed for the idle and fan-out scenarios: a new subscriber
 * first gets the latest tick (a live view starts from the current state),
 * then every tick the feed publishes. `quiet` publishes nothing (idle
 * subscriptions); `live` publishes `fanoutRate` ticks per second, `sparse`
 * `sparseRate` per second (the 20,000-subscriber scenario), each stamped with
 * `nowMicros()` when published.
 */
export interface Feed {
  readonly latest: () => Tick
  /** Called with every published tick; returns the unsubscribe function. */
  readonly onTick: (listener: (tick: Tick) => void) => () => void
}

export const fanoutRate = 10

/** Ticks per second of the feed of the wide fan-out (20,000 subscribers). */
export const sparseRate = 1

const makeFeed = (eventsPerSecond: number): Feed => {
  let seq = 0
  let latest = makeTick(seq++, nowMicros())
  const listeners = new Set<(tick: Tick) => void>()
  if (eventsPerSecond > 0) {
    const timer = setInterval(() => {
      latest = makeTick(seq++, nowMicros())
      for (const listener of listeners) listener(latest)
    }, 1000 / eventsPerSecond)
    timer.unref()
  }
  return {
    latest: () => ({ ...latest, ts: nowMicros() }),
    onTick: (listener) => {
      listeners.add(listener)
      return () => {
        listeners.delete(listener)
      }
    }
  }
}

let quietFeed: Feed | undefined
let liveFeed: Feed | undefined
/** The feed of the idle scenario: publishes nothing. */
export const quiet = (): Feed => (quietFeed ??= makeFeed(0))
/** The feed of the fan-out scenario: `fanoutRate` ticks per second. */
export const live = (): Feed => (liveFeed ??= makeFeed(fanoutRate))
let sparseFeed: Feed | undefined
/** The feed of the wide fan-out scenario: `sparseRate` ticks per second. */
export const sparse = (): Feed => (sparseFeed ??= makeFeed(sparseRate))

// ---------------------------------------------------------------- keyed feed

/** Keys of the keyed feed: `k0` … `k999`; a subscriber watches one. */
export const keyCount = 1000
/** Ticks per second the keyed feed publishes in total, across its keys. */
export const keyedRate = 10_000
/** The keyed feed publishes a batch every `keyedIntervalMs`. */
export const keyedIntervalMs = 10
const keyedBatchSize = (keyedRate * keyedIntervalMs) / 1000

/** The key of the keyed feed's tick `seq` (its `symbol`): keys take turns, so each gets `keyedRate / keyCount` ticks/s. */
export const keyOf = (seq: number): string => `k${seq % keyCount}`

/**
 * A feed of ticks spread over `keyCount` keys (the tick's `symbol`):
 * `keyedRate` ticks per second in batches of `keyedBatchSize` every
 * `keyedIntervalMs`, each batch stamped once with `nowMicros()`. A new
 * subscriber to a key first gets the key's latest tick, then every tick of
 * that key.
 */
export interface KeyedFeed {
  /** The latest tick of `key` (restamped), or undefined for a key the feed never published. */
  readonly latest: (key: string) => Tick | undefined
  /** Called with every published batch (ticks of `keyedBatchSize` different keys); returns the unsubscribe function. */
  readonly onBatch: (listener: (batch: ReadonlyArray<Tick>) => void) => () => void
}

/**
 * A feed publishing `batchSize` ticks every `intervalMs` ms, the tick `seq`
 * under key `keyOf(seq)`, each batch stamped once with `nowMicros()`; every
 * one of `keyCount` keys has a latest tick before anyone subscribes.
 */
const makeBatchFeed = (options: {
  readonly batchSize: number
  readonly intervalMs: number
  readonly keyCount: number
  readonly keyOf: (seq: number) => string
}): KeyedFeed => {
  let seq = 0
  const latest = new Map<string, Tick>()
  const publish = (): Array<Tick> => {
    const ts = nowMicros()
    const batch = new Array<Tick>(options.batchSize)
    for (let i = 0; i < options.batchSize; i++) {
      const tick = makeTick(seq, ts, options.keyOf(seq))
      seq++
      latest.set(tick.symbol, tick)
      batch[i] = tick
    }
    return batch
  }
  while (seq < options.keyCount) publish()
  const listeners = new Set<(batch: ReadonlyArray<Tick>) => void>()
  const timer = setInterval(() => {
    const batch = publish()
    for (const listener of listeners) listener(batch)
  }, options.intervalMs)
  timer.unref()
  return {
    latest: (key) => {
      const tick = latest.get(key)
      return tick === undefined ? undefined : { ...tick, ts: nowMicros() }
    },
    onBatch: (listener) => {
      listeners.add(listener)
      return () => {
        listeners.delete(listener)
      }
    }
  }
}

const makeKeyedFeed = (): KeyedFeed => makeBatchFeed({ batchSize: keyedBatchSize, intervalMs: keyedIntervalMs, keyCount, keyOf })

let keyedFeed: KeyedFeed | undefined
/** The keyed feed, started on first use (it costs CPU: servers call it on the first keyed request). */
export const keyed = (): KeyedFeed => (keyedFeed ??= makeKeyedFeed())

/** The `?key=` of a request, or undefined. */
export const keyParam = (url: string): string | undefined =>
  new URL(url, "http://127.0.0.1").searchParams.get("key") ?? undefined

// ---------------------------------------------------------------- symbol feed (multiplexed subscriptions)

/** Symbols of the symbol feed: `s0` … `s9`; a multiplexed client watches all of them on one connection. */
export const symbolCount = 10
/** Ticks per second of each symbol (the rate of each subscription of the `mux` scenario). */
export const symbolRate = 1
/** The symbol of the symbol feed's tick `seq`: symbols take turns, so the ticks of one symbol are `symbolCount` apart. */
export const symbolOf = (seq: number): string => `s${seq % symbolCount}`

/**
 * A feed of `symbolCount` symbols, `symbolRate` ticks per second each, at
 * evenly spread moments: one symbol's tick every `1000 / (symbolCount *
 * symbolRate)` ms, in turn, stamped with `nowMicros()` when published (a
 * market feed's symbols change at different moments). Same interface as the
 * keyed feed (batches of one tick): a new subscriber to a symbol first gets
 * its latest tick, then every tick of that symbol.
 */
const makeSymbolFeed = (): KeyedFeed =>
  makeBatchFeed({ batchSize: 1, intervalMs: 1000 / (symbolCount * symbolRate), keyCount: symbolCount, keyOf: symbolOf })

let symbolFeed: KeyedFeed | undefined
/** The symbol feed, started on first use. */
export const symbols = (): KeyedFeed => (symbolFeed ??= makeSymbolFeed())

// ---------------------------------------------------------------- downloads

/** Size of each buffer of a download source (what a file read would hand over). */
export const downloadChunkBytes = 64 * 1024

const pattern: Uint8Array = new Uint8Array(downloadChunkBytes).map((_, i) => i & 0xff)

/**
 * The next buffer of a download: a fresh 64 KiB copy, as a file read would
 * hand over (allocation and one copy per chunk, the same for every
 * implementation). A shared buffer would hide what an implementation holds in
 * flight: with fresh buffers, the server's RSS growth shows it.
 */
export const downloadChunk = (): Uint8Array => {
  const chunk = Buffer.allocUnsafeSlow(downloadChunkBytes)
  chunk.set(pattern)
  return chunk
}

/**
 * A download source as a Node `Readable`: `bytes / downloadChunkBytes` fresh
 * buffers, one per `read()` (what a file read stream hands over). The raw
 * baseline pipes it to the response; ours serves it with `fromReadable`.
 */
export const downloadReadable = (bytes: number): Readable => {
  let left = Math.ceil(bytes / downloadChunkBytes)
  return new Readable({
    read() {
      if (left === 0) {
        this.push(null)
        return
      }
      left--
      this.push(downloadChunk())
    }
  })
}

// ---------------------------------------------------------------- exports

/**
 * A row of the export scenarios: a Date (encoded as its ISO string) and an
 * optional field (present on every third row), one column quoted in CSV every
 * tenth row.
 */
export interface Row {
  readonly id: number
  readonly customer: string
  readonly total: number
  readonly createdAt: Date
  readonly status: string
  readonly note?: string
}

export const rowColumns = ["id", "customer", "total", "createdAt", "status", "note"] as const

/** Rows per page of the source, as a database cursor would hand them over. */
export const rowPageSize = 128

const firstDay = Date.UTC(2026, 0, 1)
const statuses = ["paid", "open", "refunded"]

/** A fresh row, with a fresh Date, as a database driver hands it over. */
export const makeRow = (id: number): Row => {
  const row: { -readonly [K in keyof Row]: Row[K] } = {
    id,
    customer: id % 10 === 0 ? `Doe, Jane ${id % 997}` : `customer-${id % 997}`,
    total: (id % 100_000) / 100,
    createdAt: new Date(firstDay + (id % 1000) * 86_400_037),
    status: statuses[id % statuses.length]!
  }
  if (id % 3 === 0) row.note = `call back ${id % 7}`
  return row
}

/** The page of rows starting at `firstId`, at most `rowPageSize`, never past `total`. */
export const makePage = (firstId: number, total: number): Array<Row> => {
  const count = Math.max(0, Math.min(rowPageSize, total - firstId))
  const page = new Array<Row>(count)
  for (let i = 0; i < count; i++) page[i] = makeRow(firstId + i)
  return page
}

/** A positive integer query parameter (`?bytes=`, `?rows=`), or undefined. */
export const intParam = (url: string, name: string): number | undefined => {
  const value = Number(new URL(url, "http://127.0.0.1").searchParams.get(name))
  return Number.isSafeInteger(value) && value > 0 ? value : undefined
}
