/**
 * The `generate` command as a user runs it: every `--out` extension (`.ts`,
 * `.mts`, and `.js` / `.mjs` with their declarations), where the OpenAPI
 * document goes (`--openapi-out`, `--no-openapi`), the refusals (exit code 2,
 * one line), and `--help`. Most cases call the command's `main` as the
 * generator tests do; a few run the real process (`src/generator/bin.ts`
 * under tsx) for its exit codes and streams. The JavaScript client is then
 * imported by plain Node against the demo served on loopback, and `tsc`
 * checks a TypeScript and a JavaScript (`checkJs`) consumer against its
 * declarations, which must give the types the TypeScript module gives.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as esbuild from "esbuild"
import { execFile } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll } from "vitest"
import { DemoApi } from "../examples/demo/contract.ts"
import { AuthenticationLive, DemoHandlers } from "../examples/demo/handlers.ts"
import * as PriceFeed from "../examples/demo/PriceFeed.ts"
import { main, usage } from "../src/generator/cli.ts"
import * as Generator from "../src/generator/Generator.ts"
import * as HttpTransport from "../src/server/HttpTransport.ts"
import { FallbackApi } from "./support/fallbackContract.ts"
import { listen, quiet } from "./support/http.ts"

const repo = fileURLToPath(new URL("..", import.meta.url))
const contract = "examples/demo/contract.ts#DemoApi"

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** `main` with its output captured. */
const generate = async (...argv: ReadonlyArray<string>): Promise<Run> => {
  let stdout = ""
  let stderr = ""
  const code = await main(["generate", ...argv], { stdout: (text) => void (stdout += text), stderr: (text) => void (stderr += text) })
  return { code, stdout, stderr }
}

/** A process: its exit code and output. */
const run = (file: string, args: ReadonlyArray<string>, cwd = repo): Promise<Run> =>
  new Promise((resolve) => {
    execFile(file, args, { cwd, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1
      resolve({ code, stdout, stderr })
    })
  })

/** The real command, as `npm run generate` runs it. */
const command = (...args: ReadonlyArray<string>) =>
  run(process.execPath, ["--import", "tsx", Path.join(repo, "src/generator/bin.ts"), ...args])

const scratches: Array<string> = []
const scratch = () => {
  const dir = mkdtempSync(Path.join(tmpdir(), "generate-cli-"))
  scratches.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of scratches) rmSync(dir, { recursive: true, force: true })
})

/** The text of a generated file below its header's command line (the one line that names the output). */
const body = (file: string) => readFileSync(file, "utf8").split("\n").slice(2).join("\n")

