/**
 * Which platform serves a request. The Node module (`NodePlatform`, and
 * with it `@effect/platform-node`) is loaded with the first request served
 * by Node, never on a web runtime.
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Effect from "effect/Effect"

export type Node = typeof import("./NodePlatform.ts")

export type FrontDoor = typeof import("./NodeFrontDoor.ts")

/** `load()`'s module, loaded on first use and kept. */
const once = <M>(load: () => Promise<M>): Effect.Effect<M> => {
  let loaded: M | undefined
  return Effect.suspend(() =>
    loaded !== undefined ? Effect.succeed(loaded) : Effect.map(Effect.promise(load), (module) => (loaded = module))
  )
}

const nodeModule = once(() => import("./NodePlatform.ts"))

/** `@effect/platform-node` gives a request its `IncomingMessage` as `source`, which has a socket. */
const servedByNode = (request: HttpServerRequest.HttpServerRequest): boolean => {
  const socket = (request.source as { readonly socket?: unknown } | null)?.socket
  return typeof socket === "object" && socket !== null
}

/** The Node module when `request` is served by Node, else undefined. */
export const node = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<Node | undefined> => {
  return servedByNode(request) ? nodeModule : Effect.succeed(undefined)
}

/** The front door's module (`NodeFrontDoor`), loaded with the first request served by Node that installs it. */
export const frontDoor: Effect.Effect<FrontDoor> = once(() => import("./NodeFrontDoor.ts"))
