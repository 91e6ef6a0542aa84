/**
 * Test support: a minified ESM bundle for browsers, as a frontend build makes
 * it; esbuild fails on any Node built-in it cannot resolve.
 */
import * as esbuild from "esbuild"

export const bundleForBrowser = async (options: {
  readonly entry: string | esbuild.StdinOptions
  readonly external?: Array<string> | undefined
  readonly absWorkingDir?: string | undefined
}): Promise<{ readonly code: Uint8Array; readonly inputs: ReadonlyArray<string> }> => {
  const result = await esbuild.build({
    ...(options.absWorkingDir === undefined ? {} : { absWorkingDir: options.absWorkingDir }),
    external: options.external ?? [],
    ...(typeof options.entry === "string" ? { entryPoints: [options.entry] } : { stdin: options.entry }),
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    minify: true,
    write: false,
    metafile: true,
    logLevel: "silent"
  })
  return { code: result.outputFiles[0]!.contents, inputs: Object.keys(result.metafile.inputs) }
}
