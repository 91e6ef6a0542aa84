/**
 * One multiplexed connection for every tab of an origin (`shareAcrossTabs`).
 *
 * The runtimes of the same origin, base URL and share key are peers on a
 * `BroadcastChannel`. One of them, the leader, holds a Web Lock for its
 * lifetime and carries every peer's subscriptions on its own multiplexed
 * connection, with its own transport (headers, fetch); when its tab closes
 * or crashes, the lock passes to another peer, which announces itself, and
 * every peer announces its live subscriptions again, each with its last
 * cursor, so a Topic-backed subscription resumes exactly.
 *
 * Every subscription goes the same way, the leader's own included (to
 * itself, in a microtask): the peer sends its procedure's tag, its encoded
 * payload and cursor; the leader answers with the subscription's events as
 * they came (value JSON and cursor, `dropped`, state, error), and the peer
 * decodes them with its own codecs (structured clone would lose classes).
 *
 * Each peer holds a Web Lock of its own for its lifetime. The leader waits
 * for that lock of every peer it carries subscriptions for: granted, the
 * peer is gone, and its subscriptions are closed, so a tab closing without
 * unsubscribing leaves nothing on the connection.
 */
import { ClientError, type ClientErrorReason } from "../ClientError.ts"
import { bind, type ClientProcedure, failureOf } from "../ClientProcedure.ts"
import type { ConnectionState, SubscribeOptions } from "../Subscription.ts"
import * as Consumer from "./Consumer.ts"
import type { Wanted } from "./Multiplexer.ts"

/** What a peer hands the leader of a subscription's options: what its carrier reads. */
type Settings = Pick<SubscribeOptions<unknown, unknown>, "reconnect" | "heartbeatTimeoutMs" | "maxEventSize">

/** An error as it crosses tabs: a `ClientError` by its fields, a typed error as its JSON. */
type WireError =
  | { readonly client: { readonly reason: ClientErrorReason; readonly message: string; readonly status: number | undefined } }
  | { readonly typed: unknown }

type Message =
  /** peer → leader: carry this subscription (again, after a leader change). */
  | {
    readonly t: "sub"
    readonly peer: string
    readonly id: string
    readonly tag: string
    readonly payload: unknown
    readonly cursor: string | undefined
    readonly settings: Settings
  }
  /** peer → leader: the subscription is over on the peer's side. */
  | { readonly t: "unsub"; readonly peer: string; readonly id: string }
  /** leader → peers: a new leader, to which every live subscription is announced again. */
  | { readonly t: "leader" }
  /** leader → the peer owning subscription `id`: one of its events. */
  | { readonly t: "ev"; readonly peer: string; readonly id: string; readonly cursor: string | undefined; readonly e: Event }

type Event =
  | { readonly k: "value"; readonly json: unknown }
  | { readonly k: "dropped"; readonly count: number | null }
  | { readonly k: "state"; readonly state: ConnectionState }
  | { readonly k: "error"; readonly error: WireError }

interface LockManager {
  readonly request: (name: string, callback: () => Promise<void>) => Promise<void>
}

const locksOf = (): LockManager | undefined =>
  (globalThis.navigator as { readonly locks?: LockManager } | undefined)?.locks

/**
 * The share key of a runtime, or `undefined` when it does not share:
 * `option` (`true`: the default key; off by default), in a window with Web
 * Locks and `BroadcastChannel` when the runtime multiplexes.
 */
export const keyOf = (option: boolean | string | undefined, multiplex: boolean): string | undefined => {
  const possible = multiplex && typeof document !== "undefined" && locksOf() !== undefined &&
    typeof BroadcastChannel !== "undefined"
  if (!possible || option === undefined || option === false) return undefined
  return typeof option === "string" ? option : "default"
}

const forever = () => new Promise<void>(() => {})

const randomId = (): string => Math.random().toString(36).slice(2) + Date.now().toString(36)

const identity = (json: unknown): unknown => json

const toWire = (error: unknown): WireError =>
  error instanceof ClientError
    ? { client: { reason: error.reason, message: error.message, status: error.status } }
    : { typed: error }

const fromWire = (procedure: ClientProcedure, error: WireError): unknown =>
  "client" in error
    ? new ClientError(error.client.reason, error.client.message, { status: error.client.status })
    : failureOf(procedure, error.typed, "the subscription failed")

export interface TabShare {
  readonly add: (wanted: Wanted) => void
}

/**
 * The peer of this runtime for `key` and `base`. `carry` carries a
 * subscription on this tab's own connection: used once this peer leads.
 */
