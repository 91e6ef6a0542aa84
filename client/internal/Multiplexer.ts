/**
 * Wire protocol v1.1 on the client: every multiplexed subscription of a
 * runtime on one connection (docs/wire-protocol.md, "Multiplexed
 * subscriptions").
 *
 * The first subscription opens `POST <base>/_mux` with every subscription
 * wanted at that moment; later ones are added, and closed ones removed, with
 * `POST <base>/_mux/<connection>`, those of the same tick in one change. The
 * set the server holds (`known`) is brought to the set wanted (`members`) by
 * one change at a time, once the `connection` event has named the
 * connection. A change the instance does not know (`404`: a load balancer
 * sent it elsewhere) or that fails at the transport reopens the connection
 * with every subscription and each one's last cursor. So do a body that ends
 * or fails and heartbeat silence, after backoff with full jitter honouring
 * `retry:` and a `503`'s `Retry-After`. The connection closes in the task
 * after its last subscription leaves.
 *
 * A subscription refused with `ServiceUnavailable` (not admitted) asks again
 * after its own backoff, under a new id (ids are never reused). A server
 * without v1.1 (`404 NotFound` on opening) hands every subscription, and the
 * runtime's later ones, to their own connections (v1).
 *
 * The queue of each subscription drops its oldest value when its iterator
 * is `queueCapacity` behind: a slow consumer never pauses the others.
 */
import * as Errors from "../../src/protocol/Errors.ts"
import * as Multiplex from "../../src/protocol/Multiplex.ts"
import * as Names from "../../src/protocol/Names.ts"
import { SseEventTooLarge } from "../../src/protocol/SseParser.ts"
import { ClientError } from "../ClientError.ts"
import { type ClientProcedure, failureOf, failureOfBody, type Transport } from "../ClientProcedure.ts"
import * as Backoff from "./Backoff.ts"
import { defaults } from "../Subscription.ts"
import { type Consumer, deliverJson } from "./Consumer.ts"

/** A subscription to carry: its procedure, its encoded payload (and as a v1 body), its consumer side. */
export interface Wanted {
  readonly procedure: ClientProcedure
  readonly payload: unknown
  readonly body: string | undefined
  readonly consumer: Consumer
}

interface Member extends Wanted {
  /** Its name on the connection; a new one when it asks again after `ServiceUnavailable`. */
  id: string
  readonly settings: Backoff.Settings
  /** Refusals (`ServiceUnavailable`) in a row. */
  refusals: number
  /** Set while it waits out a refusal before asking again. */
  retry: ReturnType<typeof setTimeout> | undefined
}

interface Connection {
  readonly controller: AbortController
  /** Its id, from the `connection` event. */
  id: string | undefined
  /** The subscriptions the server holds on it: opened with it, or added (or being added). */
  readonly known: Set<string>
  syncing: boolean
  /** Closed by this side to reopen at once (a change failed), not a failure of the connection. */
  reopen: boolean
  /** Its `connection` event arrived: the failures in a row start again. */
  progressed: boolean
  done: boolean
}

type Outcome =
  | { readonly _tag: "Closed" }
  | { readonly _tag: "Fallback" }
  | { readonly _tag: "Fatal"; readonly error: (procedure: ClientProcedure) => unknown }
  | { readonly _tag: "Retry"; readonly error: ClientError; readonly afterMs?: number }

export interface Multiplexer {
  /** Carries `wanted` on the shared connection until its consumer is over. */
  readonly add: (wanted: Wanted) => void
  /** Subscriptions carried now. */
  readonly size: number
}

const readText = async (response: Response): Promise<string> => {
  try {
    return await response.text()
  } catch {
    return ""
  }
}

const tagOf = (text: string): string | undefined => {
  try {
    const json: unknown = JSON.parse(text)
    return Errors.isErrorBody(json) ? json._tag : undefined
  } catch {
    return undefined
  }
}

const min = (members: Iterable<Member>, of: (settings: Backoff.Settings) => number, fallback: number): number => {
  let least = Infinity
  for (const member of members) least = Math.min(least, of(member.settings))
  return least === Infinity ? fallback : least
}

