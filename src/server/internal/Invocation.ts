/**
 * Calls the handler of a procedure with `@effect/rpc`'s middleware semantics
 * (as `RpcServer` applies them):
 * - a plain middleware runs before the handler and may provide a service
 *   (`provides`) or reject the call with its failure (401, 403, …);
 * - an `optional` middleware's failure is ignored (the handler runs without
 *   what it would have provided);
 * - a `wrap` middleware receives the handler as `next`: for a unary call the
 *   call itself, for a stream its whole run, from the first pull to its end.
 * For streams, plain and optional middlewares run before the response starts,
 * so a rejection is an HTTP error and no handler stream ever runs.
 */
import type * as Headers from "@effect/platform/Headers"
import * as HttpTraceContext from "@effect/platform/HttpTraceContext"
import * as Rpc from "@effect/rpc/Rpc"
import type * as RpcMiddleware from "@effect/rpc/RpcMiddleware"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Mailbox from "effect/Mailbox"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Tracer from "effect/Tracer"
import * as Spans from "./Spans.ts"
import * as Transfer from "./Transfer.ts"
import type { Call } from "./RequestParsing.ts"

type AnyMiddleware = (options: unknown) => Effect.Effect<unknown, unknown>

export type Invocation =
  | { readonly _tag: "Unary"; readonly effect: Effect.Effect<unknown, unknown> }
  | {
    readonly _tag: "Stream"
    /**
     * What the handler returned, as a stream (a Topic subscription as it is:
     * it is served on its fast path), without the handler's context: run it
     * inside `run`.
     */
    readonly source: Stream.Stream<unknown, unknown>
    /**
     * Around the whole run of `source`, from its first pull to its end: the
     * handler's context (what it and the middlewares provided), its span and
     * the procedure's `wrap` middlewares. Applied once, not at every pull.
     */
    readonly run: (run: Effect.Effect<void, unknown>) => Effect.Effect<void, unknown>
    /** The procedure has `wrap` middlewares: its delivery must stay inside `run`. */
    readonly wrapped: boolean
    /**
     * The call's span when a tracer is provided (`Spans`): `run` runs under
     * it, and whoever answers the call ends it when the stream ends.
     */
    readonly span: Tracer.Span | undefined
  }

const middlewareOf = (context: Context.Context<never>, tag: RpcMiddleware.TagClassAny): AnyMiddleware =>
  Context.unsafeGet(context, tag as unknown as Context.Tag<unknown, AnyMiddleware>)

/** Applies the plain and optional middlewares of `tags` around `handler`, in `RpcServer`'s order. */
const applyPlain = <A>(
  tags: Iterable<RpcMiddleware.TagClassAny>,
  context: Context.Context<never>,
  options: object,
  handler: Effect.Effect<A, unknown>
): Effect.Effect<A, unknown> => {
  for (const tag of tags) {
    const middleware = middlewareOf(context, tag)
    const provides = tag.provides as Context.Tag<unknown, unknown> | undefined
    if (tag.optional) {
      const previous = handler
      handler = Effect.matchEffect(middleware(options), {
        onFailure: () => previous,
        onSuccess: (value) => (provides === undefined ? previous : Effect.provideService(previous, provides, value))
      })
    } else {
      handler = provides === undefined
        ? Effect.zipRight(middleware(options), handler)
        : Effect.provideServiceEffect(handler, provides, middleware(options))
    }
  }
  return handler
}

const applyAll = <A>(
  tags: Iterable<RpcMiddleware.TagClassAny>,
  context: Context.Context<never>,
  options: object,
  handler: Effect.Effect<A, unknown>
): Effect.Effect<A, unknown> => {
  for (const tag of tags) {
    handler = tag.wrap
      ? (middlewareOf(context, tag)({ ...options, next: handler }) as Effect.Effect<A, unknown>)
      : applyPlain([tag], context, options, handler)
  }
  return handler
}

const unwrap = (result: unknown): unknown => (Rpc.isWrapper(result as object) ? (result as Rpc.Wrapper<unknown>).value : result)

const asStream = (result: unknown): Stream.Stream<unknown, unknown> => {
  const value = unwrap(result)
  if (Stream.StreamTypeId in (value as object)) return value as Stream.Stream<unknown, unknown>
  // A download handler may return a Node Readable or a web ReadableStream of bytes.
  if (Transfer.isReadableSource(value)) return Transfer.fromReadable(value)
  // A handler may return an Effect of a Mailbox instead of a Stream.
  return Stream.unwrapScoped(Effect.map(
    value as Effect.Effect<Mailbox.ReadonlyMailbox<unknown, unknown>, unknown, Scope.Scope>,
    Mailbox.toStream
  ))
}

