/**
 * Admission control: past its capacity a server answers new procedure calls
 * `503` with `Retry-After` at once, instead of accepting work it cannot feed
 * (every stream slower, accepts stalling, clients timing out while their
 * streams still run). Capacity is judged, per request, by
 * - the event-loop delay, as `@fastify/under-pressure` does: a loop late by
 *   more than `maxEventLoopDelay` sheds everything new;
 * - how long requests wait for their turn on the request scheduler's queue
 *   (`TurnQueue`): past `maxRequestDelay`, every call already in it is
 *   answered that late, and a new one would only add to the wait;
 * - the event-loop utilization of the last second (opt-in);
 * - how late the process's topics hand values to their subscribers (new
 *   subscriptions only): past `maxFanOutDelay`, another subscriber would
 *   only make every subscriber's values later;
 * - the process's memory (new subscriptions and transfers): past
 *   `maxMemory`, by default 90% of the memory limit the process runs under
 *   (a container's), another stream risks the process for everyone;
 * - limits on subscriptions and on transfers (downloads and exports) open at
 *   once on this transport, and on the transfers of one client.
 * A request whose client has already gone is never started.
 */
import * as Duration from "effect/Duration"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import type * as Procedure from "../../contract/Procedure.ts"
import * as FanOut from "../../core/FanOut.ts"
import * as TurnQueue from "../../core/TurnQueue.ts"

export interface AdmissionOptions {
  /** Most subscriptions open at once. Default 20,000. */
  readonly maxSubscriptions?: number | undefined
  /** Most downloads and exports running at once. Default 256. */
  readonly maxTransfers?: number | undefined
  /**
   * Most downloads and exports one client may run at once, so a few clients
   * cannot hold every transfer, e.g. 32 (the demo's). Off by default: a
   * service downloading in parallel from one address, or every client
   * behind one proxy, would be refused. Clients are told apart by
   * `clientKey`.
   */
  readonly maxTransfersPerClient?: number | undefined
  /**
   * Who a request comes from, for `maxTransfersPerClient`: by default the
   * address of the connection. Behind a proxy or load balancer every request
   * comes from its address: key on what it forwards instead (e.g. the first
   * address of `X-Forwarded-For`, when the proxy sets it), or on the user.
   * `undefined`: not counted per client.
   */
  readonly clientKey?: ((request: HttpServerRequest.HttpServerRequest) => string | undefined) | undefined
  /** Event-loop delay past which new calls are refused; `Infinity` to disable. Default 1 second. */
  readonly maxEventLoopDelay?: Duration.DurationInput | undefined
  /**
   * How long requests may wait for their turn on the request scheduler (the
   * longest wait of the last second) before new calls are refused;
   * `Infinity` to disable. Default 1 second.
   */
  readonly maxRequestDelay?: Duration.DurationInput | undefined
  /**
   * Share of the last second the event loop was busy (0 to 1) past which new
   * subscriptions and transfers are refused, e.g. 0.98. Off by default (as in
   * `@fastify/under-pressure`): a process that also runs other busy work (a
   * test suite calling its own server) would shed its own calls. Node only.
   */
  readonly maxEventLoopUtilization?: number | undefined
  /**
   * How late a topic's values may reach their subscribers (from published to
   * written, the slowest hand-over of the last second) before new
   * subscriptions are refused; `Infinity` to disable. Default 1 second.
   */
  readonly maxFanOutDelay?: Duration.DurationInput | undefined
  /**
   * Resident memory of the process (bytes) past which new subscriptions and
   * transfers are refused, sampled every second. Default: 90% of the limit
   * the process runs under (`process.constrainedMemory()`, a container's
   * cgroup limit), none when it runs under none; `Infinity` to disable.
   * Node only.
   */
  readonly maxMemory?: number | undefined
}

export const defaults = {
  maxSubscriptions: 20_000,
  maxTransfers: 256,
  maxTransfersPerClient: Infinity,
  maxEventLoopDelay: Duration.seconds(1),
  maxRequestDelay: Duration.seconds(1),
  maxEventLoopUtilization: Infinity,
  maxFanOutDelay: Duration.seconds(1),
  /** A share of the memory limit the process runs under, when it runs under one. */
  maxMemoryShare: 0.9
} as const

export type ShedReason =
  | "event_loop_delay"
  | "request_delay"
  | "event_loop_utilization"
  | "fan_out_delay"
  | "memory"
  | "subscriptions"
  | "transfers"
  | "client_transfers"

const sampleMillis = 50

const remoteAddressOf = (request: HttpServerRequest.HttpServerRequest): string | undefined =>
  Option.getOrUndefined(request.remoteAddress)

