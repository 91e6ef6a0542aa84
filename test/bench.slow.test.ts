import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"

/** Runs a command to its end without blocking the test worker's event loop. */
const run = (command: string, args: ReadonlyArray<string>) =>
  new Promise<{ readonly code: number | null; readonly stderr: string }>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-4000)
    })
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stderr }))
  })

describe("npm run bench -- --quick", () => {
  it("runs every scenario against every implementation to completion (speed is never asserted)", async () => {
    const { code, stderr } = await run("npx", ["tsx", "bench/run.ts", "--quick"])
    expect(code, stderr).toBe(0)
    const results = JSON.parse(readFileSync("bench/results.quick.json", "utf8")) as {
      readonly scenarios: ReadonlyArray<{ readonly id: string; readonly rows: ReadonlyArray<unknown> }>
    }
    expect(results.scenarios.map((scenario) => scenario.id)).toEqual(
      expect.arrayContaining(["throughput", "idle", "fanout", "fanout-20k", "keyed", "mux", "fanout-redis", "slow", "download", "export-csv", "export-ndjson"])
    )
    for (const scenario of results.scenarios) expect(scenario.rows.length, scenario.id).toBeGreaterThan(0)
  }, 600_000)
})
