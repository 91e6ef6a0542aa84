/**
 * The contract between the runner and a server implementation
 * (`bench/servers/<impl>.ts`), which runs in its own process:
 * - listen on 127.0.0.1, port 0;
 * - print `{"port":N,"routes":{...}}` as its first line on stdout once it
 *   accepts requests (`announce`): the routes say how a client of that
 *   implementation asks for each scenario's stream (method, path, body), so
 *   the load generator never needs to know the peer's protocol;
 * - answer `stats` lines on stdin with one `{"stats":{...}}` line on stdout:
 *   its memory after a full garbage collection (the runner starts servers
 *   with `--expose-gc`);
 * - exit on SIGTERM / SIGINT, and when the runner dies (its stdin closes);
 * - anything else goes to stderr, which the runner shows only on failure.
 */

/**
 * The streams of the scenarios. A server leaves out what it does not serve.
 * - `ticks`: the full-speed source (throughput);
 * - `slow`: what the slow-consumer scenario subscribes to (default: `ticks`);
 * - `idle`: a subscription to the quiet feed (the latest tick, then nothing);
 * - `fanout`: a subscription to the live feed (`fanoutRate` ticks per second);
 * - `sparse`: a subscription to the sparse feed (`sparseRate` ticks per second;
 *   the 20,000-subscriber fan-out);
 * - `keyed`: a subscription to ONE key of the keyed feed (`keyed()`): `{key}`
 *   in `path` or `body` is replaced by the load generator, per subscriber;
 * - `symbol`: a subscription to ONE symbol of the symbol feed (`symbols()`):
 *   `{key}` in `path` or `body` is replaced by the load generator (`s0` … `s9`);
 * - `mux`: ONE connection carrying a subscription to EVERY symbol of the
 *   symbol feed (`s0` … `s9`), each event of a subscription preceded by a
 *   `sub: <symbol>` line whenever the subscription changes (wire protocol
 *   v1.1; the subscription ids are the symbols);
 * - `storm`: a subscription to the live feed (`{feed}` in `path`: `fanout`)
 *   or the sparse one (`sparse`), served as for `fanout` and `sparse`, on a
 *   server that also answers `GET /health` (200 while serving) and
 *   `GET /metrics` (Prometheus text) as an application would. The
 *   reconnect-storm scenarios start it with `BENCH_DEFAULTS=1` in its
 *   environment: a server with settings of its own for the bench (ours
 *   sheds nothing) then runs as an application that configures nothing
 *   (`BENCH_MAX_SUBSCRIPTIONS=n` when the storm needs more open
 *   subscriptions than a default allows);
 * - `fanoutInstances`: a subscription to the live feed on a topic that
 *   several processes of the implementation can share (the runner starts
 *   them, each told where through its environment: `fanout-redis`);
 * - `download`: `{bytes}` bytes of `application/octet-stream`;
 * - `exportCsv`, `exportNdjson`, `exportJson`: `{rows}` rows (JSON: a streamed
 *   array, `[`, one row per line separated by commas, `]`).
 */
export type RouteName =
  | "ticks"
  | "slow"
  | "idle"
  | "fanout"
  | "sparse"
  | "keyed"
  | "symbol"
  | "mux"
  | "storm"
  | "fanoutInstances"
  | "download"
  | "exportCsv"
  | "exportNdjson"
  | "exportJson"

/**
 * One way to request a stream. `{bytes}`, `{rows}` and `{feed}` in `path` or
 * `body` are replaced by the runner, `{key}` by the load generator.
 */
export interface Route {
  readonly method?: "GET" | "POST"
  readonly path: string
  readonly body?: string
  readonly headers?: Readonly<Record<string, string>>
  /** Shown next to the implementation's name when a scenario has several (e.g. `on(emitter)`). */
  readonly variant?: string
}

export type Routes = { readonly [K in RouteName]?: Route | ReadonlyArray<Route> }

export interface Announcement {
  readonly port: number
  readonly routes: Routes
}

export interface Stats {
  readonly rss: number
  readonly heapUsed: number
  readonly heapTotal: number
  readonly external: number
  readonly arrayBuffers: number
}

/**
 * The listen backlog of every bench server: Node's default (511) drops the
 * SYNs of a storm's burst past it, and a dropped SYN is retried by the
 * client's kernel after 1, 3, 7, 15 s, so a storm would measure TCP's
 * retransmission backoff rather than the server. The kernel caps it at
 * `net.core.somaxconn` (4,096 here). The demo listens with the same.
 */
export const listenBacklog = 4096

/** Announces the port and routes to the runner. Call once, after the server listens and routes. */
export const announce = (port: number, routes: Routes): void => {
  process.stdout.write(`${JSON.stringify({ port, routes } satisfies Announcement)}\n`)
}

const gc = (globalThis as { gc?: () => void }).gc

const stats = (): Stats => {
  if (gc !== undefined) {
    // Twice: the first pass may only unlink what the second frees (weak refs, finalizers).
    gc()
    gc()
  }
  const m = process.memoryUsage()
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers }
}

/** Installs the exit rules and the `stats` command. Call first thing in a server module. */
export const exitWithRunner = (): void => {
  const exit = () => process.exit(0)
  process.on("SIGTERM", exit)
  process.on("SIGINT", exit)
  // The runner holds the write end of our stdin; it closes when the runner dies.
  process.stdin.on("end", exit)
  process.stdin.on("close", exit)
  process.stdin.on("error", exit)
  let pending = ""
  process.stdin.setEncoding("utf8").on("data", (text: string) => {
    pending += text
    let newline: number
    while ((newline = pending.indexOf("\n")) >= 0) {
      const command = pending.slice(0, newline).trim()
      pending = pending.slice(newline + 1)
      if (command === "stats") process.stdout.write(`${JSON.stringify({ stats: stats() })}\n`)
    }
  })
}

/** Reports a startup failure loudly and exits non-zero. */
export const fail = (what: string, error: unknown): never => {
  process.stderr.write(`${what}: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
}

/** A JSON payload as a URL query value. */
export const query = (value: unknown): string => encodeURIComponent(JSON.stringify(value))

/** `query` with `{placeholder}` kept literal, so the runner can substitute it. */
export const queryWith = (value: unknown, ...placeholders: ReadonlyArray<string>): string => {
  let text = query(value)
  for (const p of placeholders) text = text.replaceAll(encodeURIComponent(`"{${p}}"`), `{${p}}`)
  return text
}
