/**
 * Test support: the demo server (`examples/demo/server.ts`) as a real child
 * process — `node --import tsx`, exactly what `npm start` runs — and a TCP
 * proxy that can cut every connection going through it.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Net from "node:net"
import { fileURLToPath } from "node:url"
import WebSocket from "ws"

const root = fileURLToPath(new URL("../../", import.meta.url))

export interface DemoProcess {
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  readonly port: number
  readonly pid: number
  /** Everything the process wrote to stdout and stderr so far. */
  readonly output: () => string
  /** Resolves with the exit code (or the signal) once the process has exited. */
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  /**
   * Sends `signal` (default SIGTERM) and waits for the exit. If the process is
   * still alive after `timeoutMs`, it is killed with SIGKILL and this rejects.
   */
  readonly stop: (options?: { readonly signal?: NodeJS.Signals; readonly timeoutMs?: number }) => Promise<{
    readonly code: number | null
    readonly signal: NodeJS.Signals | null
  }>
  /**
   * A full garbage collection in the server, through its inspector (started
   * with `inspect: true`; rejects otherwise): memory figures "after GC".
   */
  readonly collectGarbage: () => Promise<void>
}

export interface DemoOptions {
  /** Default 0: a free port, read back from the "Listening on" log line. */
  readonly port?: number
  /** PRICES_PER_SECOND, per symbol. */
  readonly pricesPerSecond?: number
  /** SHUTDOWN_DEADLINE_MS. Default 5000. */
  readonly shutdownDeadlineMs?: number
  /** How long to wait for "Listening on". Default 60 s. */
  readonly startTimeoutMs?: number
  /** More environment variables (e.g. REDIS_URL). */
  readonly env?: Readonly<Record<string, string>>
  /** Starts the process with its inspector on a free loopback port, for `collectGarbage`. */
  readonly inspect?: boolean
}

/** Children still running, killed if the test process exits without stopping them. */
const running = new Set<ChildProcess>()
let exitHookInstalled = false
const installExitHook = () => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once("exit", () => {
    for (const child of running) child.kill("SIGKILL")
  })
}

/** Spawns the demo server and resolves once it listens. */
export const startDemo = (options: DemoOptions = {}): Promise<DemoProcess> => {
  installExitHook()
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(options.port ?? 0),
    SHUTDOWN_DEADLINE_MS: String(options.shutdownDeadlineMs ?? 5_000),
    ...options.env
  }
  if (options.pricesPerSecond !== undefined) env["PRICES_PER_SECOND"] = String(options.pricesPerSecond)
  // DEMO_NODE_FLAGS: Node flags for the demo process, e.g. "--cpu-prof --cpu-prof-dir=profiles" to profile a soak case.
  const flags = (process.env["DEMO_NODE_FLAGS"] ?? "").split(" ").filter((flag) => flag !== "")
  if (options.inspect === true) flags.push("--inspect=127.0.0.1:0")
  const child = spawn(process.execPath, [...flags, "--import", "tsx", "examples/demo/server.ts"], {
    cwd: root,
    env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  running.add(child)
  let output = ""
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      running.delete(child)
      resolve({ code, signal })
    })
  })

  return new Promise<DemoProcess>((resolve, reject) => {
    let settled = false
    const fail = (message: string) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      child.kill("SIGKILL")
      reject(new Error(`${message}\n--- demo server output ---\n${output}`))
    }
    const timer = setTimeout(
      () => fail(`the demo server did not log "Listening on" within ${options.startTimeoutMs ?? 60_000} ms`),
      options.startTimeoutMs ?? 60_000
    )
    const onOutput = (bytes: Buffer) => {
      output += bytes.toString("utf8")
      const listening = /Listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(output)
      if (listening === null || settled) return
      settled = true
      clearTimeout(timer)
      const port = Number(listening[1])
      const stop: DemoProcess["stop"] = async (stopOptions = {}) => {
        if (child.exitCode === null && child.signalCode === null) child.kill(stopOptions.signal ?? "SIGTERM")
        const timeoutMs = stopOptions.timeoutMs ?? 20_000
        let timeout: ReturnType<typeof setTimeout> | undefined
        const result = await Promise.race([
          exited,
          new Promise<"timeout">((r) => {
            timeout = setTimeout(() => r("timeout"), timeoutMs)
          })
        ])
        clearTimeout(timeout)
        if (result === "timeout") {
          child.kill("SIGKILL")
          await exited
          throw new Error(`the demo server did not exit within ${timeoutMs} ms of ${stopOptions.signal ?? "SIGTERM"}\n${output}`)
        }
        return result
      }
      const inspector = /Debugger listening on (ws:\/\/\S+)/.exec(output)?.[1]
      resolve({
        url: `http://127.0.0.1:${port}`,
        port,
        pid: child.pid!,
        output: () => output,
        exited,
        stop,
        collectGarbage: () =>
          inspector === undefined
            ? Promise.reject(new Error("the demo server was not started with inspect: true"))
            : collectGarbage(inspector)
      })
    }
    child.stdout!.on("data", onOutput)
    child.stderr!.on("data", onOutput)
    child.once("error", (error) => fail(`the demo server could not be spawned: ${error.message}`))
    void exited.then(({ code, signal }) => fail(`the demo server exited before listening (code ${code}, signal ${signal})`))
  })
}

