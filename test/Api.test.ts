/**
 * The public surface is checked in: docs/api/ holds one listing per subpath
 * of the exports map (every exported name, its kind and type, written by
 * test/support/apiReport.ts), and this test regenerates them and compares. A
 * change to the surface fails here until the listings are rewritten with
 * `npm run api:report`, so it shows as a diff in review.
 */
import { beforeAll, describe, expect, it } from "vitest"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import * as Path from "node:path"
import { apiReports, entries, type Report, reportDir } from "./support/apiReport.ts"

const hint = "the public surface changed: run npm run api:report and review the diff"

const subpaths = entries()
const exportsMap = (JSON.parse(readFileSync("package.json", "utf8")) as { readonly exports: Record<string, unknown> }).exports

let reports: ReadonlyArray<Report> = []
beforeAll(() => {
  reports = apiReports()
}, 120_000)

describe("the API report", () => {
  it("covers every subpath of the exports map, from the source its types are built from", () => {
    expect(subpaths.map((entry) => entry.subpath)).toEqual(Object.keys(exportsMap).filter((key) => key !== "./package.json"))
    for (const entry of subpaths) {
      // ./dist/src/topic/Topic.d.ts is built from src/topic/Topic.ts
      expect(entry.types.replace(/^dist[/\\]/, "").replace(/\.d\.ts$/, ".ts"), entry.subpath).toBe(entry.source)
    }
  })

  it("has a checked-in report for every subpath and no other", () => {
    const checkedIn = existsSync(reportDir) ? readdirSync(reportDir).filter((file) => file.endsWith(".api.md")).sort() : []
    expect(checkedIn, hint).toEqual(subpaths.map((entry) => entry.file).sort())
  })

  for (const entry of subpaths) {
    it(`matches ${reportDir}/${entry.file} (${entry.subpath})`, () => {
      const report = reports.find((r) => r.subpath === entry.subpath)!
      const path = Path.join(reportDir, entry.file)
      const checkedIn = existsSync(path) ? readFileSync(path, "utf8") : ""
      expect(report.names, entry.subpath).toBeGreaterThan(0)
      // expected: the checked-in listing; received: the listing of the sources as they are
      expect(report.text, `${path}: ${hint}`).toBe(checkedIn)
    })
  }
})
