/**
 * The contract between the runner and a server implementation
 * (`bench/servers/<impl>.ts`), which runs in its own process:
 * - listen on 127.0.0.1, port 0, serving the paths of `workload.ts`;
 * - print `{"port":N}` as the only line on stdout once it accepts requests;
 * - exit on SIGTERM / SIGINT, and when the runner dies (its stdin closes);
 * - anything else goes to stderr, which the runner shows only on failure.
 */

/** Announces the port to the runner. Call once, after the server listens and routes. */
export const announce = (port: number): void => {
  process.stdout.write(`${JSON.stringify({ port })}\n`)
}

/** Installs the exit rules. Call first thing in a server module. */
export const exitWithRunner = (): void => {
  const exit = () => process.exit(0)
  process.on("SIGTERM", exit)
  process.on("SIGINT", exit)
  // The runner holds the write end of our stdin; it closes when the runner dies.
  process.stdin.on("end", exit)
  process.stdin.on("close", exit)
  process.stdin.on("error", exit)
  process.stdin.resume()
}

/** Reports a startup failure loudly and exits non-zero. */
export const fail = (what: string, error: unknown): never => {
  process.stderr.write(`${what}: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
}
