#!/usr/bin/env node
// The package's command: loads the TypeScript sources (and the contract module) through tsx.
import { register } from "tsx/esm/api"

register()
const { main } = await import("./cli.ts")
process.exit(await main(process.argv.slice(2)))
