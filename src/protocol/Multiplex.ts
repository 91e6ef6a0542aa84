/**
 * Wire protocol v1.1: many subscriptions on one Server-Sent Events stream
 * (see docs/wire-protocol.md, "Multiplexed subscriptions"). Both halves side
 * by side: the request bodies and their validation, the frames the server
 * writes, and the decoder a client reads them with.
 *
 * A connection is opened with `POST <base>/_mux` and the set of subscriptions
 * in the body; it is changed with `POST <base>/_mux/<connection>` (add,
 * remove). Each event of the stream belongs to the subscription named by the
 * last `sub:` field read, in that event or an earlier one, so a frame shared
 * by many subscribers is written unchanged after one `sub:` line. Values,
 * `dropped`, `end` and `error` mean for one subscription exactly what they
 * mean on a v1 stream; `connection` and `subscribed` are v1.1's own.
 *
 * Browser-safe: no Node built-ins.
 */
import * as Sse from "./Sse.ts"
import { makeSseParser, type SseEvent, type SseParserOptions } from "./SseParser.ts"

export const version = "1.1"

/** `<base>/_mux`: where a multiplexed connection is opened; `<base>/_mux/<connection>` changes its set. */
export const pathSegment = "_mux"

/** The URL of the connection endpoint, or of one connection's changes. */
export const pathOf = (base: string, connection?: string): string =>
  `${base.replace(/\/+$/, "")}/${pathSegment}${connection === undefined ? "" : `/${encodeURIComponent(connection)}`}`

/** The field naming the subscription of an event and of those after it. */
export const field = "sub"

/** The event types of v1.1, besides v1's (values, `dropped`, `end`, `error`). */
export const events = {
  /** First event of a connection: `{"id": <connection>, "version": "1.1"}`. */
  connection: "connection",
  /** First event of a subscription: `{"resume": Resume}`. */
  subscribed: "subscribed"
} as const

/**
 * What a reconnection does to a subscription, as its `subscribed` event says:
 * - `exact`: a Topic's subscription; its values carry the topic's cursor and
 *   a reconnection resumes after the last one received, with no value lost or
 *   repeated (or reports the gap with `dropped`);
 * - `handler`: its values carry the procedure's own cursor, handed to the
 *   handler as `Last-Event-ID`: what it resumes is the handler's business;
 * - `none`: a computed stream without cursors; a reconnection starts it again.
 */
export type Resume = "exact" | "handler" | "none"

/** Most subscriptions one connection may carry. */
export const maxSubscriptions = 256

/** One subscription asked for: a client-chosen `id` unique on its connection. */
export interface Entry {
  readonly id: string
  readonly tag: string
  /** The schema-encoded payload (absent: an empty payload). */
  readonly payload?: unknown
  /** Resume after this cursor (the last `id:` received for this subscription). */
  readonly lastEventId?: string | undefined
}

/** The body of `POST <base>/_mux`. */
export interface Open {
  readonly subscriptions: ReadonlyArray<Entry>
}

/** The body of `POST <base>/_mux/<connection>`. */
export interface Change {
  readonly add: ReadonlyArray<Entry>
  readonly remove: ReadonlyArray<string>
}

const idPattern = /^[A-Za-z0-9_.~-]{1,64}$/

/** A subscription id: 1 to 64 characters of `A-Z a-z 0-9 _ . ~ -`. */
export const isId = (id: unknown): id is string => typeof id === "string" && idPattern.test(id)

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

type Parsed<A> = { readonly ok: true; readonly value: A } | { readonly ok: false; readonly message: string }

const entries = (value: unknown, where: string): Parsed<ReadonlyArray<Entry>> => {
  if (!Array.isArray(value)) return { ok: false, message: `${where}: expected an array` }
  if (value.length > maxSubscriptions) {
    return { ok: false, message: `${where}: at most ${maxSubscriptions} subscriptions per connection` }
  }
  const out: Array<Entry> = []
  const seen = new Set<string>()
  for (let i = 0; i < value.length; i++) {
    const entry: unknown = value[i]
    const at = `${where}.${i}`
    if (!isRecord(entry)) return { ok: false, message: `${at}: expected an object` }
    if (!isId(entry["id"])) return { ok: false, message: `${at}.id: expected 1 to 64 characters of A-Z a-z 0-9 _ . ~ -` }
    if (seen.has(entry["id"])) return { ok: false, message: `${at}.id: ${entry["id"]} appears twice` }
    seen.add(entry["id"])
    if (typeof entry["tag"] !== "string" || entry["tag"] === "") return { ok: false, message: `${at}.tag: expected a procedure name` }
    const lastEventId = entry["lastEventId"]
    if (lastEventId !== undefined && (typeof lastEventId !== "string" || /[\r\n\0]/.test(lastEventId))) {
      return { ok: false, message: `${at}.lastEventId: expected a cursor string` }
    }
    out.push({
      id: entry["id"],
      tag: entry["tag"],
      ...(entry["payload"] === undefined ? {} : { payload: entry["payload"] }),
      ...(lastEventId === undefined || lastEventId === "" ? {} : { lastEventId })
    })
  }
  return { ok: true, value: out }
}

