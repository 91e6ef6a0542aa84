/**
 * The README's complete example, as a newcomer runs it: the package packed
 * (`npm pack`, which builds dist/), a new project outside the repository
 * (`npm init -y`), the tarball installed there with the peers the README's
 * install line names (from the registry, `--prefer-offline` so the npm cache
 * serves repeat runs), the README's one JavaScript block saved as
 * example.mjs and run with plain `node`. Its output is what the README says
 * it prints; how long anything takes is not asserted.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { execFile } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { promisify } from "node:util"

const exec = promisify(execFile)
const repo = process.cwd()
const readme = readFileSync(Path.join(repo, "README.md"), "utf8")
let work = ""

const run = (file: string, args: ReadonlyArray<string>, options: { readonly cwd: string; readonly env?: NodeJS.ProcessEnv }) =>
  exec(file, args, { ...options, maxBuffer: 64 * 1024 * 1024, timeout: 240_000 })

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      server.close(() => resolve(port))
    })
  })

beforeAll(async () => {
  work = mkdtempSync(Path.join(tmpdir(), "effect-stream-rpc-readme-"))
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", work], { cwd: repo })
  const tarball = (JSON.parse(stdout) as ReadonlyArray<{ readonly filename: string }>)[0]!.filename
  await run("npm", ["init", "-y"], { cwd: work })
  // The README's install line with its peers, the package itself replaced by the tarball.
  const line = /^npm install effect-stream-rpc (.*effect@.*)$/m.exec(readme)
  expect(line, "the README's install line with the peers").not.toBeNull()
  const packages = ["effect-stream-rpc", ...line![1]!.trim().split(/\s+/)].map((name) => (name === "effect-stream-rpc" ? `./${tarball}` : name))
  await run("npm", ["install", ...packages, "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], { cwd: work })
  const examples = Array.from(readme.matchAll(/^```js\n([\s\S]*?)^```$/gm), (match) => match[1]!)
  expect(examples).toHaveLength(1)
  writeFileSync(Path.join(work, "example.mjs"), examples[0]!)
}, 600_000)

afterAll(() => {
  if (work !== "") rmSync(work, { recursive: true, force: true })
})

describe("the README's example, from the packed tarball", () => {
  it("runs with plain node: serves, the client prints three ticks, two rows, a sum and the typed error, and the process exits", async () => {
    const port = await freePort()
    const { stdout, stderr } = await run(process.execPath, ["example.mjs"], { cwd: work, env: { ...process.env, PORT: String(port) } })
    const output = `${stdout}${stderr}`
    const lines = output.split("\n")
    expect(output).toContain(`Listening on http://127.0.0.1:${port}`)
    const printed = lines.filter((line) => !line.startsWith("timestamp="))
    expect(printed.slice(0, 3).map((line) => line.replace(/ at \S+$/, ""))).toEqual(["tick 1", "tick 2", "tick 3"])
    for (const line of printed.slice(0, 3)) expect(Number.isNaN(Date.parse(line.split(" at ")[1]!))).toBe(false)
    expect(printed.slice(3).filter((line) => line !== "")).toEqual([
      "row 1: row 1",
      "row 2: row 2",
      "2 + 3 = 5",
      "TooBig: 99 + 3 is over 100"
    ])
    // One cleanup line per stream, as the README shows.
    expect(lines.filter((line) => line.includes(`message="stream closed"`) && line.includes("kind=subscription") && line.includes("stream=ticks"))).toHaveLength(1)
    expect(lines.filter((line) => line.includes(`message="stream closed"`) && line.includes("kind=export") && line.includes("termination=completed"))).toHaveLength(1)
  }, 120_000)
})
