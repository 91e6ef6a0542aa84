/**
 * Test support for fault injection, on loopback only (127.0.0.1):
 *
 * - `startFaultProxy`: a TCP proxy that routes each new connection to the
 *   first target that accepts it (a load balancer in front of whichever
 *   instance is up), counts the bytes in both directions, and can cut a
 *   connection after a chosen number of response bytes (a dying link);
 * - `recordResponse`: the raw bytes of one real HTTP response (status line,
 *   headers, framing and body), as our server sent them;
 * - `startReplayServer`: a raw TCP server that answers every request with
 *   recorded bytes truncated at an offset, then closes the connection;
 * - `prng`: a small seeded random number generator, so a failing run can be
 *   replayed with its seed.
 */
import * as Net from "node:net"

// ---------------------------------------------------------------------------
// Seeded randomness
// ---------------------------------------------------------------------------

/** mulberry32: a seeded generator of floats in [0, 1). */
export const prng = (seed: number): () => number => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** An integer in [min, max] from `random`. */
export const between = (random: () => number, min: number, max: number): number =>
  min + Math.floor(random() * (max - min + 1))

// ---------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------

export interface FaultProxyOptions {
  /**
   * Ports tried, in order, for each new connection; the first that accepts
   * gets it. A refused connection falls through to the next port; when none
   * accepts, the client's connection is closed.
   */
  readonly targets: () => ReadonlyArray<number>
  /**
   * How many response bytes (server → client, counted from the first byte of
   * the status line) connection number `index` (0, 1, …) lets through before
   * both of its sides are cut; `undefined` lets it through whole.
   */
  readonly cutAfter?: (index: number) => number | undefined
  /** How a cut looks to the client: a clean FIN after the last byte (default) or a TCP reset. */
  readonly cutWith?: "end" | "reset"
}

export interface FaultProxy {
  readonly port: number
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** Connections accepted so far. */
  readonly accepted: () => number
  /** Connections cut by `cutAfter` so far. */
  readonly cuts: () => number
  /** Connections open now. */
  readonly open: () => number
  /** Request bytes forwarded to the targets (client → server). */
  readonly bytesUp: () => number
  /** Response bytes forwarded to the clients (server → client). */
  readonly bytesDown: () => number
  /** Connections that reached each target port. */
  readonly routed: () => ReadonlyMap<number, number>
  /** Destroys every open connection, both sides, and returns how many there were. */
  readonly cutAll: () => number
  /** Stops listening and destroys every open connection. */
  readonly close: () => Promise<void>
}

const connectFirst = (ports: ReadonlyArray<number>): Promise<{ socket: Net.Socket; port: number } | undefined> =>
  new Promise((resolve) => {
    const attempt = (i: number) => {
      const port = ports[i]
      if (port === undefined) return resolve(undefined)
      const socket = Net.connect({ host: "127.0.0.1", port })
      const onError = () => {
        socket.destroy()
        attempt(i + 1)
      }
      socket.once("error", onError)
      socket.once("connect", () => {
        socket.off("error", onError)
        resolve({ socket, port })
      })
    }
    attempt(0)
  })

export const startFaultProxy = (options: FaultProxyOptions): Promise<FaultProxy> => {
  const closers = new Set<() => void>()
  const routed = new Map<number, number>()
  let accepted = 0
  let cuts = 0
  let bytesUp = 0
  let bytesDown = 0

  const server = Net.createServer((client) => {
    const index = accepted++
    const budget = options.cutAfter?.(index)
    let upstream: Net.Socket | undefined
    let closed = false
    const close = () => {
      if (closed) return
      closed = true
      closers.delete(close)
      client.destroy()
      upstream?.destroy()
    }
    closers.add(close)
    client.on("error", close)
    // Request bytes that arrive before the upstream connection is made are held.
    client.pause()
    void connectFirst(options.targets()).then((target) => {
      if (closed) return target?.socket.destroy()
      if (target === undefined) return close()
      upstream = target.socket
      routed.set(target.port, (routed.get(target.port) ?? 0) + 1)
      upstream.on("error", close).on("close", close)
      client.on("close", close)
      client.on("data", (data: Buffer) => {
        bytesUp += data.length
        if (!upstream!.write(data)) {
          client.pause()
          upstream!.once("drain", () => client.resume())
        }
      })
      client.on("end", () => upstream?.end())
      let sent = 0
      upstream.on("data", (data: Buffer) => {
        if (closed) return
        const room = budget === undefined ? Infinity : budget - sent
        if (data.length < room) {
          sent += data.length
          bytesDown += data.length
          if (!client.write(data)) {
            upstream!.pause()
            client.once("drain", () => upstream?.resume())
          }
          return
        }
        // The cut: the bytes up to the budget, then both sides go.
        cuts++
        sent += room
        bytesDown += room
        upstream!.destroy()
        closers.delete(close)
        closed = true
        if (options.cutWith === "reset") {
          client.write(data.subarray(0, room), () => client.resetAndDestroy())
        } else {
          client.end(data.subarray(0, room))
        }
      })
      upstream.on("end", () => client.end())
      client.resume()
    })
  })

  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      const cutAll = () => {
        const open = [...closers]
        for (const close of open) close()
        return open.length
      }
      resolve({
        port,
        url: `http://127.0.0.1:${port}`,
        accepted: () => accepted,
        cuts: () => cuts,
        open: () => closers.size,
        bytesUp: () => bytesUp,
        bytesDown: () => bytesDown,
        routed: () => routed,
        cutAll,
        close: () =>
          new Promise<void>((resolveClose) => {
            server.close(() => resolveClose())
            cutAll()
          })
      })
    })
  })
}

