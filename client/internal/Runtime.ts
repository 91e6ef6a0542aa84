/**
 * The client runtime's operations on any procedure, bound to where they are
 * served: what `Client.make` and the Effect-flavoured `StreamClient` run on.
 */
import * as Names from "../../src/protocol/Names.ts"
import { ClientError } from "../ClientError.ts"
import * as ClientProcedure from "../ClientProcedure.ts"
import * as Multiplex from "../../src/protocol/Multiplex.ts"
import type * as Subscription_ from "../Subscription.ts"
import * as Transfer from "../Transfer.ts"
import * as Consumer from "./Consumer.ts"
import * as Multiplexer from "./Multiplexer.ts"
import * as OwnConnection from "./OwnConnection.ts"
import * as TabShare from "./TabShare.ts"

export interface ClientOptions {
  /** Where the procedures are mounted, e.g. `"http://127.0.0.1:3000/rpc"`, or `"/rpc"` in a browser. */
  readonly baseUrl: string
  /**
   * Headers of every request (e.g. `Authorization`). A function is called
   * again for every request and every reconnection, so it can hand out a
   * fresh token each time.
   */
  readonly headers?: ClientProcedure.HeadersOption
  /** The fetch to use. Default `globalThis.fetch`. */
  readonly fetch?: typeof globalThis.fetch
  /**
   * Carry every subscription of this client on one connection (wire protocol
   * v1.1, `POST <baseUrl>/_mux`) instead of one connection each (v1). A
   * browser allows six HTTP/1.1 connections per origin: with one each, a
   * seventh subscription would wait. Default: `true` in a browser (a
   * `document`, or a worker's global scope), `false` elsewhere (a Node
   * service has no such limit).
   *
   * Each subscription keeps what it has on its own connection (its cursor,
   * `dropped`, typed error and end, reconnection with resume), except that a
   * slow iterator cannot pause the shared connection: past `queueCapacity`
   * values waiting, the client drops the oldest and reports it with
   * `onDropped`. A server without v1.1 (`404 NotFound` for `_mux`) gets one
   * connection per subscription from then on.
   */
  readonly multiplex?: boolean
  /**
   * One multiplexed connection for every tab of the origin: the runtimes of
   * the same origin, `baseUrl` and share key elect a leader with Web Locks,
   * and the leader carries every tab's subscriptions on its connection, with
   * ITS `headers` and `fetch`, passing each one's events to the tab that
   * asked over a `BroadcastChannel` (decoded there, by that tab's codecs).
   * When the leader's tab closes, another tab takes over and every
   * subscription resumes after its last cursor (exactly, for a Topic's). A
   * tab closing without unsubscribing leaves nothing behind. Without it,
   * each tab holds a connection, and a seventh tab of the origin waits
   * (even for its page) behind six event streams.
   *
   * Only runtimes that agree share: a string is a share key, so that
   * runtimes with different credentials (whose requests another tab's
   * headers must not make) keep apart. Default `false` (for now: a reader
   * stalled past its queue sees its `onDropped` reports land on other values
   * than alone). Only in a window (a `document`) with `navigator.locks` and
   * `BroadcastChannel`, and when the runtime multiplexes; never in Node or
   * workers, whatever the option says.
   */
  readonly shareAcrossTabs?: boolean | string
}

/** A browser, or a worker: where connections per origin are few. */
const inBrowser = (): boolean => typeof document !== "undefined" || "WorkerGlobalScope" in globalThis

export interface CallOptions {
  readonly signal?: AbortSignal
}

/** Any procedure, whatever its types. */
export type AnyProcedure = ClientProcedure.Procedure<never, unknown, unknown>

