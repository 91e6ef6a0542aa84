/**
 * The TanStack Query adapter in a real browser: a React page on
 * `@tanstack/react-query` (test/support/queryPage.ts, bundled here with
 * esbuild as a frontend build would) rendering a live query, its status
 * query and a streamed query of the demo's prices, served from the demo
 * server's origin (Playwright answers the page's two URLs; its requests to
 * `/rpc` reach the demo server, a child process).
 *
 * The demo publishes fast (1,000 prices a second per symbol), so a page
 * whose main thread is held up falls behind, and the server's sliding policy
 * drops prices for it: the page then shows the count.
 *
 * No timing is asserted: every wait is for a state of the page or the
 * server; the timeouts only bound a hang.
 */
import type { Page } from "playwright-core"
import { beforeAll, describe, expect, it } from "vitest"
import { bundleForBrowser } from "./support/bundle.ts"
import { browserAndDemo, haveChromium, requireChromium } from "./support/chromium.ts"
import { eventually } from "./support/eventually.ts"
import { streamCounts } from "./support/overload.ts"

requireChromium("the TanStack Query browser tests")

const testTimeout = 120_000
const hang = 45_000

const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>TanStack Query</title><link rel="icon" href="data:,"></head>
<body><div id="root"></div><script type="module" src="/query-page.js"></script></body></html>`

/** What `#live` shows. */
interface Live {
  readonly status: string
  readonly state: string
  readonly dropped: number
  readonly seq: number
  readonly price: string
  readonly droppedText: string
}

const live = (page: Page): Promise<Live> =>
  page.evaluate(() => {
    const element = document.getElementById("live")
    if (element === null) return { status: "", state: "", dropped: 0, seq: 0, price: "", droppedText: "" }
    return {
      status: element.dataset["status"] ?? "",
      state: element.dataset["state"] ?? "",
      dropped: Number(element.dataset["dropped"]),
      seq: Number(element.dataset["seq"]),
      price: element.querySelector(".price")?.textContent ?? "",
      droppedText: element.querySelector(".dropped")?.textContent ?? ""
    }
  })

const windowOf = (page: Page): Promise<ReadonlyArray<string>> =>
  page.evaluate(() => [...document.querySelectorAll("#window li")].map((item) => item.textContent ?? ""))

describe.skipIf(!haveChromium)("a React page on @tanstack/react-query and effect-stream-rpc/client/query", () => {
  const session = browserAndDemo({ pricesPerSecond: 1_000 })
  let code: Uint8Array = new Uint8Array()
  const pageErrors: Array<string> = []

  beforeAll(async () => {
    code = new Uint8Array((await bundleForBrowser({ entry: "test/support/queryPage.ts" })).code)
  }, 60_000)

  const open = async (search = ""): Promise<Page> => {
    const context = await session.newContext({}, hang)
    await context.route((url) => url.pathname === "/query-page", (route) => route.fulfill({ contentType: "text/html", body: html }))
    await context.route(
      (url) => url.pathname === "/query-page.js",
      (route) => route.fulfill({ contentType: "text/javascript", body: Buffer.from(code) })
    )
    const page = await context.newPage()
    page.on("pageerror", (error) => pageErrors.push(error.message))
    await page.goto(`${session.demo.url}/query-page${search}`)
    return page
  }

  /** Waits until `#live` has shown `n` more prices than `after`, each newer than the one before, open all along. */
  const updates = async (page: Page, n: number, after = 0): Promise<Live> => {
    const seen: Array<number> = []
    let last = await live(page)
    await eventually(async () => {
      last = await live(page)
      if (last.seq > (seen.at(-1) ?? after)) seen.push(last.seq)
      return seen.length >= n
    }, hang, `${n} prices shown after ${after}`)
    expect(last.state).toBe("open")
    expect(last.status).toBe("success")
    expect(last.price).toMatch(/^\d+\.\d{2}$/)
    return last
  }

  it("shows the latest price as it changes, the connection state, and a window of the last five", async () => {
    const page = await open()
    const shown = await updates(page, 5)
    expect(shown.droppedText).toMatch(/^\d+ dropped$/)
    await eventually(async () => (await windowOf(page)).length === 5, hang, "five prices in the window")
    const before = await windowOf(page)
    await eventually(async () => (await windowOf(page)).join() !== before.join(), hang, "the window to move")
    expect((await windowOf(page)).length).toBe(5)
    expect(pageErrors).toEqual([])
    await page.context().close()
  }, testTimeout)

  it("a page held up falls behind: the server drops prices for it, and the page shows how many", async () => {
    const page = await open("?symbols=ACME,GLOBEX,INITECH,UMBRELLA,HOOLI")
    let shown = await updates(page, 3)
    // Hold the page's main thread (the page reads nothing meanwhile) until the server has had to drop.
    let rounds = 0
    for (; rounds < 10 && shown.dropped === 0; rounds++) {
      await page.evaluate(() => {
        const until = Date.now() + 4_000
        while (Date.now() < until) {
          // busy: the page's reader waits
        }
      })
      shown = await updates(page, 2, shown.seq)
    }
    console.log(`[browserQuery] held up ${rounds} time(s) for 4 s: ${shown.dropped} prices dropped`)
    expect(shown.dropped).toBeGreaterThan(0)
    await eventually(async () => {
      const now = await live(page)
      return now.droppedText === `${now.dropped} dropped`
    }, hang, "the count in the page's text")
    // ...and the prices go on.
    await updates(page, 3, shown.seq)
    expect(pageErrors).toEqual([])
    await page.context().close()
  }, testTimeout)

  it("unmounting closes the subscriptions; mounting again shows the cached price at once and opens new ones", async () => {
    await eventually(async () => (await streamCounts(session.demo.url)).subscriptions === 0, hang, "no subscription left by the earlier pages")
    const page = await open()
    const shown = await updates(page, 2)
    await eventually(async () => (await streamCounts(session.demo.url)).subscriptions === 2, hang, "the page's two subscriptions")
    await page.click("#toggle")
    await eventually(async () => (await streamCounts(session.demo.url)).subscriptions === 0, hang, "the subscriptions closed on the server")
    await page.click("#toggle")
    // The cached price is there from the first render, stale, while a new subscription opens.
    const remounted = await live(page)
    expect(remounted.seq).toBeGreaterThanOrEqual(shown.seq)
    expect(remounted.status).toBe("success")
    await updates(page, 2, remounted.seq)
    await eventually(async () => (await streamCounts(session.demo.url)).subscriptions === 2, hang, "two subscriptions again")
    expect(pageErrors).toEqual([])
    await page.context().close()
  }, testTimeout)
})
