/**
 * A subscription on its own connection (wire protocol v1): one Server-Sent
 * Events request after another until the stream ends, fails or is closed,
 * resuming with `Last-Event-ID`. Reading pauses while the consumer is
 * `queueCapacity` values behind, so the server's sliding policy drops (and
 * counts) stale values.
 */
import * as Names from "../../src/protocol/Names.ts"
import * as Sse from "../../src/protocol/Sse.ts"
import * as SseParser from "../../src/protocol/SseParser.ts"
import { ClientError } from "../ClientError.ts"
import { type ClientProcedure, decodeOrThrow, failureOf, failureOfResponse, type Transport } from "../ClientProcedure.ts"
import * as Backoff from "./Backoff.ts"
import type { Consumer } from "./Consumer.ts"

type Outcome =
  | { readonly _tag: "Closed" }
  | { readonly _tag: "End" }
  | { readonly _tag: "Fatal"; readonly error: unknown }
  | { readonly _tag: "Retry"; readonly error: ClientError; readonly progressed: boolean; readonly afterMs?: number }

/** Thrown inside the parser's callback to stop feeding after a terminal event. */
const stop = Symbol("stop")

/** Carries `consumer` on requests of its own, with `body` (the encoded payload), until it is over. */
export const run = (
  consumer: Consumer,
  procedure: ClientProcedure,
  body: string | undefined,
  transport: Transport
): void => {
  if (consumer.finished) return
  const tag = procedure.tag
  const { initialDelayMs, maxDelayMs, maxAttempts, heartbeatTimeoutMs, maxEventSize } = Backoff.settingsOf(consumer.options)
  const closer = consumer.signal
  let retryMs: number | undefined

  /** State of the connection being read, shared with the parser's callback. */
  const connection: { progressed: boolean; terminal: Outcome | undefined } = { progressed: false, terminal: undefined }

  const parser = SseParser.makeSseParser({
    onEvent: (event) => {
      if (event.id !== undefined) consumer.received = event.id === "" ? undefined : event.id
      connection.progressed = true
      const meaning = Sse.subscriptionEvent(event)
      switch (meaning._tag) {
        case "Value": {
          let value: unknown
          try {
            value = decodeOrThrow(procedure.decodeSuccess, meaning.json, tag, "a value")
          } catch (error) {
            connection.terminal = { _tag: "Fatal", error }
            throw stop
          }
          consumer.deliver(value, "grow")
          return
        }
        case "Invalid":
          connection.terminal = {
            _tag: "Fatal",
            error: new ClientError("Protocol", `${tag}: an event is not JSON`, { cause: meaning.cause })
          }
          throw stop
        case "Dropped":
          consumer.dropped(meaning.count)
          return
        case "End":
          connection.terminal = { _tag: "End" }
          throw stop
        case "Failure":
          connection.terminal = { _tag: "Fatal", error: failureOf(procedure, meaning.error, "the subscription failed") }
          throw stop
        case "Ignored":
          return
      }
    },
    onRetry: (millis) => {
      retryMs = Math.min(Math.max(0, millis), maxDelayMs)
    }
  }, { maxEventSize })

  const connect = async (): Promise<Outcome> => {
    const controller = new AbortController()
    const abort = () => controller.abort()
    closer.addEventListener("abort", abort)
    const silence = Backoff.watchdog(controller, () => heartbeatTimeoutMs)
    connection.progressed = false
    connection.terminal = undefined
    try {
      silence.arm()
      let headers: Headers
      try {
        headers = await transport.headers()
      } catch (cause) {
        return {
          _tag: "Retry",
          error: new ClientError("Transport", `${tag}: the headers could not be computed`, { cause }),
          progressed: false
        }
      }
      headers.set(Names.headers.contentType, Names.contentTypes.json)
      headers.set(Names.headers.accept, Names.contentTypes.eventStream)
      if (consumer.received !== undefined) headers.set(Names.headers.lastEventId, consumer.received)
      if (closer.aborted) return { _tag: "Closed" }
      const response = await transport.fetch(procedure.path, {
        method: "POST",
        headers,
        ...(body === undefined ? {} : { body }),
        signal: controller.signal
      })
      if (!response.ok) {
        const error = await failureOfResponse(procedure, response)
        if (error instanceof ClientError && Backoff.transientStatuses.has(response.status)) {
          const afterMs = Backoff.retryAfterOf(response)
          return { _tag: "Retry", error, progressed: false, ...(afterMs === undefined ? {} : { afterMs }) }
        }
        return { _tag: "Fatal", error }
      }
      const contentType = response.headers.get(Names.headers.contentType) ?? ""
      if (Names.mediaTypeOf(contentType) !== Names.contentTypes.eventStream || response.body === null) {
        return {
          _tag: "Fatal",
          error: new ClientError("Protocol", `${tag}: expected text/event-stream, got ${contentType || "no body"}`, {
            status: response.status
          })
        }
      }
      consumer.setState("open")
      const reader = response.body.getReader()
      for (;;) {
        if (consumer.full) {
          // The consumer is behind: stop reading (the silence is ours, not the server's).
          silence.disarm()
          await consumer.drained()
          if (closer.aborted) return { _tag: "Closed" }
        }
        silence.arm()
        const result = await reader.read()
        if (result.done) {
          return connection.terminal ?? {
            _tag: "Retry",
            error: new ClientError("Truncated", `${tag}: the connection ended without an end event`),
            progressed: connection.progressed
          }
        }
        try {
          parser.feedBytes(result.value)
        } catch (error) {
          if (error === stop) return connection.terminal ?? { _tag: "End" }
          if (error instanceof SseParser.SseEventTooLarge) {
            return { _tag: "Fatal", error: new ClientError("EventTooLarge", `${tag}: ${error.message}`, { cause: error }) }
          }
          throw error
        }
        if (connection.terminal !== undefined) return connection.terminal
      }
    } catch (cause) {
      if (closer.aborted) return { _tag: "Closed" }
      if (silence.timedOut) {
        return {
          _tag: "Retry",
          error: new ClientError("Timeout", `${tag}: no byte for ${heartbeatTimeoutMs} ms`, { cause }),
          progressed: connection.progressed
        }
      }
      return {
        _tag: "Retry",
        error: new ClientError("Transport", `${tag}: the connection failed`, { cause }),
        progressed: connection.progressed
      }
    } finally {
      silence.disarm()
      closer.removeEventListener("abort", abort)
      controller.abort()
      parser.end()
    }
  }

  const loop = async () => {
    let failures = 0
    while (!consumer.finished) {
      const outcome = await connect()
      if (consumer.finished) return
      switch (outcome._tag) {
        case "Closed":
        case "End":
          consumer.finish()
          return
        case "Fatal":
          consumer.finish({ error: outcome.error })
          return
        case "Retry": {
          failures = outcome.progressed ? 1 : failures + 1
          if (failures > maxAttempts) {
            consumer.finish({ error: outcome.error })
            return
          }
          consumer.setState("reconnecting")
          await Backoff.sleep(Backoff.retryWait(failures, retryMs ?? initialDelayMs, maxDelayMs, outcome.afterMs), closer)
        }
      }
    }
  }

  loop().catch((cause: unknown) =>
    consumer.finish({ error: new ClientError("Protocol", `${tag}: the subscription failed unexpectedly`, { cause }) })
  )
}
