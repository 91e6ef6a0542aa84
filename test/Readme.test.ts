/**
 * The README's TypeScript snippets are runnable as written: each is written to
 * a directory beside `examples/demo/` holding the demo's files (the snippets'
 * relative imports are the demo's), and the compiler checks them with the
 * repository's settings, where `effect-stream-rpc/…` resolves as the exports
 * map resolves it (tsconfig.json's paths, checked against the map below).
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
  it("imports the package by name in every snippet, never by a path inside it", () => {
    expect(snippets.length).toBeGreaterThanOrEqual(5)
    const specifiers = snippets.flatMap((snippet) => Array.from(snippet.matchAll(/from "([^"]+)"/g), (match) => match[1]!))
    expect(specifiers).toContain("effect-stream-rpc")
    // the package by name and a subpath of its exports map; the demo's files relative, as JavaScript
    expect(specifiers.filter((specifier) => /^effect-stream-rpc\/(src|dist)\/|^\.\.\/|\.ts$/.test(specifier))).toEqual([])
    expect(readme).not.toMatch(/effect-stream-rpc\/src\//)
  })

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

  it("the package's name resolves in the repository as its exports map resolves it", () => {
    const exports = JSON.parse(readFileSync("package.json", "utf8")).exports as Record<string, unknown>
    const paths = JSON.parse(
      readFileSync("tsconfig.json", "utf8").replace(/^\s*\/\/.*$/gm, "")
    ).compilerOptions.paths as Record<string, ReadonlyArray<string>>
    const fromExports = Object.fromEntries(
      Object.entries(exports).flatMap(([key, target]) =>
        typeof target === "string" ? [] : [[
          `effect-stream-rpc${key.slice(1)}`,
          [(target as { import: string }).import.replace("./dist/", "./").replace(/\.js$/, ".ts")]
        ]]
      )
    )
    expect(paths).toEqual(fromExports)
  })
})
