/**
 * `effect-stream-rpc generate --contract <module>#<Group> --out <client.ts|.mts|.js|.mjs> [--openapi-out <file.json> | --no-openapi] [--title <text>] [--runtime <specifier>] [--check]`
 * `effect-stream-rpc generate --from-openapi <file.json | URL> --out <client.ts|.mts|.js|.mjs> [--runtime <specifier>] [--check]`
 * `effect-stream-rpc generate --help`
 *
 * Writes the typed client module and the OpenAPI 3.1 document of a group;
 * or, from the OpenAPI document a server publishes (`/openapi.json`), the
 * same client module. The module is TypeScript for `.ts` / `.mts`, and plain
 * JavaScript for `.js` / `.mjs` with its declarations beside it (`.d.ts` /
 * `.d.mts`), the types the TypeScript module has. With `--check`, writes
 * nothing and fails when the files on disk are stale. A procedure whose
 * schemas cannot be compiled is a warning on stderr (and a comment in the
 * module). A usage error (an unknown flag or extension, two outputs on one
 * path, an output over the contract) is one line on stderr and exit code 2,
 * before anything is loaded or written; so is a `--runtime` other than
 * `effect-stream-rpc/client` for a contract with a procedure that falls back
 * to Effect Schema (found once the contract is loaded, before anything is
 * written).
 *
 * The contract is imported as a module. JavaScript loads anywhere; a
 * TypeScript contract loads when Node strips types itself (22.18+, 23.6+),
 * when the command already runs under a loader, or through `tsx` if the
 * project has it (an optional peer). Otherwise point `--contract` at the
 * compiled JavaScript.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import type * as Rpc from "@effect/rpc/Rpc"
import * as Generator from "./Generator.ts"

export const usage = `effect-stream-rpc generate: a typed client module (and an OpenAPI 3.1 document) from a contract,
or the same module from the OpenAPI document a server publishes.

Usage:
  effect-stream-rpc generate --contract <module>#<GroupExport> --out <client.ts|.mts|.js|.mjs> [flags]
  effect-stream-rpc generate --from-openapi <file.json | http(s)://.../openapi.json> --out <client.ts|.mts|.js|.mjs> [flags]

Flags:
  --contract <module>#<Group>  the contract module (.js; .ts with Node 22.18+ or tsx) and its RpcGroup's export
  --from-openapi <file | URL>  instead of --contract: the OpenAPI document a server publishes (/openapi.json)
  --out <file>                 the client: .ts/.mts TypeScript, or .js/.mjs JavaScript with a .d.ts/.d.mts beside it
  --openapi-out <file.json>    the OpenAPI document (--contract only); default: --out's name, .openapi.json
  --openapi <file.json>        the same as --openapi-out (its name in 0.1.0)
  --no-openapi                 write no OpenAPI document
  --title <text>               the OpenAPI document's title (default: the group's export name)
  --runtime <specifier>        the runtime the client imports: effect-stream-rpc/client (default), or effect-stream-rpc-client,
                               the client package with no dependencies (refused if a procedure falls back to Effect Schema)
  --check                      write nothing; exit 1 if a file on disk differs from what would be written
  -h, --help                   print this help

Examples:
  effect-stream-rpc generate --contract dist/contract.js#Api --out src/generated/api.ts
  effect-stream-rpc generate --contract src/contract.ts#Api --out public/api.js --no-openapi
  effect-stream-rpc generate --contract src/contract.ts#Api --out src/api.mts --openapi-out docs/openapi.json --title "Prices API"
  effect-stream-rpc generate --contract dist/contract.js#Api --out src/generated/api.ts --runtime effect-stream-rpc-client
  effect-stream-rpc generate --from-openapi https://api.example.com/openapi.json --out src/api.mjs
  effect-stream-rpc generate --contract src/contract.ts#Api --out src/generated/api.ts --check

Exit codes: 0 written (with --check: current), 1 stale (with --check) or an error, 2 a usage error
(--runtime with a procedure that falls back to Effect Schema included).
`

/** A usage error: one line on stderr, exit code 2. */
class UsageError extends Error {}

