/**
 * Code generation from a contract: a self-contained typed client module (in
 * TypeScript, and as plain JavaScript with its declarations) and an OpenAPI
 * 3.1 document.
 *
 * The module has, for every procedure, the types of its payload, values and
 * errors, its codecs compiled from the Schemas (`generator/Shape.ts`, then
 * `generator/ClientModule.ts`) and one method, the schema descriptions as
 * JSDoc. It imports only the runtime by package name
 * (`effect-stream-rpc/client`, no runtime import of `effect`; or, with the
 * `runtime` option, the same runtime as the package `effect-stream-rpc-client`,
 * which has no dependencies), so a frontend without the server's source can
 * use it, and a runtime fix never requires regenerating. The OpenAPI document carries the same shapes
 * (`x-effect-stream-rpc`), so the module can be generated from it alone.
 */
import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as JSONSchema from "effect/JSONSchema"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as ExportFormat from "../protocol/ExportFormat.ts"
import * as Procedure from "../contract/Procedure.ts"
import * as Errors from "../protocol/Errors.ts"
import * as Names from "../protocol/Names.ts"
import * as ProtocolError from "../contract/ProtocolError.ts"
import * as ClientModule from "./ClientModule.ts"
import * as Shape from "./Shape.ts"

const procedures = <Rpcs extends Rpc.Any>(group: RpcGroup.RpcGroup<Rpcs>): ReadonlyArray<Rpc.AnyWithProps> =>
  Array.from(group.requests.values()) as unknown as ReadonlyArray<Rpc.AnyWithProps>

export interface ClientModuleOptions {
  /**
   * Import specifier of the contract module, relative to the generated file:
   * only a procedure whose schemas cannot be compiled imports it (it falls
   * back to Effect Schema).
   */
  readonly contractImport?: string | undefined
  /** Exported name of the group in the contract module. */
  readonly groupName: string
  /** The command that regenerates the module, for the header comment. */
  readonly command: string
  /**
   * The import specifier of the runtime: default `effect-stream-rpc/client`;
   * `effect-stream-rpc-client` for a frontend that installs the client
   * package alone. With another runtime than the default, a procedure that
   * falls back to Effect Schema is refused: `RuntimeNeedsEffect` is thrown.
   */
  readonly runtime?: string | undefined
}

export type { ClientModule } from "./ClientModule.ts"
export { defaultRuntime, RuntimeNeedsEffect } from "./ClientModule.ts"
export type { ClientShapes } from "./Shape.ts"

/** The extension of the OpenAPI document that carries the client's shapes (`Shape.ClientShapes`). */
export const openApiExtension = "x-effect-stream-rpc"

/**
 * The self-contained client module for `group` (`code`; and `javascript` with
 * its `declarations`, the same module for a project without a build step),
 * and a warning for every procedure it cannot compile.
 */
export const clientModule = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options: ClientModuleOptions
): ClientModule.ClientModule =>
  ClientModule.clientModule(Shape.fromGroup(group, options.groupName), {
    command: options.command,
    contractImport: options.contractImport,
    runtime: options.runtime
  })

/**
 * The same module from the OpenAPI document a server publishes (its
 * `x-effect-stream-rpc` extension). `runtime` as in `clientModule`; a
 * procedure it cannot check falls back to no check here, never to Effect.
 */
export const clientModuleFromOpenApi = (
  document: unknown,
  options: { readonly command: string; readonly runtime?: string | undefined }
): ClientModule.ClientModule => {
  const shapes = typeof document === "object" && document !== null
    ? (document as Record<string, unknown>)[openApiExtension]
    : undefined
  if (typeof shapes !== "object" || shapes === null || (shapes as { version?: unknown }).version !== 1) {
    throw new Error(
      `The OpenAPI document has no ${openApiExtension} extension (version 1): publish the document of effect-stream-rpc's Generator.openApi`
    )
  }
  return ClientModule.clientModule(shapes as Shape.ClientShapes, { command: options.command, runtime: options.runtime })
}

// ---------------------------------------------------------------------------
// OpenAPI 3.1

export interface OpenApiOptions {
  readonly title: string
  /** The group's name, which a client generated from the document is named after. Default: `title` as an identifier. */
  readonly groupName?: string | undefined
  readonly version: string
  /** Base path of the procedures. Default `/rpc`. */
  readonly path?: string | undefined
}

