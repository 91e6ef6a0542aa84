/**
 * The demo page. Everything goes through the generated client, which is
 * self-contained (no Effect in the page's bundle); the page only renders.
 *
 * Every live view is its own subscription: one per symbol, a watchlist, a
 * spread, a tape of the last trades, the feed (which accounts for every
 * price and can pause its reader) and the latest ACME price as a TanStack
 * Query (`effect-stream-rpc/client/query`). Each view's element carries
 * `data-live="<name>"`, `data-state`, `data-count` (values shown) and
 * `data-dropped`. `window.demoState` exposes what the feed saw and
 * `window.demoApi` the page's client, for the end-to-end tests.
 */
import { QueryClient, QueryObserver } from "@tanstack/query-core"
import { liveQueryOptions, statusQueryOptions } from "effect-stream-rpc/client/query"
import { type DemoApiClient, makeDemoApiClient, type Price, UnknownSymbol } from "../generated/demo.ts"
import { symbols } from "../symbols.ts"

// `?shareTabs`: one connection for every tab of the origin (test/browserTabs.slow.test.ts).
const client = makeDemoApiClient({ baseUrl: "/rpc", shareAcrossTabs: new URLSearchParams(location.search).has("shareTabs") })
;(window as unknown as { demoApi: DemoApiClient }).demoApi = client

const $ = <E extends HTMLElement>(id: string): E => document.getElementById(id) as E

/** Prices the server said this page will never get, placed where they were missing. */
interface Missed {
  /** The sequence number of the first price the page received after the missing ones. */
  readonly before: number
  /** How many were missing; `null` when the server cannot know (it restarted since). */
  readonly count: number | null
}

type StallPhase = "idle" | "stalled" | "catching-up" | "resumed"
type ConnectionState = "connecting" | "open" | "reconnecting" | "closed"

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
  quotes: number
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
  exports: 0,
  quotes: 0
}
;(window as unknown as { demoState: DemoState }).demoState = demoState

const formatNumber = new Intl.NumberFormat("en-US")
const plural = (n: number, one: string, many: string) => `${formatNumber.format(n)} ${n === 1 ? one : many}`

// --- rendering ---------------------------------------------------------------

/** Renders everything that changed, at most once a frame (and every 250 ms in a hidden tab). */
const renderers: Array<() => void> = []
let renderQueued = false
const flush = () => {
  renderQueued = false
  for (const render of renderers) render()
}
const schedule = () => {
  if (renderQueued) return
  renderQueued = true
  requestAnimationFrame(flush)
}
setInterval(flush, 250)

/** The last `size` values, as an SVG polyline's points in a 100×30 box. */
class Sparkline {
  private readonly values: Array<number> = []
  constructor(private readonly line: SVGPolylineElement, private readonly size = 60) {}
  push(value: number) {
    this.values.push(value)
    if (this.values.length > this.size) this.values.shift()
  }
  render() {
    const n = this.values.length
    if (n < 2) return
    let min = Infinity
    let max = -Infinity
    for (const v of this.values) {
      if (v < min) min = v
      if (v > max) max = v
    }
    const range = max - min || 1
    this.line.setAttribute(
      "points",
      this.values.map((v, i) => `${((i / (this.size - 1)) * 100).toFixed(1)},${(28 - ((v - min) / range) * 26).toFixed(1)}`).join(" ")
    )
  }
}

// --- live views ----------------------------------------------------------------

/**
 * A live view's bookkeeping, shown in its element: `data-state`, the state
 * pill, `data-count` (values shown), `data-dropped` and the footer.
 */