/** What a call of `rpc` is invoked with: its handler, the span's name and options, the middlewares' options. */
const callOf = (call: Call, context: Context.Context<never>) => {
  const { headers, payload, served } = call
  const rpc = served.rpc
  const entry = context.unsafeMap.get(rpc.key) as Rpc.Handler<string> | undefined
  if (entry === undefined) return undefined
  const parent = HttpTraceContext.fromHeaders(headers)
  const span = {
    kind: "server" as const,
    captureStackTrace: false,
    attributes: { "rpc.system": "effect-stream-rpc", "rpc.method": rpc._tag, "rpc.kind": served.spec._tag },
    ...(Option.isSome(parent) ? { parent: parent.value } : {})
  }
  const spanName = `RpcServer.${rpc._tag}`
  const options = { rpc, payload, headers: headers as Headers.Headers, clientId: 0 }
  return { rpc, entry, span, spanName, options }
}

/**
 * A stream call's invocation: what the handler returned (`result`), run
 * under the handler's context and what the plain middlewares provided
 * (`provided`), inside its `wrap` middlewares and its span.
 */
const streamOf = (
  invoked: NonNullable<ReturnType<typeof callOf>>,
  context: Context.Context<never>,
  result: unknown,
  provided: Context.Context<never>,
  traced: Tracer.Span | undefined
): Invocation => {
  const { entry, options, span, spanName } = invoked
  const wraps = Array.from(invoked.rpc.middlewares).filter((tag) => tag.wrap)
  // Merged when the run starts: a Topic subscription served without a fiber never
  // runs it, and its request then holds no copy of the context while it is open.
  let merged: Context.Context<never> | undefined
  const handlerContext = (ctx: Context.Context<never>) => Context.merge(ctx, merged ??= Context.merge(entry.context, provided))
  const run = (run: Effect.Effect<void, unknown>) => {
    const inSpan = traced === undefined ? Effect.withSpan(run, spanName, span) : Effect.withParentSpan(run, traced)
    return Effect.mapInputContext(
      wraps.length === 0 ? inSpan : applyAll(wraps, context, options, inSpan),
      handlerContext
    ) as Effect.Effect<void, unknown>
  }
  return { _tag: "Stream" as const, source: asStream(result), run, wrapped: wraps.length > 0, span: traced }
}

/**
 * Invokes the handler of `call` (its span the child of the caller's, from
 * the `traceparent` of its headers). `context` holds the handlers (`group.toLayer`)
 * and middlewares; fails with the middleware's error when a plain middleware
 * rejects a stream call.
 */
export const invoke = (
  call: Call,
  context: Context.Context<never>
): Effect.Effect<Invocation, unknown> =>
  Effect.suspend((): Effect.Effect<Invocation, unknown> => {
    const invoked = callOf(call, context)
    if (invoked === undefined) {
      return Effect.dieMessage(`No handler for ${call.served.rpc._tag}: provide the layer of group.toLayer`)
    }
    const { entry, options, rpc, span, spanName } = invoked
    const result = entry.handler(call.payload, { clientId: 0, headers: call.headers })
    if (call.served.spec._tag === "unary") {
      const handler = Effect.mapInputContext(
        unwrap(result) as Effect.Effect<unknown, unknown>,
        (ctx: Context.Context<never>) => Context.merge(ctx, entry.context)
      )
      return Effect.succeed({
        _tag: "Unary" as const,
        effect: Effect.withSpan(applyAll(rpc.middlewares, context, options, handler), spanName, span)
      })
    }
    return Effect.flatMap(
      applyPlain(Array.from(rpc.middlewares).filter((tag) => !tag.wrap), context, options, Effect.context<never>()),
      (provided) =>
        // With a tracer provided, the span lasts as long as the stream (ended by its answer).
        Effect.flatMap(Spans.enabled, (tracing) =>
          tracing
            ? Effect.map(Effect.makeSpan(spanName, span), (traced) => streamOf(invoked, context, result, provided, traced))
            : Effect.succeed(streamOf(invoked, context, result, provided, undefined)))
    )
  })

/**
 * `invoke` outside a fiber, for a stream procedure with no middleware and
 * no tracer provided: the handler's stream, in `context`. Undefined when
 * `context` has no handler for it.
 */
export const invokeStreamUntraced = (call: Call, context: Context.Context<never>): Invocation | undefined => {
  const invoked = callOf(call, context)
  if (invoked === undefined) return undefined
  const result = invoked.entry.handler(call.payload, { clientId: 0, headers: call.headers })
  return streamOf(invoked, context, result, context, undefined)
}
