/**
 * Test support: the client the generator writes for a group, loaded as a
 * module of the test (its import of the runtime pointed at the sources, so
 * it shares `ClientError` with the test), and that client behind the same
 * tag-based API as `StreamClient`, so one behaviour test runs against both.
 */
import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import type * as StreamClient from "../../client/effect/StreamClient.ts"
import * as Generator from "../../src/generator/Generator.ts"

const runtime = fileURLToPath(new URL("../../client/index.ts", import.meta.url))
const effectRuntime = fileURLToPath(new URL("../../client/effect/index.ts", import.meta.url))

export interface GeneratedClient {
  readonly module: Readonly<Record<string, unknown>>
  /** `make<Group>Client(options)`: one method per procedure. */
  readonly make: (options: StreamClient.ClientOptions) => Readonly<Record<string, (payload: unknown, options?: unknown) => unknown>>
}

/**
 * Generates the client of `group` and imports it. Without `contract` (the
 * module exporting the group, as a path from the repository's root) any
 * fallback to Effect Schema is refused.
 */
export const load = async <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  name: string,
  contract?: string
): Promise<GeneratedClient> => {
  const dir = mkdtempSync(fileURLToPath(new URL("../.generated-", import.meta.url)))
  const from = (file: string) => {
    const relative = Path.relative(dir, file).split(Path.sep).join("/")
    return relative.startsWith(".") ? relative : `./${relative}`
  }
  const contractImport = contract === undefined ? undefined : from(fileURLToPath(new URL(`../../${contract}`, import.meta.url)))
  const { code, warnings } = Generator.clientModule(group, { groupName: name, command: "test", contractImport })
  if (contract === undefined && warnings.length > 0) throw new Error(`${name} does not compile: ${warnings.join("; ")}`)
  try {
    const file = Path.join(dir, `${name}.ts`)
    writeFileSync(
      file,
      code
        .replace(`from "effect-stream-rpc/client"`, `from ${JSON.stringify(from(runtime))}`)
        .replace(`from "effect-stream-rpc/client/effect"`, `from ${JSON.stringify(from(effectRuntime))}`)
    )
    const module = (await import(pathToFileURL(file).href)) as Record<string, unknown>
    return { module, make: module[`make${name}Client`] as GeneratedClient["make"] }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * The generated clients of some groups behind `StreamClient`'s API
 * (`subscribe(tag, payload, options)`...), without `.stream`: an Effect
 * Stream is the Effect-flavoured client's alone.
 */
export const asStreamClient = (clients: ReadonlyMap<RpcGroup.RpcGroup<Rpc.Any>, GeneratedClient>) =>
<Rpcs extends Rpc.Any>(group: RpcGroup.RpcGroup<Rpcs>, options: StreamClient.ClientOptions): StreamClient.StreamClient<Rpcs> => {
  const generated = clients.get(group as unknown as RpcGroup.RpcGroup<Rpc.Any>)
  if (generated === undefined) throw new Error("this group was not generated")
  const client = generated.make(options)
  const method = (tag: string, payload: unknown, options?: unknown) => client[tag]!(payload, options)
  return { subscribe: method, download: method, export: method, call: method } as unknown as StreamClient.StreamClient<Rpcs>
}

/** The class the generated clients decode the contract's class `Class` into (found by name; one match only). */
export const classOf = (clients: ReadonlyMap<RpcGroup.RpcGroup<Rpc.Any>, GeneratedClient>) => (Class: { readonly name: string }): Function => {
  const found = new Set<Function>()
  for (const client of clients.values()) {
    const exported = client.module[Class.name]
    if (typeof exported === "function") found.add(exported)
  }
  if (found.size !== 1) throw new Error(`${Class.name}: ${found.size} generated classes`)
  return [...found][0]!
}
