/**
 * Many live views in one browser page, over plain HTTP/1.1: Chromium holds
 * at most six connections per origin, so the page's subscriptions must share
 * one (wire protocol v1.1, the generated client's `multiplex`) for all of
 * them, a download and a call to progress at once, and for a second tab of
 * the demo to load at all.
 *
 * The demo server runs as a child process (test/support/demoProcess.ts); the
 * page is examples/demo/web/. Every live view's element carries
 * `data-live="<name>"`, `data-state` and `data-count` (values shown), and
 * `window.demoApi` is the page's generated client, through which the tests
 * add subscriptions of their own.
 *
 * The connections are counted twice: in the browser, with the Chrome DevTools
 * Protocol's network events (event-stream responses still open), and on the
 * server, from the demo's /metrics (`stream_connections`: multiplexed
 * connections; `stream_active{kind="subscription"}`: subscriptions, each on
 * its own).
 *
 * No timing is asserted: every wait is for a state of the page, the server
 * or an event; the timeouts only bound a hang.
 */
import { readFileSync } from "node:fs"
import type { BrowserContext, CDPSession, Page } from "playwright-core"
import { describe, expect, it } from "vitest"
import type { DemoApiClient } from "../examples/demo/generated/demo.ts"
import { browserAndDemo, haveChromium, requireChromium } from "./support/chromium.ts"
import type { DemoProcess } from "./support/demoProcess.ts"
import { eventually } from "./support/eventually.ts"
import { streamCounts } from "./support/overload.ts"

requireChromium("the multiplexed browser tests")

const testTimeout = 120_000
/** Bounds a wait that never ends (e.g. a subscription queued behind six busy connections); not a timing assertion. */
const hang = 45_000

/** The live views the page shows: one per symbol, the watchlist, the spread, the last trades, the feed and a TanStack Query. */
const pageViews = ["acme", "globex", "initech", "umbrella", "hooli", "watchlist", "spread", "tape", "feed", "query"]
/** The page's views and the three a test adds. */
const withAdded = pageViews.length + 3

interface View {
  readonly state: string
  readonly count: number
  readonly dropped: number
}
type Views = Record<string, View>

/** Every live view of the page, by its `data-live` name. */
const views = (page: Page): Promise<Views> =>
  page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll<HTMLElement>("[data-live]")].map((element) => [element.dataset["live"]!, {
        state: element.dataset["state"] ?? "",
        count: Number(element.dataset["count"]),
        dropped: Number(element.dataset["dropped"] ?? 0)
      }])
    )
  )

const describeViews = (all: Views) =>
  Object.entries(all).map(([name, view]) => `${name}: ${view.state}, ${view.count} shown`).join("; ")

/**
 * Waits until every view is open and has shown more values than it had in
 * `before` (or any, without it). If it does not happen, the error says what
 * each view shows and, with `diagnose`, what holds the connections.
 */
const allProgress = async (page: Page, before?: Views, diagnose?: () => Promise<string>): Promise<Views> => {
  let last: Views = {}
  await eventually(async () => {
    last = await views(page)
    return Object.entries(last).every(([name, view]) => view.state === "open" && view.count > (before?.[name]?.count ?? 0))
  }, hang, "every live view to be open and show new values").catch(async (error: Error) => {
    const diagnosis = diagnose === undefined ? "" : ` ${await diagnose()}`
    throw new Error(`${error.message}. The views: ${describeViews(last)}.${diagnosis}`)
  })
  return last
}

/**
 * Adds live views of the test's own: subscriptions through the page's
 * generated client, each shown as an element with `data-live`, `data-state`
 * and `data-count` like the page's.
 */
const addViews = (page: Page, subscriptions: ReadonlyArray<{ readonly name: string; readonly symbols: ReadonlyArray<string> }>) =>
  page.evaluate((subscriptions) => {
    const api = (window as unknown as { demoApi: DemoApiClient }).demoApi
    for (const { name, symbols } of subscriptions) {
      const element = document.createElement("div")
      element.hidden = true
      element.dataset["live"] = name
      element.dataset["state"] = "connecting"
      element.dataset["count"] = "0"
      element.dataset["dropped"] = "0"
      document.body.append(element)
      let count = 0
      let dropped = 0
      api.watchPrices({ symbols }, {
        onState: (state) => {
          element.dataset["state"] = state
        },
        onDropped: (n) => {
          dropped += n ?? 0
          element.dataset["dropped"] = String(dropped)
        },
        onData: () => {
          element.dataset["count"] = String(++count)
        }
      })
    }
  }, subscriptions)