describe("generate --out: every module extension", () => {
  it(".ts and .mts write the TypeScript module and the OpenAPI document beside it", async () => {
    const dir = scratch()
    for (const extension of [".ts", ".mts"]) {
      const result = await generate("--contract", contract, "--out", Path.join(dir, `client${extension}`))
      expect(result).toMatchObject({ code: 0, stderr: "" })
      expect(result.stdout.trim().split("\n").map((line) => Path.basename(line))).toEqual([`client${extension}`, "client.openapi.json"])
    }
    expect(readdirSync(dir).sort()).toEqual(["client.mts", "client.openapi.json", "client.ts"])
    expect(body(Path.join(dir, "client.mts"))).toBe(body(Path.join(dir, "client.ts")))
    expect(body(Path.join(dir, "client.ts"))).toBe(body(Path.join(repo, "examples/demo/generated/demo.ts")))
    expect(JSON.parse(readFileSync(Path.join(dir, "client.openapi.json"), "utf8"))).toEqual(
      JSON.parse(readFileSync(Path.join(repo, "examples/demo/generated/demo.openapi.json"), "utf8"))
    )
  })

  it(".js and .mjs write plain JavaScript, its declarations (.d.ts, .d.mts) beside it, and the OpenAPI document (not into the module)", async () => {
    const dir = scratch()
    const js = await generate("--contract", contract, "--out", Path.join(dir, "g2/client.js"))
    expect(js.code).toBe(0)
    expect(js.stdout.trim().split("\n").map((line) => Path.basename(line))).toEqual(["client.js", "client.d.ts", "client.openapi.json"])
    // tmpdir has no package.json saying "type": "module": plain Node would take client.js for CommonJS
    expect(js.stderr).toMatch(/^warning: .*client\.js is an ES module and no package\.json above it says "type": "module".*name it \.mjs/)
    const mjs = await generate("--contract", contract, "--out", Path.join(dir, "g3/client.mjs"))
    expect(mjs).toMatchObject({ code: 0, stderr: "" })
    expect(readdirSync(Path.join(dir, "g2")).sort()).toEqual(["client.d.ts", "client.js", "client.openapi.json"])
    expect(readdirSync(Path.join(dir, "g3")).sort()).toEqual(["client.d.mts", "client.mjs", "client.openapi.json"])

    const { declarations, javascript } = Generator.clientModule(DemoApi, { groupName: "DemoApi", command: "" })
    expect(body(Path.join(dir, "g2/client.js"))).toBe(javascript.split("\n").slice(2).join("\n"))
    expect(body(Path.join(dir, "g2/client.d.ts"))).toBe(declarations.split("\n").slice(2).join("\n"))
    expect(body(Path.join(dir, "g3/client.mjs"))).toBe(body(Path.join(dir, "g2/client.js")))
    expect(body(Path.join(dir, "g3/client.d.mts"))).toBe(body(Path.join(dir, "g2/client.d.ts")))
    expect(JSON.parse(readFileSync(Path.join(dir, "g2/client.openapi.json"), "utf8"))["openapi"]).toBe("3.1.0")

    // JavaScript that parses as a module, with no type syntax left; its one import is the runtime
    const code = readFileSync(Path.join(dir, "g2/client.js"), "utf8")
    await esbuild.transform(code, { loader: "js", format: "esm" })
    expect(Array.from(code.matchAll(/^import .* from "([^"]+)"$/gm), (match) => match[1])).toEqual(["effect-stream-rpc/client"])
    expect(code).not.toMatch(/\bdeclare\b|\bas const\b|: Codec\.Codec<|\(options: Client/)
    // the declarations carry every type and no value
    const types = readFileSync(Path.join(dir, "g2/client.d.ts"), "utf8")
    expect(Array.from(types.matchAll(/^import .*$/gm), (match) => match[0])).toEqual([`import type { Client } from "effect-stream-rpc/client"`])
    expect(types).toContain("export declare const makeDemoApiClient: (options: Client.ClientOptions) => {")
    expect(types).toContain("export declare class UnknownSymbol extends Error {")
    expect(types).not.toMatch(/=>\s*$|Codec\./m)
  })

  it("--check compares every file it would write, the declarations included", async () => {
    const dir = scratch()
    const out = Path.join(dir, "client.mjs")
    expect((await generate("--contract", contract, "--out", out)).code).toBe(0)
    expect(await generate("--contract", contract, "--out", out, "--check")).toMatchObject({ code: 0, stdout: "", stderr: "" })
    const declarations = Path.join(dir, "client.d.mts")
    writeFileSync(declarations, readFileSync(declarations, "utf8").replace("readonly watchPrices", "readonly watchPricez"))
    const stale = await generate("--contract", contract, "--out", out, "--check")
    expect(stale.code).toBe(1)
    expect(stale.stderr).toMatch(/client\.d\.mts is stale: run effect-stream-rpc generate --contract examples\/demo\/contract\.ts#DemoApi --out /)
  })

  it("--from-openapi writes the .js client and its declarations, as from the contract", async () => {
    const dir = scratch()
    expect((await generate("--contract", contract, "--out", Path.join(dir, "a/client.mjs"))).code).toBe(0)
    const result = await generate("--from-openapi", Path.join(dir, "a/client.openapi.json"), "--out", Path.join(dir, "b/client.mjs"))
    expect(result).toMatchObject({ code: 0, stderr: "" })
    expect(readdirSync(Path.join(dir, "b")).sort()).toEqual(["client.d.mts", "client.mjs"])
    expect(body(Path.join(dir, "b/client.mjs"))).toBe(body(Path.join(dir, "a/client.mjs")))
    expect(body(Path.join(dir, "b/client.d.mts"))).toBe(body(Path.join(dir, "a/client.d.mts")))
  })
})

describe("generate --runtime: the module imports another runtime", () => {
  /** The lines of a file that name its runtime (the header's command line aside): the header's, and the imports. */
  const runtimeLines = (text: string) => text.split("\n").slice(2).filter((line) => /^import |^\/\/ .*runtime/.test(line))
  /** A file with its runtime's name put back to the default, below the header's command line. */
  const asDefault = (file: string) => body(file).replaceAll("effect-stream-rpc-client", "effect-stream-rpc/client")

  it("--runtime effect-stream-rpc-client writes the same module (.ts, .js and .d.ts) importing effect-stream-rpc-client", async () => {
    const dir = scratch()
    for (const out of ["client.ts", "js/client.mjs"]) {
      const result = await generate("--contract", contract, "--out", Path.join(dir, out), "--no-openapi", "--runtime", "effect-stream-rpc-client")
      expect(result).toMatchObject({ code: 0, stderr: "" })
    }
    const ts = readFileSync(Path.join(dir, "client.ts"), "utf8")
    expect(ts).toContain(`//   effect-stream-rpc generate --contract ${contract} --out ${Path.join(dir, "client.ts")} --no-openapi --runtime effect-stream-rpc-client`)
    expect(runtimeLines(ts)).toEqual([
      "// runtime, effect-stream-rpc-client, which has no runtime import of effect.",
      `import { Client, Codec } from "effect-stream-rpc-client"`
    ])
    expect(runtimeLines(readFileSync(Path.join(dir, "js/client.mjs"), "utf8")).at(-1)).toBe(`import { Client, Codec } from "effect-stream-rpc-client"`)
    expect(runtimeLines(readFileSync(Path.join(dir, "js/client.d.mts"), "utf8")).at(-1)).toBe(`import type { Client } from "effect-stream-rpc-client"`)
    // but for the runtime's name, the module generated without --runtime
    expect(asDefault(Path.join(dir, "client.ts"))).toBe(body(Path.join(repo, "examples/demo/generated/demo.ts")))
    const { declarations, javascript } = Generator.clientModule(DemoApi, { groupName: "DemoApi", command: "" })
    expect(asDefault(Path.join(dir, "js/client.mjs"))).toBe(javascript.split("\n").slice(2).join("\n"))
    expect(asDefault(Path.join(dir, "js/client.d.mts"))).toBe(declarations.split("\n").slice(2).join("\n"))
    // --check regenerates it with the same runtime
    expect(await generate("--contract", contract, "--out", Path.join(dir, "client.ts"), "--no-openapi", "--runtime", "effect-stream-rpc-client", "--check"))
      .toMatchObject({ code: 0, stderr: "" })
    expect((await generate("--contract", contract, "--out", Path.join(dir, "client.ts"), "--no-openapi", "--check")).code).toBe(1)
  })

  it("--from-openapi takes --runtime too; a procedure it cannot check stays unchecked, with no Effect", async () => {
    const dir = scratch()
    const result = await generate(
      "--from-openapi", Path.join(repo, "examples/demo/generated/demo.openapi.json"), "--out", Path.join(dir, "client.ts"), "--runtime", "effect-stream-rpc-client"
    )
    expect(result).toMatchObject({ code: 0, stderr: "" })
    expect(asDefault(Path.join(dir, "client.ts"))).toBe(body(Path.join(repo, "examples/demo/generated/demo.ts")))
    const document = Generator.openApi(FallbackApi, { title: "FallbackApi", version: "1.0.0" })
    writeFileSync(Path.join(dir, "fallback.json"), JSON.stringify(document))
    const fallback = await generate("--from-openapi", Path.join(dir, "fallback.json"), "--out", Path.join(dir, "fallback.ts"), "--runtime", "effect-stream-rpc-client")
    expect(fallback.code).toBe(0)
    expect(fallback.stderr).toMatch(/^warning: price: .*not checked/)
    expect(Array.from(readFileSync(Path.join(dir, "fallback.ts"), "utf8").matchAll(/^import .* from "([^"]+)"$/gm), (m) => m[1])).toEqual(["effect-stream-rpc-client"])
  })

  it("the API: Generator.clientModule's runtime option, and RuntimeNeedsEffect for a procedure that falls back to Effect Schema", () => {
    const options = { groupName: "FallbackApi", command: "", contractImport: "./contract.js" }
    const thrown = (() => {
      try {
        return Generator.clientModule(FallbackApi, { ...options, runtime: "effect-stream-rpc-client" })
      } catch (error) {
        return error
      }
    })()
    expect(thrown).toBeInstanceOf(Generator.RuntimeNeedsEffect)
    expect(thrown).toMatchObject({
      runtime: "effect-stream-rpc-client",
      procedures: [{ tag: "price", reason: "a transformation the generator cannot compile" }]
    })
    // the default runtime, named or not, has client/effect beside it
    const named = Generator.clientModule(FallbackApi, { ...options, runtime: Generator.defaultRuntime })
    expect(named.code).toBe(Generator.clientModule(FallbackApi, options).code)
    expect(named.code).toContain(`from "effect-stream-rpc/client/effect"`)
  })
})

describe("generate: the OpenAPI document", () => {
  it("--openapi-out puts it where it says (--openapi is the same flag); --title names it", async () => {
    const dir = scratch()
    const result = await generate(
      "--contract",
      contract,
      "--out",
      Path.join(dir, "src/client.js"),
      "--openapi-out",
      Path.join(dir, "docs/api.json"),
      "--title",
      "Prices API"
    )
    expect(result.code).toBe(0)
    expect(readdirSync(Path.join(dir, "src")).sort()).toEqual(["client.d.ts", "client.js"])
    expect(JSON.parse(readFileSync(Path.join(dir, "docs/api.json"), "utf8"))["info"]["title"]).toBe("Prices API")
    expect((await generate("--contract", contract, "--out", Path.join(dir, "b.ts"), `--openapi=${Path.join(dir, "b.json")}`)).code).toBe(0)
    expect(existsSync(Path.join(dir, "b.json"))).toBe(true)
    expect(existsSync(Path.join(dir, "b.openapi.json"))).toBe(false)
  })

  it("--no-openapi writes none", async () => {
    const dir = scratch()
    expect((await generate("--contract", contract, "--out", Path.join(dir, "client.mts"), "--no-openapi")).code).toBe(0)
    expect(readdirSync(dir)).toEqual(["client.mts"])
  })
})

describe("generate: refusals are one line on stderr and exit code 2, with nothing written", () => {
  const refused = async (argv: ReadonlyArray<string>, message: RegExp, files: ReadonlyArray<string> = []) => {
    const result = await generate(...argv)
    expect(result.code).toBe(2)
    expect(result.stdout).toBe("")
    expect(result.stderr.split("\n")).toEqual([expect.stringMatching(message), ""])
    expect(result.stderr).toContain("(effect-stream-rpc generate --help lists the flags)")
    for (const file of files) expect(existsSync(file)).toBe(false)
  }

  it("two outputs on one path", async () => {
    const dir = scratch()
    const out = (name: string) => Path.join(dir, name)
    await refused(
      ["--contract", contract, "--out", out("c.js"), "--openapi-out", out("c.d.ts")],
      /^effect-stream-rpc: the declarations of --out \(\.d\.ts\) and --openapi-out are both .*c\.d\.ts: two outputs cannot share a path/,
      [out("c.js"), out("c.d.ts")]
    )
    await refused(
      ["--contract", contract, "--out", out("c.ts"), "--openapi-out", out("c.ts")],
      /^effect-stream-rpc: --out and --openapi-out are both .*c\.ts: two outputs cannot share a path/,
      [out("c.ts")]
    )
    expect(readdirSync(dir)).toEqual([])
  })

  it("an output over an input: the contract module, or the document it reads", async () => {
    const before = readFileSync(Path.join(repo, "examples/demo/contract.ts"), "utf8")
    await refused(["--contract", contract, "--out", "examples/demo/contract.ts"], /^effect-stream-rpc: --out would overwrite the contract module, examples\/demo\/contract\.ts/)
    expect(readFileSync(Path.join(repo, "examples/demo/contract.ts"), "utf8")).toBe(before)
    const dir = scratch()
    writeFileSync(Path.join(dir, "contract.js"), "export const Api = 1\n")
    await refused(
      ["--contract", `${Path.join(dir, "contract.js")}#Api`, "--out", Path.join(dir, "contract.js")],
      /--out would overwrite the contract module/
    )
  })

  it("an --out name that is not a module's: unknown, CommonJS, or a declaration file's", async () => {
    const dir = scratch()
    for (const name of ["client.json", "client", "client.tsx", ".ts"]) {
      await refused(["--contract", contract, "--out", Path.join(dir, name)], /: unknown extension; name it \.ts or \.mts \(TypeScript\), or \.js or \.mjs/)
    }
    for (const name of ["client.cts", "client.cjs"]) {
      await refused(["--contract", contract, "--out", Path.join(dir, name)], /: the client is an ES module .*; name it \.ts, \.mts, \.js or \.mjs/)
    }
    for (const name of ["client.d.ts", "client.d.mts"]) {
      await refused(["--contract", contract, "--out", Path.join(dir, name)], /is a declaration file's name: name the module/)
    }
    expect(readdirSync(dir)).toEqual([])
  })

  it("flags that contradict each other, or a flag given twice or without its value", async () => {
    const out = Path.join(scratch(), "c.ts")
    await refused(["--contract", contract, "--out", out, "--no-openapi", "--openapi-out", "x.json"], /--openapi-out and --no-openapi exclude each other/)
    await refused(["--from-openapi", "x.json", "--out", out, "--openapi-out", "y.json"], /--openapi-out is for the OpenAPI document, which --from-openapi reads/)
    await refused(["--contract", contract, "--from-openapi", "x.json", "--out", out], /--contract and --from-openapi exclude each other/)
    await refused(["--contract", contract, "--out", out, "--out", out], /--out is given twice/)
    await refused(["--contract", contract, "--out", "--check"], /--out needs a value/)
    await refused(["--contract", "examples/demo/contract.ts", "--out", out], /--contract must be <module>#<GroupExport>/)
    await refused(["--contract", contract, "--out", out, "--bogus"], /^effect-stream-rpc: unknown argument --bogus \(/)
    await refused(["--contract", contract, "--out", out, "--runtime", "a b"], /^effect-stream-rpc: --runtime a b is not an import specifier: name a package/)
    await refused(["--contract", contract, "--out", out, "--runtime"], /--runtime needs a value/)
  })

  it("--runtime other than effect-stream-rpc/client, for a contract with a procedure that falls back to Effect Schema", async () => {
    const dir = scratch()
    for (const out of ["client.ts", "client.js"]) {
      await refused(
        ["--contract", "test/support/fallbackContract.ts#FallbackApi", "--out", Path.join(dir, out), "--runtime", "effect-stream-rpc-client"],
        /^effect-stream-rpc: --runtime effect-stream-rpc-client has no Effect, and price \(a transformation the generator cannot compile\) falls back to Effect Schema, which imports effect-stream-rpc\/client\/effect and effect: generate without --runtime, or give that procedure schemas the generator compiles \(/
      )
    }
    expect(readdirSync(dir)).toEqual([])
  })
})

describe("the real command", () => {
  it("--help and -h print the usage on stdout and exit 0: every flag with a line of its own, and each in an example", async () => {
    const [help, h] = await Promise.all([command("generate", "--help"), command("-h")])
    expect(help).toEqual({ code: 0, stdout: usage, stderr: "" })
    expect(h).toEqual(help)
    const flags = Array.from(usage.matchAll(/^ {2}(?:-h, )?(--[a-z-]+)/gm), (match) => match[1]!)
    expect(flags).toEqual(["--contract", "--from-openapi", "--out", "--openapi-out", "--openapi", "--no-openapi", "--title", "--runtime", "--check", "--help"])
    const examples = usage.slice(usage.indexOf("Examples:")).split("\n").filter((line) => line.startsWith("  effect-stream-rpc generate"))
    for (const flag of flags.filter((flag) => flag !== "--help" && flag !== "--openapi")) {
      expect(examples.some((line) => line.includes(` ${flag} `) || line.endsWith(` ${flag}`)), flag).toBe(true)
    }
  })

  it("an unknown argument, or two outputs on one path, exits 2 with one line pointing to --help; nothing is written", async () => {
    const dir = scratch()
    const [unknown, same] = await Promise.all([
      command("generate", "--contract", contract, "--out", Path.join(dir, "a.ts"), "--bogus"),
      command("generate", "--contract", contract, "--out", Path.join(dir, "b.js"), "--openapi-out", Path.join(dir, "b.d.ts"))
    ])
    expect(unknown).toEqual({
      code: 2,
      stdout: "",
      stderr: "effect-stream-rpc: unknown argument --bogus (effect-stream-rpc generate --help lists the flags)\n"
    })
    expect(same.code).toBe(2)
    expect(same.stdout).toBe("")
    expect(same.stderr).toMatch(/^effect-stream-rpc: the declarations of --out \(\.d\.ts\) and --openapi-out are both .*b\.d\.ts: two outputs cannot share a path \(effect-stream-rpc generate --help lists the flags\)\n$/)
    expect(readdirSync(dir)).toEqual([])
  })
})

describe("the JavaScript client, with no build step", () => {
  // Under test/ (ignored by git) so that tsc reads the repository's tsconfig.json, whose paths resolve
  // effect-stream-rpc/client to its sources; its package.json says "type": "module", and stops Node
  // resolving the package's own name to the repository (whose dist/ may not be built).
  let dir = ""
  beforeAll(async () => {
    dir = mkdtempSync(Path.join(repo, "test/.generated-cli-"))
    writeFileSync(Path.join(dir, "package.json"), JSON.stringify({ type: "module", private: true }))
    // The runtime as the package's exports map gives it, built from the sources.
    const runtime = Path.join(dir, "node_modules/effect-stream-rpc")
    mkdirSync(runtime, { recursive: true })
    writeFileSync(Path.join(runtime, "package.json"), JSON.stringify({ name: "effect-stream-rpc", type: "module", exports: { "./client": "./client.js" } }))
    await esbuild.build({
      entryPoints: [Path.join(repo, "client/index.ts")],
      bundle: true,
      format: "esm",
      platform: "neutral",
      target: "es2022",
      outfile: Path.join(runtime, "client.js"),
      logLevel: "silent"
    })
    for (const out of ["js/client.js", "mjs/client.mjs", "ts/client.ts"]) {
      const result = await generate("--contract", contract, "--out", Path.join(dir, out), "--no-openapi")
      expect(result).toMatchObject({ code: 0, stderr: "" })
    }
    for (const out of ["fallback-js/client.js", "fallback-ts/client.ts"]) {
      const result = await generate("--contract", "test/support/fallbackContract.ts#FallbackApi", "--out", Path.join(dir, out), "--no-openapi")
      expect(result.code).toBe(0)
      expect(result.stderr).toMatch(/^warning: price: .*falls back to Effect Schema/)
    }
    writeFileSync(
      Path.join(dir, "brand-contract.ts"),
      [
        `import * as RpcGroup from "@effect/rpc/RpcGroup"`,
        `import * as Schema from "effect/Schema"`,
        `import * as Procedure from "../../src/contract/Procedure.ts"`,
        `const UserId = Schema.String.pipe(Schema.brand("UserId"))`,
        `export const BrandApi = RpcGroup.make(`,
        `  Procedure.unary("pair", { payload: { n: Schema.Number, user: UserId }, success: Schema.Tuple(Schema.BigInt, Schema.NullOr(Schema.Literal("a", "b"))) })`,
        `)`
      ].join("\n")
    )
    for (const out of ["js/client.js", "mjs/client.mjs", "fallback-js/client.js"]) {
      await esbuild.transform(readFileSync(Path.join(dir, out), "utf8"), { loader: "js", format: "esm" })
    }
    const brand = await generate("--contract", `${Path.join(dir, "brand-contract.ts")}#BrandApi`, "--out", Path.join(dir, "brand/client.js"), "--no-openapi")
    expect(brand).toMatchObject({ code: 0, stderr: "" })
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it.scopedLive("plain Node imports client.js and client.mjs and calls the demo server: values, rows, typed errors, classes", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(
        Layer.mergeAll(DemoHandlers, AuthenticationLive).pipe(Layer.provide(PriceFeed.layer({ pricesPerSecond: 100 })))
      )
      const app = yield* HttpTransport.toHttpApp(DemoApi).pipe(Effect.provide(context))
      const url = `${yield* listen(app)}/rpc`
      const script = (module: string) =>
        [
          `import { makeDemoApiClient, DemoApiProcedures, Order, Price, UnknownSymbol, Unauthorized } from "./${module}"`,
          `const api = makeDemoApiClient({ baseUrl: process.argv[2], headers: () => ({ authorization: "Bearer demo-token" }) })`,
          `const prices = []`,
          `for await (const price of api.watchPrices({ symbols: ["ACME", "HOOLI"] })) {`,
          `  prices.push({ symbol: price.symbol, isPrice: price instanceof Price, isDate: price.at instanceof Date })`,
          `  if (prices.length === 2) break`,
          `}`,
          `const rows = []`,
          `for await (const order of await api.exportOrders({ count: 3 }, { format: "ndjson" })) rows.push(order instanceof Order && order.placedAt instanceof Date)`,
          `const error = await api.getQuote({ symbol: "NOPE" }).catch((e) => ({ tag: e._tag, typed: e instanceof UnknownSymbol, symbol: e.symbol }))`,
          `const refused = await makeDemoApiClient({ baseUrl: process.argv[2] }).whoAmI().catch((e) => e instanceof Unauthorized)`,
          `const invalid = await api.getQuote({ symbol: "X".repeat(33) }).then(() => "sent", (e) => e.name)`,
          `console.log(JSON.stringify({ prices, rows, error, me: await api.whoAmI(), refused, invalid, procedures: Object.keys(DemoApiProcedures) }))`
        ].join("\n")
      for (const module of ["js/client.js", "mjs/client.mjs"]) {
        const file = Path.join(dir, `use-${Path.basename(module).replace(".", "-")}.mjs`)
        writeFileSync(file, script(module))
        const result = yield* Effect.promise(() => run(process.execPath, [file, url], dir))
        expect(result.stderr).toBe("")
        expect(result.code).toBe(0)
        expect(JSON.parse(result.stdout)).toEqual({
          prices: [
            { symbol: expect.stringMatching(/^(ACME|HOOLI)$/), isPrice: true, isDate: true },
            { symbol: expect.stringMatching(/^(ACME|HOOLI)$/), isPrice: true, isDate: true }
          ],
          rows: [true, true, true],
          error: { tag: "UnknownSymbol", typed: true, symbol: "NOPE" },
          me: { name: "demo" },
          refused: true,
          invalid: "ClientError",
          procedures: ["watchPrices", "downloadReport", "exportOrders", "getQuote", "whoAmI"]
        })
      }
    }).pipe(quiet))

  it("tsc checks a TypeScript and a JavaScript (checkJs) consumer against the declarations, which give the TypeScript module's types", async () => {
    const names = (file: string, pattern: RegExp) => Array.from(readFileSync(Path.join(dir, file), "utf8").matchAll(pattern), (match) => match[1]!)
    const equalType = [
      `type Equal<X, Y> = (<T>() => T extends X ? 1 : 2) extends (<T>() => T extends Y ? 1 : 2) ? true : false`,
      `type Assert<T extends true> = T`
    ].join("\n")
    /** A module asserting that every export of the TypeScript module has the same type in the declarations. */
    const equal = (ts: string, js: string, declarations: string) => {
      const typeNames = names(ts, /^export type (\w+)/gm)
      const valueNames = names(ts, /^export (?:const|class) (\w+)/gm)
      expect(names(declarations, /^export type (\w+)/gm)).toEqual(typeNames)
      expect(names(declarations, /^export declare (?:const|class) (\w+)/gm)).toEqual(valueNames)
      expect(names(js, /^export (?:const|class) (\w+)/gm)).toEqual(valueNames)
      return [
        `import type * as TS from "./${ts}"`,
        `import type * as JS from "./${js}"`,
        equalType,
        `export type Same = [`,
        ...typeNames.map((name) => `  Assert<Equal<TS.${name}, JS.${name}>>,`),
        ...valueNames.map((name) => `  Assert<Equal<typeof TS.${name}, typeof JS.${name}>>,`),
        ...names(ts, /^export class (\w+)/gm).map((name) => `  Assert<Equal<TS.${name}, JS.${name}>>,`),
        `  Assert<Equal<keyof typeof TS, keyof typeof JS>>`,
        `]`
      ].join("\n")
    }
    writeFileSync(Path.join(dir, "equal-js.ts"), equal("ts/client.ts", "js/client.js", "js/client.d.ts"))
    writeFileSync(Path.join(dir, "equal-mjs.ts"), equal("ts/client.ts", "mjs/client.mjs", "mjs/client.d.mts"))
    // A procedure that falls back to Effect Schema: its types are read off the contract in both.
    writeFileSync(Path.join(dir, "equal-fallback.ts"), equal("fallback-ts/client.ts", "fallback-js/client.js", "fallback-js/client.d.ts"))
    // Brands: each module declares its own, so they are checked by use rather than against the TypeScript module.
    writeFileSync(
      Path.join(dir, "brand.ts"),
      [
        `import { makeBrandApiClient, type PairPayload, type PairResponse } from "./brand/client.js"`,
        `declare const user: PairPayload["user"]`,
        `export const pair: Promise<PairResponse> = makeBrandApiClient({ baseUrl: "/rpc" }).pair({ n: 1, user })`,
        `export const tuple = (response: PairResponse): readonly [bigint, "a" | "b" | null] => response`,
        `// @ts-expect-error a plain string is not a UserId`,
        `export const plain: PairPayload = { n: 1, user: "u" }`,
        `// @ts-expect-error the brand's symbol is the module's own`,
        `import type { BrandId } from "./brand/client.js"`
      ].join("\n")
    )
    writeFileSync(
      Path.join(dir, "consumer.ts"),
      [
        `import { makeDemoApiClient, UnknownSymbol, type GetQuoteResponse, type WatchPricesValue } from "./js/client.js"`,
        `const api = makeDemoApiClient({ baseUrl: "/rpc" })`,
        `export const quote: Promise<GetQuoteResponse> = api.getQuote({ symbol: "ACME" })`,
        `export const at = (price: WatchPricesValue): Date => price.at`,
        `export const typed = (error: unknown) => error instanceof UnknownSymbol ? error.symbol : undefined`,
        `// @ts-expect-error a symbol is a string`,
        `api.getQuote({ symbol: 1 })`,
        `// @ts-expect-error no such procedure`,
        `api.getQuotes({ symbol: "ACME" })`,
        `// @ts-expect-error the module's codecs are not exported`,
        `import type { Price$ } from "./js/client.js"`
      ].join("\n")
    )
    writeFileSync(
      Path.join(dir, "consumer.js"),
      [
        `import { makeDemoApiClient, Price } from "./mjs/client.mjs"`,
        `const api = makeDemoApiClient({ baseUrl: "/rpc" })`,
        `/** @type {Promise<Price>} */`,
        `export const quote = api.getQuote({ symbol: "ACME" })`,
        `export const rows = api.exportOrders({ count: 3 }, { format: "csv" })`,
        `// @ts-expect-error not a format of exportOrders`,
        `api.exportOrders({ count: 3 }, { format: "xml" })`,
        `// @ts-expect-error count is a number`,
        `api.exportOrders({ count: "3" })`
      ].join("\n")
    )
    // The generated files are in the project too, as in a project whose include covers them: the
    // JavaScript module, checked as JavaScript, must not fail a project that checks its JavaScript.
    writeFileSync(
      Path.join(dir, "tsconfig.json"),
      JSON.stringify({ extends: "../../tsconfig.json", compilerOptions: { allowJs: true, checkJs: true }, include: ["*.ts", "*.js", "ts", "js", "mjs", "fallback-ts", "fallback-js", "brand"] })
    )
    // Two errors made on purpose show that tsc reads the consumers and that Equal tells types apart.
    writeFileSync(
      Path.join(dir, "wrong.ts"),
      [
        `import type * as TS from "./ts/client.ts"`,
        `import { makeDemoApiClient } from "./js/client.js"`,
        equalType,
        `makeDemoApiClient({ baseUrl: "/rpc" }).getQuote({ symbol: 1 })`,
        `export type Differ = Assert<Equal<TS.GetQuotePayload, import("./js/client.js").WatchPricesPayload>>`
      ].join("\n")
    )
    const result = await run(process.execPath, [Path.join(repo, "node_modules/typescript/bin/tsc"), "-p", dir], dir)
    expect(result.stdout.split("\n").filter((line) => /^\S/.test(line))).toEqual([
      expect.stringMatching(/^wrong\.ts\(5,51\): error TS2322: Type 'number' is not assignable to type 'string'/),
      expect.stringMatching(/^wrong\.ts\(6,\d+\): error TS2344: Type 'false' does not satisfy the constraint 'true'/)
    ])
  })
})
