// A TypeScript consumer of the published package: the server's pieces and the client, types checked by the compiler.
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { GracefulShutdown, HttpTransport, MetricsService, Prometheus, StreamingConfig } from "effect-stream-rpc"
import * as Procedure from "effect-stream-rpc/Procedure"
import * as ProtocolError from "effect-stream-rpc/ProtocolError"
import * as Topic from "effect-stream-rpc/Topic"
import * as Protocol from "effect-stream-rpc/protocol"
import { Client } from "effect-stream-rpc/client"
import { StreamClient } from "effect-stream-rpc/client/effect"
import { saveToFile } from "effect-stream-rpc/client/node"
import { Api, Row, Tick, TooMany } from "./contract.js"
import { makeApiClient, TooMany as GeneratedTooMany } from "./generated/api.js"

const Handlers = Api.toLayer({
  ticks: ({ from }) => Stream.iterate(from, (n) => n + 1).pipe(Stream.map((n) => new Tick({ n, at: new Date() }))),
  rows: ({ count }) => Stream.range(1, count).pipe(Stream.map((id) => new Row({ id, name: String(id) }))),
  add: ({ a, b }) => (a + b > 100 ? Effect.fail(new TooMany({ message: "over 100" })) : Effect.succeed(a + b))
})

export const App: Layer.Layer<never, never, HttpLayerRouter.HttpRouter> = Layer.mergeAll(
  HttpTransport.layer(Api),
  HttpLayerRouter.add("GET", "/metrics", Prometheus.response)
).pipe(
  Layer.provide(Handlers),
  Layer.provide(StreamingConfig.layer({ heartbeatInterval: "30 seconds" })),
  Layer.provide(MetricsService.layer)
)
export const Shutdown = GracefulShutdown.layer({ deadline: "10 seconds" })
export const unauthorized = new ProtocolError.Unauthorized({ message: "no token" })
export const basePath: string = Protocol.Names.basePath
export const kind: string = Procedure.specOf(Api.requests.get("ticks")!)._tag
export type Ticks = Topic.Topic<Tick>

export const run = async (): Promise<number> => {
  const client = StreamClient.make(Api, { baseUrl: "http://127.0.0.1:1/rpc" })
  const sum: number = await client.call("add", { a: 1, b: 2 })
  const api = makeApiClient({ baseUrl: "/rpc" })
  for await (const tick of api.ticks({ from: 1 })) {
    const at: Date = tick.at
    if (at.getTime() > 0) break
  }
  for await (const row of await api.rows({ count: 2 }, { format: "csv" })) {
    const id: number = row.id
    void id
  }
  try {
    await api.add({ a: 1, b: 2 })
  } catch (error) {
    // The generated client has its own classes: a typed error is an instance of the generated TooMany.
    if (error instanceof GeneratedTooMany || error instanceof Client.ClientError) return 0
  }
  const stream: Stream.Stream<Tick, StreamClient.ClientError> = client.subscribe("ticks", { from: 1 }).stream
  void stream
  const report = await client.export("rows", { count: 10 }, { format: "ndjson" })
  void saveToFile
  void report
  return sum
}
