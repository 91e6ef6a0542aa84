/**
 * The README and the guides in docs/ as the tests read them: every page, its
 * fenced blocks, the TypeScript snippets, and the README's complete example.
 */
import { readdirSync, readFileSync } from "node:fs"
import * as Path from "node:path"

export const pages = ["README.md", ...readdirSync("docs").filter((file) => file.endsWith(".md")).map((file) => `docs/${file}`)]
export const text = (page: string) => readFileSync(page, "utf8")
export const readme = text("README.md")

/** The fenced blocks of one language in a page. */
export const blocks = (page: string, language: string) =>
  Array.from(text(page).matchAll(new RegExp(`^\`\`\`${language}\\n([\\s\\S]*?)^\`\`\`$`, "gm")), (match) => match[1]!)

/** The TypeScript snippets of every page: `ts` blocks, and `tsx` blocks (React, JSX) as `.tsx` files. */
export const snippets = pages.flatMap((page) =>
  (["ts", "tsx"] as const).flatMap((language) =>
    blocks(page, language).map((code, i) => ({ file: `${Path.basename(page, ".md")}-${i + 1}.${language}`, code }))
  )
)

/** The README's complete example: its one JavaScript block. */
export const readmeExample = (): string => {
  const examples = blocks("README.md", "js")
  if (examples.length !== 1) throw new Error(`the README has ${examples.length} JavaScript blocks, not one example`)
  return examples[0]!
}