type JsonObject = { readonly [key: string]: unknown }

const errorBody = (tags: ReadonlyArray<string>, description: string): JsonObject => ({
  description,
  content: {
    [Names.contentTypes.json]: {
      schema: {
        type: "object",
        required: ["_tag", "message"],
        properties: {
          _tag: tags.length === 1 ? { const: tags[0] } : { enum: tags },
          message: { type: "string" }
        }
      }
    }
  }
})

/** Failure schemas of a procedure flattened to their union members. */
const failureMembers = (schema: Schema.Schema.All): ReadonlyArray<SchemaAST.AST> => {
  const members: Array<SchemaAST.AST> = []
  const visit = (ast: SchemaAST.AST) => {
    if (SchemaAST.isUnion(ast)) ast.types.forEach(visit)
    else if (!SchemaAST.isNeverKeyword(ast)) members.push(ast)
  }
  visit(schema.ast)
  return members
}

/** The answers the transport gives itself, by status (the tags come from the status table). */
const transportResponses: ReadonlyArray<readonly [number, string]> = [
  [Errors.statuses.MalformedJson, "The payload is not JSON or does not match the schema"],
  [Errors.statuses.NotFound, "Unknown procedure"],
  [Errors.statuses.MethodNotAllowed, "Only GET and POST"],
  [Errors.statuses.PayloadTooLarge, "The payload is too large"],
  [Errors.statuses.UnsupportedMediaType, "The body is not application/json"],
  [Errors.statuses.InternalError, "A defect on the server; never carries internals"],
  [Errors.statuses.ServiceUnavailable, "The server is draining for a shutdown; retry on another connection"]
]

const groupNameOf = (title: string): string => {
  const name = title.replace(/[^A-Za-z0-9_$]+/g, " ").trim().split(" ").map((word) => word.charAt(0).toUpperCase() + word.slice(1)).join("")
  return /^[A-Za-z_$]/.test(name) ? name : `Api${name}`
}

