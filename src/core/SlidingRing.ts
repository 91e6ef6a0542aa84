/**
 * The sliding policy's ring: a fixed number of the newest values, the
 * oldest overwritten and counted, so a consumer learns exactly how many
 * values it missed (delivered + dropped = produced).
 */

/** What a sliding consumer receives: the values it missed, then the newest values. */
export interface SlidingBatch<A> {
  /** Values missed before `values`: overwritten here, or reported by the producer as `MissedValues`. */
  readonly dropped: number
  /** The producer reported a gap whose size it cannot know (e.g. a cursor from before a restart). */
  readonly unknownGap: boolean
  /** How many `tick` intervals passed since the last batch (see `BackpressurePolicy.sliding`'s `tick` option). */
  readonly ticks: number
  readonly values: ReadonlyArray<A>
}

/** Fixed-size ring that overwrites its oldest value and counts what it overwrote. */
export class SlidingRing<A> {
  /** Allocated with the first value: an idle subscription holds none. */
  private items: Array<A | undefined> | undefined = undefined
  private start = 0
  size = 0
  dropped = 0
  unknownGap = false
  ticks = 0
  constructor(readonly capacity: number) {}
  pushAll(values: ReadonlyArray<A>, start = 0): void {
    const capacity = this.capacity
    const items = this.items ??= new Array<A | undefined>(capacity)
    let from = start
    if (values.length - start > capacity) {
      // Values that cannot fit even in an empty ring are dropped without being copied.
      from = values.length - capacity
      this.dropped += from - start
    }
    for (let i = from; i < values.length; i++) {
      if (this.size === capacity) {
        items[this.start] = values[i]
        this.start = (this.start + 1) % capacity
        this.dropped++
      } else {
        items[(this.start + this.size) % capacity] = values[i]
        this.size++
      }
    }
  }
  take(): SlidingBatch<A> {
    const values = new Array<A>(this.size)
    const items = this.items
    if (items !== undefined) {
      for (let i = 0; i < this.size; i++) {
        const index = (this.start + i) % this.capacity
        values[i] = items[index] as A
        items[index] = undefined
      }
    }
    const batch: SlidingBatch<A> = { dropped: this.dropped, unknownGap: this.unknownGap, ticks: this.ticks, values }
    this.start = 0
    this.size = 0
    this.dropped = 0
    this.unknownGap = false
    this.ticks = 0
    return batch
  }
}
