/**
 * Lets a subscription's producer report values its consumer will never get
 * (e.g. a resume cursor older than what is kept for replay). They are
 * announced like the sliding policy's own drops: an `event: dropped` before
 * the next value. `undefined` reports a gap of unknown size.
 *
 * Part of the contract between a subscription's producer (a handler, a
 * `Topic`) and whatever serves it (the sliding policy, the transport):
 * `BackpressurePolicy` re-exports both names.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

export class MissedValues extends Context.Tag("effect-stream-rpc/MissedValues")<MissedValues, {
  readonly report: (count: number | undefined) => Effect.Effect<void>
}>() {}

/** Reports missed values when running under a sliding policy; does nothing elsewhere. */
export const reportMissed = (count: number | undefined): Effect.Effect<void> =>
  Effect.flatMap(
    Effect.serviceOption(MissedValues),
    (service) => (Option.isSome(service) ? service.value.report(count) : Effect.void)
  )
