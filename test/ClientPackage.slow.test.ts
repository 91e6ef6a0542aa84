/**
 * The client package, effect-stream-rpc-client (client/package.json), as a
 * frontend gets it: `npm pack ./client` (which builds client/dist/), the
 * tarball's files exactly, and the tarball installed (`--prefer-offline`, as
 * test/Package.slow.test.ts does) into two fresh projects outside the
 * repository: one with no Effect at all, and one whose package.json already
 * depends on `effect` 4.1.5, which the root package's Effect 3 peers refuse
 * (ERESOLVE). In each: the install adds that one package and nothing else (no
 * `effect`, no `@effect/*`, no install script; the project's effect stays
 * 4.1.5), TypeScript checks a consumer under Bundler and NodeNext resolution
 * with no `@types/node` (strict, exactOptionalPropertyTypes, the package's
 * declarations checked too), a browser bundle of the demo's client generated
 * with `--runtime effect-stream-rpc-client` holds nothing but the package and
 * the page, and a Node script subscribes, downloads (to a file, through
 * `effect-stream-rpc-client/node`), exports and calls against the demo server.
 * docs/clients.md states the tarball's size, checked here as the README's is
 * by test/Package.slow.test.ts.
 */
import { bundleForBrowser } from "./support/bundle.ts"
import { type DemoProcess, startDemo } from "./support/demoProcess.ts"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { execFile } from "node:child_process"
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { promisify } from "node:util"

const exec = promisify(execFile)
const repo = process.cwd()
const typescript59 = Path.join(repo, "node_modules/typescript/bin/tsc")
const name = "effect-stream-rpc-client"

interface Packed {
  readonly filename: string
  readonly size: number
  readonly unpackedSize: number
  readonly entryCount: number
  readonly files: ReadonlyArray<{ readonly path: string }>
}

interface Lock {
  readonly packages: Readonly<Record<string, { readonly version?: string; readonly hasInstallScript?: boolean }>>
}

let work = ""
let packed: Packed
let demo: DemoProcess | undefined
const timings: Array<string> = []

const timed = async <A>(label: string, f: () => Promise<A>): Promise<A> => {
  const start = Date.now()
  try {
    return await f()
  } finally {
    timings.push(`${label} ${((Date.now() - start) / 1000).toFixed(1)} s`)
  }
}

const run = (file: string, args: ReadonlyArray<string>, cwd: string) =>
  exec(file, args, { cwd, maxBuffer: 64 * 1024 * 1024, timeout: 180_000 })

