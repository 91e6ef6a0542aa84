/**
 * The suspend policy's buffer: at most `capacity` values between a producer
 * and a consumer. The producer is a callback source (`pushValue`, then
 * `whenSpace`) or a fiber (`BackpressurePolicy.SuspendBuffer`, which adds
 * the Effects that wait); the consumer takes synchronously and is woken by a
 * callback, so a writer that is plain JavaScript (a Node `Readable`) pays no
 * fiber switch per chunk.
 *
 * Values are held in one array of values, not in the `Chunk`s they came in:
 * a `Chunk` object kept as long as a full buffer keeps its values teaches
 * V8 to allocate every `Chunk` of that kind straight in the old generation
 * (allocation-site pretenuring), where the next source chunk it wraps, a
 * fresh 64 KiB buffer, stays alive until a full collection (measured: a
 * download going from 0–1 full collections per GiB to 12–14).
 */
import { Signal } from "./Signal.ts"

/**
 * How the producer ended. Shaped as Effect's `Exit` of a run that returns
 * nothing, so an `Exit<void, E>` is one as it is (its cause a `Cause<E>`).
 */
export type End<C> =
  | { readonly _tag: "Success" }
  | { readonly _tag: "Failure"; readonly cause: C }

export class SuspendBuffer<A, C = unknown> {
  /** Held values, oldest at `head`; emptied slots hold undefined. */
  private values: Array<A | undefined> = []
  private head = 0
  /** Values held. */
  size = 0
  /**
   * Values taken but lent, not yet handed back (`giveBack`): a download's
   * chunks written to the socket and not yet taken by it. They count against
   * the capacity, so what the transfer holds never passes it.
   */
  lent = 0
  /** How the producer ended, once it has. */
  exit: End<C> | undefined = undefined
  /** Wakes the consumer: values or the end are there. */
  protected readonly ready = new Signal()
  /** Wakes the producer: the consumer has taken values. */
  protected readonly space = new Signal()
  /**
   * @param enter what a value becomes as it enters the buffer (a download's
   * chunk copied into a reusable slab, say); as it is by default
   */
  constructor(readonly capacity: number, private readonly enter?: ((value: A) => A) | undefined) {}

  /** Values the producer may still add: the capacity less what is held and what is lent. */
  protected get room(): number {
    return this.capacity - this.size - this.lent
  }

  /** Adds `values[from, to)`, whatever the room (the caller has looked). */
  protected append(array: ReadonlyArray<A>, from: number, to: number): void {
    const values = this.values
    const enter = this.enter
    if (enter === undefined) for (let i = from; i < to; i++) values.push(array[i]!)
    else for (let i = from; i < to; i++) values.push(enter(array[i]!))
    this.size += to - from
  }

  /**
   * Adds values now, whatever the room (a callback source hands over what it
   * has read); returns whether there is room left. When there is not, the
   * source pauses until `whenSpace`.
   */
  pushAll(values: ReadonlyArray<A>): boolean {
    const length = values.length
    if (length > 0) {
      this.append(values, 0, length)
      this.ready.notify()
    }
    return this.room > 0
  }

  /** Adds one value now, whatever the room; as `pushAll`. */
  pushValue(value: A): boolean {
    this.values.push(this.enter === undefined ? value : this.enter(value))
    this.size++
    this.ready.notify()
    return this.room > 0
  }

  /** Calls `wake` once the consumer has taken values (a paused callback source resumes). */
  whenSpace(wake: () => void): void {
    this.space.once(wake)
  }

  /** The producer ended: the consumer takes what is left, then sees `exit`. */
  end(exit: End<C>): void {
    if (this.exit !== undefined) return
    this.exit = exit
    this.ready.notify()
  }

  /**
   * Takes up to `max` values into `out`, oldest first; returns how many. Lent
   * (`lend`), they still count against the capacity until given back.
   */
  takeInto(out: Array<A>, max = Infinity, lend = false): number {
    const taken = Math.min(max, this.size)
    if (taken === 0) return 0
    const values = this.values
    let head = this.head
    const end = head + taken
    for (; head < end; head++) {
      out.push(values[head] as A)
      values[head] = undefined
    }
    this.size -= taken
    if (this.size === 0) {
      this.values = []
      this.head = 0
    } else if (head > 1024 && head * 2 > values.length) {
      this.values = values.slice(head)
      this.head = 0
    } else {
      this.head = head
    }
    if (lend) this.lent += taken
    else this.space.notify()
    return taken
  }

  /** `count` lent values are done with: their room is the producer's again. */
  giveBack(count: number): void {
    if (count <= 0) return
    this.lent -= count
    this.space.notify()
  }

  /** Calls `wake` once values or the end are there: at once if they already are. */
  whenReady(wake: () => void): void {
    if (this.size > 0 || this.exit !== undefined) wake()
    else this.ready.once(wake)
  }
}
