/**
 * `effect-stream-rpc generate --contract <module>#<Group> --out <file.ts> [--openapi <file.json>] [--check]`
 * `effect-stream-rpc generate --from-openapi <file.json | URL> --out <file.ts> [--check]`
 *
 * Writes the typed client module and the OpenAPI 3.1 document of a group;
 * or, from the OpenAPI document a server publishes (`/openapi.json`), the
 * same client module. With `--check`, writes nothing and fails when the
 * files on disk are stale. A procedure whose schemas cannot be compiled is a
 * warning on stderr (and a comment in the module).
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

const usage = "usage: effect-stream-rpc generate --contract <module.js|module.ts>#<GroupExport> --out <client.ts> [--openapi <file.json>] [--check]\n" +
  "       effect-stream-rpc generate --from-openapi <openapi.json | http(s)://.../openapi.json> --out <client.ts> [--check]"

const fail = (message: string): never => {
  process.stderr.write(`${message}\n${usage}\n`)
  process.exit(2)
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

const shellWord = (word: string): string => (/^[\w@%+=:,./#-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`)

const isGroup = (u: unknown): u is RpcGroup.RpcGroup<Rpc.Any> =>
  typeof u === "function" || (typeof u === "object" && u !== null)
    ? (u as { requests?: unknown }).requests instanceof Map
    : false

export const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const args = [...argv]
  if (args[0] === "generate") args.shift()
  const options = new Map<string, string>()
  let check = false
  while (args.length > 0) {
    const flag = args.shift()!
    if (flag === "--check") check = true
    else if (flag === "--contract" || flag === "--out" || flag === "--openapi" || flag === "--title" || flag === "--from-openapi") {
      options.set(flag, args.shift() ?? fail(`${flag} needs a value`))
    } else fail(`unknown argument ${flag}`)
  }
  const out = Path.resolve(options.get("--out") ?? fail("--out is required"))
  const command = ["effect-stream-rpc", "generate", ...argv.slice(argv[0] === "generate" ? 1 : 0).filter((arg) => arg !== "--check")]
    .map(shellWord)
    .join(" ")
  const files = new Map<string, string>()
  let warnings: ReadonlyArray<string> = []
  const source = options.get("--from-openapi")
  if (source !== undefined) {
    if (options.has("--contract")) fail("--contract and --from-openapi exclude each other")
    const generated = Generator.clientModuleFromOpenApi(await loadDocument(source), { command })
    files.set(out, generated.code)
    warnings = generated.warnings
  } else {
    const contract = options.get("--contract") ?? fail("--contract or --from-openapi is required")
    const [modulePath, groupName] = contract.split("#")
    if (modulePath === undefined || groupName === undefined || groupName === "") fail("--contract must be <module>#<GroupExport>")
    const contractFile = Path.resolve(modulePath!)
    if (!existsSync(contractFile)) fail(`no such contract module: ${modulePath}`)
    const module = await loadContract(contractFile)
    const group = module[groupName!]
    if (!isGroup(group)) return fail(`${modulePath} does not export an RpcGroup named ${groupName}`)
    const openapiFile = Path.resolve(options.get("--openapi") ?? out.replace(/\.ts$/, ".openapi.json"))
    const generated = Generator.clientModule(group, {
      contractImport: relativeImport(out, contractFile).replace(typeScript, (ext) => ext.replace("ts", "js")),
      groupName: groupName!,
      command
    })
    files.set(out, generated.code)
    warnings = generated.warnings
    files.set(
      openapiFile,
      JSON.stringify(
        Generator.openApi(group, { title: options.get("--title") ?? groupName!, groupName: groupName!, version: "1.0.0" }),
        null,
        2
      ) + "\n"
    )
  }
  for (const warning of warnings) process.stderr.write(`warning: ${warning}\n`)
  let stale = 0
  for (const [file, content] of files) {
    const name = Path.relative(process.cwd(), file)
    if (check) {
      const current = existsSync(file) ? readFileSync(file, "utf8") : undefined
      if (current !== content) {
        stale++
        process.stderr.write(`${name} is stale: run ${command}\n`)
      }
    } else {
      mkdirSync(Path.dirname(file), { recursive: true })
      writeFileSync(file, content)
      process.stdout.write(`wrote ${name}\n`)
    }
  }
  return stale === 0 ? 0 : 1
}
