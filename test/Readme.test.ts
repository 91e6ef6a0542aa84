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
import { execFile } from "node:child_process"
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import * as Path from "node:path"
import { promisify } from "node:util"

const exec = promisify(execFile)

const pages = ["README.md", ...readdirSync("docs").filter((file) => file.endsWith(".md")).map((file) => `docs/${file}`)]
const text = (page: string) => readFileSync(page, "utf8")
const readme = text("README.md")

/** The fenced blocks of one language in a page. */
const blocks = (page: string, language: string) =>
  Array.from(text(page).matchAll(new RegExp(`^\`\`\`${language}\\n([\\s\\S]*?)^\`\`\`$`, "gm")), (match) => match[1]!)

const snippets = pages.flatMap((page) =>
  blocks(page, "ts").map((code, i) => ({ file: `${Path.basename(page, ".md")}-${i + 1}.ts`, code }))
)

/** The README's complete example: its one JavaScript block. */
const readmeExample = (): string => {
  const examples = blocks("README.md", "js")
  expect(examples).toHaveLength(1)
  return examples[0]!
}

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

  it("type-checks every snippet, and the README's example as TypeScript", async () => {
    const dir = mkdtempSync(Path.join("examples", ".readme-"))
    try {
      cpSync("examples/demo", dir, { recursive: true, filter: (file) => !file.endsWith(".png") })
      const files = [...snippets, { file: "README-example.ts", code: readmeExample() }].map(({ code, file }) => {
        writeFileSync(Path.join(dir, file), code)
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
