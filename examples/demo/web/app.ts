/**
 * The demo page. Everything goes through the generated client, which is
 * self-contained (no Effect in the page's bundle); the page only renders.
 * `window.demoState` exposes what the page saw, for the end-to-end tests.
 */
import { makeDemoApiClient, type Price } from "../generated/demo.ts"
import { symbols } from "../symbols.ts"

// `?shareTabs`: one connection for every tab of the origin (test/browserTabs.slow.test.ts).
const client = makeDemoApiClient({ baseUrl: "/rpc", shareAcrossTabs: new URLSearchParams(location.search).has("shareTabs") })

const $ = <E extends HTMLElement>(id: string): E => document.getElementById(id) as E

/** Prices the server said this page will never get, placed where they were missing. */
interface Missed {
  /** The sequence number of the first price the page received after the missing ones. */
  readonly before: number
  /** How many were missing; `null` when the server cannot know (it restarted since). */
  readonly count: number | null
}

type StallPhase = "idle" | "stalled" | "catching-up" | "resumed"

interface DemoState {
  state: string
  /** Prices the page has taken from the subscription (and shown). */
  received: number
  /** Prices the server dropped or could not replay, counted up to the last price received. */
  dropped: number
  /** Gaps of unknown size reported by the server (a resume across a server restart). */
  gaps: number
  reconnects: number
  lastId: string | undefined
  /** Sequence numbers received, in order (the tests check none is lost or repeated). */
  seqs: Array<number>
  /** Every report of missing prices, in order: `dropped` and `gaps` are their sums. */
  drops: Array<Missed>
  /** The "stall the reader" demo: idle, stalled, catching up on what was buffered, resumed. */
  stall: StallPhase
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
  drops: [],
  stall: "idle",
  downloads: 0,
  exports: 0
}
;(window as unknown as { demoState: DemoState }).demoState = demoState

const formatNumber = new Intl.NumberFormat("en-US")
const plural = (n: number, one: string, many: string) => `${formatNumber.format(n)} ${n === 1 ? one : many}`

// --- live prices -------------------------------------------------------------

interface Ticker {
  readonly root: HTMLElement
  readonly price: HTMLElement
  /** The newest price taken for this symbol, rendered on the next frame. */
  latest: Price | undefined
  shown: number | undefined
}
const tickers = new Map<string, Ticker>()
for (const symbol of symbols) {
  const root = document.createElement("div")
  root.className = "ticker"
  root.innerHTML = `<div class="symbol"></div><div class="price">–</div>`
  root.querySelector(".symbol")!.textContent = symbol
  $("tickers").append(root)
  tickers.set(symbol, { root, price: root.querySelector(".price") as HTMLElement, latest: undefined, shown: undefined })
}

/**
 * Reports of missing prices arrive (`onDropped`) while the parser reads ahead
 * of the page: up to 64 parsed prices may still wait in the client. They are
 * pinned to the next price parsed and counted when the page takes that price,
 * so `received` and `dropped` always describe the same stretch of the feed.
 */
let pending: { count: number; unknown: boolean } | undefined
const missedBefore = new Map<number, { count: number; unknown: boolean }>()

const stall = { until: 0, resumedAt: 0, droppedBefore: 0, droppedAtResume: 0, round: 0 }
const resumed = () => {
  demoState.stall = "resumed"
  stall.droppedAtResume = demoState.dropped
}

const subscription = client.watchPrices({ symbols: [...symbols] }, {
  onState: (state) => {
    if (state === "reconnecting") demoState.reconnects++
    demoState.state = state
    $("state").textContent = state
    $("state").dataset["state"] = state
    renderStats()
  },
  onDropped: (count) => {
    pending ??= { count: 0, unknown: false }
    if (count === null) pending.unknown = true
    else pending.count += count
  },
  onData: (price) => {
    if (pending !== undefined) {
      missedBefore.set(price.seq, pending)
      pending = undefined
    }
  },
  reconnect: { initialDelayMs: 250, maxDelayMs: 5_000 }
})

