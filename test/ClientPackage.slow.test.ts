/**
 * The client package, effect-stream-rpc-client (client/package.json), as a
 * frontend gets it: `npm pack ./client` (which builds client/dist/), the
 * tarball's files exactly, and the tarball installed (`--prefer-offline`, as
 * test/Package.slow.test.ts does) into two fresh Vite projects outside the
 * repository: one with no Effect at all, and one whose package.json already
 * depends on `effect` 4.1.5, which the root package's Effect 3 peers refuse
 * (ERESOLVE). Each starts as a team starts one (Vite's vanilla-ts template:
 * `vite` as a devDependency, index.html, src/main.ts): `npm install`, then
 * TypeScript 7 (`typescript@latest`) as a devDependency, then the client
 * package. In each: the client's install adds that one package and nothing
 * else (no `effect`, no `@effect/*`, no install script; the project's effect
 * stays 4.1.5), TypeScript 5.9 (this repository's) and 7 check the page and
 * the generated client under Bundler and NodeNext resolution as browser-only
 * code (lib ES2022 and DOM, no `@types/node`; strict,
 * exactOptionalPropertyTypes, the package's declarations checked too),
 * `npx vite build` bundles src/main.ts (the demo's client generated with
 * `--runtime effect-stream-rpc-client`, subscribing) into one script whose
 * modules are the package's and the page's alone, an esbuild bundle holds
 * nothing else either, and a Node script subscribes, downloads (to a file,
 * through `effect-stream-rpc-client/node`), exports and calls against the
 * demo server. The install and bundle figures are printed; docs/clients.md
 * states them, and the tarball's size, checked here as the README's is by
 * test/Package.slow.test.ts.
 */
import { bundleForBrowser } from "./support/bundle.ts"
import { type DemoProcess, startDemo } from "./support/demoProcess.ts"
import { differenceFromStated, type Packed, npm, run, stopwatch, typecheck } from "./support/packing.ts"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { gzipSync } from "node:zlib"

const repo = process.cwd()
const typescript59 = Path.join(repo, "node_modules/typescript/bin/tsc")
const name = "effect-stream-rpc-client"
// The current major (8.4.1 when written; engines ^20.19.0 || >=22.12.0), as `npm create vite` writes it.
const vite = "^8.4.1"


interface Lock {
  readonly packages: Readonly<Record<string, { readonly version?: string; readonly hasInstallScript?: boolean }>>
}

let work = ""
let packed: Packed
let demo: DemoProcess | undefined
const { timed, timings } = stopwatch()

const lockOf = (dir: string): Lock => JSON.parse(readFileSync(Path.join(dir, "package-lock.json"), "utf8")) as Lock

/** The packages npm installed, as package-lock.json lists them (`node_modules/<name>`), with their versions. */
const installed = (dir: string): Record<string, string | undefined> =>
  Object.fromEntries(Object.entries(lockOf(dir).packages).filter(([path]) => path !== "").map(([path, entry]) => [path, entry.version]))

/** The `effect` and `@effect/*` packages in node_modules, at any depth. */
const effectPackages = (dir: string): ReadonlyArray<string> =>
  Object.keys(installed(dir)).filter((path) => /(^|\/)node_modules\/(effect|@effect\/[^/]+)$/.test(path)).sort()

/** The packages on disk: package-lock.json also lists the optional ones for other platforms, which npm skips. */
const present = (dir: string): ReadonlyArray<string> => Object.keys(installed(dir)).filter((path) => existsSync(Path.join(dir, path)))

/** Bytes of the files under dir (symbolic links, as node_modules/.bin's, counted as links). */
const bytesUnder = (dir: string): number =>
  readdirSync(dir).reduce((sum, entry) => {
    const path = Path.join(dir, entry)
    const stat = lstatSync(path)
    return sum + (stat.isDirectory() ? bytesUnder(path) : stat.size)
  }, 0)

interface Footprint {
  readonly packages: number
  readonly bytes: number
}

const footprint = (dir: string): Footprint => ({ packages: present(dir).length, bytes: bytesUnder(Path.join(dir, "node_modules")) })

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(2)} MB`
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`

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

