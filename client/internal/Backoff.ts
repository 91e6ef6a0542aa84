/**
 * When a subscription tries again: its reconnection settings with their
 * defaults, exponential backoff with full jitter, and a sleep that a close
 * cuts short. Shared by a subscription's own connection (v1) and the
 * multiplexed one (v1.1).
 */
import { defaults, type SubscribeOptions } from "../Subscription.ts"

/** HTTP statuses of a subscription request that are retried (a proxy or a server restarting). */
export const transientStatuses: ReadonlySet<number> = new Set([502, 503, 504])

export interface Settings {
  readonly initialDelayMs: number
  readonly maxDelayMs: number
  readonly maxAttempts: number
  readonly heartbeatTimeoutMs: number
  readonly maxEventSize: number
}

export const settingsOf = (options: SubscribeOptions<unknown, unknown>): Settings => ({
  initialDelayMs: Math.max(0, options.reconnect?.initialDelayMs ?? defaults.initialDelayMs),
  maxDelayMs: Math.max(0, options.reconnect?.maxDelayMs ?? defaults.maxDelayMs),
  maxAttempts: options.reconnect?.maxAttempts ?? defaults.maxAttempts,
  heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? defaults.heartbeatTimeoutMs,
  maxEventSize: options.maxEventSize ?? defaults.maxEventSize
})

/**
 * The wait before attempt `failures + 1`: uniform between 0 and
 * `base · 2^(failures − 1)` (full jitter), at most `maxDelayMs`. `base` is the
 * server's `retry:` when it sent one, else `initialDelayMs`.
 */
export const delay = (failures: number, base: number, maxDelayMs: number): number =>
  Math.random() * Math.min(maxDelayMs, base * 2 ** Math.max(0, failures - 1))

/**
 * The wait before trying again after a failure that may have said when
 * (`retryAfterMs`: a `503`'s `Retry-After`): that long, plus the jittered
 * backoff (`delay`). Clients refused together come back spread out over
 * the backoff after the time the server asked for, not all at that instant.
 * The `Retry-After` part is at most `maxDelayMs`.
 */
export const retryWait = (failures: number, base: number, maxDelayMs: number, retryAfterMs: number | undefined): number =>
  Math.min(retryAfterMs ?? 0, maxDelayMs) + delay(failures, base, maxDelayMs)

/** A `Retry-After` in seconds (the only form the server sends), in milliseconds; else `undefined`. */
export const retryAfterOf = (response: Response): number | undefined => {
  const header = response.headers.get("retry-after")
  if (header === null || !/^\s*\d+\s*$/.test(header)) return undefined
  return Number(header) * 1000
}

/** Resolves after `millis`, or at once when `signal` aborts. */
export const sleep = (millis: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener("abort", done)
      resolve()
    }
    const timer = setTimeout(done, millis)
    signal.addEventListener("abort", done)
  })

/** A heartbeat watchdog: aborts `controller` when `arm` is not called again within `millis()`. */
export interface Watchdog {
  /** (Re)starts the countdown: a byte arrived, or reading starts. */
  readonly arm: () => void
  /** Stops it: the silence is ours (reading paused) or the connection is over. */
  readonly disarm: () => void
  /** Whether it has fired. */
  readonly timedOut: boolean
}

export const watchdog = (controller: AbortController, millis: () => number): Watchdog => {
  let timer: ReturnType<typeof setTimeout> | undefined
  let timedOut = false
  const disarm = () => {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
  }
  return {
    arm: () => {
      disarm()
      timer = setTimeout(() => {
        timedOut = true
        controller.abort()
      }, millis())
    },
    disarm,
    get timedOut() {
      return timedOut
    }
  }
}
