// A plain-JavaScript ESM server of the consumer's contract (compiled to contract.js), on an ephemeral loopback port.
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { createServer } from "node:http"
import { HttpTransport } from "effect-stream-rpc"
import { Api, Row, Tick, TooMany } from "./contract.js"

const Handlers = Api.toLayer({
  ticks: ({ from }) =>
    Stream.iterate(from, (n) => n + 1).pipe(
      Stream.map((n) => new Tick({ n, at: new Date(Date.UTC(2026, 0, 1) + n * 1000) })),
      Stream.schedule(Schedule.spaced("5 millis"))
    ),
  rows: ({ count }) => Stream.range(1, count).pipe(Stream.map((id) => new Row({ id, name: `row "${id}", =1+1` }))),
  add: ({ a, b }) => (a + b > 100 ? Effect.fail(new TooMany({ message: `${a} + ${b} is over 100` })) : Effect.succeed(a + b))
})

const Server = HttpLayerRouter.serve(HttpTransport.layer(Api).pipe(Layer.provide(Handlers))).pipe(
  Layer.provide(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
)

Layer.launch(Server).pipe(NodeRuntime.runMain)