// Browser-only code: the DOM and the language, no Node types (nor DOM.Iterable, which TypeScript 6 folded into DOM).
const compilerOptions = (resolution: "Bundler" | "NodeNext") => ({
  strict: true,
  exactOptionalPropertyTypes: true,
  skipLibCheck: false,
  target: "ES2022",
  lib: ["ES2022", "DOM"],
  module: resolution === "NodeNext" ? "NodeNext" : "ESNext",
  moduleResolution: resolution,
  types: [],
  noEmit: true
})

/**
 * A fresh Vite project outside the repository, as Vite's vanilla-ts template lays it out (package.json with
 * `vite` as a devDependency and its scripts, index.html, src/main.ts): the page is src/main.ts, next to the
 * generated client; and the Node script.
 */
const project = (dir: string, dependencies: Readonly<Record<string, string>>) => {
  mkdirSync(Path.join(dir, "src"), { recursive: true })
  writeFileSync(
    Path.join(dir, "package.json"),
    JSON.stringify({
      name: "frontend",
      private: true,
      version: "0.0.0",
      type: "module",
      scripts: { dev: "vite", build: "vite build", preview: "vite preview" },
      dependencies,
      devDependencies: { vite }
    }, null, 2)
  )
  writeFileSync(
    Path.join(dir, "index.html"),
    `<!doctype html>\n<html lang="en">\n  <head>\n    <meta charset="UTF-8" />\n    <title>Prices</title>\n  </head>\n  <body>\n    <script type="module" src="/src/main.ts"></script>\n  </body>\n</html>\n`
  )
  copyFileSync(Path.join(work, "demo.ts"), Path.join(dir, "src/demo.ts"))
  writeFileSync(Path.join(dir, "src/main.ts"), page)
  writeFileSync(Path.join(dir, "subscribe.js"), script)
  for (const resolution of ["Bundler", "NodeNext"] as const) {
    writeFileSync(
      Path.join(dir, `tsconfig.${resolution.toLowerCase()}.json`),
      JSON.stringify({ compilerOptions: compilerOptions(resolution), files: ["src/main.ts"] })
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
    const text = readFileSync(Path.join(repo, "docs/clients.md"), "utf8")
    expect(differenceFromStated(packed, text, /The\s+package's\s+tarball\s+is\s+(\d+)\s+KiB\s+\((\d+)\s+KiB\s+unpacked,\s+(\d+)\s+files\)/)).toBeUndefined()
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
  { label: "a Vite project with no Effect", dir: "none", dependencies: {} },
  { label: "a Vite project on Effect 4 (effect 4.1.5 in its package.json)", dir: "effect4", dependencies: { effect: "4.1.5" } }
] as const

/** Each project's `npx vite build` script, by the project's directory. */
const builds: Record<string, Buffer> = {}

const versionIn = (dir: string, module: string): string =>
  (JSON.parse(readFileSync(Path.join(dir, "node_modules", module, "package.json"), "utf8")) as { version: string }).version

/** `npm install --save-dev typescript@latest`; should latest not be 7.x, the newest 7.x instead (and says so). */
const installTypeScript7 = async (dir: string): Promise<string> => {
  await npm(["install", "--save-dev", "typescript@latest"], dir)
  const latest = versionIn(dir, "typescript")
  if (latest.startsWith("7.")) return latest
  await npm(["install", "--save-dev", "typescript@7"], dir)
  return `${versionIn(dir, "typescript")} (typescript@latest is ${latest})`
}

for (const { dependencies, dir: subdir, label } of projects) describe(`in ${label}`, { timeout: 240_000 }, () => {
  const dir = () => Path.join(work, subdir)
  const effect = "effect" in dependencies ? " and effect 4.1.5" : ""
  let typescript7: string | undefined
  let typescript7Failure = ""
  let beforeClient: Footprint

  it(`npm install of the project's own (vite as a devDependency${effect}), then TypeScript 7 (typescript@latest) as a devDependency`, async () => {
    project(dir(), dependencies)
    await timed(`${subdir}: npm install (vite${effect})`, () => npm(["install"], dir()))
    const own = footprint(dir())
    expect(present(dir())).toContain("node_modules/vite")
    expect(effectPackages(dir())).toEqual("effect" in dependencies ? ["node_modules/effect"] : [])
    console.log(`${subdir}: npm install (vite ${versionIn(dir(), "vite")}${effect}): ${own.packages} packages, ${mb(own.bytes)} in node_modules`)
    await timed(`${subdir}: npm install typescript@latest`, () => installTypeScript7(dir())).then(
      (version) => {
        typescript7 = Path.join(dir(), "node_modules/.bin/tsc")
        const now = footprint(dir())
        console.log(`${subdir}: then typescript ${version}: +${now.packages - own.packages} packages, +${mb(now.bytes - own.bytes)}`)
      },
      (error: unknown) => {
        typescript7Failure = String(error)
      }
    )
    expect(existsSync(Path.join(dir(), "node_modules/@types"))).toBe(false)
  })

  it("npm install of the tarball adds that one package: no effect or @effect/* beyond the project's, no install script", async () => {
    const before = installed(dir())
    const entriesBefore = readdirSync(Path.join(dir(), "node_modules"))
    const effectBefore = effectPackages(dir())
    beforeClient = footprint(dir())
    await timed(`${subdir}: npm install of the tarball`, () => npm(["install", `../${packed.filename}`], dir()))
    const after = installed(dir())
    expect(after).toEqual({ ...before, [`node_modules/${name}`]: packed.filename.match(/-(\d+\.\d+\.\d+)\.tgz$/)![1] })
    expect(readdirSync(Path.join(dir(), "node_modules")).filter((entry) => !entriesBefore.includes(entry))).toEqual([name])
    expect(effectPackages(dir())).toEqual(effectBefore)
    expect(lockOf(dir()).packages[`node_modules/${name}`]!.hasInstallScript).toBeUndefined()
    const manifest = JSON.parse(readFileSync(Path.join(dir(), "package.json"), "utf8")) as { dependencies: Record<string, string> }
    expect(manifest.dependencies).toEqual({ ...dependencies, [name]: `file:../${packed.filename}` })
    if ("effect" in dependencies) {
      expect(effectBefore).toEqual(["node_modules/effect"])
      expect(versionIn(dir(), "effect")).toBe("4.1.5")
    } else {
      expect(effectBefore).toEqual([])
    }
    const now = footprint(dir())
    expect(now.packages - beforeClient.packages).toBe(1)
    const own = bytesUnder(Path.join(dir(), "node_modules", name))
    console.log(
      `${subdir}: npm install of the tarball: +${now.packages - beforeClient.packages} package (${beforeClient.packages} -> ${now.packages}), ` +
        `+${mb(now.bytes - beforeClient.bytes)} in node_modules (node_modules/${name}: ${mb(own)}), ` +
        `effect packages: ${effectPackages(dir()).length === 0 ? "none" : effectPackages(dir()).map((path) => `${path} ${versionIn(dir(), path.replace(/^node_modules\//, ""))}`).join(", ")}`
    )
  })

  for (const resolution of ["Bundler", "NodeNext"] as const) {
    const project = `tsconfig.${resolution.toLowerCase()}.json`
    it(`TypeScript 5.9 type-checks the page and the generated client under ${resolution} as browser-only code (the package's declarations too)`, async () => {
      expect(existsSync(Path.join(dir(), "node_modules/@types"))).toBe(false)
      expect(await timed(`${subdir}: tsc 5.9 ${resolution}`, () => typecheck([process.execPath, typescript59], project, dir()))).toBe("")
    })
    it(`TypeScript 7 type-checks the page and the generated client under ${resolution} as browser-only code (the package's declarations too)`, async (context) => {
      if (typescript7 === undefined) {
        console.log(`TypeScript 7 did not install: ${typescript7Failure}`)
        return context.skip()
      }
      expect(existsSync(Path.join(dir(), "node_modules/@types"))).toBe(false)
      expect(await timed(`${subdir}: tsc 7 ${resolution}`, () => typecheck([typescript7!], project, dir()))).toBe("")
    })
  }

  it("`npx vite build` makes one script of the package's modules and the page's, no effect code", async () => {
    const { stdout } = await timed(`${subdir}: npx vite build`, () => run("npx", ["vite", "build"], dir()))
    const scripts = readdirSync(Path.join(dir(), "dist/assets")).filter((file) => file.endsWith(".js"))
    expect(scripts).toHaveLength(1)
    expect(readFileSync(Path.join(dir(), "dist/index.html"), "utf8")).toContain(`/assets/${scripts[0]}`)
    const code = readFileSync(Path.join(dir(), "dist/assets", scripts[0]!))
    const text = code.toString("utf8")
    expect(text).toContain("Bearer demo-token")
    // Effect's type ids are strings "effect/…" (Effect 3) and "~effect/…" (Effect 4): any Effect module brings some.
    expect(text.match(/["'`]~?effect\/|@effect\//g)).toBeNull()
    // Which modules: a second build with a source map beside the script (not referenced from it), the script the same.
    await timed(`${subdir}: npx vite build --sourcemap hidden`, () =>
      run("npx", ["vite", "build", "--sourcemap", "hidden", "--outDir", "dist-map"], dir()))
    expect(readFileSync(Path.join(dir(), "dist-map/assets", scripts[0]!))).toEqual(code)
    const map = JSON.parse(readFileSync(Path.join(dir(), "dist-map/assets", `${scripts[0]}.map`), "utf8")) as { sources: ReadonlyArray<string> }
    const modules = map.sources.map((source) => Path.relative(dir(), Path.resolve(dir(), "dist-map/assets", source)).split(Path.sep).join("/"))
    expect(modules.filter((module) => module.startsWith(`node_modules/${name}/`)).length).toBeGreaterThan(10)
    expect(modules).toContain("src/demo.ts")
    expect(modules.filter((module) => !module.startsWith(`node_modules/${name}/`) && !/^src\/(main|demo)\.ts$/.test(module))).toEqual([])
    const reported = stdout.split("\n").find((line) => line.includes(scripts[0]!))?.replace(/\s+/g, " ").trim()
    console.log(
      `${subdir}: npx vite build (vite ${versionIn(dir(), "vite")}): dist/assets/${scripts[0]} ${code.length} bytes (${kib(code.length)}), ` +
        `gzip ${gzipSync(code).length} bytes (${kib(gzipSync(code).length)}); ${map.sources.length} modules; vite: ${reported}`
    )
    if ("effect" in dependencies) expect(versionIn(dir(), "effect")).toBe("4.1.5")
    // Effect 4 in the project changes nothing in the page's script.
    for (const other of Object.values(builds)) expect(code.equals(other)).toBe(true)
    builds[subdir] = code
    const stated = /`npx vite build` \| one script, ([\d.]+) KiB, ([\d.]+) KiB gzip/.exec(readFileSync(Path.join(repo, "docs/clients.md"), "utf8"))
    expect(stated).not.toBeNull()
    expect(Math.abs(Number(stated![1]) * 1024 - code.length) / code.length).toBeLessThan(0.1)
    expect(Math.abs(Number(stated![2]) * 1024 - gzipSync(code).length) / gzipSync(code).length).toBeLessThan(0.1)
  })

  it("bundles the page for browsers with esbuild: the package's modules and the page, nothing else", async () => {
    const { inputs } = await bundleForBrowser({ entry: "src/main.ts", absWorkingDir: dir() })
    expect(inputs).toContain(`node_modules/${name}/dist/client/Client.js`)
    expect(inputs).toContain(`node_modules/${name}/dist/src/protocol/SseParser.js`)
    expect(inputs.filter((input) => !input.startsWith(`node_modules/${name}/dist/`) && !/^src\/(main|demo)\.ts$/.test(input))).toEqual([])
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
    expect(await typecheck([process.execPath, typescript59], "tsconfig.node.json", dir)).toBe("")
  })
})