/**
 * The page's streaming requests as Chromium sees them (Chrome DevTools
 * Protocol network events): event-stream responses still open (each holds an
 * HTTP/1.1 connection), and subscription requests sent but not answered yet
 * (queued by the browser behind busy connections, or by a server).
 */
const networkWatch = async (page: Page) => {
  const cdp: CDPSession = await page.context().newCDPSession(page)
  // Nothing of a stream's body is kept for DevTools.
  await cdp.send("Network.enable", { maxTotalBufferSize: 0, maxResourceBufferSize: 0 })
  const requests = new Map<string, { url: string; eventStream: boolean; answered: boolean; connectionId: number | undefined }>()
  const finished = new Set<string>()
  cdp.on("Network.requestWillBeSent", (event) => {
    requests.set(event.requestId, { url: event.request.url, eventStream: false, answered: false, connectionId: undefined })
  })
  cdp.on("Network.responseReceived", (event) => {
    const request = requests.get(event.requestId)
    if (request === undefined) return
    request.answered = true
    request.eventStream = event.response.mimeType === "text/event-stream"
    request.connectionId = event.response.connectionId
  })
  const end = (event: { requestId: string }) => finished.add(event.requestId)
  cdp.on("Network.loadingFinished", end)
  cdp.on("Network.loadingFailed", end)
  const open = () => [...requests].filter(([id]) => !finished.has(id)).map(([, request]) => request)
  const isSubscription = (url: string) => /\/rpc\/(watchPrices|_mux)(\?|$)/.test(url)
  return {
    /** Event-stream responses still open, and the distinct connections they hold. */
    eventStreams: () => {
      const streams = open().filter((request) => request.eventStream)
      return { streams: streams.length, connections: new Set(streams.map((request) => request.connectionId)).size }
    },
    /** Subscription requests sent and not answered yet. */
    waiting: () => open().filter((request) => !request.answered && isSubscription(request.url)).length,
    detach: () => cdp.detach().catch(() => undefined)
  }
}

/** `stream_connections` (multiplexed connections) and the open subscriptions, from the demo's /metrics. */
const serverCounts = (demo: DemoProcess) => streamCounts(demo.url)

type NetworkWatch = Awaited<ReturnType<typeof networkWatch>>

/** What holds the connections, in the browser and on the server. */
const connectionReport = async (demo: DemoProcess, ...networks: ReadonlyArray<NetworkWatch>): Promise<string> => {
  const server = await serverCounts(demo)
  const browser = networks.map((network) => {
    const { connections, streams } = network.eventStreams()
    return `${streams} event-stream response(s) open on ${connections} connection(s), ${network.waiting()} subscription request(s) waiting`
  })
  return `Browser (Chrome DevTools Protocol): ${browser.join("; ")}. Server (/metrics): stream_connections ${server.connections}, ` +
    `open subscriptions ${server.subscriptions}.`
}

