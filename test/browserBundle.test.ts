/**
 * The clients in a browser bundle (esbuild, minified ESM, as a frontend build
 * makes it): no Node built-in anywhere; the generated client and the
 * standalone runtime with no module of `effect`; the generated demo client
 * (subscription, download, export, unary) within 15 KB gzipped (14 before tab sharing, 1.2 KB), measured
 * beside @orpc/client and @trpc/client bundled the same way in the same run.
 */
import type * as esbuild from "esbuild"
import { describe, expect, it } from "vitest"
import { existsSync } from "node:fs"
import { gzipSync } from "node:zlib"
import { bundleForBrowser } from "./support/bundle.ts"

/** Bundles `entry` for browsers; esbuild fails on any Node built-in it cannot resolve. */
const bundle = (entry: string | esbuild.StdinOptions, external: Array<string> = []) => bundleForBrowser({ entry, external })

const isEffect = (input: string): boolean => /(^|\/)node_modules\/(effect|@effect\/[^/]+)\//.test(input)

const kb = (bytes: number): string => `${(bytes / 1000).toFixed(1)} KB`

const sizeOf = async (entry: string | esbuild.StdinOptions) => {
  const { code, inputs } = await bundle(entry)
  return { minified: code.byteLength, gzipped: gzipSync(code).byteLength, inputs }
}

describe("the client in a browser", () => {
  for (const entry of ["client/index.ts", "client/effect/index.ts", "examples/demo/generated/demo.ts", "examples/demo/web/app.ts"]) {
    it(`${entry} bundles for the browser with no Node built-in`, async () => {
      const { code, inputs } = await bundle(entry)
      expect(inputs.filter((input) => input.startsWith("node:") || /(^|\/)node_modules\/(fs|net|http|stream)\//.test(input))).toEqual([])
      const text = new TextDecoder().decode(code)
      expect(text).not.toMatch(/from\s*["']node:|require\(["'](node:)?(fs|net|http|https|stream|child_process)["']\)/)
    })
  }

  for (const entry of ["client/index.ts", "examples/demo/generated/demo.ts", "examples/demo/web/app.ts"]) {
    it(`${entry} has no module of effect in its bundle (esbuild's metafile)`, async () => {
      const { inputs } = await bundle(entry)
      expect(inputs.filter(isEffect)).toEqual([])
      expect(inputs.filter((input) => /^src\/(?!protocol\/)/.test(input) || input.startsWith("client/effect/"))).toEqual([])
    })
  }

  it("the Effect-flavoured entry does bring effect, so the check above can fail", async () => {
    const { inputs } = await bundle("client/effect/index.ts")
    expect(inputs.filter(isEffect).length).toBeGreaterThan(10)
  })

  it("a browser contract importing the contract subpaths pulls no server code", async () => {
    // The package's own name resolves through tsconfig.json's paths, which mirror its exports map.
    const contract = `
      import * as RpcGroup from "@effect/rpc/RpcGroup"
      import * as Schema from "effect/Schema"
      import * as Procedure from "effect-stream-rpc/Procedure"
      import { Unauthorized } from "effect-stream-rpc/ProtocolError"
      import { Names } from "effect-stream-rpc/protocol"
      export const Api = RpcGroup.make(
        Procedure.subscription("ticks", { payload: { n: Schema.Number }, success: Schema.Number, error: Unauthorized }),
        Procedure.unary("ping", { payload: {}, success: Schema.String })
      )
      export const base = Names.basePath
    `
    const { inputs } = await bundle({ contents: contract, resolveDir: "test", sourcefile: "contract.ts", loader: "ts" })
    const own = inputs.filter((input) => /^(src|client)\//.test(input))
    expect(own).toContain("src/contract/Procedure.ts")
    expect(own.filter((input) => /^src\/(http\/|StreamingService|TopicResponse|Topic|HttpTransport|GracefulShutdown|MetricsService)/.test(input))).toEqual([])
    expect(inputs.filter((input) => input.startsWith("node:") || input.includes("@effect/platform-node"))).toEqual([])
  })

  it("a module importing a Node built-in is refused, so the check above can fail", async () => {
    await expect(bundle("client/saveToFile.ts")).rejects.toThrow()
  })

  it("the generated demo client (subscription, download, export, unary) is at most 15 KB gzipped; @orpc/client and @trpc/client measured alike", async () => {
    const ours = await sizeOf("examples/demo/generated/demo.ts")
    expect(ours.gzipped).toBeLessThanOrEqual(15_000)
    const effectFlavoured = await sizeOf({
      contents: `
        import { StreamClient } from "effect-stream-rpc/client/effect"
        import { DemoApi } from "../examples/demo/contract.ts"
        export const client = StreamClient.make(DemoApi, { baseUrl: "/rpc" })
      `,
      resolveDir: "test",
      sourcefile: "effect-client.ts",
      loader: "ts"
    })
    const rows = [
      ["effect-stream-rpc generated client (demo: subscription, download, export, unary)", ours],
      ["effect-stream-rpc/client/effect StreamClient of the same contract", effectFlavoured]
    ] as Array<[string, { readonly minified: number; readonly gzipped: number }]>
    if (existsSync("node_modules/@orpc/client/package.json")) {
      rows.push(["@orpc/client (RPCLink; one stream, one call)", await sizeOf({
        contents: `
          import { createORPCClient } from "@orpc/client"
          import { RPCLink } from "@orpc/client/fetch"
          const client: any = createORPCClient(new RPCLink({ url: "/rpc" }))
          export const run = async () => {
            for await (const price of await client.watchPrices({ symbols: ["ACME"] })) console.log(price)
            return client.getQuote({ symbol: "ACME" })
          }
        `,
        resolveDir: "test",
        sourcefile: "orpc.ts",
        loader: "ts"
      })])
    } else {
      console.log("@orpc/client is not installed (a devDependency): not measured")
    }
    if (existsSync("node_modules/@trpc/client/package.json")) {
      rows.push(["@trpc/client (splitLink + httpSubscriptionLink + httpBatchLink)", await sizeOf({
        contents: `
          import { createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink } from "@trpc/client"
          const client: any = createTRPCClient({
            links: [splitLink({
              condition: (op) => op.type === "subscription",
              true: httpSubscriptionLink({ url: "/trpc" }),
              false: httpBatchLink({ url: "/trpc" })
            })]
          })
          export const run = async () => {
            client.watchPrices.subscribe({ symbols: ["ACME"] }, { onData: (price: unknown) => console.log(price) })
            return client.getQuote.query({ symbol: "ACME" })
          }
        `,
        resolveDir: "test",
        sourcefile: "trpc.ts",
        loader: "ts"
      })])
    } else {
      console.log("@trpc/client is not installed (it must be added as a devDependency to be measured): not measured")
    }
    console.log(
      ["browser bundles (esbuild --bundle --minify --format=esm --platform=browser, gzip at zlib's default level):"]
        .concat(rows.map(([name, size]) => `  ${name}: ${kb(size.minified)} minified, ${kb(size.gzipped)} gzipped`))
        .join("\n")
    )
  })
})