export const make = (key: string, base: string, carry: (wanted: Wanted) => void): TabShare => {
  const locks = locksOf()!
  const name = `effect-stream-rpc ${key} ${new URL(base, globalThis.location?.href).href}`
  const self = randomId()
  let channel: BroadcastChannel | undefined
  let leading = false
  let ready: Promise<void> | undefined

  /** This peer's subscriptions, by their id. */
  const mine = new Map<string, { readonly wanted: Wanted; readonly settings: Settings }>()
  /** As leader: the subscriptions carried for peers (this one included), by `<peer> <id>`. */
  const carried = new Map<string, { readonly peer: string; readonly consumer: Consumer.Consumer }>()
  /** As leader: the peers whose lock is awaited. */
  const watched = new Set<string>()
  let nextId = 0

  const peerLock = (peer: string) => `${name} peer ${peer}`

  const post = (message: Message) => {
    if (leading && (message.t === "sub" || message.t === "unsub")) queueMicrotask(() => lead(message))
    // As the connection reads them, like a subscription not shared (a `dropped` of the queue is reported before the next value).
    else if (message.t === "ev" && message.peer === self) follow(message)
    else channel?.postMessage(message)
  }
  const send = (message: Message) => {
    void start().then(() => post(message))
  }

  const announce = (id: string) => {
    const own = mine.get(id)
    if (own === undefined) return
    const { consumer, procedure, payload } = own.wanted
    send({ t: "sub", peer: self, id, tag: procedure.tag, payload, cursor: consumer.received, settings: own.settings })
  }

  /** As leader: a peer's message. */
  const lead = (message: Message) => {
    if (message.t === "unsub") {
      carried.get(`${message.peer} ${message.id}`)?.consumer.finish(undefined, true)
      return
    }
    if (message.t !== "sub") return
    const { peer, id } = message
    const at = `${peer} ${id}`
    if (carried.has(at)) return
    let cursor = message.cursor
    const emit = (e: Event) => post({ t: "ev", peer, id, cursor, e })
    const consumer = Consumer.make(message.tag, {
      ...message.settings,
      ...(cursor === undefined ? {} : { lastEventId: cursor }),
      onData: (json) => {
        cursor = consumer.received
        emit({ k: "value", json })
      },
      onDropped: (count) => {
        cursor = consumer.received
        emit({ k: "dropped", count })
      },
      onState: (state) => emit({ k: "state", state }),
      onError: (error) => emit({ k: "error", error: toWire(error) })
    })
    carried.set(at, { peer, consumer })
    consumer.signal.addEventListener("abort", () => {
      if (carried.get(at)?.consumer === consumer) carried.delete(at)
    }, { once: true })
    watch(peer)
    const procedure = bind(base, {
      tag: message.tag,
      kind: "subscription",
      encodePayload: identity,
      decodeSuccess: identity,
      decodeFailure: identity
    })
    const body = message.payload === undefined ? undefined : JSON.stringify(message.payload)
    carry({ procedure, payload: message.payload, body, consumer })
  }

  /** As leader: closes a peer's subscriptions once its lock is free (its tab is gone). */
  const watch = (peer: string) => {
    if (peer === self || watched.has(peer)) return
    watched.add(peer)
    void locks.request(peerLock(peer), async () => {
      watched.delete(peer)
      for (const entry of [...carried.values()]) if (entry.peer === peer) entry.consumer.finish(undefined, true)
    })
  }

  /** As peer: the leader's message. */
  const follow = (message: Message) => {
    if (message.t === "leader") {
      for (const [id, own] of mine) {
        if (own.wanted.consumer.state === "open") own.wanted.consumer.setState("reconnecting")
        announce(id)
      }
      return
    }
    if (message.t !== "ev" || message.peer !== self) return
    const own = mine.get(message.id)
    if (own === undefined) return
    const { consumer, procedure } = own.wanted
    const e = message.e
    if (e.k === "value" || e.k === "dropped") consumer.received = message.cursor
    switch (e.k) {
      case "value":
        Consumer.deliverJson(consumer, procedure.decodeSuccess, e.json)
        return
      case "dropped":
        consumer.dropped(e.count)
        return
      case "error":
        consumer.finish({ error: fromWire(procedure, e.error) })
        return
      case "state":
        if (e.state === "closed") consumer.finish()
        else if (e.state !== "connecting" || consumer.state === "connecting") consumer.setState(e.state)
    }
  }

  /** Joins the peers: this peer's lock, then the channel, then the wait for the leader's lock. */
  const start = (): Promise<void> =>
    ready ??= new Promise<void>((resolve) => {
      void locks.request(peerLock(self), () => {
        const joined = new BroadcastChannel(name)
        joined.onmessage = (event: MessageEvent<Message>) => {
          const message = event.data
          if (leading) lead(message)
          follow(message)
        }
        channel = joined
        resolve()
        void locks.request(`${name} leader`, () => {
          leading = true
          joined.postMessage({ t: "leader" } satisfies Message)
          for (const id of mine.keys()) announce(id)
          return forever()
        })
        return forever()
      })
    })

  const add = (wanted: Wanted) => {
    const id = String(++nextId)
    const { reconnect, heartbeatTimeoutMs, maxEventSize } = wanted.consumer.options
    const settings: Settings = {
      ...(reconnect === undefined ? {} : { reconnect: { ...reconnect } }),
      ...(heartbeatTimeoutMs === undefined ? {} : { heartbeatTimeoutMs }),
      ...(maxEventSize === undefined ? {} : { maxEventSize })
    }
    mine.set(id, { wanted, settings })
    wanted.consumer.signal.addEventListener("abort", () => {
      mine.delete(id)
      send({ t: "unsub", peer: self, id })
    }, { once: true })
    announce(id)
  }

  return { add }
}
