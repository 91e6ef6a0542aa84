/** What a stream reports to metrics (`MetricsService` records it), by kind and procedure name. */

export type Kind = "subscription" | "download" | "export"

/** How a stream terminated, as recorded by metrics and the cleanup log line. */
export type Termination = "completed" | "failed" | "interrupted"

export interface Metrics {
  readonly started: (kind: Kind, name: string) => void
  /** `values` delivered (events or rows; byte chunks for downloads) and `bytes` written. */
  readonly delivered: (kind: Kind, name: string, values: number, bytes: number) => void
  readonly dropped: (kind: Kind, name: string, count: number) => void
  /** The stream ended, having delivered `values` in all. */
  readonly ended: (kind: Kind, name: string, termination: Termination, durationMillis: number, values: number) => void
}