// ---------------------------------------------------------------------------
// Recording and replaying raw responses
// ---------------------------------------------------------------------------

/**
 * Sends `request` (raw HTTP/1.1 text; it should say `Connection: close`) to
 * 127.0.0.1:`port` and resolves with every byte of the answer once the
 * server closes the connection.
 */
export const recordResponse = (port: number, request: string | Uint8Array, timeoutMs = 10_000): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const parts: Array<Buffer> = []
    const socket = Net.connect({ host: "127.0.0.1", port })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no end of response within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.on("data", (data: Buffer) => parts.push(data))
    socket.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    socket.on("close", () => {
      clearTimeout(timer)
      resolve(Buffer.concat(parts))
    })
    socket.write(request)
  })

/** Raw HTTP/1.1 POST with a JSON body and `Connection: close`. */
export const rawPost = (path: string, body: string | undefined, headers: Record<string, string> = {}): string => {
  const lines = [`POST ${path} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close", "Content-Type: application/json"]
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`)
  const bytes = body === undefined ? 0 : Buffer.byteLength(body)
  lines.push(`Content-Length: ${bytes}`)
  return `${lines.join("\r\n")}\r\n\r\n${body ?? ""}`
}

/** Where the head of a raw HTTP message ends (the offset after its blank line), or -1. */
export const headEnd = (bytes: Uint8Array): number => {
  const at = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf("\r\n\r\n")
  return at === -1 ? -1 : at + 4
}

export interface ReplayServer {
  readonly port: number
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** The bytes requests are answered with from now on, whatever they ask. */
  readonly serve: (bytes: Uint8Array) => void
  /** A base URL whose requests get the first `offset` bytes only: `<url>/cut/<offset>`. */
  readonly cutAt: (offset: number) => string
  /** Requests answered so far. */
  readonly answered: () => number
  readonly close: () => Promise<void>
}

/**
 * A raw TCP server answering each whole request (head and `Content-Length`
 * body) with the bytes last given to `serve`, then closing its side cleanly
 * (FIN). A request whose path starts with `/cut/<k>/` gets only the first
 * `k` bytes: a response cut at exactly that offset.
 */
export const startReplayServer = (): Promise<ReplayServer> => {
  let bytes: Uint8Array = new Uint8Array(0)
  let answered = 0
  const sockets = new Set<Net.Socket>()
  const server = Net.createServer((socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
    socket.on("error", () => socket.destroy())
    let received = Buffer.alloc(0)
    let done = false
    socket.on("data", (data: Buffer) => {
      if (done) return
      received = Buffer.concat([received, data])
      const end = headEnd(received)
      if (end === -1) return
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(received.subarray(0, end).toString("latin1"))
      if (received.length < end + Number(length?.[1] ?? 0)) return
      done = true
      answered++
      const cut = /^[A-Z]+ \/cut\/(\d+)\//.exec(received.subarray(0, end).toString("latin1"))
      socket.end(cut === null ? bytes : bytes.subarray(0, Number(cut[1])))
    })
  })
  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      resolve({
        port,
        url: `http://127.0.0.1:${port}`,
        serve: (next) => {
          bytes = next
        },
        cutAt: (offset) => `http://127.0.0.1:${port}/cut/${offset}`,
        answered: () => answered,
        close: () =>
          new Promise<void>((resolveClose) => {
            for (const socket of sockets) socket.destroy()
            server.close(() => resolveClose())
          })
      })
    })
  })
}