/** The runtime's operations on any procedure, bound to where they are served. */
export interface Runtime {
  readonly subscribe: (
    procedure: AnyProcedure,
    payload: unknown,
    options?: Subscription_.SubscribeOptions<unknown, unknown>
  ) => Subscription_.Opened
  readonly download: (procedure: AnyProcedure, payload: unknown, options?: Transfer.DownloadOptions) => Promise<Transfer.Download>
  readonly export: (procedure: AnyProcedure, payload: unknown, options?: Transfer.ExportOptions<string>) => Promise<Transfer.Export<unknown>>
  readonly call: (procedure: AnyProcedure, payload: unknown, options?: CallOptions) => Promise<unknown>
}

export const runtime = (options: ClientOptions): Runtime => {
  const base = options.baseUrl
  const transport = ClientProcedure.transport(options)
  const bound = new WeakMap<AnyProcedure, ClientProcedure.ClientProcedure>()
  const bind = (procedure: AnyProcedure): ClientProcedure.ClientProcedure => {
    let client = bound.get(procedure)
    if (client === undefined) {
      client = ClientProcedure.bind(base, procedure as ClientProcedure.Procedure)
      bound.set(procedure, client)
    }
    return client
  }

  const call = async (unbound: AnyProcedure, payload: unknown, options?: CallOptions): Promise<unknown> => {
    const procedure = bind(unbound)
    const tag = procedure.tag
    ClientProcedure.expectKind(procedure, ["unary"], "call")
    const signal = options?.signal
    const response = await ClientProcedure.post(procedure, transport, ClientProcedure.encodePayload(procedure, payload), {
      signal,
      accept: Names.contentTypes.json
    })
    let text: string
    try {
      text = await response.text()
    } catch (cause) {
      if (signal?.aborted) throw new ClientError("Aborted", `${tag}: aborted`, { cause })
      throw new ClientError("Truncated", `${tag}: the response could not be read`, { cause })
    }
    let json: unknown
    try {
      json = text === "" ? undefined : JSON.parse(text)
    } catch (cause) {
      throw new ClientError("Protocol", `${tag}: the response is not JSON`, { status: response.status, cause })
    }
    return ClientProcedure.decodeOrThrow(procedure.decodeSuccess, json, tag, "the response", response.status)
  }

  const ownConnection = (wanted: Multiplexer.Wanted) =>
    OwnConnection.run(wanted.consumer, wanted.procedure, wanted.body, transport)
  const multiplex = options.multiplex ?? inBrowser()
  const multiplexer = multiplex ? Multiplexer.make(base, transport, ownConnection) : undefined
  // Past the most one connection carries, the others have connections of their own.
  const carry = (wanted: Multiplexer.Wanted) => {
    if (multiplexer !== undefined && multiplexer.size < Multiplex.maxSubscriptions) multiplexer.add(wanted)
    else ownConnection(wanted)
  }
  const shareKey = TabShare.keyOf(options.shareAcrossTabs, multiplex)
  const shared = shareKey === undefined ? undefined : TabShare.make(shareKey, base, carry)

  const subscribe = (
    unbound: AnyProcedure,
    payload: unknown,
    subscribeOptions?: Subscription_.SubscribeOptions<unknown, unknown>
  ): Subscription_.Opened => {
    const procedure = bind(unbound)
    let encoded: unknown
    let invalid: { readonly error: unknown } | undefined
    try {
      ClientProcedure.expectKind(procedure, ["subscription"], "subscribe")
      encoded = ClientProcedure.decodeOrThrow(procedure.encodePayload, payload, procedure.tag, "the payload")
    } catch (error) {
      invalid = { error }
    }
    const consumer = Consumer.make(procedure.tag, subscribeOptions ?? {}, invalid)
    if (!consumer.finished) {
      const body = encoded === undefined ? undefined : JSON.stringify(encoded)
      const wanted: Multiplexer.Wanted = { procedure, payload: encoded, body, consumer }
      if (shared !== undefined) shared.add(wanted)
      else carry(wanted)
    }
    return consumer.opened
  }

  return {
    subscribe,
    download: async (procedure, payload, options) => Transfer.download(bind(procedure), transport, payload, options),
    export: async (procedure, payload, options) => Transfer.exportRows(bind(procedure), transport, payload, options),
    call
  }
}

