/**
 * The README's TypeScript snippets import the package by name, and
 * `effect-stream-rpc/…` resolves in the repository (tsconfig.json's paths) as
 * the exports map resolves it. The compiler's check of the snippets is
 * test/Readme.slow.test.ts.
 */
import { describe, expect, it } from "vitest"
import { readFileSync } from "node:fs"

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