const take = (price: Price) => {
  const missed = missedBefore.get(price.seq)
  if (missed !== undefined) {
    missedBefore.delete(price.seq)
    if (missed.count > 0) {
      demoState.dropped += missed.count
      demoState.drops.push({ before: price.seq, count: missed.count })
    }
    if (missed.unknown) {
      demoState.gaps++
      demoState.drops.push({ before: price.seq, count: null })
    }
  }
  demoState.received++
  demoState.seqs.push(price.seq)
  demoState.lastId = subscription.lastEventId
  const ticker = tickers.get(price.symbol)
  if (ticker !== undefined) ticker.latest = price
  // Caught up once the page shows a price quoted after the reader resumed.
  if (demoState.stall === "catching-up" && price.at.getTime() >= stall.resumedAt) resumed()
}

const readPrices = async () => {
  for await (const price of subscription) {
    if (Date.now() < stall.until) {
      await new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, stall.until - Date.now())))
    }
    take(price)
  }
}

/** Why the subscription ended for good, if it did. */
let ended: string | undefined

const stallStatus = (): { readonly text: string; readonly tone: "" | "busy" | "ok" | "warn" | "error" } => {
  if (ended !== undefined) return { text: ended, tone: "error" }
  const slower = "At this rate the page reads slower than the feed, so the server keeps dropping stale prices for it."
  switch (demoState.stall) {
    case "idle":
      return demoState.dropped > 0
        ? { text: `${slower} Each drop is reported with its exact count.`, tone: "warn" }
        : {
          text: "The page reads every price as it arrives. Pause it to see what the server does with a reader that falls behind.",
          tone: ""
        }
    case "stalled": {
      const left = Math.max(1, Math.ceil((stall.until - Date.now()) / 1000))
      return {
        text: `Reader paused (${left} s left). The counters stand still: the page is not reading. ` +
          "The server keeps publishing, holds only the newest 64 prices for this reader and counts the stale ones it drops.",
        tone: "busy"
      }
    }
    case "catching-up":
      return { text: "Reader resumed: catching up on the prices buffered during the pause…", tone: "busy" }
    case "resumed": {
      const lost = stall.droppedAtResume - stall.droppedBefore
      return lost > 0
        ? {
          text: `Reader resumed. While it was behind, the server dropped ${plural(lost, "stale price", "stale prices")} ` +
            "and reported the exact count: received + dropped accounts for every price of the feed." +
            (demoState.dropped > stall.droppedAtResume ? ` ${slower}` : ""),
          tone: "warn"
        }
        : {
          text: "Reader resumed. Nothing was dropped: the network buffers absorbed the pause. " +
            "Restart the server with PRICES_PER_SECOND=10000 to see the sliding policy drop stale prices.",
          tone: "ok"
        }
    }
  }
}

let renderQueued = false
function renderStats() {
  if (renderQueued) return
  renderQueued = true
  requestAnimationFrame(() => {
    renderQueued = false
    $("received").textContent = formatNumber.format(demoState.received)
    $("dropped").textContent = formatNumber.format(demoState.dropped)
    $("dropped").classList.toggle("nonzero", demoState.dropped > 0)
    $("gaps").textContent = formatNumber.format(demoState.gaps)
    $("gaps").classList.toggle("nonzero", demoState.gaps > 0)
    $("reconnects").textContent = formatNumber.format(demoState.reconnects)
    $("last-id").textContent = demoState.lastId ?? "–"
    for (const ticker of tickers.values()) {
      const latest = ticker.latest
      if (latest === undefined || latest.price === ticker.shown) continue
      ticker.root.classList.toggle("up", ticker.shown !== undefined && latest.price > ticker.shown)
      ticker.root.classList.toggle("down", ticker.shown !== undefined && latest.price < ticker.shown)
      ticker.price.textContent = latest.price.toFixed(2)
      ticker.shown = latest.price
    }
    const status = stallStatus()
    $("stall-status").textContent = status.text
    $("stall-status").dataset["tone"] = status.tone
    $("stall").dataset["phase"] = demoState.stall
  })
}
setInterval(renderStats, 100)
renderStats()

readPrices().catch((error: unknown) => {
  ended = `The subscription ended: ${error instanceof Error ? error.message : String(error)}`
  renderStats()
})