const npm = (args: ReadonlyArray<string>, cwd: string) =>
  run("npm", [...args, "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], cwd)

/** The compiler's output, "" when it passes. */
const typecheck = (project: string, cwd: string) =>
  run(process.execPath, [typescript59, "-p", project], cwd).then(
    () => "",
    (error: { stdout?: string; stderr?: string }) => `${error.stdout ?? ""}${error.stderr ?? ""}` || String(error)
  )

const lockOf = (dir: string): Lock => JSON.parse(readFileSync(Path.join(dir, "package-lock.json"), "utf8")) as Lock

/** The packages npm installed, as package-lock.json lists them (`node_modules/<name>`), with their versions. */
const installed = (dir: string): Record<string, string | undefined> =>
  Object.fromEntries(Object.entries(lockOf(dir).packages).filter(([path]) => path !== "").map(([path, entry]) => [path, entry.version]))

/** The `effect` and `@effect/*` packages in node_modules, at any depth. */
const effectPackages = (dir: string): ReadonlyArray<string> =>
  Object.keys(installed(dir)).filter((path) => /(^|\/)node_modules\/(effect|@effect\/[^/]+)$/.test(path)).sort()

const bytesUnder = (dir: string): number =>
  readdirSync(dir).reduce((sum, entry) => {
    const path = Path.join(dir, entry)
    const stat = statSync(path)
    return sum + (stat.isDirectory() ? bytesUnder(path) : stat.size)
  }, 0)

const figures = (dir: string) =>
  `${Object.keys(installed(dir)).length} package(s), ${(bytesUnder(Path.join(dir, "node_modules")) / 1024 / 1024).toFixed(2)} MB in node_modules`

/**
 * The repository's modules the package is built from: client/ but client/effect and client/query.ts (the
 * TanStack Query adapter, effect-stream-rpc/client/query, whose peer @tanstack/query-core is not the client
 * package's), and src/protocol.
 */
const sources = (): ReadonlyArray<string> => {
  const under = (dir: string): ReadonlyArray<string> =>
    readdirSync(Path.join(repo, dir)).flatMap((entry) => {
      const path = `${dir}/${entry}`
      if (statSync(Path.join(repo, path)).isDirectory()) return ["effect", "dist"].includes(entry) ? [] : under(path)
      return path.endsWith(".ts") && path !== "client/query.ts" ? [path] : []
    })
  return [...under("client"), ...under("src/protocol")]
}

// The consumer: a page using the generated client and the package's own modules, typed under strict settings.
const page = [
  `import { ClientError, Codec, Protocol } from "${name}"`,
  `import { makeDemoApiClient, UnknownSymbol, type DemoApiClient } from "./demo.js"`,
  `const api: DemoApiClient = makeDemoApiClient({ baseUrl: "/rpc", headers: () => ({ authorization: "Bearer demo-token" }) })`,
  `const prices = api.watchPrices({ symbols: ["ACME"] }, { onDropped: (count) => console.warn(count), onState: (state) => console.log(state) })`,
  `for await (const price of prices) document.title = \`\${price.symbol} \${price.price} \${price.at.toISOString()}\``,
  `const file = await api.downloadReport({ sizeMb: 1 }, { onProgress: (p) => console.log(p.received, p.total) })`,
  `for await (const order of await api.exportOrders({ count: 3 }, { format: "csv" })) console.log(order.placedAt)`,
  `try {`,
  `  console.log((await api.getQuote({ symbol: "ACME" })).price, await file.blob())`,
  `} catch (error) {`,
  `  if (error instanceof UnknownSymbol) console.log(error.symbol)`,
  `  else if (error instanceof ClientError.ClientError) console.log(error.reason)`,
  `}`,
  `const count: Codec.Codec<number> = Codec.number`,
  `console.log(count, Protocol.Names.basePath)`,
  ``
].join("\n")

// The script Node runs: the generated module (its types stripped) against the demo server; saveToFile from ./node.
const script = [
  `import { saveToFile } from "${name}/node"`,
  `import { statSync } from "node:fs"`,
  `import { makeDemoApiClient, Order, Price, UnknownSymbol } from "./demo.js"`,
  `const api = makeDemoApiClient({ baseUrl: process.argv[2] })`,
  `const prices = []`,
  `for await (const price of api.watchPrices({ symbols: ["ACME", "HOOLI"] })) {`,
  `  prices.push({ isPrice: price instanceof Price, isDate: price.at instanceof Date })`,
  `  if (prices.length === 3) break`,
  `}`,
  `await saveToFile(await api.downloadReport({ sizeMb: 1 }), "report.bin")`,
  `const orders = []`,
  `for await (const order of await api.exportOrders({ count: 3 }, { format: "ndjson" })) orders.push(order instanceof Order)`,
  `const error = await api.getQuote({ symbol: "NOPE" }).catch((e) => ({ tag: e._tag, typed: e instanceof UnknownSymbol }))`,
  `console.log(JSON.stringify({ prices, bytes: statSync("report.bin").size, orders, error }))`,
  ``
].join("\n")

const compilerOptions = (resolution: "Bundler" | "NodeNext") => ({
  strict: true,
  exactOptionalPropertyTypes: true,
  skipLibCheck: false,
  target: "ES2022",
  lib: ["ES2022", "DOM", "DOM.Iterable"],
  module: resolution === "NodeNext" ? "NodeNext" : "ESNext",
  moduleResolution: resolution,
  types: [],
  noEmit: true
})

/** A fresh project outside the repository: its package.json, the generated client, the page and the script. */
const project = (dir: string, dependencies: Readonly<Record<string, string>>) => {
  mkdirSync(dir)
  writeFileSync(Path.join(dir, "package.json"), JSON.stringify({ name: "frontend", private: true, type: "module", dependencies }, null, 2))
  copyFileSync(Path.join(work, "demo.ts"), Path.join(dir, "demo.ts"))
  writeFileSync(Path.join(dir, "page.ts"), page)
  writeFileSync(Path.join(dir, "subscribe.js"), script)
  for (const resolution of ["Bundler", "NodeNext"] as const) {
    writeFileSync(
      Path.join(dir, `tsconfig.${resolution.toLowerCase()}.json`),
      JSON.stringify({ compilerOptions: compilerOptions(resolution), files: ["page.ts"] })
    )
  }
}

beforeAll(async () => {
  work = mkdtempSync(Path.join(tmpdir(), "effect-stream-rpc-client-"))
  const { stdout } = await timed("npm pack ./client (with the build)", () =>
    run("npm", ["pack", "./client", "--json", "--pack-destination", work], repo))
  packed = (JSON.parse(stdout) as ReadonlyArray<Packed>)[0]!
  // The demo's client as a frontend generates it: importing the client package.
  await timed("generate --runtime", () =>
    run(process.execPath, [
      "--import", "tsx", "src/generator/bin.ts", "generate", "--contract", "examples/demo/contract.ts#DemoApi",
      "--out", Path.join(work, "demo.ts"), "--no-openapi", "--runtime", name
    ], repo))
  // Node runs JavaScript: the generated module's types stripped, its imports as they are.
  const esbuild = await import("esbuild")
  writeFileSync(
    Path.join(work, "demo.js"),
    (await esbuild.transform(readFileSync(Path.join(work, "demo.ts"), "utf8"), { loader: "ts", format: "esm" })).code
  )
  demo = await startDemo()
}, 300_000)

afterAll(async () => {
  console.log(`client package: ${timings.join(", ")}`)
  await demo?.stop()
  if (work !== "") rmSync(work, { recursive: true, force: true })
}, 60_000)

describe("the client package's tarball", () => {
  it("holds exactly the runtime (client/ but client/effect and client/query.ts, and src/protocol) compiled, its package.json, README and LICENSE", () => {
    const expected = [
      ...sources().flatMap((source) => [".js", ".d.ts", ".js.map"].map((extension) => `dist/${source.replace(/\.ts$/, extension)}`)),
      "LICENSE",
      "README.md",
      "package.json"
    ].sort()
    expect(packed.files.map((file) => file.path).sort()).toEqual(expected)
    expect(packed.entryCount).toBe(expected.length)
    expect(expected).toContain("dist/client/saveToFile.js")
    expect(expected.filter((path) => /effect|contract|server|topic|generator|core|query/.test(path))).toEqual([])
    console.log(
      `${packed.filename}: ${(packed.size / 1024).toFixed(1)} KiB packed, ${(packed.unpackedSize / 1024).toFixed(1)} KiB unpacked, ${packed.entryCount} files`
    )
  })

  it("is as large as docs/clients.md says (files exactly, size within 10%)", () => {
    const stated = /The\s+package's\s+tarball\s+is\s+(\d+)\s+KiB\s+\((\d+)\s+KiB\s+unpacked,\s+(\d+)\s+files\)/.exec(
      readFileSync(Path.join(repo, "docs/clients.md"), "utf8")
    )
    expect(stated).not.toBeNull()
    const [, size, unpacked, files] = stated!.map(Number)
    expect(files).toBe(packed.entryCount)
    expect(Math.abs(size! * 1024 - packed.size) / packed.size).toBeLessThan(0.1)
    expect(Math.abs(unpacked! * 1024 - packed.unpackedSize) / packed.unpackedSize).toBeLessThan(0.1)
  })

  it("imports nothing but itself and node: built-ins (in saveToFile.js alone)", async () => {
    const dir = Path.join(work, "unpacked")
    mkdirSync(dir)
    await run("tar", ["-xzf", Path.join(work, packed.filename), "-C", dir], work)
    const specifiers = packed.files.filter((file) => file.path.endsWith(".js")).flatMap((file) =>
      Array.from(
        readFileSync(Path.join(dir, "package", file.path), "utf8").matchAll(/(?:^|[\s;])(?:import|export)\s[^"';]*?from\s*"([^"]+)"|import\(\s*"([^"]+)"\s*\)/gm),
        (match) => ({ file: file.path, specifier: (match[1] ?? match[2])! })
      )
    )
    expect(specifiers.length).toBeGreaterThan(50)
    expect(specifiers.filter(({ specifier }) => !specifier.startsWith("./") && !specifier.startsWith("../")).map(({ file, specifier }) => `${file}: ${specifier}`))
      .toEqual(["fs", "fs/promises", "stream", "stream/promises"].map((module) => `dist/client/saveToFile.js: node:${module}`))
    const manifest = JSON.parse(readFileSync(Path.join(dir, "package/package.json"), "utf8")) as Record<string, unknown>
    expect(manifest["name"]).toBe(name)
    expect(manifest["version"]).toBe(JSON.parse(readFileSync(Path.join(repo, "package.json"), "utf8")).version)
    for (const field of ["dependencies", "peerDependencies", "optionalDependencies", "bundleDependencies", "bin"]) expect(manifest[field], field).toBeUndefined()
    expect(Object.keys(manifest["scripts"] as object).filter((script) => /install|prepare/.test(script))).toEqual([])
  })
})

describe("the demo's client generated with --runtime effect-stream-rpc-client", () => {
  it("imports the client package and nothing else", () => {
    const module = readFileSync(Path.join(work, "demo.ts"), "utf8")
    expect(Array.from(module.matchAll(/^import .* from "([^"]+)"$/gm), (match) => match[1])).toEqual([name])
  })
})

const projects = [
  { label: "a project with no Effect", dir: "none", dependencies: {} },
  { label: "a project on Effect 4 (effect 4.1.5 in its package.json)", dir: "effect4", dependencies: { effect: "4.1.5" } }
] as const

for (const { dependencies, dir: subdir, label } of projects) describe(`in ${label}`, { timeout: 240_000 }, () => {
  const dir = () => Path.join(work, subdir)

  it("npm install of the tarball adds that one package: no effect or @effect/* beyond the project's, no install script", async () => {
    project(dir(), dependencies)
    await timed(`${subdir}: npm install (the project's own)`, () => npm(["install"], dir()))
    const before = installed(dir())
    const effectBefore = effectPackages(dir())
    await timed(`${subdir}: npm install of the tarball`, () => npm(["install", `../${packed.filename}`], dir()))
    const after = installed(dir())
    expect(after).toEqual({ ...before, [`node_modules/${name}`]: packed.filename.match(/-(\d+\.\d+\.\d+)\.tgz$/)![1] })
    expect(effectPackages(dir())).toEqual(effectBefore)
    expect(lockOf(dir()).packages[`node_modules/${name}`]!.hasInstallScript).toBeUndefined()
    const manifest = JSON.parse(readFileSync(Path.join(dir(), "package.json"), "utf8")) as { dependencies: Record<string, string> }
    expect(manifest.dependencies).toEqual({ ...dependencies, [name]: `file:../${packed.filename}` })
    if ("effect" in dependencies) {
      expect(effectBefore).toEqual(["node_modules/effect"])
      expect(JSON.parse(readFileSync(Path.join(dir(), "node_modules/effect/package.json"), "utf8")).version).toBe("4.1.5")
    } else {
      expect(effectBefore).toEqual([])
      expect(readdirSync(Path.join(dir(), "node_modules")).filter((entry) => !entry.startsWith("."))).toEqual([name])
    }
    console.log(`${subdir}: before the tarball ${Object.keys(before).length} packages; after: ${figures(dir())}`)
  })

  for (const resolution of ["Bundler", "NodeNext"] as const) {
    it(`type-checks the generated client and a page under ${resolution} with no @types/node (the package's declarations too)`, async () => {
      expect(existsSync(Path.join(dir(), "node_modules/@types"))).toBe(false)
      expect(await timed(`${subdir}: tsc ${resolution}`, () => typecheck(`tsconfig.${resolution.toLowerCase()}.json`, dir()))).toBe("")
    })
  }

  it("bundles the page for browsers: the package's modules and the page, nothing else", async () => {
    const { inputs } = await bundleForBrowser({ entry: "page.ts", absWorkingDir: dir() })
    expect(inputs).toContain(`node_modules/${name}/dist/client/Client.js`)
    expect(inputs).toContain(`node_modules/${name}/dist/src/protocol/SseParser.js`)
    expect(inputs.filter((input) => !input.startsWith(`node_modules/${name}/dist/`) && !/^(page|demo)\.ts$/.test(input))).toEqual([])
  })

  it("from Node, subscribes, saves a download to a file (./node), exports and calls against the demo server", async () => {
    copyFileSync(Path.join(work, "demo.js"), Path.join(dir(), "demo.js"))
    const { stdout } = await run(process.execPath, ["subscribe.js", `${demo!.url}/rpc`], dir())
    expect(JSON.parse(stdout)).toEqual({
      prices: [1, 2, 3].map(() => ({ isPrice: true, isDate: true })),
      bytes: 1024 * 1024,
      orders: [true, true, true],
      error: { tag: "UnknownSymbol", typed: true }
    })
  })
})

// In the project with no Effect, where the package is installed by then.
describe("effect-stream-rpc-client/node", { timeout: 120_000 }, () => {
  it("type-checks for a Node project with @types/node (NodeNext, declarations checked)", async () => {
    const dir = Path.join(work, "none")
    writeFileSync(Path.join(dir, "node.ts"), `import { saveToFile } from "${name}/node"\nimport { Client } from "${name}"\nexport const save = (download: Client.Download): Promise<void> => saveToFile(download, "out.bin")\n`)
    writeFileSync(
      Path.join(dir, "tsconfig.node.json"),
      JSON.stringify({
        compilerOptions: { ...compilerOptions("NodeNext"), types: ["node"], typeRoots: [Path.join(repo, "node_modules/@types")] },
        files: ["node.ts"]
      })
    )
    expect(await typecheck("tsconfig.node.json", dir)).toBe("")
  })
})
