/**
 * The README's TypeScript snippets are runnable as written: each is written to
 * a directory beside `examples/demo/` holding the demo's files (the snippets'
 * relative imports are the demo's), and the compiler checks them with the
 * repository's settings, where `effect-stream-rpc/…` resolves as the exports
 * map resolves it (tsconfig.json's paths, checked against the exports map in
 * test/Readme.test.ts).
 */
import { describe, expect, it } from "vitest"
import { execFile } from "node:child_process"
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as Path from "node:path"
import { promisify } from "node:util"

const exec = promisify(execFile)
const readme = readFileSync("README.md", "utf8")
const snippets = Array.from(readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm), (match) => match[1]!)

describe("the README", () => {
  it("type-checks every snippet", async () => {
    const dir = mkdtempSync(Path.join("examples", ".readme-"))
    try {
      cpSync("examples/demo", dir, { recursive: true, filter: (file) => !file.endsWith(".png") })
      const files = snippets.map((snippet, i) => {
        const file = `readme-${i + 1}.ts`
        writeFileSync(Path.join(dir, file), snippet)
        return file
      })
      writeFileSync(
        Path.join(dir, "tsconfig.json"),
        JSON.stringify({ extends: "../../tsconfig.json", files, include: [] })
      )
      const result = await exec(process.execPath, ["node_modules/typescript/bin/tsc", "-p", Path.join(dir, "tsconfig.json")], {
        timeout: 120_000
      }).then(() => "", (error: { stdout?: string }) => error.stdout ?? String(error))
      expect(result).toBe("")
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
