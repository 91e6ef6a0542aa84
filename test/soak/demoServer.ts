/**
 * The demo server as a real child process, exactly as it is deployed:
 * `node --import tsx examples/demo/server.ts` with `PORT` and
 * `SHUTDOWN_DEADLINE_MS` in its environment, on 127.0.0.1.
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../../", import.meta.url))

export interface DemoServer {
  readonly port: number
  readonly pid: number
  /** Everything the process printed so far (stdout and stderr). */
  readonly output: () => string
  /** Settles with the exit code (or signal) once the process has exited. */
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  /** Sends `signal`; the process is yours to await with `exited`. */
  readonly signal: (signal: NodeJS.Signals) => void
  /** SIGKILL if still running (a cleanup, not a test step). */
  readonly kill: () => void
}

export interface DemoServerOptions {
  readonly shutdownDeadlineMs: number
  /** PRICES_PER_SECOND, per symbol. */
  readonly pricesPerSecond?: number
  /** How long to wait for "Listening on". Default 60 s. */
  readonly startTimeoutMs?: number
}

export const startDemoServer = (options: DemoServerOptions): Promise<DemoServer> => {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: "0",
    SHUTDOWN_DEADLINE_MS: String(options.shutdownDeadlineMs)
  }
  if (options.pricesPerSecond !== undefined) env["PRICES_PER_SECOND"] = String(options.pricesPerSecond)
  const child = spawn(process.execPath, ["--import", "tsx", "examples/demo/server.ts"], {
    cwd: root,
    env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }))
  })
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  }
  process.once("exit", kill)
  return new Promise((resolve, reject) => {
    let started = false
    const timer = setTimeout(() => {
      kill()
      reject(new Error(`the demo server did not listen within ${options.startTimeoutMs ?? 60_000} ms\n${output}`))
    }, options.startTimeoutMs ?? 60_000)
    const onOutput = (bytes: Buffer) => {
      output += bytes.toString("utf8")
      const listening = /Listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(output)
      if (listening === null || started) return
      started = true
      clearTimeout(timer)
      resolve({
        port: Number(listening[1]),
        pid: child.pid!,
        output: () => output,
        exited,
        signal: (signal) => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal)
        },
        kill
      })
    }
    child.stdout.on("data", onOutput)
    child.stderr.on("data", onOutput)
    void exited.then(({ code, signal }) => {
      if (started) return
      clearTimeout(timer)
      reject(new Error(`the demo server exited before listening (code ${code}, signal ${signal})\n${output}`))
    })
  })
}
