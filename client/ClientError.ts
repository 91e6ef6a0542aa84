/**
 * `ClientError`: anything a client reports that is not a typed answer of the
 * procedure. Both clients classify failures with the same reasons: the
 * RpcClient protocol (`RpcProtocol`) carries a `ClientError` as the `cause`
 * of its `RpcClientError`.
 */
import { RowsTruncated, RowSyntaxError } from "../src/protocol/Rows.ts"

export type ClientErrorReason = "Transport" | "Truncated" | "Timeout" | "Protocol" | "EventTooLarge" | "Aborted"

/**
 * - `Transport`: the request or the connection failed;
 * - `Truncated`: the body ended early (a download or export short of its
 *   length, cut by the server or stopping before its format's end; a
 *   subscription without `event: end`);
 * - `Timeout`: a subscription was silent longer than `heartbeatTimeoutMs`;
 * - `Protocol`: an answer that is not what the protocol and the contract
 *   say (an HTTP error that is not a typed error — `status` tells which —,
 *   a value that does not decode, a malformed body);
 * - `EventTooLarge`: an SSE event over `maxEventSize`;
 * - `Aborted`: the caller's `AbortSignal` fired.
 */
export class ClientError extends Error {
  readonly _tag = "ClientError" as const
  readonly reason: ClientErrorReason
  declare readonly status?: number
  constructor(reason: ClientErrorReason, message: string, options?: {
    readonly status?: number | undefined
    readonly cause?: unknown
  }) {
    super(message, options !== undefined && "cause" in options ? { cause: options.cause } : undefined)
    this.name = "ClientError"
    this.reason = reason
    if (options?.status !== undefined) {
      Object.defineProperty(this, "status", { value: options.status, enumerable: true, writable: false })
    }
  }
}

/** A row decoder's error as the client reports it: a body stopping short is `Truncated`, a malformed one `Protocol`. */
export const ofRows = (tag: string, error: unknown): unknown =>
  error instanceof RowSyntaxError
    ? new ClientError(error instanceof RowsTruncated ? "Truncated" : "Protocol", `${tag}: ${error.message}`, { cause: error })
    : error
