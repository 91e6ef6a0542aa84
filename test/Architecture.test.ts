/**
 * The layout as a rule the build checks: folders by role, imports pointing
 * down only, no circle, no module past 500 lines, and the share of the
 * library's lines that import no Effect at all (the machinery a later
 * Effect 4 line would share as it is).
 *
 *     protocol/   imports nothing else
 *     contract/   imports protocol
 *     core/       imports protocol; no `effect` import
 *     topic/      imports core, contract, protocol
 *     server/     imports topic, core, contract, protocol
 *     generator/  imports contract, protocol
 *     client/     imports protocol (its Effect entry, client/effect, also contract)
 *
 * A folder's `internal/` modules are imported from inside that folder only.
 */
import { describe, expect, it } from "vitest"
import { readdirSync, readFileSync, statSync } from "node:fs"
import * as Path from "node:path"

const roots = ["src", "client"]

// client/dist is the client package's build (client/tsconfig.build.json), not source.
const filesUnder = (dir: string): Array<string> =>
  readdirSync(dir).filter((name) => name !== "dist").flatMap((name) => {
    const path = Path.join(dir, name)
    return statSync(path).isDirectory() ? filesUnder(path) : path.endsWith(".ts") ? [path] : []
  })

interface Module {
  readonly path: string
  readonly lines: number
  /** Relative imports, resolved to repository paths. */
  readonly imports: ReadonlyArray<string>
  /** Package imports (`effect/…`, `@effect/…`, `node:…`, …). */
  readonly packages: ReadonlyArray<string>
}

