#!/usr/bin/env node
// The package's command (`effect-stream-rpc generate …`), compiled to dist/src/generator/bin.js.
import { main } from "./cli.ts"

// Exits once what was written has reached stdout and stderr (a pipe may be asynchronous).
const exit = (code: number) => process.stdout.write("", () => process.stderr.write("", () => process.exit(code)))

main(process.argv.slice(2)).then(
  exit,
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
    exit(1)
  }
)
