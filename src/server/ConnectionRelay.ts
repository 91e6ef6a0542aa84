/**
 * Changes to a multiplexed connection (wire protocol v1.1), wherever they
 * land. A connection lives on the instance that opened it; behind a load
 * balancer without sticky sessions, the request adding or removing one of
 * its subscriptions may reach another instance. Without a relay that
 * instance answers `404` and the client reopens the connection there (one
 * reconnection, exact for Topic-backed subscriptions). With a relay it
 * forwards the change to the instance holding the connection, which applies
 * it as if it had received it — with the request's headers, so middlewares
 * authenticate it — and no subscription is touched but the ones changed.
 *
 * ```ts
 * HttpTransport.layer(Api).pipe(Layer.provide(ConnectionRelay.redis({ url: "redis://127.0.0.1:6379" })))
 * ```
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { randomId } from "../core/RandomId.ts"
import * as Topic from "../topic/Topic.ts"

export interface ConnectionRelay {
  /** This instance's name on the relay: connections it opens are named `<instance>.<n>`. */
  readonly instance: string
  /** Calls `handler` with every message forwarded to this instance; the returned function stops it. */
  readonly receive: (handler: (message: string) => void) => () => void
  /** Forwards `message` to `instance`; resolves false when no instance of that name listens. */
  readonly forward: (instance: string, message: string) => Promise<boolean>
}

export const ConnectionRelay = Context.GenericTag<ConnectionRelay>("effect-stream-rpc/ConnectionRelay")

export interface RedisOptions {
  /** A Redis URL, e.g. `redis://127.0.0.1:6379`. */
  readonly url: string
  /** The channels' prefix. Default `effect-stream-rpc:relay`. */
  readonly prefix?: string | undefined
  /** How long connecting may take. Default 5 seconds. */
  readonly connectTimeout?: Duration.DurationInput | undefined
}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/**
 * A relay on Redis PUB/SUB (needs the optional peer `@redis/client`): each
 * instance listens on `<prefix>:<instance>`; a forward is one `PUBLISH`,
 * and "nobody listens" is its count of 0. Fails with `TopicUnavailable` when
 * Redis cannot be reached.
 */
export const redis = (options: RedisOptions): Layer.Layer<ConnectionRelay, Topic.TopicUnavailable> =>
  Layer.scoped(
    ConnectionRelay,
    Effect.gen(function*() {
      const prefix = options.prefix ?? "effect-stream-rpc:relay"
      const unavailable = (message: string) => new Topic.TopicUnavailable({ topic: prefix, message })
      const { createClient } = yield* Effect.tryPromise({
        try: () => import("@redis/client"),
        catch: () => unavailable("ConnectionRelay.redis needs the package @redis/client: npm install @redis/client")
      })
      const connectTimeout = Duration.decode(options.connectTimeout ?? "5 seconds")
      const open = (role: string) =>
        Effect.gen(function*() {
          // Destroyed with the layer's scope; connected outside `acquireRelease` (whose acquire
          // cannot be interrupted), so the connect timeout can end a connection that never comes.
          const client = yield* Effect.acquireRelease(
            Effect.sync(() => {
              const client = createClient({
                url: options.url,
                disableOfflineQueue: true,
                socket: {
                  connectTimeout: Math.min(Duration.toMillis(connectTimeout), 5_000),
                  reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 10), 2_000)
                }
              })
              client.on("error", () => {})
              return client
            }),
            (client) => Effect.sync(() => client.destroy())
          )
          yield* Effect.tryPromise({
            try: () => client.connect(),
            catch: (error) => unavailable(`cannot reach Redis (${role} connection of the relay): ${messageOf(error)}`)
          }).pipe(
            Effect.timeoutFail({
              duration: connectTimeout,
              onTimeout: () => unavailable(`Redis did not answer within ${Duration.format(connectTimeout)} (${role} connection of the relay)`)
            })
          )
          return client
        })
      const publisher = yield* open("publishing")
      const subscriber = yield* open("subscribing")
      const instance = randomId(6)
      const handlers = new Set<(message: string) => void>()
      yield* Effect.tryPromise({
        try: () =>
          subscriber.subscribe(`${prefix}:${instance}`, (message: string) => {
            for (const handler of handlers) handler(message)
          }),
        catch: (error) => unavailable(`cannot subscribe to the relay's channel: ${messageOf(error)}`)
      })
      return {
        instance,
        receive: (handler) => {
          handlers.add(handler)
          return () => {
            handlers.delete(handler)
          }
        },
        forward: async (to, message) => {
          try {
            return (await publisher.publish(`${prefix}:${to}`, message)) > 0
          } catch {
            return false
          }
        }
      } satisfies ConnectionRelay
    })
  )
