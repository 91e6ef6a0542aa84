/** The symbol under which a Topic subscription carries its fast-path handle. */
export const TypeId: unique symbol = Symbol.for("effect-stream-rpc/Topic")

export type TypeId = typeof TypeId
