/**
 * Preloaded into a demo process (`DEMO_NODE_FLAGS="--import tsx --import
 * ./test/support/listenBacklog.ts"`, with `LISTEN_BACKLOG=<n>`): every
 * server of the process listens with that accept backlog instead of Node's
 * default of 511. An experiment, not a fix: it tells whether clients of a
 * connection storm wait in the kernel's accept queue (SYNs and handshakes
 * dropped when it is full, then retransmitted seconds later) rather than in
 * the server's event loop. The kernel caps it at `net.core.somaxconn`.
 */
import * as Net from "node:net"

const backlog = Number(process.env["LISTEN_BACKLOG"] ?? 511)
const listen = Net.Server.prototype.listen as (this: Net.Server, ...args: Array<unknown>) => Net.Server

Net.Server.prototype.listen = function(this: Net.Server, ...args: Array<unknown>) {
  // The options form (what @effect/platform-node uses): `backlog` there; other forms pass through.
  const [first] = args
  if (typeof first === "object" && first !== null && !("backlog" in first)) {
    return listen.call(this, { ...(first as Net.ListenOptions), backlog }, ...args.slice(1))
  }
  return listen.apply(this, args)
} as typeof Net.Server.prototype.listen
