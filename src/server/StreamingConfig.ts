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
}

export const defaults: StreamingSettings = {
  heartbeatInterval: Duration.seconds(30),
  retry: undefined
}

export class StreamingConfig extends Context.Reference<StreamingConfig>()("effect-stream-rpc/StreamingConfig", {
  defaultValue: (): StreamingSettings => defaults
}) {}

export const layer = (settings: {
  readonly heartbeatInterval?: Duration.DurationInput | undefined
  readonly retry?: Duration.DurationInput | undefined
}): Layer.Layer<StreamingConfig> =>
  Layer.succeed(StreamingConfig, {
    heartbeatInterval: settings.heartbeatInterval === undefined
      ? defaults.heartbeatInterval
      : Duration.decode(settings.heartbeatInterval),
    retry: settings.retry === undefined ? undefined : Duration.decode(settings.retry)
  })
