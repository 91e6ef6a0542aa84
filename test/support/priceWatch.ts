/**
 * Test support: a v1 `watchPrices` subscription to a demo server over
 * node:http (the fast path), parsed as it arrives — a witness of what an
 * instance delivers.
 */
import * as Http from "node:http"
import { type ParsedEvent, sseCollector } from "./http.ts"

export interface Price {
  readonly seq: number
  readonly symbol: string
}

/** The offset of a Topic cursor `<epoch>-<offset>`. */
export const offsetOf = (id: string | undefined): number => Number(id!.split("-")[1])

/** A `watchPrices` subscription over HTTP, parsed as it arrives, from `lastEventId` when given. */
export const watchPrices = (baseUrl: string, symbols: ReadonlyArray<string>, lastEventId?: string) => {
  const sse = sseCollector()
  const arrivals: Array<number> = []
  const state: { status: number | undefined } = { status: undefined }
  const headers: Record<string, string> = { "content-type": "application/json" }
  if (lastEventId !== undefined) headers["last-event-id"] = lastEventId
  const request = Http.request(`${baseUrl}/rpc/watchPrices`, { method: "POST", headers, agent: false }, (response) => {
    state.status = response.statusCode
    response.on("data", (bytes: Buffer) => {
      sse.feed(bytes)
      while (arrivals.length < sse.events.length) arrivals.push(Date.now())
    })
    response.on("error", () => {})
  })
  request.on("error", () => {})
  request.end(JSON.stringify({ symbols }))
  const messages = (): Array<ParsedEvent> => sse.events.filter((e) => e.event === "message")
  return {
    events: sse.events,
    arrivals,
    messages,
    prices: () => messages().map((e) => JSON.parse(e.data) as Price),
    dropped: () =>
      sse.events.filter((e) => e.event === "dropped").map((e) => (JSON.parse(e.data) as { count: number | null }).count),
    status: () => state.status,
    close: () => request.destroy()
  }
}
