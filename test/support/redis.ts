/**
 * Test support for the Redis-backed topic: whether a Redis answers, the
 * skip-or-fail rule (locally without Redis: skip with one line; with `CI`
 * set: fail), and a `redis-server` of a test's own on another port, which it
 * can stop and start again empty.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Net from "node:net"
import { eventually } from "./eventually.ts"

export { eventually }

export const defaultRedisUrl = "redis://127.0.0.1:6379"

/** Sends `PING` over a plain socket: true on `+PONG`. */
export const ping = (port: number, host = "127.0.0.1", timeoutMs = 1_000): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = Net.connect({ host, port })
    let answer = ""
    const done = (ok: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), timeoutMs)
    socket.on("connect", () => socket.write("PING\r\n"))
    socket.on("data", (bytes) => {
      answer += bytes.toString("latin1")
      if (answer.includes("\r\n")) done(answer.startsWith("+PONG"))
    })
    socket.on("error", () => done(false))
  })

export const skipLine =
  "Redis tests skipped: no Redis answers at 127.0.0.1:6379. Start one (`redis-server --port 6379 --save '' --appendonly no`) " +
  "and run `npm run test:slow -- test/RedisTopic test/reliability/redisInstances`; with CI set they fail instead of skipping."

/**
 * Whether the Redis tests run: true when a Redis answers at 127.0.0.1:6379;
 * false (and one line on stderr) when none does locally; throws with `CI` set.
 */
export const redisTestsEnabled = async (port = 6379): Promise<boolean> => {
  if (await ping(port)) return true
  if (process.env["CI"]) {
    throw new Error("CI is set and no Redis answers at 127.0.0.1:6379: the Redis tests are required (see .ci/run)")
  }
  process.stderr.write(`${skipLine}\n`)
  return false
}

/** Children still running, killed if the test process exits without stopping them. */
const running = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL")
})

export interface OwnRedis {
  readonly port: number
  readonly url: string
  /** Stops the server (SIGKILL: no save, nothing persisted). */
  readonly stop: () => Promise<void>
  /** Starts it again on the same port: empty (no persistence). */
  readonly start: () => Promise<void>
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      server.close(() => resolve(port))
    })
  })

/** A `redis-server` child process of the test's own, without persistence, on a free port. */
export const ownRedis = async (): Promise<OwnRedis> => {
  const port = await freePort()
  let child: ChildProcess | undefined
  const start = async () => {
    const c = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore"
    })
    child = c
    running.add(c)
    c.once("exit", () => running.delete(c))
    await eventually(() => ping(port, "127.0.0.1", 300), 10_000, `redis-server on port ${port}`)
  }
  const stop = async () => {
    const c = child
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
    const exited = new Promise<void>((r) => c.once("exit", () => r()))
    c.kill("SIGKILL")
    await exited
    child = undefined
  }
  await start()
  return { port, url: `redis://127.0.0.1:${port}`, stop, start }
}
