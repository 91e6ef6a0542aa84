#!/usr/bin/env node
// The package's command (`effect-stream-rpc generate …`), compiled to dist/src/generator/bin.js.
import { main } from "./cli.ts"

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  }
)
