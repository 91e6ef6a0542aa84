/**
 * The published package, as a user gets it: `npm pack` (which builds dist/),
 * the tarball installed into a fresh project outside the repository (peers
 * from the registry, `--prefer-offline` so the npm cache serves repeat runs,
 * no tsx), and there a plain-JavaScript server and client over loopback,
 * TypeScript checks of a consumer under NodeNext and Bundler resolution
 * (TypeScript 5.9 from this repository, TypeScript 7 installed in the
 * project), the command generating a client, and a browser bundle of it;
 * and a frontend project with only the tarball (no Effect) and the generated
 * demo client, bundled for browsers and subscribing from Node.
 */
import { bundleForBrowser } from "./support/bundle.ts"
import { startDemo } from "./support/demoProcess.ts"
import { differenceFromStated, type Packed, npm as npmIn, run as runIn, stopwatch, typecheck as typecheckIn } from "./support/packing.ts"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"

const repo = process.cwd()
const fixture = Path.join(repo, "test/consumer")
const typescript59 = Path.join(repo, "node_modules/typescript/bin/tsc")


let work = ""
let packed: Packed
let typescript7: string | undefined
let typescript7Failure = ""
const { timed, timings } = stopwatch()

const run = (file: string, args: ReadonlyArray<string>, cwd = work) => runIn(file, args, cwd)

const npm = (args: ReadonlyArray<string>, cwd = work) => npmIn(args, cwd)

const tsconfig = (resolution: "NodeNext" | "Bundler", files: ReadonlyArray<string>) => ({
  // Strict, as a new project starts. Under NodeNext skipLibCheck stays off, so the package's .d.ts are
  // checked too; the browser project has no @types/node and skips them, as Vite's template does
  // (msgpackr's, reached through @effect/rpc, name Buffer).
  compilerOptions: {
    strict: true,
    skipLibCheck: resolution === "Bundler",
    target: "ES2022",
    lib: ["ES2022", "DOM", "DOM.Iterable"],
    module: resolution === "NodeNext" ? "NodeNext" : "ESNext",
    moduleResolution: resolution,
    types: resolution === "NodeNext" ? ["node"] : [],
    noEmit: true
  },
  files
})

const typecheck = (tsc: ReadonlyArray<string>, project: string) => typecheckIn(tsc, project, work)

beforeAll(async () => {
  work = mkdtempSync(Path.join(tmpdir(), "effect-stream-rpc-consumer-"))
  const { stdout } = await timed("npm pack (with the build)", () => run("npm", ["pack", "--json", "--pack-destination", work], repo))
  packed = (JSON.parse(stdout) as ReadonlyArray<Packed>)[0]!
  writeFileSync(Path.join(work, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }, null, 2))
  // The peers (the Effect 3 set) come with the tarball: npm installs peer dependencies.
  await timed("npm install of the tarball", () => npm(["install", `./${packed.filename}`, "@types/node@^20"]))
  await timed("npm install typescript@7", () => npm(["install", "--save-dev", "typescript@7"])).then(
    () => {
      typescript7 = Path.join(work, "node_modules/.bin/tsc")
    },
    (error: unknown) => {
      typescript7Failure = String(error)
    }
  )
  for (const file of readdirSync(fixture)) copyFileSync(Path.join(fixture, file), Path.join(work, file))
  // The contract is TypeScript: compiled to contract.js for the JavaScript server and the command.
  writeFileSync(
    Path.join(work, "tsconfig.json"),
    JSON.stringify({ compilerOptions: { ...tsconfig("NodeNext", []).compilerOptions, noEmit: false, skipLibCheck: true }, files: ["contract.ts"] })
  )
  await timed("tsc contract.ts", () => run(process.execPath, [typescript59, "-p", "tsconfig.json"]))
  mkdirSync(Path.join(work, "generated"))
  await timed("effect-stream-rpc generate", () =>
    run(Path.join(work, "node_modules/.bin/effect-stream-rpc"), ["generate", "--contract", "contract.js#Api", "--out", "generated/api.ts"]))
  writeFileSync(Path.join(work, "tsconfig.nodenext.json"), JSON.stringify(tsconfig("NodeNext", ["consumer.ts"])))
  writeFileSync(Path.join(work, "tsconfig.bundler.json"), JSON.stringify(tsconfig("Bundler", ["browser.ts"])))
  writeFileSync(
    Path.join(work, "tsconfig.declarations.json"),
    JSON.stringify({
      compilerOptions: { ...tsconfig("NodeNext", []).compilerOptions, noEmit: false, declaration: true, emitDeclarationOnly: true, outDir: "types", rootDir: ".", skipLibCheck: true },
      files: ["generated/api.ts"]
    })
  )
}, 300_000)

afterAll(() => {
  console.log(`packed tarball: ${timings.join(", ")}`)
  if (work !== "") rmSync(work, { recursive: true, force: true })
}, 60_000)