/**
 * One sampler for the process (the event loop is the process's): a timer that
 * measures how late it fires. It does not keep the process alive.
 */
interface Utilization {
  readonly idle: number
  readonly active: number
  readonly utilization: number
}

type EventLoopUtilization = (current?: Utilization, previous?: Utilization) => Utilization

/** `performance.eventLoopUtilization` where the runtime has it (Node). */
const elu = (globalThis.performance as { eventLoopUtilization?: EventLoopUtilization } | undefined)
  ?.eventLoopUtilization?.bind(globalThis.performance)

interface MemoryProcess {
  readonly memoryUsage?: { readonly rss?: () => number }
  readonly constrainedMemory?: () => number | undefined
}
const memoryProcess = (globalThis as { process?: MemoryProcess }).process
/** The resident memory of the process, where the runtime tells it (Node). */
const rssOf = memoryProcess?.memoryUsage?.rss?.bind(memoryProcess.memoryUsage)

/**
 * The memory limit the process runs under (a container's), or `undefined`:
 * Node reports none as 0 or as the largest 64-bit number.
 */
export const memoryLimit = (): number | undefined => {
  const limit = memoryProcess?.constrainedMemory?.()
  return limit === undefined || limit <= 0 || limit >= 2 ** 53 ? undefined : limit
}

const loop = {
  delay: 0,
  /** Share of the last window (about a second) the loop was busy. */
  utilization: 0,
  /** Resident memory at the end of the last window (bytes). */
  rss: 0,
  started: false,
  start(): void {
    if (this.started) return
    this.started = true
    let expected = Date.now() + sampleMillis
    let window = elu?.()
    let samples = 0
    if (rssOf !== undefined) this.rss = rssOf()
    const timer = setInterval(() => {
      const now = Date.now()
      // The latest lateness, decaying: one slow turn does not shed for long.
      this.delay = Math.max(now - expected, this.delay / 2)
      expected = now + sampleMillis
      if (++samples * sampleMillis >= 1000) {
        samples = 0
        if (elu !== undefined) {
          const current = elu()
          this.utilization = elu(current, window).utilization
          window = current
        }
        if (rssOf !== undefined) this.rss = rssOf()
      }
    }, sampleMillis)
    ;(timer as { unref?: () => void }).unref?.()
  }
}

/**
 * What an admitted call holds while it runs: freed with the request's scope,
 * unless the response is handed over (`keep`), whose owner then frees it.
 */
export interface Slot {
  /** Frees the slot, unless it was kept. Idempotent. */
  readonly release: () => void
  /** The request's scope will not free the slot: the returned function does (idempotent). */
  readonly keep: () => () => void
}

export interface Admission {
  /**
   * Admits a call of `kind` for the lifetime of the request's scope (or of
   * whoever `keep`s its slot), or says why it is shed.
   */
  readonly admit: (
    kind: Procedure.ProcedureKind,
    request?: HttpServerRequest.HttpServerRequest
  ) => Effect.Effect<ShedReason | Slot, never, Scope.Scope>
  /** Why a call of `kind` can be shed by this admission, as configured (its limits that are not `Infinity`). */
  readonly reasons: (kind: Procedure.ProcedureKind) => ReadonlyArray<ShedReason>
  /**
   * Admits a new subscription, or says why it is shed, with no scope: the
   * caller frees the slot (`release`, or the function `keep` returns) when
   * the subscription ends or does not start.
   */
  readonly subscribe: () => ShedReason | Slot
}

const noSlot: Slot = { release: () => {}, keep: () => () => {} }

/** What slots are taken from: a count, and per client when clients are counted. */
class Pool {
  count = 0
  readonly perClient = new Map<string, number>()
  take(client: string | undefined): Counted {
    this.count++
    if (client !== undefined) this.perClient.set(client, (this.perClient.get(client) ?? 0) + 1)
    return new Counted(this, client)
  }
  give(client: string | undefined): void {
    this.count--
    if (client === undefined) return
    const left = this.perClient.get(client)! - 1
    if (left === 0) this.perClient.delete(client)
    else this.perClient.set(client, left)
  }
}

/** A slot taken from a pool: methods on a prototype, one closure only once it is kept. */
class Counted implements Slot {
  /** 0: held by the request's scope; 1: kept by its owner; 2: given back. */
  private state = 0
  constructor(private readonly pool: Pool, private readonly client: string | undefined) {}
  release(): void {
    if (this.state === 0) this.give()
  }
  keep(): () => void {
    if (this.state === 0) this.state = 1
    return () => this.give()
  }
  private give(): void {
    if (this.state === 2) return
    this.state = 2
    this.pool.give(this.client)
  }
}

