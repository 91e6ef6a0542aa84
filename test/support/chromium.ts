/**
 * Test support: Debian's Chromium driven by playwright-core, and the demo
 * server as a child process, as the browser tests use them.
 *
 * Chromium: /usr/bin/chromium (or $CHROMIUM_PATH). Without it the browser
 * tests are skipped, unless $CI is set: then they fail, so CI cannot pass
 * without them.
 */
import { existsSync } from "node:fs"
import { type Browser, type BrowserContext, type BrowserContextOptions, chromium } from "playwright-core"
import { afterAll, beforeAll, expect } from "vitest"
import { type DemoOptions, type DemoProcess, startDemo } from "./demoProcess.ts"

export const executablePath = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium"

export const haveChromium = existsSync(executablePath)

/** Says, once per test file, that its browser tests (`what`) are skipped; throws in CI. */
export const requireChromium = (what: string): void => {
  if (haveChromium) return
  const message = `Chromium not found at ${executablePath}: install it (apt-get install chromium) or set CHROMIUM_PATH.`
  if (process.env["CI"]) throw new Error(`${message} The browser tests must run in CI (.ci/run installs Chromium).`)
  console.warn(`\n*** Skipping ${what}. ${message}\n`)
}

export const launchArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

export interface BrowserAndDemo {
  readonly browser: Browser
  readonly demo: DemoProcess
  /** A fresh browser context (a profile), closed after the tests; its default timeout only bounds a hang. */
  readonly newContext: (options?: BrowserContextOptions, timeoutMs?: number) => Promise<BrowserContext>
}

/**
 * Chromium and the demo for the tests of the enclosing `describe`: both
 * started before them; after them every context and the browser closed and
 * the demo stopped, which must exit 0.
 */
export const browserAndDemo = (demoOptions?: DemoOptions): BrowserAndDemo => {
  let browser: Browser | undefined
  let demo: DemoProcess | undefined
  const contexts: Array<BrowserContext> = []

  beforeAll(async () => {
    ;[browser, demo] = await Promise.all([chromium.launch({ executablePath, args: launchArgs }), startDemo(demoOptions)])
  }, 90_000)

  afterAll(async () => {
    await Promise.all(contexts.map((context) => context.close().catch(() => undefined)))
    await browser?.close()
    const exit = await demo?.stop()
    expect(exit).toEqual({ code: 0, signal: null })
  }, 60_000)

  return {
    get browser() {
      return browser!
    },
    get demo() {
      return demo!
    },
    newContext: async (options, timeoutMs = 45_000) => {
      const context = await browser!.newContext(options)
      contexts.push(context)
      context.setDefaultTimeout(timeoutMs)
      return context
    }
  }
}
