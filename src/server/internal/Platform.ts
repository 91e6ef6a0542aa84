/**
 * Which platform serves a request. The Node module (`NodePlatform`, and
 * with it `@effect/platform-node`) is loaded with the first request served
 * by Node, never on a web runtime.
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Effect from "effect/Effect"

export type Node = typeof import("./NodePlatform.ts")

let loaded: Node | undefined

/** `@effect/platform-node` gives a request its `IncomingMessage` as `source`, which has a socket. */
const servedByNode = (request: HttpServerRequest.HttpServerRequest): boolean => {
  const socket = (request.source as { readonly socket?: unknown } | null)?.socket
  return typeof socket === "object" && socket !== null
}

/** The Node module when `request` is served by Node, else undefined. */
export const node = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<Node | undefined> => {
  if (!servedByNode(request)) return Effect.succeed(undefined)
  if (loaded !== undefined) return Effect.succeed(loaded)
  return Effect.map(Effect.promise(() => import("./NodePlatform.ts")), (module) => (loaded = module))
}

export type FrontDoor = typeof import("./NodeFrontDoor.ts")

let frontDoorLoaded: FrontDoor | undefined

/** The front door's module (`NodeFrontDoor`), loaded with the first request served by Node that installs it. */
export const frontDoor: Effect.Effect<FrontDoor> = Effect.suspend(() =>
  frontDoorLoaded !== undefined
    ? Effect.succeed(frontDoorLoaded)
    : Effect.map(Effect.promise(() => import("./NodeFrontDoor.ts")), (module) => (frontDoorLoaded = module))
)
