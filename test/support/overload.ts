/**
 * Test support for overload cases against a real server process: a probe
 * that times one request to its answer (and says whether a 503 was well
 * formed), the figures of a Prometheus `/metrics` text, and a process's
 * resident memory as the kernel reports it.
 */
import * as Fs from "node:fs"
import * as Http from "node:http"

export const query = (payload: unknown): string => `payload=${encodeURIComponent(JSON.stringify(payload))}`

export interface ProbeResult {
  /** HTTP status, or "hang" (no answer within the probe's timeout), or "error" (connection error). */
  readonly status: number | "hang" | "error"
  /** Milliseconds from sending the request to the response head (or to giving up). */
  readonly headMs: number
  /** The body, when the probe read it (`read: "body"`, or any answer other than 200). */
  readonly body: string
  readonly retryAfter: string | undefined
  /** A 503 with `Retry-After` and a JSON `{_tag, message}` body. */
  readonly wellFormed503: boolean
  /** The body was read to its end, whole (Node's `complete`: all of its length, or the chunked terminator). */
  readonly complete: boolean
}

/**
 * One GET on a fresh connection. A 200 is read to its end (`read: "body"`)
 * or closed as soon as its head arrives (`read: "head"`: the client leaves);
 * any other answer is read to its end. After `timeoutMs` without a head the
 * probe gives up: a hang. `localAddress` (127.0.0.2, …) makes it another
 * client to a server that tells clients apart by address.
 */
export const probe = (
  url: string,
  options: { readonly read: "head" | "body"; readonly timeoutMs?: number; readonly localAddress?: string }
): Promise<ProbeResult> =>
  new Promise((resolve) => {
    const started = performance.now()
    let settled = false
    const settle = (result: ProbeResult) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve(result)
    }
    const request = Http.get(url, { agent: false, ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }) }, (response) => {
      const headMs = performance.now() - started
      const retryAfter = response.headers["retry-after"]
      if (response.statusCode === 200 && options.read === "head") {
        response.destroy()
        request.destroy()
        return settle({ status: 200, headMs, body: "", retryAfter, wellFormed503: false, complete: false })
      }
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (text: string) => {
        body += text
      })
      const done = () => {
        let wellFormed503 = false
        if (response.statusCode === 503) {
          try {
            const parsed = JSON.parse(body) as { _tag?: unknown; message?: unknown }
            wellFormed503 = retryAfter !== undefined && typeof parsed._tag === "string" && typeof parsed.message === "string"
          } catch {
            wellFormed503 = false
          }
        }
        settle({ status: response.statusCode ?? 0, headMs, body, retryAfter, wellFormed503, complete: response.complete })
      }
      response.on("end", done)
      response.on("error", done)
    })
    request.on("error", () =>
      settle({ status: "error", headMs: performance.now() - started, body: "", retryAfter: undefined, wellFormed503: false, complete: false })
    )
    const timeoutMs = options.timeoutMs ?? 10_000
    const timer = setTimeout(() => {
      request.destroy()
      settle({ status: "hang", headMs: timeoutMs, body: "", retryAfter: undefined, wellFormed503: false, complete: false })
    }, timeoutMs)
  })

export interface MetricLine {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** The samples of a Prometheus text exposition. */
export const parseMetrics = (text: string): ReadonlyArray<MetricLine> => {
  const lines: Array<MetricLine> = []
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line)
    if (match === null) continue
    const labels: Record<string, string> = {}
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!
    lines.push({ name: match[1]!, labels, value: Number(match[3]) })
  }
  return lines
}

/** The sum of `name` over the samples whose labels include `labels`. */
export const sumOf = (metrics: ReadonlyArray<MetricLine>, name: string, labels: Readonly<Record<string, string>> = {}): number =>
  metrics
    .filter((line) => line.name === name && Object.entries(labels).every(([key, value]) => line.labels[key] === value))
    .reduce((sum, line) => sum + line.value, 0)

/**
 * Multiplexed connections (`stream_connections`) and open subscriptions
 * (`stream_active{kind="subscription"}`) of the server at `base`, from its `/metrics`.
 */
export const streamCounts = async (base: string): Promise<{ readonly connections: number; readonly subscriptions: number }> => {
  const lines = parseMetrics(await (await fetch(`${base}/metrics`)).text())
  return {
    connections: sumOf(lines, "stream_connections"),
    subscriptions: sumOf(lines, "stream_active", { kind: "subscription" })
  }
}

/** Resident memory of process `pid` in bytes (`VmRSS` of /proc/<pid>/status), or undefined where there is no /proc. */
export const residentBytes = (pid: number): number | undefined => {
  try {
    const match = /VmRSS:\s+(\d+)\s+kB/.exec(Fs.readFileSync(`/proc/${pid}/status`, "utf8"))
    return match === null ? undefined : Number(match[1]) * 1024
  } catch {
    return undefined
  }
}

/** Count of "stream closed" log lines of `kind` in a demo process's output. */
export const closedInLog = (output: string, kind: string): number =>
  Array.from(output.matchAll(/stream closed\n(?:[ \t]+\S.*\n)*?[ \t]+kind: (\w+)/g)).filter((match) => match[1] === kind).length

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
