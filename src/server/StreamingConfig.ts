/**
 * Application-level configuration of the streaming layer. Deliberately not a
 * per-call option: a heartbeat interval is a property of the deployment (its
 * proxies and load balancers), not of a procedure.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Layer from "effect/Layer"

export interface StreamingSettings {
  /** Interval of the `: heartbeat` comment on SSE responses. Default 30 seconds. */
  readonly heartbeatInterval: Duration.Duration
  /** Reconnection delay announced to SSE clients with `retry:`; none by default. */
  readonly retry: Duration.Duration | undefined
  /**
   * How long a download or export may wait on a client that takes no byte
   * (its socket full) before the connection is cut, freeing its slot and
   * what it holds. Default 60 seconds; `Duration.infinity` never cuts.
   * Served by Node (`toWebHandler` bodies are paced by their runtime).
   */
  readonly transferStallTimeout: Duration.Duration
}

export const defaults: StreamingSettings = {
  heartbeatInterval: Duration.seconds(30),
  retry: undefined,
  transferStallTimeout: Duration.seconds(60)
}

export class StreamingConfig extends Context.Reference<StreamingConfig>()("effect-stream-rpc/StreamingConfig", {
  defaultValue: (): StreamingSettings => defaults
}) {}

export const layer = (settings: {
  readonly heartbeatInterval?: Duration.DurationInput | undefined
  readonly retry?: Duration.DurationInput | undefined
  readonly transferStallTimeout?: Duration.DurationInput | undefined
}): Layer.Layer<StreamingConfig> =>
  Layer.succeed(StreamingConfig, {
    heartbeatInterval: settings.heartbeatInterval === undefined
      ? defaults.heartbeatInterval
      : Duration.decode(settings.heartbeatInterval),
    retry: settings.retry === undefined ? undefined : Duration.decode(settings.retry),
    transferStallTimeout: settings.transferStallTimeout === undefined
      ? defaults.transferStallTimeout
      : Duration.decode(settings.transferStallTimeout)
  })