export const openApi = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options: OpenApiOptions
): JsonObject => {
  const definitions: Record<string, JSONSchema.JsonSchema7> = {}
  const jsonSchema = (schema: Schema.Schema.All): JsonObject =>
    JSONSchema.fromAST(schema.ast, {
      definitions,
      definitionPath: "#/components/schemas/",
      target: "openApi3.1"
    }) as unknown as JsonObject
  const base = (options.path ?? Names.basePath).replace(/\/+$/, "")
  const paths: Record<string, JsonObject> = {}

  for (const rpc of procedures(group)) {
    const spec = Procedure.specOf(rpc)
    const schemas = Procedure.schemasOf(rpc)
    const payload = jsonSchema(schemas.payload)
    const failure = Procedure.failureSchemaOf(rpc)

    const responses: Record<string, JsonObject> = {}
    switch (spec._tag) {
      case "subscription": {
        const value = jsonSchema(schemas.success)
        const error = jsonSchema(failure)
        responses["200"] = {
          description: `Server-Sent Events. Each value is a default-type event whose data is the JSON value${
            spec.cursor === undefined ? "" : ", with an id: to resume from (Last-Event-ID)"
          }; \`dropped\` reports how many values a slow consumer missed; \`end\` closes normally; \`error\` carries a typed failure. A \`: heartbeat\` comment comes every 30 s.`,
          content: {
            [Names.contentTypes.eventStream]: {
              schema: { type: "string" },
              "x-sse-events": {
                message: { data: value, ...(spec.cursor === undefined ? {} : { id: { type: "string" } }) },
                dropped: {
                  data: {
                    type: "object",
                    required: ["count"],
                    properties: { count: { type: "integer", minimum: 1 } }
                  }
                },
                end: { data: { type: "object" } },
                error: { data: error }
              }
            }
          }
        }
        break
      }
      case "download": {
        responses["200"] = {
          description: "The file, streamed. A transfer cut short is an error, never a complete file.",
          headers: {
            "Content-Disposition": { schema: { type: "string" }, description: "attachment; filename=...; filename*=UTF-8''..." },
            ...(spec.contentLength === undefined ? {} : { "Content-Length": { schema: { type: "integer" } } })
          },
          content: { [spec.contentType]: { schema: { type: "string", contentMediaType: spec.contentType } } }
        }
        break
      }
      case "export": {
        const row = jsonSchema(schemas.success)
        const content: Record<string, JsonObject> = {}
        for (const format of spec.formats) {
          const type = ExportFormat.contentTypes[format]
          if (format === "json") content[type] = { schema: { type: "array", items: row } }
          if (format === "ndjson") content[type] = { schema: { type: "string" }, "x-item-schema": row }
          if (format === "csv") {
            content[type] = {
              schema: { type: "string" },
              "x-item-schema": row,
              ...(spec.columns === undefined ? {} : { "x-columns": spec.columns })
            }
          }
        }
        responses["200"] = {
          description:
            "The rows, streamed. CSV (RFC 4180) prefixes text cells starting with =, +, -, @, tab or CR with a single quote.",
          headers: { "Content-Disposition": { schema: { type: "string" } } },
          content
        }
        responses["406"] = errorBody(Errors.tagsWithStatus(Errors.statuses.NotAcceptable), "The export format is not offered")
        break
      }
      case "unary": {
        responses["200"] = {
          description: "The result",
          content: { [Names.contentTypes.json]: { schema: jsonSchema(schemas.success) } }
        }
        break
      }
    }
    for (const [status, description] of transportResponses) {
      responses[String(status)] = errorBody(Errors.tagsWithStatus(status), description)
    }
    // Typed failures by their status (400 unless annotated), in the body's own schema.
    if (spec._tag !== "subscription") {
      const byStatus = new Map<number, Array<JsonObject>>()
      for (const member of failureMembers(failure)) {
        const status = ProtocolError.statusOf(Schema.make(member), 400)
        const list = byStatus.get(status) ?? []
        list.push(jsonSchema(Schema.make(member)))
        byStatus.set(status, list)
      }
      for (const [status, members] of byStatus) {
        const key = String(status)
        const existing = responses[key]
        const typed = members.length === 1 ? members[0]! : { oneOf: members }
        const schema = existing === undefined
          ? typed
          : { oneOf: [typed, ((existing["content"] as JsonObject)[Names.contentTypes.json] as JsonObject)["schema"]] }
        responses[key] = { description: existing?.["description"] ?? "A typed failure", content: { [Names.contentTypes.json]: { schema } } }
      }
    }

    const parameters: Array<JsonObject> = [{
      name: Names.query.payload,
      in: "query",
      required: false,
      description: "The payload as URL-encoded JSON (GET only)",
      content: { [Names.contentTypes.json]: { schema: payload } }
    }]
    if (spec._tag === "subscription" && spec.cursor !== undefined) {
      parameters.push(
        { name: "Last-Event-ID", in: "header", required: false, schema: { type: "string" }, description: "Resume after this id" },
        { name: Names.query.lastEventId, in: "query", required: false, schema: { type: "string" }, description: "Resume after this id, for clients that cannot set headers" }
      )
    }
    if (spec._tag === "export") {
      parameters.push({
        name: Names.query.format,
        in: "query",
        required: false,
        schema: { type: "string", enum: spec.formats, default: spec.defaultFormat }
      })
    }
    const operation = (method: "get" | "post"): JsonObject => ({
      operationId: method === "get" ? rpc._tag : `${rpc._tag}Post`,
      summary: spec.description ?? rpc._tag,
      tags: [spec._tag],
      "x-procedure-kind": spec._tag,
      parameters: method === "get" ? parameters : parameters.filter((p) => p["name"] !== Names.query.payload),
      ...(method === "post"
        ? { requestBody: { required: false, content: { [Names.contentTypes.json]: { schema: payload } } } }
        : {}),
      ...(rpc.middlewares.size > 0 ? { security: [{ bearer: [] }] } : {}),
      responses
    })
    paths[`${base}/${encodeURIComponent(rpc._tag)}`] = { get: operation("get"), post: operation("post") }
  }

  return {
    openapi: "3.1.0",
    info: {
      title: options.title,
      version: options.version,
      description:
        "Generated by effect-stream-rpc. Subscriptions are Server-Sent Events (sliding policy: stale values dropped and counted), downloads are raw bytes, exports are json / csv / ndjson streams (suspend policy: nothing lost)."
    },
    paths,
    // What a client generated from this document alone needs to be the client generated from the contract.
    [openApiExtension]: Shape.fromGroup(group, options.groupName ?? groupNameOf(options.title)),
    components: {
      schemas: definitions,
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } }
    }
  }
}
