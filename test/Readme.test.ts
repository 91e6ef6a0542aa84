/**
 * The README and the guides in docs/ as a reader uses them.
 *
 * Their TypeScript snippets are runnable as written: each is written to a
 * directory beside `examples/demo/` holding the demo's files (the snippets'
 * relative imports are the demo's), and the compiler checks them with the
 * repository's settings, where `effect-stream-rpc/…` resolves as the exports
 * map resolves it (tsconfig.json's paths, checked against the map below).
 * The README's complete example is JavaScript that is also valid TypeScript:
 * it is checked the same way here, and run with plain `node` from the packed
 * tarball by `readmeExample.slow.test.ts`.
 *
 * The README stays a user's page (at most 400 lines), and every relative
 * link of the README and the guides points to a file that exists (and, with
 * a `#fragment`, to a heading of that file).
 */
import { describe, expect, it } from "vitest"
import { existsSync, readFileSync, statSync } from "node:fs"
import * as Path from "node:path"
import { pages, readme, readmeExample, snippets, text } from "./support/readme.ts"

const specifiersOf = (code: string) => Array.from(code.matchAll(/from "([^"]+)"/g), (match) => match[1]!)

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens. */
const anchorOf = (heading: string) =>
  heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replace(/ /g, "-")

const anchorsOf = (page: string) =>
  new Set(Array.from(text(page).replace(/^```[\s\S]*?^```$/gm, "").matchAll(/^#{1,6} (.+)$/gm), (match) => anchorOf(match[1]!)))


describe("the README and the guides", () => {
  it("import the package by name in every snippet, never by a path inside it", () => {
    expect(snippets.length).toBeGreaterThanOrEqual(5)
    const specifiers = [...snippets.map((snippet) => snippet.code), readmeExample()].flatMap(specifiersOf)
    expect(specifiers).toContain("effect-stream-rpc")
    // the package by name and a subpath of its exports map; the demo's files relative, as JavaScript
    expect(specifiers.filter((specifier) => /^effect-stream-rpc\/(src|dist)\/|^\.\.\/|\.ts$/.test(specifier))).toEqual([])
    const exports = Object.keys(JSON.parse(readFileSync("package.json", "utf8")).exports as Record<string, unknown>)
    const subpaths = new Set(exports.map((key) => `effect-stream-rpc${key.slice(1)}`))
    expect(specifiers.filter((specifier) => specifier.startsWith("effect-stream-rpc") && !subpaths.has(specifier))).toEqual([])
    for (const page of pages) expect(text(page), page).not.toMatch(/effect-stream-rpc\/src\//)
  })

  it("the README's example is self-contained: no relative import", () => {
    expect(specifiersOf(readmeExample()).filter((specifier) => specifier.startsWith("."))).toEqual([])
  })

  it("the README is a user's page: at most 400 lines", () => {
    expect(readme.split("\n").length - (readme.endsWith("\n") ? 1 : 0)).toBeLessThanOrEqual(400)
  })

  it("every relative link points to an existing file (and a fragment to one of its headings)", () => {
    const broken: Array<string> = []
    for (const page of pages) {
      const prose = text(page).replace(/^```[\s\S]*?^```$/gm, "")
      for (const [, target] of prose.matchAll(/!?\[[^\]]*\]\(([^)\s]+)\)/g)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target!)) continue
        const [path, fragment] = target!.split("#") as [string, string | undefined]
        const file = path === "" ? page : Path.join(Path.dirname(page), path)
        if (!existsSync(file)) broken.push(`${page}: ${target} (no ${file})`)
        else if (fragment !== undefined && statSync(file).isFile() && file.endsWith(".md") && !anchorsOf(file).has(fragment)) {
          broken.push(`${page}: ${target} (no heading #${fragment} in ${file})`)
        }
      }
    }
    expect(broken).toEqual([])
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
