/**
 * Two sets of tests, by file name:
 *
 * - fast (`npm test`): unit tests and in-process integration over loopback;
 *   no Redis, no Chromium, no child processes of the demo server.
 * - slow (`npm run test:slow`, files named `*.slow.test.ts`): the packed
 *   tarball, the browser, Redis and demo server processes, `bench --quick`,
 *   and the bounded soak cases of test/reliability/.
 *
 * `.ci/run` runs both. `npm test` adds `--no-isolate --maxWorkers=100%`: a
 * worker per core, each running its files one after another, so the packages
 * (Effect above all) are imported once per worker rather than once per file
 * (that import was half the set's time); test/support/freshSources.ts has the
 * repository's own modules evaluated afresh for each file, and the files clean
 * up after themselves (servers and scopes closed, metrics read as
 * differences). `npm run test:slow` keeps vitest's defaults (isolated files,
 * one worker less than the cores), as each of its files loads the machine.
 */
import { fileURLToPath } from "node:url"
import { configDefaults, defineConfig } from "vitest/config"

const slow = "test/**/*.slow.test.ts"

export default defineConfig({
  root: fileURLToPath(new URL("..", import.meta.url)),
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: "fast",
          include: ["test/**/*.test.ts"],
          exclude: [...configDefaults.exclude, slow],
          setupFiles: ["test/support/freshSources.ts"]
        }
      },
      {
        extends: true,
        test: { name: "slow", include: [slow] }
      }
    ]
  }
})
