/**
 * The demo page. Everything goes through the generated client; the page only
 * renders. `window.demoState` exposes what the page saw, for the end-to-end tests.
 */
import { makeDemoApiClient } from "../../../client/generated/demo.ts"
import { symbols } from "../contract.ts"

const client = makeDemoApiClient({ baseUrl: "/rpc" })

const $ = <E extends HTMLElement>(id: string): E => document.getElementById(id) as E

interface DemoState {
  state: string
  received: number
  dropped: number
  /** Gaps of unknown size reported by the server (a resume across a server restart). */
  gaps: number
  reconnects: number
  lastId: string | undefined
  /** Sequence numbers received, in order (the tests check none is lost or repeated). */
  seqs: Array<number>
  downloads: number
  exports: number
}
const demoState: DemoState = {
  state: "connecting",
  received: 0,
  dropped: 0,
  gaps: 0,
  reconnects: 0,
  lastId: undefined,
  seqs: [],
  downloads: 0,
  exports: 0
}
;(window as unknown as { demoState: DemoState }).demoState = demoState

const formatNumber = new Intl.NumberFormat("en-US")

// --- live prices -------------------------------------------------------------

const tickers = new Map<string, { root: HTMLElement; price: HTMLElement; last: number | undefined }>()
for (const symbol of symbols) {
  const root = document.createElement("div")
  root.className = "ticker"
  root.innerHTML = `<div class="symbol"></div><div class="price">–</div>`
  root.querySelector(".symbol")!.textContent = symbol
  $("tickers").append(root)
  tickers.set(symbol, { root, price: root.querySelector(".price") as HTMLElement, last: undefined })
}

let stallUntil = 0
const stalled = () => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, stallUntil - Date.now())))

const subscription = client.watchPrices({ symbols: [...symbols] }, {
  onState: (state) => {
    if (state === "reconnecting") demoState.reconnects++
    demoState.state = state
    $("state").textContent = state
    $("state").dataset["state"] = state
    $("reconnects").textContent = String(demoState.reconnects)
  },
  onDropped: (count) => {
    // null: a gap of unknown size (the server restarted since the last price we saw)
    if (count === null) demoState.gaps++
    else demoState.dropped += count
    $("dropped").textContent = formatNumber.format(demoState.dropped) + (demoState.gaps > 0 ? ` + ${demoState.gaps} gap` : "")
    $("dropped").classList.add("nonzero")
  },
  reconnect: { initialDelayMs: 250, maxDelayMs: 5_000 }
})

const readPrices = async () => {
  for await (const price of subscription) {
    if (Date.now() < stallUntil) await stalled()
    demoState.received++
    demoState.seqs.push(price.seq)
    demoState.lastId = String(price.seq)
    const ticker = tickers.get(price.symbol)
    if (ticker !== undefined) {
      ticker.root.classList.toggle("up", ticker.last !== undefined && price.price > ticker.last)
      ticker.root.classList.toggle("down", ticker.last !== undefined && price.price < ticker.last)
      ticker.price.textContent = price.price.toFixed(2)
      ticker.last = price.price
    }
  }
}

let renderQueued = false
const renderStats = () => {
  if (renderQueued) return
  renderQueued = true
  requestAnimationFrame(() => {
    renderQueued = false
    $("received").textContent = formatNumber.format(demoState.received)
    $("last-id").textContent = demoState.lastId ?? "–"
  })
}
setInterval(renderStats, 100)
readPrices().catch((error: unknown) => {
  $("stall-status").textContent = `subscription ended: ${error instanceof Error ? error.message : String(error)}`
})

$("stall").addEventListener("click", () => {
  stallUntil = Date.now() + 5_000
  const button = $<HTMLButtonElement>("stall")
  button.disabled = true
  const droppedBefore = demoState.dropped
  $("stall-status").textContent = "reader stalled: the server keeps only the newest 64 prices…"
  setTimeout(() => {
    button.disabled = false
    setTimeout(() => {
      const lost = demoState.dropped - droppedBefore
      $("stall-status").textContent = lost > 0
        ? `resumed: ${formatNumber.format(lost)} stale prices were dropped and reported`
        : "resumed: nothing was dropped (the socket buffers absorbed the stall; raise PRICES_PER_SECOND)"
    }, 500)
  }, 5_000)
})

// --- downloads and exports ---------------------------------------------------

const save = (blob: Blob, filename: string) => {
  const url = URL.createObjectURL(blob)
  const link = document.createElement("a")
  link.href = url
  link.download = filename
  document.body.append(link)
  link.click()
  link.remove()
  setTimeout(() => URL.revokeObjectURL(url), 60_000)
}

const progressTo = (bar: HTMLProgressElement, status: HTMLElement) => (p: { received: number; total: number | undefined }) => {
  if (p.total !== undefined && p.total > 0) {
    bar.max = p.total
    bar.value = p.received
  }
  status.textContent = `${formatNumber.format(p.received)}${p.total === undefined ? "" : ` of ${formatNumber.format(p.total)}`} bytes`
}

$("start-download").addEventListener("click", async () => {
  const button = $<HTMLButtonElement>("start-download")
  const bar = $<HTMLProgressElement>("download-progress")
  const status = $("download-status")
  button.disabled = true
  bar.value = 0
  try {
    const sizeMb = Number($<HTMLInputElement>("size").value)
    const download = await client.downloadReport({ sizeMb }, { onProgress: progressTo(bar, status) })
    const blob = await download.blob()
    bar.max = blob.size
    bar.value = blob.size
    status.textContent = `done: ${formatNumber.format(blob.size)} bytes, ${download.filename ?? "report.bin"}`
    demoState.downloads++
    save(blob, download.filename ?? "report.bin")
  } catch (error) {
    status.textContent = `failed: ${error instanceof Error ? error.message : String(error)}`
  } finally {
    button.disabled = false
  }
})

for (const button of document.querySelectorAll<HTMLButtonElement>("button[data-format]")) {
  button.addEventListener("click", async () => {
    const format = button.dataset["format"] as "csv" | "json" | "ndjson"
    const bar = $<HTMLProgressElement>("export-progress")
    const status = $("export-status")
    bar.removeAttribute("value")
    try {
      const count = Number($<HTMLInputElement>("count").value)
      const exported = await client.exportOrders({ count }, { format, onProgress: progressTo(bar, status) })
      const blob = await exported.blob()
      bar.max = 1
      bar.value = 1
      status.textContent = `done: ${formatNumber.format(count)} rows, ${formatNumber.format(blob.size)} bytes as ${format}`
      demoState.exports++
      save(blob, exported.filename ?? `orders.${format}`)
      // typed rows, decoded with the contract's schema
      const preview = await client.exportOrders({ count: Math.min(count, 5) }, { format: "ndjson" })
      const rows: Array<Array<string>> = []
      for await (const order of preview) {
        rows.push([String(order.id), order.customer, order.total.toFixed(2), order.placedAt.toISOString(), order.note ?? ""])
      }
      const table = $("export-preview")
      table.querySelector("thead")!.innerHTML = "<tr><th>id</th><th>customer</th><th>total</th><th>placed at</th><th>note</th></tr>"
      const body = table.querySelector("tbody")!
      body.replaceChildren(...rows.map((cells) => {
        const tr = document.createElement("tr")
        for (const cell of cells) {
          const td = document.createElement("td")
          td.textContent = cell
          tr.append(td)
        }
        return tr
      }))
    } catch (error) {
      status.textContent = `failed: ${error instanceof Error ? error.message : String(error)}`
    }
  })
}