class LiveView {
  count = 0
  dropped = 0
  gaps = 0
  state: ConnectionState = "connecting"
  private rendered = { count: -1, dropped: -1, gaps: -1, state: "" }
  constructor(readonly name: string, readonly root: HTMLElement, private readonly unit: readonly [string, string]) {
    root.dataset["live"] = name
    renderers.push(() => this.render())
  }
  setState(state: ConnectionState) {
    this.state = state
    schedule()
  }
  addDropped(count: number | null) {
    if (count === null) this.gaps++
    else this.dropped += count
    schedule()
  }
  render() {
    const r = this.rendered
    if (r.state !== this.state) {
      r.state = this.state
      this.root.dataset["state"] = this.state
      const pill = this.root.querySelector<HTMLElement>(".state")
      if (pill !== null) {
        pill.textContent = this.state
        pill.dataset["state"] = this.state
      }
    }
    if (r.count === this.count && r.dropped === this.dropped && r.gaps === this.gaps) return
    r.count = this.count
    r.dropped = this.dropped
    r.gaps = this.gaps
    this.root.dataset["count"] = String(this.count)
    this.root.dataset["dropped"] = String(this.dropped)
    const foot = this.root.querySelector<HTMLElement>(".view-foot")
    if (foot !== null) {
      foot.replaceChildren(
        plural(this.count, ...this.unit),
        " · ",
        Object.assign(document.createElement("span"), {
          className: this.dropped > 0 ? "dropped nonzero" : "dropped",
          textContent: `${formatNumber.format(this.dropped)} dropped`
        }),
        ...(this.gaps > 0 ? [` · ${plural(this.gaps, "gap", "gaps")}`] : [])
      )
    }
  }
}

const reconnect = { initialDelayMs: 250, maxDelayMs: 5_000 }

/** A view of its own subscription to `watched`: `show` gets each price as it arrives. */
const liveViews: Array<LiveView> = []
const liveView = (name: string, root: HTMLElement, watched: ReadonlyArray<string>, show: (price: Price) => void) => {
  const view = new LiveView(name, root, ["price", "prices"])
  liveViews.push(view)
  client.watchPrices({ symbols: [...watched] }, {
    onState: (state) => view.setState(state),
    onDropped: (count) => view.addDropped(count),
    onData: (price) => {
      view.count++
      show(price)
      schedule()
    },
    onError: () => view.setState("closed"),
    reconnect
  })
  return view
}

// --- the feed: every symbol, every price accounted for -----------------------

/**
 * Missing prices are told (`onDropped`) right before the iterator hands the
 * page the price after them, so they are counted with that price: `received`
 * and `dropped` always describe the same stretch of the feed.
 */
let pending: { count: number; unknown: boolean } | undefined

const stall = { until: 0, resumedAt: 0, droppedBefore: 0, droppedAtResume: 0, round: 0 }
const resumed = () => {
  demoState.stall = "resumed"
  stall.droppedAtResume = demoState.dropped
}

const feedView = new LiveView("feed", $("prices"), ["price", "prices"])

// The feed subscribes first: without multiplexing (v1, one connection per
// subscription) it is the view that gets a connection before the others.
const subscription = client.watchPrices({ symbols: [...symbols] }, {
  onState: (state) => {
    if (state === "reconnecting") demoState.reconnects++
    demoState.state = state
    feedView.setState(state)
  },
  // Told right before the iterator takes the price after the loss.
  onDropped: (count) => {
    pending ??= { count: 0, unknown: false }
    if (count === null) pending.unknown = true
    else pending.count += count
  },
  reconnect
})