const fail = (message: string): never => {
  throw new UsageError(message)
}

const typeScript = /\.[cm]?ts$/

const loadContract = async (file: string): Promise<Record<string, unknown>> => {
  const url = pathToFileURL(file).href
  try {
    return (await import(url)) as Record<string, unknown>
  } catch (error) {
    if (!typeScript.test(file) || (error as { code?: unknown }).code !== "ERR_UNKNOWN_FILE_EXTENSION") throw error
  }
  const tsx = await import("tsx/esm/api").catch(() => undefined)
  if (tsx === undefined) {
    return fail(
      `Node ${process.version} cannot load the TypeScript contract ${Path.basename(file)}: ` +
        "point --contract at its compiled JavaScript, use Node 22.18 or later (type stripping), or install tsx"
    )
  }
  // Not register() and import again: Node keeps the failed import of this URL.
  return (await tsx.tsImport(url, import.meta.url)) as Record<string, unknown>
}

/** The OpenAPI document at a file path or an http(s) URL (the server's `/openapi.json`). */
const loadDocument = async (source: string): Promise<unknown> => {
  if (/^https?:\/\//.test(source)) {
    const response = await fetch(source).catch((cause: unknown) => fail(`cannot fetch ${source}: ${String(cause)}`))
    if (!response.ok) return fail(`cannot fetch ${source}: HTTP ${response.status}`)
    return response.json().catch(() => fail(`${source} is not JSON`))
  }
  if (!existsSync(source)) return fail(`no such OpenAPI document: ${source}`)
  try {
    return JSON.parse(readFileSync(source, "utf8"))
  } catch {
    return fail(`${source} is not JSON`)
  }
}

const relativeImport = (from: string, to: string): string => {
  const relative = Path.relative(Path.dirname(from), to).split(Path.sep).join("/")
  return relative.startsWith(".") ? relative : `./${relative}`
}

