/**
 * A procedure whose schemas the generator cannot compile falls back to the
 * contract's Effect Schemas: the generated client still calls it over a
 * real socket, its values transformed by the contract's transformation,
 * while the other procedures keep their compiled codecs.
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as HttpTransport from "../src/server/HttpTransport.ts"
import { FallbackApi } from "./support/fallbackContract.ts"
import * as GeneratedClient from "./support/generatedClient.ts"
import { listen, quiet } from "./support/http.ts"

const generated = await GeneratedClient.load(FallbackApi, "FallbackApi", "test/support/fallbackContract.ts")

describe("a generated client with a procedure that falls back to Effect Schema", () => {
  it.scopedLive("calls the fallback procedure through the contract's schemas and the compiled one through its codecs", () =>
    Effect.gen(function*() {
      const handlers = FallbackApi.toLayer({
        price: ({ amount }) => Effect.succeed(amount * 2),
        ping: ({ n }) => Effect.succeed(n + 1)
      })
      const context = yield* Layer.build(handlers)
      const app = yield* HttpTransport.toHttpApp(FallbackApi).pipe(Effect.provide(context))
      const url = `${yield* listen(app as HttpApp.Default<never, Scope.Scope>)}/rpc`
      const client = generated.make({ baseUrl: url })
      // 12.34 goes out as "1234", the handler doubles it, "2468" comes back as 24.68
      expect(yield* Effect.promise(() => client["price"]!({ amount: 12.34 }) as Promise<unknown>)).toBe(24.68)
      expect(yield* Effect.promise(() => client["ping"]!({ n: 1 }) as Promise<unknown>)).toBe(2)
      const procedures = generated.module["FallbackApiProcedures"] as Record<string, { readonly encodePayload: (u: unknown) => unknown }>
      expect(procedures["price"]!.encodePayload({ amount: 1.5 })).toEqual({ amount: "150" })
    }).pipe(quiet))
})
