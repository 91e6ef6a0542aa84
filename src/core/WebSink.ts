/**
 * An `SseSink` that is a web `ReadableStream` of UTF-8 bytes: the body of an
 * answer on runtimes other than Node (`toWebHandler`), and of
 * `StreamingService.sse` from an application's own route. The stream's
 * queue is the sink's buffer (`highWaterMark` bytes): a write that fills it
 * returns false, and the reader's next pull is the sink's drain.
 */
import type { SseSink } from "./SseAnswer.ts"

const encoder = new TextEncoder()

/** Bytes queued before a write reports the sink full. */
export const highWaterMark = 64 * 1024

export class WebSink implements SseSink {
  readonly readable: ReadableStream<Uint8Array>
  private controller: ReadableStreamDefaultController<Uint8Array> | undefined = undefined
  private ended = false
  private cancelled = false
  private full = false
  private onDrain: (() => void) | undefined = undefined
  private onClose: (() => void) | undefined = undefined

  constructor() {
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.controller = controller
      },
      pull: () => {
        if (!this.full) return
        this.full = false
        this.onDrain?.()
      },
      cancel: () => {
        this.cancelled = true
        this.ended = true
        this.onClose?.()
      }
    }, new ByteLengthQueuingStrategy({ highWaterMark }))
  }

  get gone(): boolean {
    return this.cancelled
  }

  /** The head travels on the response that carries `readable`. */
  open(): void {}

  write(text: string): boolean {
    const controller = this.controller
    if (this.ended || controller === undefined) return false
    controller.enqueue(encoder.encode(text))
    if ((controller.desiredSize ?? 0) > 0) return true
    this.full = true
    return false
  }

  end(text?: string): void {
    if (this.ended) return
    this.ended = true
    const controller = this.controller!
    if (text !== undefined && text !== "") controller.enqueue(encoder.encode(text))
    controller.close()
  }

  listen(onDrain: () => void, onClose: () => void): void {
    this.onDrain = onDrain
    this.onClose = onClose
  }

  unlisten(): void {
    this.onDrain = undefined
    this.onClose = undefined
  }
}