/** `HeapProfiler.collectGarbage` over the inspector's WebSocket (Chrome DevTools Protocol). */
const collectGarbage = (url: string): Promise<void> =>
  new Promise((resolve, reject) => {
    const socket = new WebSocket(url)
    const timer = setTimeout(() => {
      socket.terminate()
      reject(new Error("the inspector did not answer HeapProfiler.collectGarbage within 30 s"))
    }, 30_000)
    socket.once("open", () => socket.send(JSON.stringify({ id: 1, method: "HeapProfiler.collectGarbage" })))
    socket.on("message", (data) => {
      const reply = JSON.parse(String(data)) as { id?: number; error?: { message: string } }
      if (reply.id !== 1) return
      clearTimeout(timer)
      socket.close()
      if (reply.error === undefined) resolve()
      else reject(new Error(`HeapProfiler.collectGarbage: ${reply.error.message}`))
    })
    socket.once("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
  })

export interface CuttingProxy {
  /** `http://127.0.0.1:<port>` of the proxy. */
  readonly url: string
  /** Connections accepted so far. */
  readonly accepted: () => number
  /** Destroys every connection open through the proxy, on both sides; returns how many. */
  readonly cut: () => number
  readonly close: () => Promise<void>
}

/** A TCP proxy on 127.0.0.1 in front of `target` (`host:port`), byte for byte. */
export const cuttingProxy = (targetPort: number): Promise<CuttingProxy> => {
  const pairs = new Set<readonly [Net.Socket, Net.Socket]>()
  let accepted = 0
  const server = Net.createServer((client) => {
    accepted++
    const upstream = Net.connect({ host: "127.0.0.1", port: targetPort })
    const pair = [client, upstream] as const
    pairs.add(pair)
    const close = () => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on("error", close).on("close", close)
    upstream.on("error", close).on("close", close)
    client.pipe(upstream)
    upstream.pipe(client)
  })
  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      resolve({
        url: `http://127.0.0.1:${port}`,
        accepted: () => accepted,
        cut: () => {
          const open = [...pairs]
          for (const [client, upstream] of open) {
            // a reset, not a clean FIN: the way a dying link or a crashed proxy looks
            client.resetAndDestroy()
            upstream.destroy()
          }
          pairs.clear()
          return open.length
        },
        close: () =>
          new Promise<void>((resolveClose) => {
            for (const [client, upstream] of pairs) {
              client.destroy()
              upstream.destroy()
            }
            pairs.clear()
            server.close(() => resolveClose())
          })
      })
    })
  })
}
