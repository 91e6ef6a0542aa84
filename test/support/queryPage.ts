/**
 * Test support: a React page (createElement, no JSX) on `@tanstack/react-query`
 * and `effect-stream-rpc/client/query`, with the generated demo client:
 * the latest price of the symbols in `?symbols=` (default all five) as a
 * live query, its status query, and the last five prices as a streamed
 * query. test/browserQuery.slow.test.ts bundles it and serves it from the
 * demo server's origin.
 *
 * What it shows, for the test to read: `#live` carries `data-status` (the
 * query's), `data-state` and `data-dropped` (its status query's) and
 * `data-seq` (the price's sequence number); `#window` lists the streamed
 * prices; `#toggle` unmounts and mounts both.
 */
import { QueryClient, QueryClientProvider, useQuery } from "@tanstack/react-query"
import { createElement as h, useState } from "react"
import { createRoot } from "react-dom/client"
import { liveQueryOptions, statusQueryOptions, streamedQueryOptions } from "effect-stream-rpc/client/query"
import { makeDemoApiClient } from "../../examples/demo/generated/demo.ts"

const api = makeDemoApiClient({ baseUrl: "/rpc" })
const symbols = new URLSearchParams(location.search).get("symbols")?.split(",") ?? ["ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI"]

const latest = liveQueryOptions({
  queryKey: ["prices", symbols, "latest"],
  subscribe: (callbacks) => api.watchPrices({ symbols }, callbacks)
})
const lastFive = streamedQueryOptions({
  queryKey: ["prices", symbols, "last five"],
  max: 5,
  subscribe: (callbacks) => api.watchPrices({ symbols }, callbacks)
})

const Latest = () => {
  const price = useQuery(latest)
  const status = useQuery(statusQueryOptions(latest.queryKey))
  const attributes = {
    id: "live",
    "data-status": price.status,
    "data-state": status.data?.state ?? "",
    "data-dropped": String(status.data?.dropped ?? 0),
    "data-seq": String(price.data?.seq ?? "")
  }
  return h(
    "section",
    attributes,
    h("span", { className: "symbol" }, price.data?.symbol ?? "…"),
    " ",
    h("span", { className: "price" }, price.data === undefined ? "–" : price.data.price.toFixed(2)),
    " ",
    h("span", { className: "state" }, status.data?.state ?? "…"),
    " · ",
    h("span", { className: "dropped" }, `${status.data?.dropped ?? 0} dropped`),
    price.error === null ? null : h("p", { className: "error" }, price.error.message)
  )
}

const LastFive = () => {
  const prices = useQuery(lastFive)
  return h("ol", { id: "window" }, ...(prices.data ?? []).map((price) => h("li", { key: price.seq }, `${price.symbol} ${price.price.toFixed(2)}`)))
}

const App = () => {
  const [shown, setShown] = useState(true)
  return h(
    "main",
    null,
    h("button", { id: "toggle", onClick: () => setShown(!shown) }, shown ? "unmount" : "mount"),
    shown ? h(Latest) : null,
    shown ? h(LastFive) : null
  )
}

const queryClient = new QueryClient()
createRoot(document.getElementById("root")!).render(h(QueryClientProvider, { client: queryClient }, h(App)))
