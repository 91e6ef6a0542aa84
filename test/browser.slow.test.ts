/**
 * End to end, in a real browser: the demo server as a child process
 * (`node --import tsx examples/demo/server.ts`, what `npm start` runs) and
 * Debian's Chromium driven by playwright-core. The page is
 * `examples/demo/web/`; it exposes what it saw as `window.demoState`.
 *
 * No timing is asserted: every wait is for a state of the page or an event.
 *
 * Chromium: /usr/bin/chromium (or $CHROMIUM_PATH). Without it these tests are
 * skipped, unless $CI is set: then they fail, so CI cannot pass without them.
 *
 * `UPDATE_SCREENSHOT=1 npm run test:slow -- test/browser` also writes
 * examples/demo/screenshot.png (the full page, 1280 wide); otherwise the
 * screenshot goes to a temporary directory.
 *
 * The page's many live views (each its own subscription, on one connection)
 * are tested in test/browserMux.slow.test.ts.
 */
import { parse } from "csv-parse/sync"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type { Page } from "playwright-core"
import { describe, expect, it } from "vitest"
import { orderColumns } from "../examples/demo/contract.ts"
import { orderAt } from "../examples/demo/handlers.ts"
import { browserAndDemo, haveChromium, requireChromium } from "./support/chromium.ts"
import { cuttingProxy, startDemo } from "./support/demoProcess.ts"

requireChromium("the browser tests")

const testTimeout = 90_000

/** The page's `window.demoState` (see examples/demo/web/app.ts). */
interface DemoState {
  readonly state: string
  readonly received: number
  readonly dropped: number
  readonly gaps: number
  readonly reconnects: number
  readonly lastId: string | undefined
  readonly seqs: ReadonlyArray<number>
  readonly drops: ReadonlyArray<{ readonly before: number; readonly count: number | null }>
  readonly stall: "idle" | "stalled" | "catching-up" | "resumed"
  readonly downloads: number
  readonly exports: number
}
type DemoWindow = { readonly demoState: DemoState }

/** The page's counters, without the (long) list of sequence numbers. */
const counters = (page: Page) =>
  page.evaluate(() => {
    const s = (window as unknown as DemoWindow).demoState
    return {
      state: s.state,
      received: s.received,
      dropped: s.dropped,
      gaps: s.gaps,
      reconnects: s.reconnects,
      seqCount: s.seqs.length,
      stall: s.stall
    }
  })

/**
 * What the page received, checked against the feed's numbering (consecutive
 * across the 5 symbols it subscribes to): every jump between two received
 * prices must be exactly what the server reported as missing right before
 * the second one — a count, or a gap of unknown size across a restart.
 */
const feedReport = (page: Page) =>
  page.evaluate(() => {
    const s = (window as unknown as DemoWindow).demoState
    const seqs = s.seqs
    const reported = new Map<number, { count: number; unknown: boolean }>()
    for (const drop of s.drops) {
      const entry = reported.get(drop.before) ?? { count: 0, unknown: false }
      if (drop.count === null) entry.unknown = true
      else entry.count += drop.count
      reported.set(drop.before, entry)
    }
    let nonIncreasing = 0
    let jumps = 0
    const unexplained: Array<{ from: number; to: number; missing: number; reported: string }> = []
    for (let i = 1; i < seqs.length; i++) {
      const a = seqs[i - 1]!
      const b = seqs[i]!
      if (b <= a) nonIncreasing++
      const missing = b - a - 1
      if (missing > 0) jumps++
      const report = reported.get(b)
      const explained = report === undefined ? missing === 0 : report.unknown ? missing >= 0 : report.count === missing
      if (!explained && unexplained.length < 10) {
        unexplained.push({
          from: a,
          to: b,
          missing,
          reported: report === undefined ? "nothing" : report.unknown ? "unknown" : String(report.count)
        })
      }
    }
    const first = seqs[0] ?? 0
    const last = seqs[seqs.length - 1] ?? 0
    const beforeFirst = reported.get(first)
    let reportedCount = 0
    let reportedUnknown = 0
    for (const drop of s.drops) {
      if (drop.count === null) reportedUnknown++
      else reportedCount += drop.count
    }
    return {
      received: s.received,
      seqCount: seqs.length,
      dropped: s.dropped,
      gaps: s.gaps,
      reconnects: s.reconnects,
      reportedCount,
      reportedUnknown,
      /** Missing prices reported before the first one received: outside the observed stretch. */
      droppedBeforeFirst: beforeFirst?.count ?? 0,
      /** Prices of the feed from the first received to the last one. */
      span: seqs.length === 0 ? 0 : last - first + 1,
      nonIncreasing,
      jumps,
      unexplained
    }
  })