/** Reads the body of `POST <base>/_mux`. */
export const parseOpen = (json: unknown): Parsed<Open> => {
  if (!isRecord(json)) return { ok: false, message: "Expected {\"subscriptions\": [...]}" }
  const subscriptions = entries(json["subscriptions"], "subscriptions")
  return subscriptions.ok ? { ok: true, value: { subscriptions: subscriptions.value } } : subscriptions
}

/** Reads the body of `POST <base>/_mux/<connection>`. */
export const parseChange = (json: unknown): Parsed<Change> => {
  if (!isRecord(json)) return { ok: false, message: "Expected {\"add\": [...], \"remove\": [...]}" }
  const add = entries(json["add"] ?? [], "add")
  if (!add.ok) return add
  const remove = json["remove"] ?? []
  if (!Array.isArray(remove) || !remove.every(isId)) {
    return { ok: false, message: "remove: expected an array of subscription ids" }
  }
  return { ok: true, value: { add: add.value, remove } }
}

// ---------------------------------------------------------------------------
// what the server writes
// ---------------------------------------------------------------------------

/** The line that makes `id` the subscription of the next events. */
export const select = (id: string): string => `${field}: ${id}\n`

/** The connection's first event. */
export const connection = (id: string): string =>
  Sse.event({ type: events.connection, data: JSON.stringify({ id, version }) })

const subscribedFrames: Readonly<Record<Resume, string>> = {
  exact: Sse.event({ type: events.subscribed, data: JSON.stringify({ resume: "exact" }) }),
  handler: Sse.event({ type: events.subscribed, data: JSON.stringify({ resume: "handler" }) }),
  none: Sse.event({ type: events.subscribed, data: JSON.stringify({ resume: "none" }) })
}

/** A subscription's first event. */
export const subscribed = (resume: Resume): string => subscribedFrames[resume]

// ---------------------------------------------------------------------------
// what a client reads
// ---------------------------------------------------------------------------

/** What one event of a multiplexed stream means to a client. */
export type MultiplexEvent =
  /** The connection's id (for changes) and the server's protocol version. */
  | { readonly _tag: "Connection"; readonly id: string; readonly version: string }
  /** A subscription has started on the connection. */
  | { readonly _tag: "Subscribed"; readonly sub: string; readonly resume: Resume }
  /** One of v1's events (a value, `dropped`, `end`, `error`) for subscription `sub`. */
  | { readonly _tag: "Event"; readonly sub: string; readonly event: Sse.SubscriptionEvent; readonly id: string | undefined }

const resumes: ReadonlySet<string> = new Set(["exact", "handler", "none"])

export interface Decoder {
  feed(text: string): void
  feedBytes(bytes: Uint8Array): void
  /** End of a connection's body: the next one starts with no subscription selected. */
  end(): void
}

/**
 * Reads a multiplexed stream. Events before any `sub:` (other than
 * `connection`), and events of unknown types, are ignored; a `Subscribed`
 * with an unknown `resume` reads as `none`.
 */
export const makeDecoder = (
  callbacks: {
    readonly onEvent: (event: MultiplexEvent) => void
    readonly onRetry?: (millis: number) => void
  },
  options?: SseParserOptions
): Decoder => {
  let current: string | undefined
  const onEvent = callbacks.onEvent
  const parser = makeSseParser({
    onField: (name, value) => {
      if (name === field) current = value
    },
    ...(callbacks.onRetry === undefined ? {} : { onRetry: callbacks.onRetry }),
    onEvent: (event: SseEvent) => {
      if (event.type === events.connection) {
        let data: unknown
        try {
          data = JSON.parse(event.data)
        } catch {
          return
        }
        if (isRecord(data) && typeof data["id"] === "string") {
          onEvent({ _tag: "Connection", id: data["id"], version: typeof data["version"] === "string" ? data["version"] : "" })
        }
        return
      }
      const sub = current
      if (sub === undefined) return
      if (event.type === events.subscribed) {
        let resume: Resume = "none"
        try {
          const data: unknown = JSON.parse(event.data)
          if (isRecord(data) && typeof data["resume"] === "string" && resumes.has(data["resume"])) {
            resume = data["resume"] as Resume
          }
        } catch {
          // an unreadable `subscribed` still starts the subscription
        }
        onEvent({ _tag: "Subscribed", sub, resume })
        return
      }
      const meaning = Sse.subscriptionEvent(event)
      if (meaning._tag === "Ignored") return
      onEvent({ _tag: "Event", sub, event: meaning, id: event.id })
    }
  }, options)
  return {
    feed: (text) => parser.feed(text),
    feedBytes: (bytes) => parser.feedBytes(bytes),
    end: () => {
      parser.end()
      current = undefined
    }
  }
}