describe("the packed tarball", { timeout: 120_000 }, () => {
  it("holds only dist/, package.json, the README and the LICENSE", () => {
    const paths = packed.files.map((file) => file.path)
    expect(paths.filter((path) => !/^(dist\/.+\.(js|d\.ts|js\.map)|package\.json|README\.md|LICENSE)$/.test(path))).toEqual([])
    expect(paths).toContain("dist/src/generator/bin.js")
    expect(paths).toContain("LICENSE")
    console.log(
      `${packed.filename}: ${(packed.size / 1024).toFixed(1)} KiB packed, ${(packed.unpackedSize / 1024).toFixed(1)} KiB unpacked, ${packed.entryCount} files`
    )
  })

  it("is as large as the README says (files exactly, size within 10%)", () => {
    const text = readFileSync(Path.join(repo, "README.md"), "utf8")
    expect(differenceFromStated(packed, text, /The published tarball is (\d+) KiB \((\d+) KiB unpacked, (\d+) files\)/)).toBeUndefined()
  })

  it("serves from plain JavaScript, and its client subscribes, exports and calls over loopback", async () => {
    const server: ChildProcess = spawn(process.execPath, ["server.js"], { cwd: work, stdio: ["ignore", "pipe", "pipe"] })
    try {
      const baseUrl = await new Promise<string>((resolve, reject) => {
        let output = ""
        const timer = setTimeout(() => reject(new Error(`no Listening line: ${output}`)), 30_000)
        const read = (chunk: Buffer) => {
          output += chunk.toString()
          const match = /Listening on (http:\/\/[^\s"]+)/.exec(output)
          if (match !== null) {
            clearTimeout(timer)
            resolve(`${match[1]}/rpc`)
          }
        }
        server.stdout!.on("data", read)
        server.stderr!.on("data", read)
        server.on("exit", (code) => reject(new Error(`server exited with ${code}: ${output}`)))
      })
      const { stdout } = await run(process.execPath, ["client.js", baseUrl])
      const result = JSON.parse(stdout)
      expect(result.ticks).toEqual([7, 8, 9].map((n) => ({ n, at: new Date(Date.UTC(2026, 0, 1) + n * 1000).toISOString(), isDate: true })))
      const rows = [1, 2, 3].map((id) => ({ id, name: `row "${id}", =1+1` }))
      expect(result.rows).toEqual({ csv: rows, json: rows, ndjson: rows })
      expect(result.sum).toBe(5)
      expect(result.error).toEqual({ tag: "TooMany", message: "99 + 3 is over 100" })
    } finally {
      server.kill()
    }
  })

  it("generates a self-contained client: its one import is the runtime, by the package's name", () => {
    const module = readFileSync(Path.join(work, "generated/api.ts"), "utf8")
    expect(module).toContain("//   effect-stream-rpc generate --contract contract.js#Api --out generated/api.ts")
    expect(Array.from(module.matchAll(/^import .* from "([^"]+)"$/gm), (match) => match[1])).toEqual(["effect-stream-rpc/client"])
    expect(existsSync(Path.join(work, "generated/api.openapi.json"))).toBe(true)
  })

  it("in a fresh project with only the tarball (no peers, no Effect) and the generated demo client, it type-checks, a browser bundle builds and a Node script subscribes to a running demo server", async () => {
    const standalone = Path.join(work, "standalone")
    mkdirSync(standalone)
    writeFileSync(Path.join(standalone, "package.json"), JSON.stringify({ name: "frontend", private: true, type: "module" }, null, 2))
    // --legacy-peer-deps: the Effect peers are not installed, so nothing here can lean on them.
    await timed("npm install of the tarball alone", () => npm(["install", "--legacy-peer-deps", `../${packed.filename}`], standalone))
    expect(existsSync(Path.join(standalone, "node_modules/effect"))).toBe(false)
    copyFileSync(Path.join(repo, "examples/demo/generated/demo.ts"), Path.join(standalone, "demo.ts"))
    writeFileSync(
      Path.join(standalone, "page.ts"),
      `import { makeDemoApiClient } from "./demo.ts"\n` +
        `const api = makeDemoApiClient({ baseUrl: "/rpc" })\n` +
        `for await (const price of api.watchPrices({ symbols: ["ACME"] })) document.title = price.at.toISOString()\n` +
        `const file = await api.downloadReport({ sizeMb: 1 }, { onProgress: (p) => console.log(p.received) })\n` +
        `for await (const order of await api.exportOrders({ count: 3 }, { format: "csv" })) console.log(order.placedAt)\n` +
        `console.log(await api.getQuote({ symbol: "ACME" }), await file.blob())\n`
    )
    // The frontend's compiler checks the generated module and the package's declarations, with no Effect to find.
    writeFileSync(
      Path.join(standalone, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { ...tsconfig("Bundler", []).compilerOptions, skipLibCheck: false, allowImportingTsExtensions: true },
        files: ["page.ts"]
      })
    )
    expect(await timed("tsc 5.9 standalone", () => run(process.execPath, [typescript59, "-p", "tsconfig.json"], standalone).then(
      () => "",
      (error: { stdout?: string }) => error.stdout ?? String(error)
    ))).toBe("")
    const { inputs } = await bundleForBrowser({ entry: "page.ts", absWorkingDir: standalone })
    expect(inputs).toContain("node_modules/effect-stream-rpc/dist/client/Client.js")
    expect(inputs.filter((input) => !input.startsWith("node_modules/effect-stream-rpc/dist/") && !/^(page|demo)\.ts$/.test(input))).toEqual([])

    // Node runs JavaScript: the generated module's types stripped, its imports as they are.
    const esbuild = await import("esbuild")
    const js = await esbuild.transform(readFileSync(Path.join(standalone, "demo.ts"), "utf8"), { loader: "ts", format: "esm" })
    writeFileSync(Path.join(standalone, "demo.js"), js.code)
    writeFileSync(
      Path.join(standalone, "subscribe.js"),
      `import { makeDemoApiClient, Price, UnknownSymbol } from "./demo.js"\n` +
        `const api = makeDemoApiClient({ baseUrl: process.argv[2] })\n` +
        `const prices = []\n` +
        `for await (const price of api.watchPrices({ symbols: ["ACME", "HOOLI"] })) {\n` +
        `  prices.push({ symbol: price.symbol, isPrice: price instanceof Price, isDate: price.at instanceof Date })\n` +
        `  if (prices.length === 3) break\n` +
        `}\n` +
        `const error = await api.getQuote({ symbol: "NOPE" }).catch((e) => ({ tag: e._tag, typed: e instanceof UnknownSymbol }))\n` +
        `console.log(JSON.stringify({ prices, error }))\n`
    )
    const demo = await startDemo()
    try {
      const { stdout } = await run(process.execPath, ["subscribe.js", `${demo.url}/rpc`], standalone)
      const result = JSON.parse(stdout)
      expect(result.prices).toHaveLength(3)
      for (const price of result.prices) expect(price).toMatchObject({ isPrice: true, isDate: true })
      expect(result.error).toEqual({ tag: "UnknownSymbol", typed: true })
    } finally {
      await demo.stop()
    }
  })

  it("loads a TypeScript contract only where Node strips types (no tsx here), else asks for JavaScript", async () => {
    const bin = Path.join(work, "node_modules/.bin/effect-stream-rpc")
    const result = await run(bin, ["generate", "--contract", "contract.ts#Api", "--out", "generated/from-ts.ts"]).then(
      () => ({ code: 0, stderr: "" }),
      (error: { code: number; stderr: string }) => error
    )
    if ((process as { features?: { typescript?: unknown } }).features?.typescript) {
      expect(result.code).toBe(0)
    } else {
      expect(result.code).toBe(2)
      expect(result.stderr).toContain("point --contract at its compiled JavaScript")
    }
  })

  for (const resolution of ["NodeNext", "Bundler"] as const) {
    const project = `tsconfig.${resolution.toLowerCase()}.json`
    it(`type-checks a consumer under ${resolution} with TypeScript 5.9`, async () => {
      expect(await timed(`tsc 5.9 ${resolution}`, () => typecheck([process.execPath, typescript59], project))).toBe("")
    })
    it(`type-checks a consumer under ${resolution} with TypeScript 7`, async (context) => {
      if (typescript7 === undefined) {
        console.log(`TypeScript 7 did not install: ${typescript7Failure}`)
        return context.skip()
      }
      expect(await timed(`tsc 7 ${resolution}`, () => typecheck([typescript7!], project))).toBe("")
    })
  }

  it("emits declarations of the generated client (a library that re-exports it)", async () => {
    expect(await timed("tsc 5.9 declarations", () => typecheck([process.execPath, typescript59], "tsconfig.declarations.json"))).toBe("")
    expect(readFileSync(Path.join(work, "types/generated/api.d.ts"), "utf8")).toContain("export declare const makeApiClient")
  })

  it("bundles the generated client for browsers with no server module and no Node built-in", async () => {
    const { inputs } = await bundleForBrowser({ entry: "browser.ts", absWorkingDir: work })
    expect(inputs).toContain("node_modules/effect-stream-rpc/dist/client/Client.js")
    expect(inputs.filter((input) => /node_modules\/(effect|@effect\/[^/]+)\//.test(input))).toEqual([])
    const own = inputs.filter((input) => input.startsWith("node_modules/effect-stream-rpc/"))
    expect(own.filter((input) => /dist\/src\/(http\/|StreamingService|TopicResponse|Topic|HttpTransport)/.test(input))).toEqual([])
    expect(inputs.filter((input) => input.startsWith("node:") || input.includes("platform-node"))).toEqual([])
  })

  // Last: it installs tsx into the project, which every test above runs without.
  it("with tsx installed (the optional peer), the command loads the TypeScript contract", async () => {
    await timed("npm install tsx", () => npm(["install", "--save-dev", "tsx@^4.20.6"]))
    const bin = Path.join(work, "node_modules/.bin/effect-stream-rpc")
    await run(bin, ["generate", "--contract", "contract.ts#Api", "--out", "generated/from-ts.ts"])
    const module = readFileSync(Path.join(work, "generated/from-ts.ts"), "utf8")
    expect(module.split("\n").slice(3)).toEqual(readFileSync(Path.join(work, "generated/api.ts"), "utf8").split("\n").slice(3))
  })
})
