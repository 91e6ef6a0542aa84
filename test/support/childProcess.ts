/**
 * Test support: a module of this repository run as a child process of its
 * own (`node --import tsx <module> <flag>`, with an IPC channel), so that
 * its work does not delay the measuring process's event loop. The child is
 * killed with this process if still running; the exit hook goes with the
 * child (a soak run starts many).
 */
import { type ChildProcess, fork } from "node:child_process"
import { fileURLToPath } from "node:url"

export const forkChild = (moduleUrl: string, flag: string): { readonly child: ChildProcess; readonly kill: () => void } => {
  const child = fork(fileURLToPath(moduleUrl), [flag], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  }
  process.once("exit", kill)
  child.once("exit", () => process.off("exit", kill))
  return { child, kill }
}
