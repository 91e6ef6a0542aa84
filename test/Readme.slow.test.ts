/**
 * The TypeScript snippets of the README and the guides (React's in `tsx`
 * blocks, compiled with `jsx: "react-jsx"`) are runnable as written: each
 * is written to a directory beside `examples/demo/` holding the demo's files
 * (the snippets' relative imports are the demo's), and the compiler checks
 * them with the repository's settings, where
 * `effect-stream-rpc/…` resolves as the exports map resolves it (checked in
 * test/Readme.test.ts). The README's complete example, JavaScript that is also
 * valid TypeScript, is checked the same way.
 */
import { describe, expect, it } from "vitest"
import { execFile } from "node:child_process"
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as Path from "node:path"
import { promisify } from "node:util"
import { readmeExample, snippets } from "./support/readme.ts"

const exec = promisify(execFile)

describe("the README and the guides", () => {
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
        JSON.stringify({ extends: "../../tsconfig.json", compilerOptions: { jsx: "react-jsx" }, files, include: [] })
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
