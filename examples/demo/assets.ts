/**
 * The demo page's assets: the HTML and CSS as they are, and the page script
 * bundled for the browser with esbuild at startup (in memory), so `npm start`
 * needs no build step.
 */
import * as esbuild from "esbuild"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url))

export interface Assets {
  readonly html: string
  readonly css: string
  readonly js: string
}

export const bundle = async (entry = here("./web/app.ts")): Promise<string> => {
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    write: false,
    logLevel: "silent"
  })
  return result.outputFiles[0]!.text
}

export const load = async (): Promise<Assets> => ({
  html: readFileSync(here("./web/index.html"), "utf8"),
  css: readFileSync(here("./web/style.css"), "utf8"),
  js: await bundle()
})