const specifiers = /(?:^|[\s;])(?:import|export)\s[^"';]*?from\s*"([^"]+)"|import\(\s*"([^"]+)"\s*\)|^import\s*"([^"]+)"/gm

const modules: ReadonlyArray<Module> = roots.flatMap(filesUnder).map((path) => {
  const text = readFileSync(path, "utf8")
  const imports: Array<string> = []
  const packages: Array<string> = []
  for (const match of text.matchAll(specifiers)) {
    const specifier = (match[1] ?? match[2] ?? match[3])!
    if (specifier.startsWith(".")) imports.push(Path.normalize(Path.join(Path.dirname(path), specifier)))
    else packages.push(specifier)
  }
  return { path, lines: text.split("\n").length, imports, packages }
})
const byPath = new Map(modules.map((m) => [m.path, m]))

/** The role of a module: its folder under src/, or client / client/effect. */
const roleOf = (path: string): string => {
  const parts = path.split(Path.sep)
  if (parts[0] === "client") return parts[1] === "effect" ? "client/effect" : "client"
  return parts.length === 2 ? "entry" : parts[1]!
}

/** What each role may import besides itself. The root index (`entry`) may import anything. */
const allowed: Record<string, ReadonlyArray<string>> = {
  protocol: [],
  contract: ["protocol"],
  core: ["protocol"],
  topic: ["core", "contract", "protocol"],
  server: ["topic", "core", "contract", "protocol"],
  generator: ["contract", "protocol"],
  client: ["protocol"],
  "client/effect": ["client", "contract", "protocol"]
}

const isEffect = (specifier: string): boolean => specifier === "effect" || /^(effect|@effect)\//.test(specifier)

describe("the layout", () => {
  it("reads every module of src/ and client/, and every relative import resolves", () => {
    expect(modules.length).toBeGreaterThan(40)
    const unresolved = modules.flatMap((m) => m.imports.filter((i) => !byPath.has(i)).map((i) => `${m.path} → ${i}`))
    expect(unresolved).toEqual([])
  })

  it("has no import running back up: each folder imports only the folders below it", () => {
    const upward = modules.flatMap((m) => {
      const role = roleOf(m.path)
      if (role === "entry") return []
      const ok = allowed[role]
      if (ok === undefined) return [`${m.path}: no rule for the folder ${role}`]
      return m.imports
        .filter((i) => roleOf(i) !== role && !ok.includes(roleOf(i)))
        .map((i) => `${m.path} → ${i}`)
    })
    expect(upward).toEqual([])
  })

  it("keeps a folder's internal/ modules to that folder", () => {
    const reaching = modules.flatMap((m) =>
      m.imports
        .filter((i) => i.includes(`${Path.sep}internal${Path.sep}`))
        .filter((i) => !m.path.startsWith(i.slice(0, i.indexOf(`${Path.sep}internal${Path.sep}`)) + Path.sep))
        .map((i) => `${m.path} → ${i}`)
    )
    expect(reaching).toEqual([])
  })

  it("has no circle of imports (type imports included)", () => {
    // Tarjan's strongly connected components: any component of more than one module is a circle.
    let index = 0
    const indices = new Map<string, number>()
    const low = new Map<string, number>()
    const stack: Array<string> = []
    const onStack = new Set<string>()
    const circles: Array<Array<string>> = []
    const visit = (path: string): void => {
      indices.set(path, index)
      low.set(path, index++)
      stack.push(path)
      onStack.add(path)
      for (const next of byPath.get(path)?.imports ?? []) {
        if (!byPath.has(next)) continue
        if (!indices.has(next)) {
          visit(next)
          low.set(path, Math.min(low.get(path)!, low.get(next)!))
        } else if (onStack.has(next)) low.set(path, Math.min(low.get(path)!, indices.get(next)!))
      }
      if (low.get(path) === indices.get(path)) {
        const component: Array<string> = []
        let member: string
        do {
          member = stack.pop()!
          onStack.delete(member)
          component.push(member)
        } while (member !== path)
        if (component.length > 1) circles.push(component.sort())
      }
    }
    for (const m of modules) if (!indices.has(m.path)) visit(m.path)
    expect(circles).toEqual([])
  })

  it("keeps core/, protocol/ and the client's runtime free of Effect", () => {
    const effectful = modules
      .filter((m) => ["core", "protocol", "client"].includes(roleOf(m.path)))
      .filter((m) => m.packages.some(isEffect))
      .map((m) => m.path)
    expect(effectful).toEqual([])
  })

  it("keeps the client package (client/ but client/effect) free of packages: node: built-ins in saveToFile.ts alone, TanStack Query's types in query.ts", () => {
    // effect-stream-rpc-client (client/package.json) has no dependencies: what client/ imports is in it.
    // client/query.ts (effect-stream-rpc/client/query, not in that package) imports only the types of its
    // optional peer @tanstack/query-core: its JavaScript imports no package.
    const imported = modules
      .filter((m) => roleOf(m.path) === "client" && m.packages.length > 0)
      .map((m) => [m.path, m.packages.every((specifier) => specifier.startsWith("node:"))])
    expect(imported).toEqual([[Path.join("client", "query.ts"), false], [Path.join("client", "saveToFile.ts"), true]])
    const query = readFileSync(Path.join("client", "query.ts"), "utf8")
    const packages = Array.from(query.matchAll(/^import (type )?[^;]*?from "([^"]+)"/gm), (m) => [m[2], m[1] !== undefined])
    expect(packages.filter(([specifier]) => !String(specifier).startsWith("."))).toEqual([["@tanstack/query-core", true]])
  })

  it("has no module past 500 lines", () => {
    expect(modules.filter((m) => m.lines > 500).map((m) => `${m.path}: ${m.lines}`)).toEqual([])
  })

  it("keeps at least 45% of the library's lines in modules that import no Effect", () => {
    const total = modules.reduce((sum, m) => sum + m.lines, 0)
    const free = modules.filter((m) => !m.packages.some(isEffect)).reduce((sum, m) => sum + m.lines, 0)
    expect(free / total).toBeGreaterThanOrEqual(0.45)
  })
})

describe("the web runtime path", () => {
  it("loads no Node module: the root index and HttpTransport import neither node:* nor @effect/platform-node statically", async () => {
    const esbuild = await import("esbuild")
    for (const entry of ["src/index.ts", "src/server/HttpTransport.ts"]) {
      const result = await esbuild.build({
        entryPoints: [entry],
        bundle: true,
        write: false,
        metafile: true,
        format: "esm",
        platform: "node",
        packages: "external",
        logLevel: "silent"
      })
      const inputs = result.metafile.inputs
      const seen = new Set<string>()
      const external = new Set<string>()
      const visit = (path: string): void => {
        if (seen.has(path)) return
        seen.add(path)
        for (const edge of inputs[path]?.imports ?? []) {
          // Only what loads with the module: the Node platform module is a dynamic import.
          if (edge.kind !== "import-statement") continue
          if (edge.external === true) external.add(edge.path)
          else visit(edge.path)
        }
      }
      visit(entry)
      expect(seen.size).toBeGreaterThan(10)
      expect([...external].filter((path) => path.startsWith("node:") || path.startsWith("@effect/platform-node"))).toEqual([])
    }
  })
})
