/**
 * Summarises a V8 `.cpuprofile` (from `npx tsx bench/run.ts --profile`):
 * the functions with the most self time, and the source files that own it.
 *
 * Run: npx tsx bench/profile-top.ts bench/profiles/<label>/<file>.cpuprofile [count]
 * (the larger file of a directory is the main thread; the other is tsx's loader thread).
 */
import { readFileSync } from "node:fs"

interface ProfileNode {
  readonly id: number
  readonly callFrame: {
    readonly functionName: string
    readonly url: string
    readonly lineNumber: number
  }
  readonly children?: ReadonlyArray<number>
}

interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const file = process.argv[2]
if (file === undefined) {
  console.error("usage: npx tsx bench/profile-top.ts <file.cpuprofile> [count]")
  process.exit(2)
}
const count = Number(process.argv[3] ?? 25)
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile

const selfMicros = new Map<number, number>()
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]!
  selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
}
const total = [...selfMicros.values()].reduce((a, b) => a + b, 0)

const shortUrl = (url: string): string => {
  const at = url.lastIndexOf("node_modules/")
  if (at >= 0) return url.slice(at + "node_modules/".length)
  const src = url.search(/\/(src|bench|client)\//)
  return src >= 0 ? url.slice(src + 1) : url
}

const byFunction = new Map<string, number>()
const byFile = new Map<string, number>()
for (const node of profile.nodes) {
  const micros = selfMicros.get(node.id) ?? 0
  if (micros === 0) continue
  const frame = node.callFrame
  const where = frame.url === "" ? "(native)" : shortUrl(frame.url)
  const key = `${frame.functionName || "(anonymous)"}  ${where}${frame.url === "" ? "" : `:${frame.lineNumber + 1}`}`
  byFunction.set(key, (byFunction.get(key) ?? 0) + micros)
  const owner = frame.url === "" ? `(${frame.functionName || "native"})` : where.split(":")[0]!
  byFile.set(owner, (byFile.get(owner) ?? 0) + micros)
}

const top = (map: Map<string, number>, n: number) =>
  [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([key, micros]) => `${((micros / total) * 100).toFixed(1).padStart(5)}%  ${key}`)

console.log(`total ${(total / 1e6).toFixed(2)} s of samples\n\nself time by function:`)
console.log(top(byFunction, count).join("\n"))
console.log("\nself time by file:")
console.log(top(byFile, 15).join("\n"))

// Inclusive time: a sample counts for every distinct function on its stack (recursion once).
const parent = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const inclusive = new Map<string, number>()
const keyOf = (node: ProfileNode): string => {
  const frame = node.callFrame
  const where = frame.url === "" ? "(native)" : shortUrl(frame.url)
  return `${frame.functionName || "(anonymous)"}  ${where}${frame.url === "" ? "" : `:${frame.lineNumber + 1}`}`
}
let busy = 0
for (const [id, micros] of selfMicros) {
  const leaf = byId.get(id)!
  if (["(idle)", "(program)", "(garbage collector)"].includes(leaf.callFrame.functionName)) continue
  busy += micros
  const seen = new Set<string>()
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const node = byId.get(at)!
    if (node.callFrame.url === "") continue
    const key = keyOf(node)
    if (seen.has(key)) continue
    seen.add(key)
    inclusive.set(key, (inclusive.get(key) ?? 0) + micros)
  }
}
const ownCode = /^(src|bench|client)\//
console.log(`\ninclusive time of our own functions (share of ${(busy / 1e6).toFixed(2)} s busy, idle and GC excluded):`)
console.log(
  [...inclusive.entries()].filter(([key]) => ownCode.test(key.split("  ")[1] ?? "")).sort((a, b) => b[1] - a[1]).slice(0, count)
    .map(([key, micros]) => `${((micros / busy) * 100).toFixed(1).padStart(5)}%  ${key}`).join("\n")
)