/** An import specifier: a package's name with a subpath or none, or a path relative to the module. */
const specifier = /^(?:(?:@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*(?:\/[\w.@-]+)*|\.{1,2}\/[\w.@/-]+)$/i

const shellWord = (word: string): string => (/^[\w@%+=:,./#-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`)

const isGroup = (u: unknown): u is RpcGroup.RpcGroup<Rpc.Any> =>
  typeof u === "function" || (typeof u === "object" && u !== null)
    ? (u as { requests?: unknown }).requests instanceof Map
    : false

/** What an `--out` extension writes: the module's language, and for JavaScript the extension of its declarations. */
const moduleKinds: ReadonlyArray<{ readonly extension: string; readonly declarations?: string }> = [
  { extension: ".ts" },
  { extension: ".mts" },
  { extension: ".js", declarations: ".d.ts" },
  { extension: ".mjs", declarations: ".d.mts" }
]

const moduleKindOf = (out: string) => {
  const name = Path.basename(out)
  if (/\.d\.[cm]?ts$/.test(name)) {
    return fail(`--out ${out} is a declaration file's name: name the module (.js writes its .d.ts beside it)`)
  }
  if (/\.c[jt]s$/.test(name)) {
    return fail(`--out ${out}: the client is an ES module (its runtime has no CommonJS build); name it .ts, .mts, .js or .mjs`)
  }
  const kind = moduleKinds.find((kind) => name.endsWith(kind.extension) && name.length > kind.extension.length)
  return kind ?? fail(`--out ${out}: unknown extension; name it .ts or .mts (TypeScript), or .js or .mjs (JavaScript and its .d.ts)`)
}

/** The flags that take a value, and the older name of one. */
const valueFlags = new Set(["--contract", "--from-openapi", "--out", "--openapi-out", "--title", "--runtime"])
const aliases: ReadonlyMap<string, string> = new Map([["--openapi", "--openapi-out"]])
const switches = new Set(["--check", "--no-openapi"])

/** Paths compared as the file system compares them (case-insensitively on macOS and Windows). */
const samePath = (a: string, b: string): boolean =>
  process.platform === "darwin" || process.platform === "win32" ? a.toLowerCase() === b.toLowerCase() : a === b

/** The `package.json` that decides how Node loads a `.js` file in `dir`, and its `type`. */
const packageTypeOf = (dir: string): { readonly file: string; readonly type: unknown } | undefined => {
  for (let current = dir; ; current = Path.dirname(current)) {
    const file = Path.join(current, "package.json")
    if (existsSync(file)) {
      try {
        return { file, type: (JSON.parse(readFileSync(file, "utf8")) as { type?: unknown }).type }
      } catch {
        return { file, type: undefined }
      }
    }
    if (Path.dirname(current) === current) return undefined
  }
}

export interface Io {
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
}

const processIo: Io = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text)
}

/** Runs the command; resolves to its exit code. */
export const main = async (argv: ReadonlyArray<string>, io: Io = processIo): Promise<number> => {
  if (argv[0] === "help" || argv.some((arg) => arg === "--help" || arg === "-h")) {
    io.stdout(usage)
    return 0
  }
  if (argv.length === 0 || (argv.length === 1 && argv[0] === "generate")) {
    io.stderr(usage)
    return 2
  }
  try {
    return await generate(argv, io)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    io.stderr(`effect-stream-rpc: ${error.message} (effect-stream-rpc generate --help lists the flags)\n`)
    return 2
  }
}

const generate = async (argv: ReadonlyArray<string>, io: Io): Promise<number> => {
  const args = [...argv]
  if (args[0] === "generate") args.shift()
  const options = new Map<string, string>()
  const switched = new Set<string>()
  while (args.length > 0) {
    const arg = args.shift()!
    const equals = arg.startsWith("--") ? arg.indexOf("=") : -1
    const given = equals === -1 ? arg : arg.slice(0, equals)
    const flag = aliases.get(given) ?? given
    if (switches.has(flag) && equals === -1) {
      if (switched.has(flag)) fail(`${given} is given twice`)
      switched.add(flag)
    } else if (valueFlags.has(flag)) {
      if (options.has(flag)) fail(`${given} is given twice`)
      const value = equals === -1 ? args.shift() : arg.slice(equals + 1)
      if (value === undefined || value === "" || (equals === -1 && value.startsWith("-"))) fail(`${given} needs a value`)
      options.set(flag, value!)
    } else fail(`unknown argument ${arg}`)
  }
  const check = switched.has("--check")
  const command = ["effect-stream-rpc", "generate", ...argv.slice(argv[0] === "generate" ? 1 : 0).filter((arg) => arg !== "--check")]
    .map(shellWord)
    .join(" ")

  const source = options.get("--from-openapi")
  const contract = options.get("--contract")
  if (source !== undefined && contract !== undefined) fail("--contract and --from-openapi exclude each other")
  if (source === undefined && contract === undefined) fail("--contract or --from-openapi is required")
  const [modulePath, groupName] = contract?.split("#") ?? []
  if (contract !== undefined && (modulePath === undefined || modulePath === "" || groupName === undefined || groupName === "")) {
    fail("--contract must be <module>#<GroupExport>")
  }
  for (const flag of ["--openapi-out", "--title"]) {
    if (!options.has(flag)) continue
    if (source !== undefined) fail(`${flag} is for the OpenAPI document, which --from-openapi reads and does not write`)
    if (switched.has("--no-openapi")) fail(`${flag} and --no-openapi exclude each other`)
  }

  const runtime = options.get("--runtime")
  if (runtime !== undefined && !specifier.test(runtime)) {
    fail(`--runtime ${runtime} is not an import specifier: name a package, e.g. effect-stream-rpc-client, or a path starting with ./`)
  }

  // Every path to write, checked against each other and against the inputs before anything is loaded or written.
  const outName = options.get("--out") ?? fail("--out is required")
  const kind = moduleKindOf(outName)
  const out = Path.resolve(outName)
  const stem = out.slice(0, -kind.extension.length)
  const declarationsFile = kind.declarations === undefined ? undefined : stem + kind.declarations
  const openapiName = options.get("--openapi-out")
  const openapiFile = contract === undefined || switched.has("--no-openapi")
    ? undefined
    : Path.resolve(openapiName ?? `${stem}.openapi.json`)
  const outputs: Array<readonly [string, string]> = [["--out", out]]
  if (declarationsFile !== undefined) outputs.push([`the declarations of --out (${kind.declarations})`, declarationsFile])
  if (openapiFile !== undefined) outputs.push([openapiName === undefined ? "the OpenAPI document" : "--openapi-out", openapiFile])
  const inputs: Array<readonly [string, string]> = []
  if (modulePath !== undefined) inputs.push(["the contract module", Path.resolve(modulePath)])
  if (source !== undefined && !/^https?:\/\//.test(source)) inputs.push(["the OpenAPI document it reads", Path.resolve(source)])
  const named = (file: string) => Path.relative(process.cwd(), file) || file
  for (const [i, [what, file]] of outputs.entries()) {
    for (const [other, otherFile] of outputs.slice(0, i)) {
      if (samePath(file, otherFile)) fail(`${other} and ${what} are both ${named(file)}: two outputs cannot share a path`)
    }
    for (const [input, inputFile] of inputs) {
      if (samePath(file, inputFile)) fail(`${what} would overwrite ${input}, ${named(file)}`)
    }
  }

  let module: Generator.ClientModule
  let document: object | undefined
  if (source !== undefined) module = Generator.clientModuleFromOpenApi(await loadDocument(source), { command, runtime })
  else {
    const contractFile = Path.resolve(modulePath!)
    if (!existsSync(contractFile)) fail(`no such contract module: ${modulePath}`)
    const exports = await loadContract(contractFile)
    const group = exports[groupName!]
    if (!isGroup(group)) return fail(`${modulePath} does not export an RpcGroup named ${groupName}`)
    try {
      module = Generator.clientModule(group, {
        contractImport: relativeImport(out, contractFile).replace(typeScript, (ext) => ext.replace("ts", "js")),
        groupName: groupName!,
        command,
        runtime
      })
    } catch (error) {
      if (!(error instanceof Generator.RuntimeNeedsEffect)) throw error
      const one = error.procedures.length === 1
      return fail(
        `--runtime ${runtime} has no Effect, and ${error.procedures.map((p) => `${p.tag} (${p.reason})`).join(", ")} ` +
          `${one ? "falls" : "fall"} back to Effect Schema, which imports ${Generator.defaultRuntime}/effect and effect: ` +
          `generate without --runtime, or give ${one ? "that procedure" : "those procedures"} schemas the generator compiles`
      )
    }
    if (openapiFile !== undefined) {
      document = Generator.openApi(group, { title: options.get("--title") ?? groupName!, groupName: groupName!, version: "1.0.0" })
    }
  }
  const files = new Map<string, string>()
  if (declarationsFile === undefined) files.set(out, module.code)
  else files.set(out, module.javascript).set(declarationsFile, module.declarations)
  if (openapiFile !== undefined && document !== undefined) files.set(openapiFile, JSON.stringify(document, null, 2) + "\n")
  const warnings = module.warnings
  for (const warning of warnings) io.stderr(`warning: ${warning}\n`)
  if (kind.extension === ".js") {
    const found = packageTypeOf(Path.dirname(out))
    if (found?.type !== "module") {
      const where = found === undefined ? "no package.json above it says" : `${named(found.file)} does not say`
      io.stderr(
        `warning: ${named(out)} is an ES module and ${where} "type": "module": plain Node may load it as CommonJS and fail (bundlers do not mind); name it .mjs, or set "type": "module"\n`
      )
    }
  }
  let stale = 0
  for (const [file, content] of files) {
    const name = Path.relative(process.cwd(), file)
    if (check) {
      const current = existsSync(file) ? readFileSync(file, "utf8") : undefined
      if (current !== content) {
        stale++
        io.stderr(`${name} is stale: run ${command}\n`)
      }
    } else {
      mkdirSync(Path.dirname(file), { recursive: true })
      writeFileSync(file, content)
      io.stdout(`wrote ${name}\n`)
    }
  }
  return stale === 0 ? 0 : 1
}
