/**
 * Test support: a client of wire protocol v1.1 (multiplexed subscriptions)
 * over `fetch`, reading the body as it comes and decoding it with
 * `Multiplex.makeDecoder`, and what it received per subscription.
 */
import * as Multiplex from "../../src/protocol/Multiplex.ts"

export interface Received {
  /** The `resume` of its `subscribed` event, once received. */
  resume: Multiplex.Resume | undefined
  /** Its `subscribed` came before any other event of it. */
  subscribedFirst: boolean
  readonly values: Array<{ readonly json: unknown; readonly id: string | undefined }>
  readonly dropped: Array<number | null>
  ended: boolean
  error: unknown
  /** Any event after `end` or `error`. */
  afterLast: number
}

/** What a multiplexed connection delivered, per subscription, as it arrives. */
export const receiver = () => {
  const subs = new Map<string, Received>()
  /** Every event in arrival order: `<sub> <kind>`. */
  const log: Array<string> = []
  const state: { connection: string | undefined; version: string | undefined; first: string | undefined } = {
    connection: undefined,
    version: undefined,
    first: undefined
  }
  const of = (sub: string): Received => {
    let received = subs.get(sub)
    if (received === undefined) {
      received = { resume: undefined, subscribedFirst: false, values: [], dropped: [], ended: false, error: undefined, afterLast: 0 }
      subs.set(sub, received)
    }
    return received
  }
  const decoder = Multiplex.makeDecoder({
    onEvent: (event) => {
      state.first ??= event._tag
      if (event._tag === "Connection") {
        state.connection = event.id
        state.version = event.version
        log.push(`* connection`)
        return
      }
      const received = of(event.sub)
      if (received.ended || received.error !== undefined) received.afterLast++
      if (event._tag === "Subscribed") {
        if (received.values.length === 0 && received.dropped.length === 0 && !received.ended && received.error === undefined) {
          received.subscribedFirst = true
        }
        received.resume = event.resume
        log.push(`${event.sub} subscribed`)
        return
      }
      const e = event.event
      switch (e._tag) {
        case "Value":
          received.values.push({ json: e.json, id: event.id })
          log.push(`${event.sub} value`)
          break
        case "Dropped":
          received.dropped.push(e.count)
          log.push(`${event.sub} dropped`)
          break
        case "End":
          received.ended = true
          log.push(`${event.sub} end`)
          break
        case "Failure":
          received.error = e.error
          log.push(`${event.sub} error`)
          break
        default:
          log.push(`${event.sub} ${e._tag}`)
      }
    }
  })
  const get = (sub: string): Received => of(sub)
  return { subs, log, state, decoder, get }
}

export type Receiver = ReturnType<typeof receiver>

export interface MuxClient extends Receiver {
  readonly status: number
  /** The JSON body of an answer other than 200. */
  readonly body: unknown
  /** Resolves when the body has ended (or was aborted). */
  readonly done: Promise<void>
  /** The body ended by itself (not aborted by the client). */
  readonly ended: () => boolean
  readonly abort: () => void
  /** Values of `sub` decoded as JSON. */
  readonly values: (sub: string) => Array<unknown>
  /** Cursor of the last value of `sub`. */
  readonly lastId: (sub: string) => string | undefined
  /** The body's text so far. */
  readonly text: () => string
}

/** `POST <base>/_mux` with fetch, reading the body as it comes. */
export const openMux = async (base: string, subscriptions: ReadonlyArray<Multiplex.Entry>, headers: Record<string, string> = {}): Promise<MuxClient> => {
  const controller = new AbortController()
  const response = await fetch(Multiplex.pathOf(base), {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ subscriptions }),
    signal: controller.signal
  })
  const r = receiver()
  let ended = false
  let text = ""
  const utf8 = new TextDecoder()
  let body: unknown = undefined
  let done: Promise<void>
  if (response.status === 200) {
    const reader = response.body!.getReader()
    done = (async () => {
      try {
        for (;;) {
          const chunk = await reader.read()
          if (chunk.done) break
          r.decoder.feedBytes(chunk.value)
          text += utf8.decode(chunk.value, { stream: true })
        }
        ended = true
        r.decoder.end()
      } catch {
        // aborted
      }
    })()
  } else {
    body = await response.json()
    done = Promise.resolve()
  }
  return {
    ...r,
    status: response.status,
    body,
    done,
    ended: () => ended,
    abort: () => controller.abort(),
    values: (sub) => r.get(sub).values.map((v) => v.json),
    lastId: (sub) => r.get(sub).values.at(-1)?.id,
    text: () => text
  }
}

/** `POST <base>/_mux/<connection>` (or another method): status and JSON body. */
export const change = async (base: string, connection: string, body: unknown, method = "POST", headers: Record<string, string> = {}) => {
  const response = await fetch(Multiplex.pathOf(base, connection), {
    method,
    headers: { "content-type": "application/json", ...headers },
    ...(method === "GET" ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) })
  })
  const text = await response.text()
  let json: unknown = undefined
  try {
    json = JSON.parse(text)
  } catch {
    json = text
  }
  return { status: response.status, json }
}

