/**
 * Progress of a byte transfer (a download or an export), and the body
 * wrapper that reports it.
 *
 * `withProgress` turns the body of a fetch `Response` into a pull-based
 * `ReadableStream`: a chunk is read from the network only when the consumer
 * asks for one (high-water mark 0), so a slow consumer slows the TCP stream
 * instead of filling memory. The stream errors, instead of ending cleanly,
 * when the connection ends early: fewer bytes than `Content-Length`, or the
 * network read rejecting (the server aborts a transfer that failed after it
 * started by destroying the connection).
 *
 * Browser-safe: only web-standard APIs, no Node built-ins.
 */

export interface DownloadProgress {
  /** Bytes received so far. */
  readonly received: number
  /** Bytes announced by `Content-Length`; `undefined` when the server did not say. */
  readonly total: number | undefined
}

export interface ProgressOptions {
  /** Expected size in bytes; a body that ends before it is an error. */
  readonly total: number | undefined
  readonly onProgress?: ((progress: DownloadProgress) => void) | undefined
  /** The error the stream fails with when the body ends early or the network read rejects. */
  readonly failure: (reason: "ended" | "rejected", received: number, cause?: unknown) => unknown
}

/** Runs a user callback; an exception in it is reported asynchronously rather than breaking the transfer. */
export const invokeCallback = <A>(callback: ((a: A) => void) | undefined, value: A): void => {
  if (callback === undefined) return
  try {
    callback(value)
  } catch (error) {
    setTimeout(() => {
      throw error
    }, 0)
  }
}

/**
 * The bytes of `source`, reporting progress after every chunk and failing
 * with `options.failure(...)` when the transfer is cut short. Cancelling the
 * returned stream cancels `source` (which aborts the fetch).
 */
export const withProgress = (
  source: ReadableStream<Uint8Array>,
  options: ProgressOptions
): ReadableStream<Uint8Array> => {
  const reader = source.getReader()
  const total = options.total
  let received = 0
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let result: ReadableStreamReadResult<Uint8Array>
      try {
        result = await reader.read()
      } catch (cause) {
        controller.error(options.failure("rejected", received, cause))
        return
      }
      if (result.done) {
        if (total !== undefined && received < total) {
          controller.error(options.failure("ended", received))
        } else {
          controller.close()
        }
        return
      }
      const chunk = result.value
      if (chunk.byteLength === 0) return
      received += chunk.byteLength
      controller.enqueue(chunk)
      invokeCallback(options.onProgress, { received, total })
    },
    cancel(reason) {
      return reader.cancel(reason)
    }
  }, { highWaterMark: 0 })
}
