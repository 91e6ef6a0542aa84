import { Validator } from "@seriousme/openapi-schema-validator"
import { describe, expect, it } from "vitest"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { DemoApi } from "../examples/demo/contract.ts"
import { main } from "../src/cli.ts"
import * as Generator from "../src/Generator.ts"

const contract = "examples/demo/contract.ts#DemoApi"

type Json = Record<string, any>

describe("the generator", () => {
  it("the checked-in client and OpenAPI document are current (--check)", async () => {
    expect(await main(["generate", "--contract", contract, "--out", "client/generated/demo.ts", "--check"])).toBe(0)
  })

  it("--check fails when the output on disk is stale", async () => {
    const dir = mkdtempSync(Path.join(tmpdir(), "generated-"))
    const out = Path.join(dir, "demo.ts")
    expect(await main(["generate", "--contract", contract, "--out", out])).toBe(0)
    expect(await main(["generate", "--contract", contract, "--out", out, "--check"])).toBe(0)
    writeFileSync(out, readFileSync(out, "utf8").replace("watchPrices", "watchPricez"))
    expect(await main(["generate", "--contract", contract, "--out", out, "--check"])).toBe(1)
  })

  it("emits one method per procedure with the contract's descriptions as JSDoc", () => {
    const module = readFileSync("client/generated/demo.ts", "utf8")
    for (const tag of ["watchPrices", "downloadReport", "exportOrders", "getQuote", "whoAmI"]) {
      expect(module).toContain(`    ${tag}: (`)
    }
    expect(module).toContain("Live prices of the given symbols; resumable with Last-Event-ID.")
    expect(module).toContain("client.subscribe(\"watchPrices\", payload, options)")
    expect(module).toContain("client.download(\"downloadReport\", payload, options)")
    expect(module).toContain("client.export(\"exportOrders\", payload, options)")
    expect(module).toContain("client.call(\"getQuote\", payload)")
    // the behaviour lives in the runtime: the module only binds names
    expect(module).not.toMatch(/fetch\(|EventSource|ReadableStream/)
  })

  it("writes a valid OpenAPI 3.1 document", async () => {
    const document = Generator.openApi(DemoApi, { title: "DemoApi", version: "1.0.0" })
    const result = await new Validator().validate(document as Json)
    expect(result.errors ?? []).toEqual([])
    expect(result.valid).toBe(true)
  })

  it("describes each kind: event streams, binary downloads, export formats and error responses", () => {
    const document = Generator.openApi(DemoApi, { title: "DemoApi", version: "1.0.0" }) as Json
    const watch = document["paths"]["/rpc/watchPrices"]["get"]
    const events = watch["responses"]["200"]["content"]["text/event-stream"]["x-sse-events"]
    expect(Object.keys(events)).toEqual(["message", "dropped", "end", "error"])
    const ref = (schema: Json): Json =>
      schema["$ref"] === undefined ? schema : document["components"]["schemas"][schema["$ref"].split("/").at(-1)]
    expect(ref(events["message"]["data"])["properties"]["seq"]["description"]).toBe("Position in the feed: consecutive, increasing across restarts")
    expect(JSON.stringify(events["error"]["data"])).toContain("UnknownSymbol")
    expect(watch["parameters"].map((p: Json) => p["name"])).toEqual(["payload", "Last-Event-ID", "lastEventId"])

    const download = document["paths"]["/rpc/downloadReport"]["get"]["responses"]["200"]
    expect(download["content"]["application/octet-stream"]["schema"]["contentMediaType"]).toBe("application/octet-stream")
    expect(Object.keys(download["headers"])).toEqual(["Content-Disposition", "Content-Length"])

    const exported = document["paths"]["/rpc/exportOrders"]["get"]
    expect(Object.keys(exported["responses"]["200"]["content"])).toEqual([
      "text/csv; charset=utf-8",
      "application/json",
      "application/x-ndjson"
    ])
    expect(exported["responses"]["406"]).toBeDefined()

    const quote = document["paths"]["/rpc/getQuote"]["post"]
    expect(JSON.stringify(quote["responses"]["404"])).toContain("UnknownSymbol")
    const whoAmI = document["paths"]["/rpc/whoAmI"]["get"]
    expect(whoAmI["security"]).toEqual([{ bearer: [] }])
    expect(JSON.stringify(whoAmI["responses"]["401"])).toContain("Unauthorized")
    expect(JSON.stringify(whoAmI["responses"]["403"])).toContain("Forbidden")
  })
})
