import type * as esbuild from "esbuild"
import { describe, expect, it } from "vitest"
import { gzipSync } from "node:zlib"
import { bundleForBrowser } from "./support/bundle.ts"

/** Bundles `entry` for browsers; esbuild fails on any Node built-in it cannot resolve. */
const bundle = (entry: string | esbuild.StdinOptions, external: Array<string> = []) => bundleForBrowser({ entry, external })

describe("the client in a browser", () => {
  for (const entry of ["client/index.ts", "client/effect/StreamClient.ts", "examples/demo/generated/demo.ts"]) {
    it(`${entry} bundles for the browser with no Node built-in`, async () => {
      const { code, inputs } = await bundle(entry)
      expect(inputs.filter((input) => input.startsWith("node:") || /(^|\/)node_modules\/(fs|net|http|stream)\//.test(input))).toEqual([])
      const text = new TextDecoder().decode(code)
      expect(text).not.toMatch(/from\s*["']node:|require\(["'](node:)?(fs|net|http|https|stream|child_process)["']\)/)
    })
  }

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
    expect(own).toContain("src/Procedure.ts")
    expect(own.filter((input) => /^src\/(http\/|StreamingService|TopicResponse|Topic|HttpTransport|GracefulShutdown|MetricsService)/.test(input))).toEqual([])
    expect(inputs.filter((input) => input.startsWith("node:") || input.includes("@effect/platform-node"))).toEqual([])
  })

  it("a module importing a Node built-in is refused, so the check above can fail", async () => {
    await expect(bundle("client/saveToFile.ts")).rejects.toThrow()
  })

  it("reports the size of runtime plus generated client (minified and gzipped)", async () => {
    const { code } = await bundle("examples/demo/generated/demo.ts")
    const gzipped = gzipSync(code).byteLength
    expect(gzipped).toBeGreaterThan(0)
    expect(gzipped).toBeLessThan(code.byteLength)
    const own = await bundle("examples/demo/generated/demo.ts", ["effect", "effect/*", "@effect/*"])
    const ownGzipped = gzipSync(own.code).byteLength
    console.log(
      `examples/demo/generated/demo.ts bundle: ${(code.byteLength / 1024).toFixed(1)} KiB minified, ${
        (gzipped / 1024).toFixed(1)
      } KiB gzipped; without effect itself: ${(own.code.byteLength / 1024).toFixed(1)} KiB minified, ${
        (ownGzipped / 1024).toFixed(1)
      } KiB gzipped`
    )
  })
})
