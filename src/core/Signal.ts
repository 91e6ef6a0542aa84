/**
 * A wake-up slot for one waiting party (a producer or a consumer of a
 * buffer): whoever waits leaves a callback, whoever makes progress calls
 * `notify`. A fiber waits through a small Effect over `once` and `clear`
 * where it is used (see `BackpressurePolicy`).
 */
export class Signal {
  private waiter: (() => void) | undefined = undefined

  /** Wakes the party waiting, if one is, once. */
  notify(): void {
    const waiter = this.waiter
    if (waiter !== undefined) {
      this.waiter = undefined
      waiter()
    }
  }

  /** Calls `wake` once, at the next `notify`. */
  once(wake: () => void): void {
    this.waiter = wake
  }

  /** Nobody waits any more (a waiting fiber was interrupted). */
  clear(): void {
    this.waiter = undefined
  }
}
