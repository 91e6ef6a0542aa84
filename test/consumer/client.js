// The package's Effect-flavoured client calling the server over loopback: node client.js <baseUrl>. Prints what it got as JSON.
import { StreamClient } from "effect-stream-rpc/client/effect"
import { Api } from "./contract.js"

const client = StreamClient.make(Api, { baseUrl: process.argv[2] })

const ticks = []
for await (const tick of client.subscribe("ticks", { from: 7 })) {
  ticks.push({ n: tick.n, at: tick.at.toISOString(), isDate: tick.at instanceof Date })
  if (ticks.length === 3) break
}
const rows = {}
for (const format of ["csv", "json", "ndjson"]) {
  rows[format] = []
  for await (const row of await client.export("rows", { count: 3 }, { format })) rows[format].push({ ...row })
}
const sum = await client.call("add", { a: 2, b: 3 })
const error = await client.call("add", { a: 99, b: 3 }).then(() => undefined, (e) => ({ tag: e._tag, message: e.message }))
console.log(JSON.stringify({ ticks, rows, sum, error }))