describe.skipIf(!haveChromium)("many live views on one page, over HTTP/1.1 (wire protocol v1.1)", () => {
  const session = browserAndDemo()
  const pageErrors: Array<string> = []

  const newContext = () => session.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true }, hang)

  /** A page of the demo in `context`, watched by `networkWatch` from before it loads. */
  const open = async (context: BrowserContext) => {
    const page = await context.newPage()
    page.on("pageerror", (error) => pageErrors.push(error.message))
    const network = await networkWatch(page)
    await page.goto(session.demo.url)
    await page.waitForFunction(() => (window as unknown as { demoApi?: unknown }).demoApi !== undefined)
    return { page, network }
  }

  /** Waits until the server holds no subscription (of a page closed by an earlier test). */
  const settled = () =>
    eventually(async () => {
      const counts = await serverCounts(session.demo)
      return counts.subscriptions === 0 && counts.connections === 0
    }, hang, "the server to end the subscriptions of the pages closed before")

  it(`${withAdded} subscriptions, a download and a call from one page all progress`, async () => {
    await settled()
    const context = await newContext()
    try {
      const { network, page } = await open(context)
      const diagnose = () => connectionReport(session.demo, network)
      expect(Object.keys(await views(page)).sort()).toEqual([...pageViews].sort())
      await addViews(page, [
        { name: "extra-acme", symbols: ["ACME"] },
        { name: "extra-pair", symbols: ["INITECH", "HOOLI"] },
        { name: "extra-all", symbols: ["ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI"] }
      ])
      const live = await allProgress(page, undefined, diagnose)
      expect(Object.keys(live)).toHaveLength(withAdded)

      // A download and a unary call while every view is live: neither waits for a connection.
      const size = 8 * 1024 * 1024
      await page.fill("#size", "8")
      await page.fill("#quote-symbol", "GLOBEX")
      const [download, quote] = await Promise.all([
        page.waitForEvent("download").catch(async (error: Error) => {
          const status = await page.locator("#download-status").textContent()
          throw new Error(`${error.message}; the download's status: ${status}. ${await diagnose()}`)
        }),
        page.evaluate(() => (window as unknown as { demoApi: DemoApiClient }).demoApi.getQuote({ symbol: "UMBRELLA" })),
        // Dispatched on the elements: views added by the test grow above them while values arrive.
        page.locator("#start-download").dispatchEvent("click"),
        page.locator("#get-quote").dispatchEvent("click")
      ])
      expect(quote.symbol).toBe("UMBRELLA")
      expect(typeof quote.price).toBe("number")
      await page.waitForFunction(() => document.getElementById("quote-status")!.dataset["tone"] === "ok")
      expect(await page.locator("#quote-status").textContent()).toMatch(/^GLOBEX \d+\.\d{2}, quoted at /)
      const bytes = readFileSync(await download.path())
      expect(bytes.byteLength).toBe(size)
      expect(bytes.every((byte, offset) => byte === offset % 251)).toBe(true)
      expect(await page.locator("#download-status").getAttribute("data-tone")).toBe("ok")

      // ...and every view still goes on, each one showing new values.
      const after = await allProgress(page, live, diagnose)
      await allProgress(page, after, diagnose)

      // One event-stream connection carries them all, and nothing waits for one.
      console.log(`one page, ${withAdded} subscriptions. ${await diagnose()}`)
      expect(network.waiting()).toBe(0)
      expect(network.eventStreams()).toEqual({ streams: 1, connections: 1 })
      expect(await serverCounts(session.demo)).toEqual({ connections: 1, subscriptions: withAdded })
      expect(pageErrors).toEqual([])
      await network.detach()
    } finally {
      await context.close()
    }
  }, testTimeout)

  it("two tabs of the demo both load and are live", async () => {
    await settled()
    // One browser profile: both tabs draw on the same six connections to the origin.
    const context = await newContext()
    try {
      const first = await open(context)
      const diagnose = () => connectionReport(session.demo, first.network)
      await allProgress(first.page, undefined, diagnose)
      const second = await open(context)
      const diagnoseBoth = () => connectionReport(session.demo, first.network, second.network)
      const secondLive = await allProgress(second.page, undefined, diagnoseBoth)
      const firstLive = await views(first.page)
      await allProgress(second.page, secondLive, diagnoseBoth)
      await allProgress(first.page, firstLive, diagnoseBoth)
      for (const tab of [first, second]) {
        expect(Object.keys(await views(tab.page)).sort()).toEqual([...pageViews].sort())
      }

      console.log(`two tabs, ${pageViews.length} subscriptions each. ${await diagnoseBoth()}`)
      expect([first.network.eventStreams(), second.network.eventStreams()]).toEqual([
        { streams: 1, connections: 1 },
        { streams: 1, connections: 1 }
      ])
      expect(await serverCounts(session.demo)).toEqual({ connections: 2, subscriptions: 2 * pageViews.length })
      expect(pageErrors).toEqual([])
      await Promise.all([first.network.detach(), second.network.detach()])
    } finally {
      await context.close()
    }
  }, testTimeout)

  it("the page holds one connection for all its views, on the server's count too", async () => {
    await settled()
    const context = await newContext()
    try {
      const { network, page } = await open(context)
      const diagnose = () => connectionReport(session.demo, network)
      await allProgress(page, undefined, diagnose)
      // The server has counted what the page opened once every view shows values.
      await eventually(
        async () => (await serverCounts(session.demo)).subscriptions === pageViews.length,
        hang,
        `the server to count the page's ${pageViews.length} subscriptions`
      )
      console.log(`the demo page, ${pageViews.length} live views. ${await diagnose()}`)
      expect(network.waiting()).toBe(0)
      expect(network.eventStreams()).toEqual({ streams: 1, connections: 1 })
      expect(await serverCounts(session.demo)).toEqual({ connections: 1, subscriptions: pageViews.length })
      expect(pageErrors).toEqual([])
      await network.detach()
    } finally {
      await context.close()
    }
  }, testTimeout)
})
