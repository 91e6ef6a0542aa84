/**
 * One multiplexed connection (wire protocol v1.1): one SSE sink shared by
 * many subscriptions, each an `SseAnswer` of its own writing to a `Channel`
 * of the connection. A channel is an `SseSink`: what a subscription writes
 * goes out after a `sub: <id>` line when the previous event was another
 * subscription's, so frames a Topic shares between subscribers are written
 * unchanged.
 *
 * The connection's writer is bounded as a whole: once the socket is full,
 * every channel's write answers false, so each subscription holds what comes
 * next in its own buffer (the sliding 64, or its place in a Topic's log).
 * When the socket drains, the channels that waited write in turn, first
 * blocked first served; a channel that blocks the socket again goes to the
 * back. Heartbeats are the connection's, not the subscriptions'.
 *
 * Plain JavaScript: the Effect side is `server/internal/Multiplexed`.
 */
import * as Multiplex from "../protocol/Multiplex.ts"
import * as Sse from "../protocol/Sse.ts"
import * as SseAnswer from "./SseAnswer.ts"

export interface Options {
  /** The connection's id, as its `connection` event names it. */
  readonly id: string
  /** Headers besides the SSE head (CORS, for one). */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** The first line: a comment or `retry:`. The `connection` event follows it. */
  readonly opening: string
  readonly heartbeatMillis: number
  readonly every: SseAnswer.Every
  readonly draining: SseAnswer.Draining
  /** Called once when the connection stops, however it stops, after every channel has closed. */
  readonly stopped: (connection: MuxConnection) => void
}

/** One subscription's place on a connection: an `SseSink` that writes into the connection's. */
export class Channel implements SseAnswer.SseSink {
  private onDrain: (() => void) | undefined = undefined
  private onClose: (() => void) | undefined = undefined
  /** Its subscription is over (ended, removed, or the connection stopped): it writes nothing more. */
  closed = false

  constructor(readonly connection: MuxConnection, readonly id: string) {}

  /** The connection's head is already written. */
  open(): void {}

  write(text: string): boolean {
    if (this.closed) return false
    return this.connection.writeFor(this, text)
  }

  /** The subscription's last frame (`end`, `error`), or nothing: the channel closes, the connection goes on. */
  end(text?: string): void {
    if (this.closed) return
    if (text !== undefined && text !== "") this.connection.writeFor(this, text)
    this.closed = true
    this.connection.forget(this)
  }

  get gone(): boolean {
    return this.closed || this.connection.gone
  }

  listen(onDrain: () => void, onClose: () => void): void {
    this.onDrain = onDrain
    this.onClose = onClose
  }

  unlisten(): void {
    this.onDrain = undefined
    this.onClose = undefined
  }

  /** The connection's socket takes writes again. */
  drained(): void {
    this.onDrain?.()
  }

  /** Closes the channel from outside (removed, or the connection stopped): its subscription stops. */
  close(): void {
    if (this.closed) return
    this.closed = true
    const onClose = this.onClose
    this.connection.forget(this)
    onClose?.()
  }
}

export class MuxConnection {
  readonly startedAt = Date.now()
  private readonly channels = new Map<string, Channel>()
  /** Channels whose last write found the socket full, in the order they found it. */
  private readonly waiting = new Set<Channel>()
  /** The subscription of the last event written. */
  private current: string | undefined = undefined
  private blocked = false
  private stopped = false
  private active = false

  constructor(readonly sink: SseAnswer.SseSink, readonly options: Options) {}

  get isStopped(): boolean {
    return this.stopped
  }

  get gone(): boolean {
    return this.stopped || this.sink.gone
  }

  /** Subscriptions on the connection now. */
  get size(): number {
    return this.channels.size
  }

  /** Writes the head, the opening line and the `connection` event; false when it ended at once. */
  start(): boolean {
    const { sink, options } = this
    sink.open(options.headers === undefined ? SseAnswer.headers : { ...SseAnswer.headers, ...options.headers })
    if (!sink.write(options.opening + Multiplex.connection(options.id))) this.blocked = true
    if (options.draining.isDraining() || sink.gone) {
      this.stop()
      return false
    }
    sink.listen(this.onDrain, this.onClose)
    SseAnswer.joinHeartbeat(options.every, options.heartbeatMillis, this)
    options.draining.watch(this.onDraining)
    return true
  }

  has(id: string): boolean {
    return this.channels.has(id)
  }

  /** A new channel for subscription `id`, or `undefined` when the id is taken or the connection stopped. */
  channel(id: string): Channel | undefined {
    if (this.stopped || this.channels.has(id)) return undefined
    const channel = new Channel(this, id)
    this.channels.set(id, channel)
    return channel
  }

  /** Stops subscription `id` (a change removed it); false when it is not on the connection. */
  remove(id: string): boolean {
    const channel = this.channels.get(id)
    if (channel === undefined) return false
    channel.close()
    return true
  }

  /** Writes `text` for `channel`; false once the socket is full (the text is still taken). */
  writeFor(channel: Channel, text: string): boolean {
    if (this.stopped) return false
    this.active = true
    let frame = text
    if (this.current !== channel.id) {
      this.current = channel.id
      frame = Multiplex.select(channel.id) + text
    }
    if (this.sink.write(frame) && !this.blocked) return true
    this.blocked = true
    this.waiting.add(channel)
    return false
  }

  /** The channel is closed: it leaves the connection. */
  forget(channel: Channel): void {
    if (this.channels.get(channel.id) === channel) this.channels.delete(channel.id)
    this.waiting.delete(channel)
  }

  private readonly onDrain = (): void => {
    this.blocked = false
    for (const channel of [...this.waiting]) {
      if (this.blocked || this.stopped) return
      this.waiting.delete(channel)
      channel.drained()
    }
  }

  /** The client went, or the sink ended. */
  private readonly onClose = (): void => this.stop()

  /** Draining: end without any event, so the client reconnects (to another instance) and resumes. */
  private readonly onDraining = (): void => this.stop()

  beat(): void {
    if (!this.active && !this.blocked && !this.stopped) {
      // A comment selects no subscription.
      if (!this.sink.write(Sse.heartbeat)) this.blocked = true
    }
    this.active = false
  }

  /** Idempotent: stops every subscription, leaves the shared timers, ends the sink. */
  stop(): void {
    if (this.stopped) return
    this.stopped = true
    const { sink, options } = this
    for (const channel of [...this.channels.values()]) channel.close()
    this.waiting.clear()
    sink.unlisten()
    SseAnswer.leaveHeartbeat(options.every, options.heartbeatMillis, this)
    options.draining.unwatch(this.onDraining)
    sink.end()
    options.stopped(this)
  }
}
