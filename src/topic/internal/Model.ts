/**
 * The models of a topic, shared by its public module (`Topic.ts`, which
 * re-exports them) and its internals: what a value is published as, what a
 * topic and a subscription are given, and the fast-path handle a transport
 * attaches a socket to.
 */
import type * as Duration from "effect/Duration"
import type * as Stream from "effect/Stream"
import type { TypeId } from "./TypeId.ts"
import type { Attachment, FrameSink, FrameSource } from "../../core/SseAnswer.ts"

/** A published value with the cursor the topic gave it (the SSE `id:`). */
export interface Entry<A> {
  readonly cursor: string
  readonly value: A
}

export interface Options<A> {
  /** Key of a value (e.g. its symbol): subscribers to some keys are only touched by their values. */
  readonly key?: ((value: A) => string) | undefined
  /**
   * What a resuming subscriber (`after`) can be replayed: at most `count`
   * values (default 1,000 when `replay` is given, 0 without it), none older
   * than `age` (default: no limit).
   */
  readonly replay?: {
    readonly count?: number | undefined
    readonly age?: Duration.DurationInput | undefined
  } | undefined
  /**
   * Fan-out pacing (default `true`): values are handed to many subscribers
   * in slices of about a millisecond with a turn of the event loop between
   * slices and between hand-overs, and what was published during one goes
   * out in the next, one write per subscriber. Nothing waiting, fan-out
   * takes the whole loop; while requests wait on the requests' queue, a
   * busy hand-over delays the next by as long, so a server feeding more
   * subscribers than it can still answers requests. `false`: every publish
   * is written at once, whatever it costs.
   */
  readonly pace?: boolean | undefined
}

export interface SubscribeOptions {
  /** Only values with one of these keys (needs the topic's `key` option); all values without it. */
  readonly keys?: Iterable<string> | undefined
  /** Resume after this cursor (`Procedure.lastEventId(headers)`). */
  readonly after?: string | undefined
}

/** Where a fast-path subscriber writes: SSE frames as text (`core/SseAnswer.FrameSink`). */
export type Sink = FrameSink

export type { Attachment }

/** The fast-path handle of a subscription, found under `TypeId` (`core/SseAnswer.FrameSource`). */
export type Handle<A> = FrameSource<A>

export interface Subscription<A> extends Stream.Stream<A> {
  readonly [TypeId]: Handle<A>
  /** The same values with their cursors. */
  readonly entries: Stream.Stream<Entry<A>>
}
