/**
 * What the reliability cases share: a group served on a loopback port with
 * its sockets and the bytes it read counted, the figures a leak shows up in
 * (heap after a full GC, the active-streams gauge, live Effect fibers,
 * handles), and a bounded wait on a condition.
 *
 * Used by the fast versions (`test/reliability/`, in `npm test` and
 * `npm run test:slow`) and by the soak run (`npm run soak`) with larger counts.
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import type * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as RuntimeFlagsPatch from "effect/RuntimeFlagsPatch"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import type * as Net from "node:net"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import * as HttpTransport from "../../src/server/HttpTransport.ts"
import * as MetricsService from "../../src/server/MetricsService.ts"
import { eventually } from "../support/eventually.ts"

export interface Served {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string
  /** `<origin>/rpc` */
  readonly url: string
  readonly port: number
  readonly server: Http.Server
  /** Sockets open on the server side now. */
  readonly sockets: () => number
  /** Bytes the server read from all its sockets, open or closed (`socket.bytesRead`). */
  readonly bytesRead: () => number
}

/**
 * Serves `group` with `handlers` (and `MetricsService`) on 127.0.0.1 for the
 * lifetime of the scope. The request fibers run with Effect's runtime
 * metrics on, so `fiberCount()` sees them.
 */
export const serve = <Rpcs extends Rpc.Any, E>(
  group: RpcGroup.RpcGroup<Rpcs>,
  handlers: Layer.Layer<Rpc.ToHandler<Rpcs> | Rpc.Middleware<Rpcs>, E>,
  options?: HttpTransport.Options
): Effect.Effect<Served, E, Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Layer.build(Layer.merge(handlers, MetricsService.layer))
    const app = yield* HttpTransport.toHttpApp(group, options).pipe(Effect.provide(context))
    const node = Http.createServer()
    const open = new Set<Net.Socket>()
    let closedBytes = 0
    node.on("connection", (socket: Net.Socket) => {
      open.add(socket)
      socket.on("close", () => {
        open.delete(socket)
        closedBytes += socket.bytesRead
      })
    })
    const server = yield* NodeHttpServer.make(() => node, { port: 0, host: "127.0.0.1" }).pipe(Effect.orDie)
    yield* server.serve(app as HttpApp.Default<never, Scope.Scope>).pipe(
      Effect.withRuntimeFlagsPatch(RuntimeFlagsPatch.enable(RuntimeFlags.RuntimeMetrics))
    )
    const port = (server.address as HttpServer.TcpAddress).port
    const origin = `http://127.0.0.1:${port}`
    return {
      origin,
      url: `${origin}/rpc`,
      port,
      server: node,
      sockets: () => open.size,
      bytesRead: () => {
        let bytes = closedBytes
        for (const socket of open) bytes += socket.bytesRead
        return bytes
      }
    }
  })

/** Keeps the output readable: the servers' "stream closed" lines are not printed. */
export const quiet = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provide(self, Logger.minimumLogLevel(LogLevel.None))

// ---------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------

/** The active-streams gauge of `MetricsService` for one kind and stream name. */
export const activeStreams = (kind: MetricsService.StreamKind, name: string): number =>
  Effect.runSync(Metric.value(MetricsService.labelled(MetricsService.metrics.active, kind, name))).value

/** Fibers alive with runtime metrics on (`effect_fiber_active` in `Metric.snapshot`). */
export const fiberCount = (): number => {
  let count = 0
  for (const pair of Effect.runSync(Metric.snapshot)) {
    if (pair.metricKey.name !== "effect_fiber_active") continue
    const state = pair.metricState as unknown as { readonly count?: number | bigint }
    count += Number(state.count ?? 0)
  }
  return count
}

/** Handles keeping the event loop alive: sockets, servers, timers, child processes. */
export const handleCount = (): number =>
  (process as unknown as { _getActiveHandles: () => ReadonlyArray<unknown> })._getActiveHandles().length

let collect: (() => void) | undefined

/** A full garbage collection (exposed at run time, so no `--expose-gc` is needed). */
export const gc = (): void => {
  if (collect === undefined) {
    v8.setFlagsFromString("--expose-gc")
    collect = vm.runInNewContext("gc") as () => void
  }
  collect()
}

/** Heap in use after full collections, in bytes. */
export const settledHeap = async (): Promise<number> => {
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  gc()
  return process.memoryUsage().heapUsed
}

/**
 * Waits for `predicate` (the tests' one `eventually`) at most `timeoutMs`, then goes on either way:
 * true if it held. What did not happen shows in the case's report instead of ending the run.
 */
export const waitUpTo = (predicate: () => boolean, timeoutMs = 10_000): Promise<boolean> =>
  eventually(predicate, timeoutMs).then(() => true, () => false)

/** Runs `task(i)` for i in [0, count) with at most `concurrency` at once. */
export const pool = async (count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> => {
  let next = 0
  const worker = async () => {
    while (next < count) await task(next++)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
}

/** Rejects with `message` if `promise` has not settled within `ms`: a hang is a failure, not a stuck run. */
export const within = <A>(promise: Promise<A>, ms: number, message: string): Promise<A> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${message} (no answer within ${ms} ms)`)), ms)
    })
  ]).finally(() => clearTimeout(timer))
}

export const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`
