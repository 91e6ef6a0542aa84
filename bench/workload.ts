/**
 * The workload every server implementation serves, defined once so the
 * implementations differ only in their transport, never in their source.
 */

/** Paths every implementation serves. `/download` takes `?bytes=N` (a multiple of `downloadChunkBytes`). */
export const paths = {
  sse: "/sse",
  download: "/download"
} as const

/**
 * Events produced per batch; the source yields to the event loop
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
  readonly ts: number
  readonly pad: string
}

const pad = "x".repeat(27)

/** Quarter prices stay short and exact in JSON. */
export const makeTick = (seq: number, ts: number): Tick => ({
  seq,
  symbol: "ACME",
  price: 100 + (seq % 200) / 4,
  ts,
  pad
})

/** Both implementations serialize with plain `JSON.stringify`. */
export const serializeTick = (tick: Tick): string => JSON.stringify(tick)

/** One batch of ticks, numbered from `firstSeq`; `Date.now()` read once per batch. */
export const makeBatch = (firstSeq: number): Array<Tick> => {
  const ts = Date.now()
  const batch = new Array<Tick>(sseBatchSize)
  for (let i = 0; i < sseBatchSize; i++) batch[i] = makeTick(firstSeq + i, ts)
  return batch
}

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

/** Parses `?bytes=N` of a download request; undefined when absent or not a positive multiple of the chunk. */
export const downloadBytesOf = (url: string): number | undefined => {
  const value = Number(new URL(url, "http://127.0.0.1").searchParams.get("bytes"))
  return Number.isSafeInteger(value) && value > 0 && value % downloadChunkBytes === 0 ? value : undefined
}
