/**
 * What the tests of the published packages (Package.slow.test.ts,
 * ClientPackage.slow.test.ts) share: commands run in a fresh project, npm
 * as a user runs it (from the cache when it can), the compiler's verdict,
 * and the time each step took.
 */
import { execFile } from "node:child_process"
import { promisify } from "node:util"

const exec = promisify(execFile)

/** Runs `file` in `cwd`, within 3 minutes. */
export const run = (file: string, args: ReadonlyArray<string>, cwd: string) =>
  exec(file, args, { cwd, maxBuffer: 64 * 1024 * 1024, timeout: 180_000 })

/** npm in `cwd`, quiet, `--prefer-offline` so the npm cache serves repeat runs. */
export const npm = (args: ReadonlyArray<string>, cwd: string) =>
  run("npm", [...args, "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], cwd)

/** The compiler's output for `project` (`tsc` and its arguments before `-p`), "" when it passes. */
export const typecheck = (tsc: ReadonlyArray<string>, project: string, cwd: string) =>
  run(tsc[0]!, [...tsc.slice(1), "-p", project], cwd).then(
    () => "",
    (error: { stdout?: string; stderr?: string }) => `${error.stdout ?? ""}${error.stderr ?? ""}` || String(error)
  )

/** Times steps: `timed(label, f)` runs `f` and records how long it took; `timings` lists them. */
export const stopwatch = () => {
  const timings: Array<string> = []
  const timed = async <A>(label: string, f: () => Promise<A>): Promise<A> => {
    const start = Date.now()
    try {
      return await f()
    } finally {
      timings.push(`${label} ${((Date.now() - start) / 1000).toFixed(1)} s`)
    }
  }
  return { timings, timed }
}

/** What `npm pack --json` says of a tarball. */
export interface Packed {
  readonly filename: string
  readonly size: number
  readonly unpackedSize: number
  readonly entryCount: number
  readonly files: ReadonlyArray<{ readonly path: string }>
}

/**
 * Where `text` states the tarball's size (`stated` matches its packed KiB,
 * unpacked KiB and file count): the file count exactly, the sizes within 10%.
 * Undefined when so, else what differs.
 */
export const differenceFromStated = (packed: Packed, text: string, stated: RegExp): string | undefined => {
  const match = stated.exec(text)
  if (match === null) return "the size is not stated"
  const [, size, unpacked, files] = match.map(Number)
  if (files !== packed.entryCount) return `stated ${files} files, packed ${packed.entryCount}`
  if (Math.abs(size! * 1024 - packed.size) / packed.size >= 0.1) return `stated ${size} KiB, packed ${(packed.size / 1024).toFixed(1)}`
  if (Math.abs(unpacked! * 1024 - packed.unpackedSize) / packed.unpackedSize >= 0.1) {
    return `stated ${unpacked} KiB unpacked, packed ${(packed.unpackedSize / 1024).toFixed(1)}`
  }
  return undefined
}