/**
 * The connection of one runtime (`base`, `transport`). `fallback` carries a
 * subscription on its own connection: every one, once a server without v1.1
 * has answered.
 */
export const make = (base: string, transport: Transport, fallback: (wanted: Wanted) => void): Multiplexer => {
  const members = new Map<string, Member>()
  let nextId = 0
  let current: Connection | undefined
  let running = false
  let fellBack = false
  let scheduled = false
  let closeTimer: ReturnType<typeof setTimeout> | undefined
  /** Cuts the backoff short when the last subscription leaves. */
  let sleeper = new AbortController()
  /** The server's `retry:`: the base of the backoff instead of `initialDelayMs`. */
  let retryMs: number | undefined

  const entryOf = (member: Member): Multiplex.Entry => ({
    id: member.id,
    tag: member.procedure.tag,
    ...(member.payload === undefined ? {} : { payload: member.payload }),
    ...(member.consumer.received === undefined ? {} : { lastEventId: member.consumer.received })
  })

  const headersOf = async (): Promise<Headers> => {
    const headers = await transport.headers()
    headers.set(Names.headers.contentType, Names.contentTypes.json)
    headers.set(Names.headers.accept, Names.contentTypes.eventStream)
    return headers
  }

  const schedule = () => {
    if (scheduled) return
    scheduled = true
    queueMicrotask(() => {
      scheduled = false
      reconcile()
    })
  }

  const reconcile = () => {
    if (members.size === 0) {
      if (current !== undefined || running) {
        // In the next task, so that a subscription replacing the last one keeps the connection.
        closeTimer ??= setTimeout(() => {
          closeTimer = undefined
          if (members.size > 0) return
          if (current !== undefined) current.controller.abort()
          sleeper.abort()
        }, 0)
      }
      return
    }
    if (closeTimer !== undefined) {
      clearTimeout(closeTimer)
      closeTimer = undefined
    }
    if (!running) {
      running = true
      loop().catch((cause: unknown) => {
        for (const member of [...members.values()]) {
          member.consumer.finish({
            error: new ClientError("Protocol", `${member.procedure.tag}: the connection failed unexpectedly`, { cause })
          })
        }
      }).finally(() => {
        running = false
        if (members.size > 0 && !fellBack) schedule()
      })
    } else if (current !== undefined) {
      void sync(current)
    }
  }

  const leave = (member: Member) => {
    if (member.retry !== undefined) clearTimeout(member.retry)
    member.retry = undefined
    if (members.get(member.id) === member) members.delete(member.id)
    schedule()
  }

  /** Asks again for a refused subscription, after its backoff; gives up after `maxAttempts` refusals. */
  const refused = (member: Member, error: unknown) => {
    member.refusals++
    if (member.refusals > member.settings.maxAttempts) {
      member.consumer.finish({ error })
      return
    }
    member.consumer.setState("reconnecting")
    const wait = Backoff.delay(member.refusals, member.settings.initialDelayMs, member.settings.maxDelayMs)
    member.retry = setTimeout(() => {
      member.retry = undefined
      if (members.get(member.id) !== member) return
      members.delete(member.id)
      member.id = String(++nextId)
      members.set(member.id, member)
      schedule()
    }, wait)
  }

  const onEvent = (connection: Connection, event: Multiplex.MultiplexEvent) => {
    switch (event._tag) {
      case "Connection":
        connection.id = event.id
        void sync(connection)
        return
      case "Subscribed": {
        const member = members.get(event.sub)
        if (member === undefined || !connection.known.has(event.sub)) return
        member.refusals = 0
        member.consumer.setState("open")
        return
      }
      case "Event": {
        const member = members.get(event.sub)
        if (member === undefined || member.retry !== undefined || !connection.known.has(event.sub)) return
        const { consumer, procedure } = member
        if (event.id !== undefined) consumer.received = event.id === "" ? undefined : event.id
        const meaning = event.event
        switch (meaning._tag) {
          case "Value":
            // A value off the contract ends it for good: the next change removes it from the connection.
            deliverJson(consumer, procedure.decodeSuccess, meaning.json)
            return
          case "Invalid":
            consumer.finish({
              error: new ClientError("Protocol", `${procedure.tag}: an event is not JSON`, { cause: meaning.cause })
            })
            return
          case "Dropped":
            consumer.dropped(meaning.count)
            return
          case "End":
            connection.known.delete(event.sub)
            consumer.finish()
            return
          case "Failure": {
            connection.known.delete(event.sub)
            const error = failureOf(procedure, meaning.error, "the subscription failed")
            if (Errors.isErrorBody(meaning.error) && meaning.error._tag === "ServiceUnavailable") refused(member, error)
            else consumer.finish({ error })
            return
          }
          case "Ignored":
            return
        }
      }
    }
  }

  /** Brings the set the server holds on `connection` to the set wanted, one change at a time. */
  const sync = async (connection: Connection): Promise<void> => {
    if (connection.syncing || connection.id === undefined || connection.done) return
    connection.syncing = true
    try {
      for (;;) {
        const add = [...members.values()].filter((m) => m.retry === undefined && !connection.known.has(m.id))
        const remove = [...connection.known].filter((id) => !members.has(id))
        if (connection.done || (add.length === 0 && remove.length === 0)) return
        for (const member of add) connection.known.add(member.id)
        const body: Multiplex.Change = { add: add.map(entryOf), remove }
        let response: Response
        try {
          response = await transport.fetch(Multiplex.pathOf(base, connection.id), {
            method: "POST",
            headers: await headersOf(),
            body: JSON.stringify(body),
            signal: connection.controller.signal
          })
        } catch {
          reopen(connection)
          return
        }
        const text = await readText(response)
        if (response.ok) {
          for (const id of remove) connection.known.delete(id)
        } else if (response.status === 404 || Backoff.transientStatuses.has(response.status)) {
          // Another instance (or none able to answer): a new connection carries every subscription.
          reopen(connection)
          return
        } else {
          const status = response.status
          for (const id of remove) connection.known.delete(id)
          for (const member of add) {
            connection.known.delete(member.id)
            member.consumer.finish({ error: failureOfBody(member.procedure, status, text) })
          }
        }
      }
    } finally {
      connection.syncing = false
    }
  }

  const reopen = (connection: Connection) => {
    if (connection.done) return
    connection.reopen = true
    connection.controller.abort()
  }

  /** One connection, from opening to its end: what happened to it. */
  const connect = async (connection: Connection): Promise<Outcome> => {
    const { controller } = connection
    const heartbeatMs = () => min(members.values(), (s) => s.heartbeatTimeoutMs, defaults.heartbeatTimeoutMs)
    const silence = Backoff.watchdog(controller, heartbeatMs)
    let maxEventSize = 0
    for (const member of members.values()) maxEventSize = Math.max(maxEventSize, member.settings.maxEventSize)
    const decoder = Multiplex.makeDecoder({
      onEvent: (event) => {
        if (event._tag === "Connection") connection.progressed = true
        onEvent(connection, event)
      },
      onRetry: (millis) => {
        retryMs = Math.max(0, millis)
      }
    }, { maxEventSize })
    const retry = (error: ClientError, afterMs?: number): Outcome => ({
      _tag: "Retry",
      error,
      ...(afterMs === undefined ? {} : { afterMs })
    })
    try {
      silence.arm()
      let headers: Headers
      try {
        headers = await headersOf()
      } catch (cause) {
        return retry(new ClientError("Transport", "the headers could not be computed", { cause }))
      }
      if (controller.signal.aborted) return { _tag: "Closed" }
      const entries: Array<Multiplex.Entry> = []
      for (const member of members.values()) {
        if (member.retry !== undefined) continue
        connection.known.add(member.id)
        entries.push(entryOf(member))
      }
      const body: Multiplex.Open = { subscriptions: entries }
      const response = await transport.fetch(Multiplex.pathOf(base), {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        signal: controller.signal
      })
      const status = response.status
      if (!response.ok) {
        const text = await readText(response)
        if (status === 404 && tagOf(text) === "NotFound") return { _tag: "Fallback" }
        if (Backoff.transientStatuses.has(status)) {
          const cause = text.slice(0, 1000)
          const refused = new ClientError("Transport", `the multiplexed connection was refused: HTTP ${status}`, { status, cause })
          return retry(refused, Backoff.retryAfterOf(response))
        }
        return { _tag: "Fatal", error: (procedure) => failureOfBody(procedure, status, text) }
      }
      const contentType = response.headers.get(Names.headers.contentType) ?? ""
      if (Names.mediaTypeOf(contentType) !== Names.contentTypes.eventStream || response.body === null) {
        const got = contentType || "no body"
        return {
          _tag: "Fatal",
          error: (procedure) => new ClientError("Protocol", `${procedure.tag}: expected text/event-stream, got ${got}`, { status })
        }
      }
      const reader = response.body.getReader()
      for (;;) {
        silence.arm()
        const result = await reader.read()
        if (result.done) return retry(new ClientError("Truncated", "the multiplexed connection ended"))
        try {
          decoder.feedBytes(result.value)
        } catch (error) {
          if (error instanceof SseEventTooLarge) {
            // The connection's parser cannot tell whose event it was: every subscription on it fails, as one would alone.
            const cause = error
            return {
              _tag: "Fatal",
              error: (procedure) => new ClientError("EventTooLarge", `${procedure.tag}: ${cause.message}`, { cause })
            }
          }
          throw error
        }
      }
    } catch (cause) {
      if (connection.reopen || (controller.signal.aborted && !silence.timedOut)) return { _tag: "Closed" }
      if (silence.timedOut) return retry(new ClientError("Timeout", `no byte for ${heartbeatMs()} ms`, { cause }))
      return retry(new ClientError("Transport", "the multiplexed connection failed", { cause }))
    } finally {
      connection.done = true
      silence.disarm()
      controller.abort()
      decoder.end()
    }
  }

  const loop = async () => {
    let failures = 0
    while (members.size > 0 && !fellBack) {
      const connection: Connection = {
        controller: new AbortController(),
        id: undefined,
        known: new Set(),
        syncing: false,
        reopen: false,
        progressed: false,
        done: false
      }
      current = connection
      const outcome = await connect(connection).finally(() => {
        if (current === connection) current = undefined
      })
      const carried = [...members.values()]
      if (connection.progressed) failures = 0
      switch (outcome._tag) {
        case "Closed":
          for (const member of carried) if (member.consumer.state === "open") member.consumer.setState("reconnecting")
          break
        case "Fallback":
          fellBack = true
          for (const member of carried) {
            leave(member)
            member.consumer.setState("connecting")
            fallback(member)
          }
          return
        case "Fatal":
          for (const member of carried) member.consumer.finish({ error: outcome.error(member.procedure) })
          return
        case "Retry": {
          failures++
          for (const member of carried) {
            if (failures > member.settings.maxAttempts) {
              member.consumer.finish({ error: new ClientError(outcome.error.reason, `${member.procedure.tag}: ${outcome.error.message}`, {
                status: outcome.error.status,
                cause: outcome.error
              }) })
            } else if (member.retry === undefined) {
              member.consumer.setState("reconnecting")
            }
          }
          if (members.size === 0) return
          const maxDelayMs = min(members.values(), (s) => s.maxDelayMs, defaults.maxDelayMs)
          const base = Math.min(retryMs ?? min(members.values(), (s) => s.initialDelayMs, defaults.initialDelayMs), maxDelayMs)
          const wait = Backoff.retryWait(failures, base, maxDelayMs, outcome.afterMs)
          sleeper = new AbortController()
          await Backoff.sleep(wait, sleeper.signal)
        }
      }
    }
  }

  const add = (wanted: Wanted) => {
    if (fellBack) {
      fallback(wanted)
      return
    }
    if (wanted.consumer.finished) return
    const member: Member = {
      ...wanted,
      id: String(++nextId),
      settings: Backoff.settingsOf(wanted.consumer.options),
      refusals: 0,
      retry: undefined
    }
    members.set(member.id, member)
    wanted.consumer.signal.addEventListener("abort", () => leave(member), { once: true })
    schedule()
  }

  return {
    add,
    get size() {
      return members.size
    }
  }
}
