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