export const make = (options: AdmissionOptions = {}): Admission => {
  const maxSubscriptions = options.maxSubscriptions ?? defaults.maxSubscriptions
  const maxTransfers = options.maxTransfers ?? defaults.maxTransfers
  const maxDelay = Duration.toMillis(Duration.decode(options.maxEventLoopDelay ?? defaults.maxEventLoopDelay))
  const maxRequestDelay = Duration.toMillis(Duration.decode(options.maxRequestDelay ?? defaults.maxRequestDelay))
  const maxUtilization = options.maxEventLoopUtilization ?? defaults.maxEventLoopUtilization
  const maxFanOutDelay = Duration.toMillis(Duration.decode(options.maxFanOutDelay ?? defaults.maxFanOutDelay))
  const limit = memoryLimit()
  const maxMemory = options.maxMemory ?? (limit === undefined ? Infinity : limit * defaults.maxMemoryShare)
  if (Number.isFinite(maxDelay) || Number.isFinite(maxUtilization) || Number.isFinite(maxMemory)) loop.start()
  const maxPerClient = options.maxTransfersPerClient ?? defaults.maxTransfersPerClient
  const clientKey = options.clientKey ?? remoteAddressOf
  const subscriptions = new Pool()
  const transfers = new Pool()
  // Added to the scope itself: `Effect.addFinalizer` would also restore the fiber's references
  // around the release (two diffs of all of them, per request), which a counter does not need.
  const held = (slot: Counted) =>
    Effect.flatMap(Effect.scope, (scope) => Effect.as(Scope.addFinalizer(scope, Effect.sync(() => slot.release())), slot))
  const finite: Record<ShedReason, boolean> = {
    event_loop_delay: Number.isFinite(maxDelay),
    request_delay: Number.isFinite(maxRequestDelay),
    event_loop_utilization: Number.isFinite(maxUtilization),
    memory: Number.isFinite(maxMemory),
    fan_out_delay: Number.isFinite(maxFanOutDelay),
    subscriptions: Number.isFinite(maxSubscriptions),
    transfers: Number.isFinite(maxTransfers),
    client_transfers: Number.isFinite(maxPerClient)
  }
  const byKind: Record<Procedure.ProcedureKind, ReadonlyArray<ShedReason>> = {
    unary: ["event_loop_delay", "request_delay"],
    subscription: ["event_loop_delay", "request_delay", "event_loop_utilization", "memory", "fan_out_delay", "subscriptions"],
    download: ["event_loop_delay", "request_delay", "event_loop_utilization", "memory", "transfers", "client_transfers"],
    export: ["event_loop_delay", "request_delay", "event_loop_utilization", "memory", "transfers", "client_transfers"]
  }
  /** What sheds a call of any kind (`unary` or not): the loop's and the requests' lateness, utilization, memory. */
  const pressure = (kind: Procedure.ProcedureKind): ShedReason | undefined => {
    if (loop.delay > maxDelay) return "event_loop_delay"
    if (TurnQueue.queueDelay() > maxRequestDelay) return "request_delay"
    if (kind === "unary") return undefined
    if (loop.utilization > maxUtilization) return "event_loop_utilization"
    if (loop.rss > maxMemory) return "memory"
    return undefined
  }
  const subscribe = (): ShedReason | Counted => {
    const shed = pressure("subscription")
    if (shed !== undefined) return shed
    if (FanOut.delay() > maxFanOutDelay) return "fan_out_delay"
    if (subscriptions.count >= maxSubscriptions) return "subscriptions"
    return subscriptions.take(undefined)
  }
  return {
    reasons: (kind) => byKind[kind].filter((reason) => finite[reason]),
    subscribe,
    admit: (kind, request) =>
      Effect.suspend((): Effect.Effect<ShedReason | Slot, never, Scope.Scope> => {
        if (kind === "subscription") {
          const admitted = subscribe()
          return typeof admitted === "string" ? Effect.succeed(admitted) : held(admitted)
        }
        const shed = pressure(kind)
        if (shed !== undefined) return Effect.succeed(shed)
        if (kind === "download" || kind === "export") {
          if (transfers.count >= maxTransfers) return Effect.succeed("transfers" as const)
          const client = request === undefined || maxPerClient === Infinity ? undefined : clientKey(request)
          if (client !== undefined && (transfers.perClient.get(client) ?? 0) >= maxPerClient) {
            return Effect.succeed("client_transfers" as const)
          }
          return held(transfers.take(client))
        }
        return Effect.succeed(noSlot)
      })
  }
}