$("stall").addEventListener("click", () => {
  const button = $<HTMLButtonElement>("stall")
  button.disabled = true
  const round = ++stall.round
  stall.until = Date.now() + 5_000
  stall.droppedBefore = demoState.dropped
  demoState.stall = "stalled"
  renderStats()
  setTimeout(() => {
    button.disabled = false
    stall.resumedAt = Date.now()
    demoState.stall = "catching-up"
    renderStats()
    // In case the server's clock is behind the page's: stop waiting for a fresher price.
    setTimeout(() => {
      if (stall.round === round && demoState.stall === "catching-up") resumed()
    }, 15_000)
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

const formatBytes = (bytes: number) =>
  bytes >= 1024 * 1024
    ? `${(bytes / (1024 * 1024)).toFixed(1)} MB`
    : bytes >= 1024
    ? `${(bytes / 1024).toFixed(1)} KB`
    : `${bytes} B`

const progressTo = (bar: HTMLProgressElement, status: HTMLElement) => (p: { received: number; total: number | undefined }) => {
  if (p.total !== undefined && p.total > 0) {
    bar.max = p.total
    bar.value = p.received
  }
  status.textContent = `${formatBytes(p.received)}${p.total === undefined ? "" : ` of ${formatBytes(p.total)}`}…`
}

const setStatus = (status: HTMLElement, text: string, tone: "" | "ok" | "error") => {
  status.textContent = text
  status.dataset["tone"] = tone
}

$("start-download").addEventListener("click", async () => {
  const button = $<HTMLButtonElement>("start-download")
  const bar = $<HTMLProgressElement>("download-progress")
  const status = $("download-status")
  button.disabled = true
  bar.value = 0
  setStatus(status, "starting…", "")
  try {
    const sizeMb = Number($<HTMLInputElement>("size").value)
    const download = await client.downloadReport({ sizeMb }, { onProgress: progressTo(bar, status) })
    const blob = await download.blob()
    bar.max = Math.max(1, blob.size)
    bar.value = bar.max
    const filename = download.filename ?? "report.bin"
    setStatus(status, `Saved ${filename}: ${formatNumber.format(blob.size)} bytes (${formatBytes(blob.size)}).`, "ok")
    demoState.downloads++
    save(blob, filename)
  } catch (error) {
    setStatus(status, `Failed: ${error instanceof Error ? error.message : String(error)}`, "error")
  } finally {
    button.disabled = false
  }
})

const previewDate = (date: Date) => date.toISOString().slice(0, 16).replace("T", " ")

for (const button of document.querySelectorAll<HTMLButtonElement>("button[data-format]")) {
  button.addEventListener("click", async () => {
    const format = button.dataset["format"] as "csv" | "json" | "ndjson"
    const bar = $<HTMLProgressElement>("export-progress")
    const status = $("export-status")
    bar.removeAttribute("value")
    setStatus(status, "starting…", "")
    try {
      const count = Number($<HTMLInputElement>("count").value)
      const exported = await client.exportOrders({ count }, { format, onProgress: progressTo(bar, status) })
      const blob = await exported.blob()
      bar.max = 1
      bar.value = 1
      const filename = exported.filename ?? `orders.${format}`
      setStatus(
        status,
        `Saved ${filename}: ${plural(count, "row", "rows")}, ${formatNumber.format(blob.size)} bytes (${formatBytes(blob.size)}).`,
        "ok"
      )
      demoState.exports++
      save(blob, filename)
      // typed rows, decoded with the contract's schema
      const preview = await client.exportOrders({ count: Math.min(count, 5) }, { format: "ndjson" })
      const rows: Array<Array<string>> = []
      for await (const order of preview) {
        rows.push([
          String(order.id),
          order.customer,
          order.total.toFixed(2),
          previewDate(order.placedAt),
          order.note === undefined ? "—" : order.note === "" ? "(empty)" : order.note.replace(/\n/g, " ⏎ ")
        ])
      }
      const table = $("export-preview")
      table.querySelector("thead")!.innerHTML =
        "<tr><th>id</th><th>customer</th><th class=\"num\">total</th><th>placed at (UTC)</th><th>note</th></tr>"
      const body = table.querySelector("tbody")!
      body.replaceChildren(...rows.map((cells) => {
        const tr = document.createElement("tr")
        cells.forEach((cell, i) => {
          const td = document.createElement("td")
          td.textContent = cell
          td.title = cell
          if (i === 2) td.className = "num"
          tr.append(td)
        })
        return tr
      }))
      $("export-preview-caption").hidden = false
    } catch (error) {
      setStatus(status, `Failed: ${error instanceof Error ? error.message : String(error)}`, "error")
    }
  })
}