describe.skipIf(!haveChromium)("the demo page in Chromium", () => {
  const session = browserAndDemo()
  const pageErrors: Array<string> = []

  /** A page in a fresh browser context, at `url`, once the page's script runs. */
  const open = async (url: string): Promise<Page> => {
    const context = await session.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true })
    const page = await context.newPage()
    page.on("pageerror", (error) => pageErrors.push(`${url}: ${error.message}`))
    await page.goto(url)
    await page.waitForFunction(() => (window as unknown as Partial<DemoWindow>).demoState !== undefined)
    return page
  }

  /** Waits until the subscription is open and at least `n` prices were shown. */
  const prices = (page: Page, n: number) =>
    page.waitForFunction((n) => {
      const s = (window as unknown as DemoWindow).demoState
      return s.state === "open" && s.received >= n
    }, n)

  const close = async (page: Page) => {
    await page.context().close()
    expect(pageErrors).toEqual([])
  }

  it("shows live prices", async () => {
    const page = await open(session.demo.url)
    await prices(page, 10)
    const state = await counters(page)
    expect(state.state).toBe("open")
    expect(state.received).toBeGreaterThan(0)
    expect(await page.locator("#state").textContent()).toBe("open")
    // tickers and counters are rendered on animation frames
    await page.waitForFunction(() => {
      const tickers = [...document.querySelectorAll(".ticker .price")].map((element) => element.textContent!)
      return tickers.length === 5 && tickers.every((text) => /^\d+\.\d{2}$/.test(text))
    })
    await page.waitForFunction(() => Number(document.getElementById("received")!.textContent!.replace(/,/g, "")) > 0)
    expect(await page.locator(".ticker .symbol").allTextContents()).toEqual(["ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI"])
    await close(page)
  }, testTimeout)

  it("a native EventSource subscribes with GET ?payload= and sees lastEventId", async () => {
    const page = await open(session.demo.url)
    const events = await page.evaluate((payload) =>
      new Promise<Array<{ data: string; lastEventId: string; type: string }>>((resolve, reject) => {
        const source = new EventSource(`/rpc/watchPrices?payload=${encodeURIComponent(payload)}`)
        const seen: Array<{ data: string; lastEventId: string; type: string }> = []
        source.onmessage = (event) => {
          seen.push({ data: event.data as string, lastEventId: event.lastEventId, type: event.type })
          if (seen.length === 5) {
            source.close()
            resolve(seen)
          }
        }
        source.onerror = () => {
          source.close()
          reject(new Error(`EventSource failed (readyState ${source.readyState})`))
        }
      }), JSON.stringify({ symbols: ["ACME", "HOOLI"] }))
    expect(events).toHaveLength(5)
    let previous = 0
    const ids = new Set<string>()
    for (const event of events) {
      expect(event.type).toBe("message")
      const price = JSON.parse(event.data) as { seq: number; symbol: string; price: number; at: string }
      expect(["ACME", "HOOLI"]).toContain(price.symbol)
      expect(typeof price.price).toBe("number")
      expect(Number.isNaN(Date.parse(price.at))).toBe(false)
      // the id is the topic's cursor, not the price's own sequence number
      expect(event.lastEventId).not.toBe("")
      expect(ids.has(event.lastEventId)).toBe(false)
      ids.add(event.lastEventId)
      expect(price.seq).toBeGreaterThan(previous)
      previous = price.seq
    }
    await close(page)
  }, testTimeout)

  it("downloads a report with every byte right, and the progress bar reaches 100%", async () => {
    const page = await open(session.demo.url)
    const size = 8 * 1024 * 1024
    // Record every value the page gives the progress bar, with the bar's max at that moment.
    await page.evaluate(() => {
      const bar = document.getElementById("download-progress") as HTMLProgressElement
      const seen: Array<[number, number]> = []
      ;(window as unknown as { progressSeen: typeof seen }).progressSeen = seen
      const property = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, "value")!
      Object.defineProperty(bar, "value", {
        get: () => property.get!.call(bar) as number,
        set: (value: number) => {
          property.set!.call(bar, value)
          seen.push([bar.value, bar.max])
        }
      })
    })
    await page.fill("#size", "8")
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#start-download")])
    expect(download.suggestedFilename()).toBe("report-8MB.bin")
    const bytes = readFileSync(await download.path())
    expect(bytes.byteLength).toBe(size)
    let firstWrong = -1
    for (let offset = 0; offset < bytes.byteLength; offset++) {
      if (bytes[offset] !== offset % 251) {
        firstWrong = offset
        break
      }
    }
    expect(firstWrong).toBe(-1)

    const bar = await page.evaluate(() => {
      const element = document.getElementById("download-progress") as HTMLProgressElement
      return { value: element.value, max: element.max }
    })
    expect(bar).toEqual({ value: size, max: size })
    const seen = await page.evaluate(() => (window as unknown as { progressSeen: Array<[number, number]> }).progressSeen)
    // progress was reported along the way, never backwards, against the announced size
    const values = seen.filter(([, max]) => max === size).map(([value]) => value)
    expect(new Set(values).size).toBeGreaterThan(2)
    for (let i = 1; i < values.length; i++) expect(values[i]!).toBeGreaterThanOrEqual(values[i - 1]!)
    expect(values[values.length - 1]).toBe(size)
    expect((await counters(page)).state).toBe("open")
    expect(await page.locator("#download-status").getAttribute("data-tone")).toBe("ok")
    await close(page)
  }, testTimeout)

  it("exports CSV that a CSV parser reads back exactly, with formulas neutralized", async () => {
    const page = await open(session.demo.url)
    const count = 25
    await page.fill("#count", String(count))
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("button[data-format=csv]")])
    expect(download.suggestedFilename()).toBe("orders.csv")
    const text = readFileSync(await download.path(), "utf8")
    const rows = parse(text, { columns: true }) as Array<Record<string, string>>
    expect(Object.keys(rows[0]!)).toEqual([...orderColumns])
    expect(rows).toHaveLength(count)
    const expected = Array.from({ length: count }, (_, i) => {
      const order = orderAt(i)
      return {
        id: String(order.id),
        customer: order.customer.startsWith("=") ? `'${order.customer}` : order.customer,
        total: String(order.total),
        placedAt: order.placedAt.toISOString(),
        note: order.note ?? ""
      }
    })
    expect(rows).toEqual(expected)
    // the tricky cells are really in there
    const customers = new Set(rows.map((row) => row["customer"]))
    expect(customers).toContain("Smith, Jones & Partners")
    expect(customers).toContain("Grace \"Amazing\" Hopper")
    expect(customers).toContain("Zoë Ünicode ✓")
    expect(customers).toContain("'=cmd|'/C calc'!A0")
    expect(rows.some((row) => row["note"] === "gift wrap,\nplease")).toBe(true)

    // the page then previews the first rows, decoded with the contract's schema
    await page.waitForFunction(() => document.querySelectorAll("#export-preview tbody tr").length === 5)
    expect(await page.locator("#export-preview tbody tr").nth(4).locator("td").nth(1).textContent()).toBe(
      "=cmd|'/C calc'!A0"
    )
    expect((await counters(page)).state).toBe("open")
    await close(page)
  }, testTimeout)

  it("reconnects after the connection is cut and resumes with no price lost or repeated", async () => {
    const proxy = await cuttingProxy(session.demo.port)
    try {
      const page = await open(proxy.url)
      await prices(page, 15)
      const before = await counters(page)
      expect(before.reconnects).toBe(0)
      const accepted = proxy.accepted()
      expect(proxy.cut()).toBeGreaterThan(0)
      // the page notices, reconnects through the proxy (Last-Event-ID) and goes on
      await page.waitForFunction((received) => {
        const s = (window as unknown as DemoWindow).demoState
        return s.reconnects >= 1 && s.state === "open" && s.received >= received + 15
      }, before.received)
      expect(proxy.accepted()).toBeGreaterThan(accepted)

      const report = await feedReport(page)
      expect(report.reconnects).toBeGreaterThanOrEqual(1)
      expect(report.nonIncreasing).toBe(0)
      expect(report.jumps).toBe(0)
      expect(report.unexplained).toEqual([])
      expect(report.span).toBe(report.received) // consecutive: no loss, no repeat
      expect(report.dropped).toBe(0)
      expect(report.gaps).toBe(0)
      await close(page)
    } finally {
      await proxy.close()
    }
  }, testTimeout)

  it("survives a server restart on the same port: the page reconnects and what it missed is reported", async () => {
    let server = await startDemo()
    try {
      const page = await open(server.url)
      await prices(page, 15)
      const before = await counters(page)

      const exit = await server.stop({ signal: "SIGTERM" })
      expect(exit).toEqual({ code: 0, signal: null })
      await page.waitForFunction(() => (window as unknown as DemoWindow).demoState.state === "reconnecting")

      server = await startDemo({ port: server.port })
      await page.waitForFunction((received) => {
        const s = (window as unknown as DemoWindow).demoState
        return s.state === "open" && s.received >= received + 15
      }, before.received)

      const report = await feedReport(page)
      expect(report.reconnects).toBeGreaterThanOrEqual(1)
      expect(report.nonIncreasing).toBe(0) // never repeated
      expect(report.unexplained).toEqual([]) // every jump was reported where it happened
      const consecutive = report.span === report.received
      expect(consecutive || report.gaps >= 1 || report.dropped > before.dropped).toBe(true)
      // the new server numbers its feed from its own start: the page was told of a gap of unknown size
      expect(report.gaps).toBeGreaterThanOrEqual(1)
      await close(page)
    } finally {
      const exit = await server.stop()
      expect(exit).toEqual({ code: 0, signal: null })
    }
  }, testTimeout)

  it("a stalled reader sees the sliding policy: stale prices are dropped and every one is counted", async () => {
    const fast = await startDemo({ pricesPerSecond: 10_000 })
    try {
      const page = await open(fast.url)
      await prices(page, 200)
      const before = await counters(page)
      await page.click("#stall")
      await page.waitForFunction(() => (window as unknown as DemoWindow).demoState.stall === "stalled")
      expect(await page.locator("#stall").isDisabled()).toBe(true)
      // the stall ends by itself; the page catches up and counts what the server dropped
      await page.waitForFunction(() => {
        const s = (window as unknown as DemoWindow).demoState
        return s.stall === "resumed" && s.dropped > 0
      }, undefined, { timeout: 60_000 })
      await page.waitForFunction((received) => (window as unknown as DemoWindow).demoState.received > received, before.received)
      // the page says so (the text is rendered on the next animation frame)
      await page.waitForFunction(() => /dropped [\d,]+ stale price/.test(document.getElementById("stall-status")!.textContent!))

      const report = await feedReport(page)
      expect(report.dropped).toBeGreaterThan(0)
      expect(report.nonIncreasing).toBe(0)
      expect(report.jumps).toBeGreaterThan(0)
      expect(report.unexplained).toEqual([]) // each gap is exactly the count reported before it
      expect(report.gaps).toBe(0)
      expect(report.reportedCount).toBe(report.dropped)
      expect(report.received).toBe(report.seqCount)
      // received + dropped = every price of the feed over the stretch observed
      expect(report.span).toBe(report.received + report.dropped - report.droppedBeforeFirst)
      await close(page)
    } finally {
      const exit = await fast.stop()
      expect(exit).toEqual({ code: 0, signal: null })
    }
  }, testTimeout)

  it("renders cleanly at 1280 wide (screenshot)", async () => {
    const page = await open(session.demo.url)
    await prices(page, 20)
    // every live view open, with a full sparkline
    await page.waitForFunction(() => document.getElementById("live-summary")!.dataset["all"] === "true")
    await page.waitForFunction(() =>
      [...document.querySelectorAll<HTMLElement>("[data-live]")].every((view) => Number(view.dataset["count"]) >= 60)
    )
    await page.click("#get-quote")
    await page.waitForFunction(() => document.getElementById("quote-status")!.dataset["tone"] === "ok")
    await page.fill("#size", "8")
    await Promise.all([page.waitForEvent("download"), page.click("#start-download")])
    await page.fill("#count", "1000")
    await Promise.all([page.waitForEvent("download"), page.click("button[data-format=csv]")])
    await page.waitForFunction(() => document.querySelectorAll("#export-preview tbody tr").length === 5)
    // no horizontal scrolling, and every panel fits the viewport's width
    const layout = await page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      panels: [...document.querySelectorAll(".panel")].map((panel) => panel.getBoundingClientRect().right)
    }))
    expect(layout.scrollWidth).toBeLessThanOrEqual(1280)
    for (const right of layout.panels) expect(right).toBeLessThanOrEqual(1280)
    // no hover on the last button clicked; let the tickers' next frame render
    await page.mouse.move(0, 0)
    await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))))
    const update = process.env["UPDATE_SCREENSHOT"] !== undefined && process.env["UPDATE_SCREENSHOT"] !== ""
    const directory = update ? undefined : mkdtempSync(join(tmpdir(), "demo-screenshot-"))
    const path = directory === undefined
      ? fileURLToPath(new URL("../examples/demo/screenshot.png", import.meta.url))
      : join(directory, "screenshot.png")
    const png = await page.screenshot({ path, fullPage: true })
    expect(png.subarray(1, 4).toString("latin1")).toBe("PNG")
    if (directory !== undefined) rmSync(directory, { recursive: true, force: true })
    await close(page)
  }, testTimeout)
})
