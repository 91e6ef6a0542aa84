/**
 * The kinds of procedure and the capacity of each streaming kind's policy.
 * The policies are the product's, not configurable per call: a subscription
 * slides over its 64 newest values, a download holds its producer back past
 * 256 chunks, an export past 128 rows.
 */

/** The streaming kinds: each has its backpressure policy. */
export type StreamingKind = "subscription" | "download" | "export"

/** Every kind of procedure: the streaming ones and the unary call. */
export type Kind = StreamingKind | "unary"

/** The policy capacities of the product; they are not configurable per call. */
export const capacities = {
  subscription: 64,
  download: 256,
  export: 128
} as const satisfies Record<StreamingKind, number>
