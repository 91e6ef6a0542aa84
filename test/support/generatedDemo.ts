/**
 * Test support: the generated demo client as a frontend gets it — bundled by
 * esbuild, which resolves `effect-stream-rpc/client` through tsconfig.json's
 * paths as the package's exports map would — and loaded from that bundle.
 */
import * as esbuild from "esbuild"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import type * as GeneratedDemo from "../../examples/demo/generated/demo.ts"

export type { GeneratedDemo }

export const loadGeneratedDemo = async (): Promise<typeof GeneratedDemo> => {
  const result = await esbuild.build({
    entryPoints: ["examples/demo/generated/demo.ts"],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    write: false,
    logLevel: "silent"
  })
  const dir = mkdtempSync(Path.join(tmpdir(), "generated-demo-"))
  try {
    const file = Path.join(dir, "demo.mjs")
    writeFileSync(file, result.outputFiles[0]!.contents)
    return (await import(pathToFileURL(file).href)) as typeof GeneratedDemo
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
