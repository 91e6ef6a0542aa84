import * as esbuild from "esbuild"
import { describe, expect, it } from "vitest"
import { gzipSync } from "node:zlib"

/** Bundles `entry` for browsers; esbuild fails on any Node built-in it cannot resolve. */
const bundle = async (entry: string, external: Array<string> = []) => {
  const result = await esbuild.build({
    external,
    entryPoints: [entry],
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    minify: true,
    write: false,
    metafile: true,
    logLevel: "silent"
  })
  const code = result.outputFiles[0]!.contents
  return { code, inputs: Object.keys(result.metafile.inputs) }
}

describe("the client in a browser", () => {
  for (const entry of ["client/index.ts", "client/StreamClient.ts", "client/generated/demo.ts"]) {
    it(`${entry} bundles for the browser with no Node built-in`, async () => {
      const { code, inputs } = await bundle(entry)
      expect(inputs.filter((input) => input.startsWith("node:") || /(^|\/)node_modules\/(fs|net|http|stream)\//.test(input))).toEqual([])
      const text = new TextDecoder().decode(code)
      expect(text).not.toMatch(/from\s*["']node:|require\(["'](node:)?(fs|net|http|https|stream|child_process)["']\)/)
    })
  }

  it("a module importing a Node built-in is refused, so the check above can fail", async () => {
    await expect(bundle("client/saveToFile.ts")).rejects.toThrow()
  })

  it("reports the size of runtime plus generated client (minified and gzipped)", async () => {
    const { code } = await bundle("client/generated/demo.ts")
    const gzipped = gzipSync(code).byteLength
    expect(gzipped).toBeGreaterThan(0)
    expect(gzipped).toBeLessThan(code.byteLength)
    const own = await bundle("client/generated/demo.ts", ["effect", "effect/*", "@effect/*"])
    const ownGzipped = gzipSync(own.code).byteLength
    console.log(
      `client/generated/demo.ts bundle: ${(code.byteLength / 1024).toFixed(1)} KiB minified, ${
        (gzipped / 1024).toFixed(1)
      } KiB gzipped; without effect itself: ${(own.code.byteLength / 1024).toFixed(1)} KiB minified, ${
        (ownGzipped / 1024).toFixed(1)
      } KiB gzipped`
    )
  })
})
