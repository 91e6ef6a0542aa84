// A page using the generated client: bundled for browsers.
import { makeApiClient } from "./generated/api.js"

const api = makeApiClient({ baseUrl: "/rpc" })
const subscription = api.ticks({ from: 0 }, { onDropped: (count) => console.warn("missed", count) })
for await (const tick of subscription) {
  document.title = `${tick.n} at ${tick.at.toISOString()}`
}
