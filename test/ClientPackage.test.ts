/**
 * The client package's manifest (client/package.json, published as
 * effect-stream-rpc-client; test/ClientPackage.slow.test.ts packs and
 * installs it): the root's version, no dependency of any kind and no install
 * script, and subpaths built from the sources of the root package's
 * `./client` and `./client/node`, whose API reports (docs/api/client.api.md,
 * client-node.api.md) are then its own.
 */
import { describe, expect, it } from "vitest"
import { readFileSync } from "node:fs"

type Manifest = Record<string, unknown> & { readonly exports: Record<string, unknown> }
const read = (file: string) => JSON.parse(readFileSync(file, "utf8")) as Manifest
const root = read("package.json")
const client = read("client/package.json")

describe("the client package's manifest", () => {
  it("is effect-stream-rpc-client at the root's version: ESM, no side effects, MIT, Node 20+", () => {
    expect(client).toMatchObject({
      name: "effect-stream-rpc-client",
      version: root["version"],
      type: "module",
      sideEffects: false,
      license: root["license"],
      engines: root["engines"],
      files: ["dist", "!dist/**/*.tsbuildinfo"]
    })
  })

  it("has no dependencies, peers or bin, and no script npm runs on install", () => {
    for (const field of ["dependencies", "peerDependencies", "optionalDependencies", "bundleDependencies", "devDependencies", "bin"]) {
      expect(client[field], field).toBeUndefined()
    }
    expect(Object.keys(client["scripts"] as object).sort()).toEqual(["build", "prepack"])
  })

  it("exports the root's ./client as . and its ./client/node as ./node, from the same sources", () => {
    const source = (target: unknown) => (target as { import: string }).import.replace(/^\.\/(client\/)?dist\//, "").replace(/\.js$/, ".ts")
    const types = (target: unknown) => (target as { types: string }).types.replace(/\.d\.ts$/, ".js")
    expect(Object.keys(client.exports)).toEqual([".", "./node", "./package.json"])
    expect(source(client.exports["."])).toBe(source(root.exports["./client"]))
    expect(source(client.exports["./node"])).toBe(source(root.exports["./client/node"]))
    for (const key of [".", "./node"]) expect(types(client.exports[key]), key).toBe((client.exports[key] as { import: string }).import)
  })
})