const take = (price: Price) => {
  const missed = pending
  pending = undefined
  if (missed !== undefined) {
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
  feedView.count = demoState.received
  feedView.dropped = demoState.dropped
  feedView.gaps = demoState.gaps
  schedule()
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

renderers.push(() => {
  $("received").textContent = formatNumber.format(demoState.received)
  $("dropped").textContent = formatNumber.format(demoState.dropped)
  $("dropped").classList.toggle("nonzero", demoState.dropped > 0)
  $("gaps").textContent = formatNumber.format(demoState.gaps)
  $("gaps").classList.toggle("nonzero", demoState.gaps > 0)
  $("reconnects").textContent = formatNumber.format(demoState.reconnects)
  $("last-id").textContent = demoState.lastId ?? "–"
  const status = stallStatus()
  $("stall-status").textContent = status.text
  $("stall-status").dataset["tone"] = status.tone
  $("stall").dataset["phase"] = demoState.stall
})

readPrices().catch((error: unknown) => {
  ended = `The subscription ended: ${error instanceof Error ? error.message : String(error)}`
  schedule()
})

$("stall").addEventListener("click", () => {
  const button = $<HTMLButtonElement>("stall")
  button.disabled = true
  const round = ++stall.round
  stall.until = Date.now() + 5_000
  stall.droppedBefore = demoState.dropped
  demoState.stall = "stalled"
  schedule()
  setTimeout(() => {
    button.disabled = false
    stall.resumedAt = Date.now()
    demoState.stall = "catching-up"
    schedule()
    // In case the server's clock is behind the page's: stop waiting for a fresher price.
    setTimeout(() => {
      if (stall.round === round && demoState.stall === "catching-up") resumed()
    }, 15_000)
  }, 5_000)
})

// --- one view per symbol ---------------------------------------------------------

for (const symbol of symbols) {
  const root = document.createElement("article")
  root.className = "ticker"
  root.innerHTML = `<div class="view-head"><span class="symbol"></span><span class="state" data-state="connecting">connecting</span></div>` +
    `<div class="price">–</div>` +
    `<svg class="spark" viewBox="0 0 100 30" preserveAspectRatio="none" aria-hidden="true"><polyline points=""/></svg>` +
    `<p class="view-foot"></p>`
  root.querySelector(".symbol")!.textContent = symbol
  $("tickers").append(root)
  const priceElement = root.querySelector<HTMLElement>(".price")!
  const spark = new Sparkline(root.querySelector("polyline")!)
  let latest: number | undefined
  let shown: number | undefined
  liveView(symbol.toLowerCase(), root, [symbol], (price) => {
    latest = price.price
    spark.push(price.price)
  })
  renderers.push(() => {
    if (latest === undefined || latest === shown) return
    root.classList.toggle("up", shown !== undefined && latest > shown)
    root.classList.toggle("down", shown !== undefined && latest < shown)
    priceElement.textContent = latest.toFixed(2)
    shown = latest
    spark.render()
  })
}

// --- a watchlist: several symbols, one subscription ----------------------------

{
  const watched = ["ACME", "INITECH", "HOOLI"] as const
  interface Row {
    readonly cells: { readonly price: HTMLElement; readonly change: HTMLElement; readonly range: HTMLElement }
    first: number | undefined
    latest: number | undefined
    low: number
    high: number
    dirty: boolean
  }
  const rows = new Map<string, Row>()
  const body = $("watchlist").querySelector("tbody")!
  for (const symbol of watched) {
    const tr = document.createElement("tr")
    tr.innerHTML = `<td class="symbol"></td><td class="num">–</td><td class="num">–</td><td class="num range">–</td>`
    tr.cells[0]!.textContent = symbol
    body.append(tr)
    rows.set(symbol, {
      cells: { price: tr.cells[1]!, change: tr.cells[2]!, range: tr.cells[3]! },
      first: undefined,
      latest: undefined,
      low: Infinity,
      high: -Infinity,
      dirty: false
    })
  }
  liveView("watchlist", $("watchlist"), watched, (price) => {
    const row = rows.get(price.symbol)
    if (row === undefined) return
    row.first ??= price.price
    row.latest = price.price
    row.low = Math.min(row.low, price.price)
    row.high = Math.max(row.high, price.price)
    row.dirty = true
  })
  renderers.push(() => {
    for (const row of rows.values()) {
      if (!row.dirty || row.latest === undefined || row.first === undefined) continue
      row.dirty = false
      const change = ((row.latest - row.first) / row.first) * 100
      row.cells.price.textContent = row.latest.toFixed(2)
      row.cells.change.textContent = `${change >= 0 ? "+" : "−"}${Math.abs(change).toFixed(2)}%`
      row.cells.change.dataset["sign"] = change > 0 ? "up" : change < 0 ? "down" : ""
      row.cells.range.textContent = `${row.low.toFixed(2)} – ${row.high.toFixed(2)}`
    }
  })
}

// --- a spread: the difference of two symbols' latest prices ----------------------

{
  const [a, b] = ["GLOBEX", "UMBRELLA"] as const
  const latest = new Map<string, number>()
  const root = $("spread")
  const value = root.querySelector<HTMLElement>(".spread-value")!
  const spark = new Sparkline(root.querySelector("polyline")!)
  let spread: number | undefined
  let shown: number | undefined
  liveView("spread", root, [a, b], (price) => {
    latest.set(price.symbol, price.price)
    const pa = latest.get(a)
    const pb = latest.get(b)
    if (pa === undefined || pb === undefined) return
    spread = pa - pb
    spark.push(spread)
  })
  renderers.push(() => {
    if (spread === undefined || spread === shown) return
    value.textContent = `${spread >= 0 ? "+" : "−"}${Math.abs(spread).toFixed(2)}`
    value.dataset["sign"] = spread > 0 ? "up" : spread < 0 ? "down" : ""
    shown = spread
    spark.render()
  })
}

// --- the last trades of every symbol ---------------------------------------------

{
  const size = 6
  const tape: Array<{ readonly price: Price; readonly move: "up" | "down" | "" }> = []
  const previous = new Map<string, number>()
  const list = $("tape").querySelector("ol")!
  let dirty = false
  liveView("tape", $("tape"), symbols, (price) => {
    const before = previous.get(price.symbol)
    previous.set(price.symbol, price.price)
    tape.unshift({ price, move: before === undefined || before === price.price ? "" : price.price > before ? "up" : "down" })
    if (tape.length > size) tape.pop()
    dirty = true
  })
  const time = (date: Date) => date.toISOString().slice(11, 23)
  renderers.push(() => {
    if (!dirty) return
    dirty = false
    list.replaceChildren(...tape.map(({ move, price }) => {
      const li = document.createElement("li")
      li.dataset["move"] = move
      for (const [className, text] of [["at", time(price.at)], ["symbol", price.symbol], ["num", price.price.toFixed(2)]] as const) {
        li.append(Object.assign(document.createElement("span"), { className, textContent: text }))
      }
      return li
    }))
  })
}

// --- a TanStack Query view: the latest ACME price as a query's data -------------

{
  // Vanilla query-core, as a React, Vue, Svelte, Solid or Angular app's hooks use it underneath.
  const queryClient = new QueryClient()
  queryClient.mount()
  const acme = liveQueryOptions({
    queryKey: ["price", "ACME"],
    subscribe: (callbacks) => client.watchPrices({ symbols: ["ACME"] }, { ...callbacks, reconnect })
  })
  const root = $("query")
  const view = new LiveView("query", root, ["update", "updates"])
  liveViews.push(view)
  const priceElement = root.querySelector<HTMLElement>(".price")!
  const atElement = root.querySelector<HTMLElement>(".at")!
  let latest: Price | undefined
  let shown: Price | undefined
  new QueryObserver(queryClient, acme).subscribe((result) => {
    if (result.data !== undefined && result.data !== latest) {
      latest = result.data
      view.count++
    }
    if (result.isError) atElement.textContent = `failed: ${result.error.message}`
    schedule()
  })
  new QueryObserver(queryClient, statusQueryOptions(acme.queryKey)).subscribe(({ data }) => {
    if (data === undefined) return
    view.dropped = data.dropped
    view.gaps = data.gaps
    view.setState(data.state)
  })
  renderers.push(() => {
    if (latest === undefined || latest === shown) return
    shown = latest
    priceElement.textContent = latest.price.toFixed(2)
    atElement.textContent = `at ${latest.at.toISOString().slice(11, 23)} UTC`
  })
}

// --- how many views are open, in the panel's head ------------------------------

{
  const views: Array<LiveView> = [feedView, ...liveViews]
  const summary = $("live-summary")
  let shown = ""
  renderers.push(() => {
    const open = views.filter((view) => view.state === "open").length
    const text = `${open} of ${views.length} subscriptions open`
    if (text === shown) return
    shown = text
    summary.textContent = text
    summary.dataset["all"] = String(open === views.length)
  })
}

schedule()

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

// --- a unary call ------------------------------------------------------------------

$("get-quote").addEventListener("click", async () => {
  const button = $<HTMLButtonElement>("get-quote")
  const status = $("quote-status")
  const symbol = $<HTMLInputElement>("quote-symbol").value.trim().toUpperCase()
  button.disabled = true
  setStatus(status, "asking…", "")
  try {
    const quote = await client.getQuote({ symbol })
    demoState.quotes++
    setStatus(status, `${quote.symbol} ${quote.price.toFixed(2)}, quoted at ${quote.at.toISOString().slice(11, 23)} UTC.`, "ok")
  } catch (error) {
    setStatus(
      status,
      error instanceof UnknownSymbol
        ? `UnknownSymbol: ${error.message}. Known: ${symbols.join(", ")}.`
        : `Failed: ${error instanceof Error ? error.message : String(error)}`,
      "error"
    )
  } finally {
    button.disabled = false
  }
})
