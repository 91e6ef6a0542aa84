/**
 * The client module, written from `ClientShapes`: for every procedure the
 * types of its payload, values and errors, its codecs as expressions of the
 * runtime's `Codec` combinators, and one typed method. The module imports
 * only the runtime (`effect-stream-rpc/client`, or the same runtime as the
 * package `effect-stream-rpc-client`; no runtime import of `effect`); a
 * procedure whose schemas could not be compiled falls back to the contract's
 * Effect Schemas, and the module says so.
 *
 * Written three ways from the same lines, with no compiler: the TypeScript
 * module, the same module as plain JavaScript, and the declarations of that
 * JavaScript, which give it the TypeScript module's types.
 */
import { capacities } from "../contract/Kinds.ts"
import type { ClassShape, ClientShapes, ProcedureShapes, Shape } from "./Shape.ts"
import { codecOf, collect, fieldsCodec, identifier, jsdoc, jsdocText, pascal, propertyName, typeOf } from "./ShapeText.ts"

/** The runtime a generated module imports unless told otherwise: the `./client` subpath of the package effect-stream-rpc. */
export const defaultRuntime = "effect-stream-rpc/client"

export interface ClientModuleOptions {
  /** The command that regenerates the module, for the header comment. */
  readonly command: string
  /**
   * The import specifier of the runtime. Default `effect-stream-rpc/client`;
   * `effect-stream-rpc-client` is the same runtime as a package of its own,
   * with no dependencies. Another runtime than the default cannot go with a
   * procedure that falls back to Effect Schema (it imports
   * `effect-stream-rpc/client/effect`): `clientModule` throws
   * `RuntimeNeedsEffect`.
   */
  readonly runtime?: string | undefined
  /**
   * Import specifier of the contract module, relative to the generated file:
   * what a procedure that falls back to Effect Schema reads its schemas from.
   * Without it (a module generated from an OpenAPI document) such a procedure
   * is not checked at all.
   */
  readonly contractImport?: string | undefined
}

export interface ClientModule {
  /** The TypeScript module (`.ts`, `.mts`). */
  readonly code: string
  /**
   * The same module as plain JavaScript (an ES module: `.js`, `.mjs`), for a
   * project without a build step; its types are in `declarations`.
   */
  readonly javascript: string
  /** The declarations of `javascript` (`.d.ts`, `.d.mts` beside it): the types `code` has. */
  readonly declarations: string
  /** One line per procedure that falls back to Effect Schema or is left unchecked, and why. */
  readonly warnings: ReadonlyArray<string>
}

/**
 * Thrown for a module asked to import another runtime than
 * `effect-stream-rpc/client` whose procedures fall back to Effect Schema:
 * those import `effect-stream-rpc/client/effect` and `effect`, which that
 * runtime (`effect-stream-rpc-client`) does not have.
 */
export class RuntimeNeedsEffect extends Error {
  constructor(
    readonly runtime: string,
    /** Each procedure that falls back, and why. */
    readonly procedures: ReadonlyArray<{ readonly tag: string; readonly reason: string }>
  ) {
    super(
      `the runtime ${runtime} has no Effect, and ${
        procedures.map((p) => `${p.tag} (${p.reason})`).join(", ")
      } ${procedures.length === 1 ? "falls" : "fall"} back to Effect Schema, which imports ${defaultRuntime}/effect and effect: ` +
        `generate with the runtime ${defaultRuntime} (the package effect-stream-rpc), or give ${
          procedures.length === 1 ? "that procedure" : "those procedures"
        } schemas the generator compiles`
    )
    this.name = "RuntimeNeedsEffect"
  }
}

// --- classes -----------------------------------------------------------------

/** The three texts the generator writes side by side, a line at a time. */
interface Texts {
  /** The TypeScript module. */
  readonly ts: Array<string>
  /** The same module as plain JavaScript: the TypeScript one with its types erased. */
  readonly js: Array<string>
  /** The declarations of the JavaScript module: the types the TypeScript module has. */
  readonly dts: Array<string>
}

const classDeclaration = (shape: ClassShape, texts: Texts): void => {
  const inherited = shape.error ? new Set(["message", "name", "stack", "cause"]) : new Set<string>()
  // A tagged class sets its own `_tag`, as Schema's constructors do.
  const tagField = shape.fields.find((field) => field.name === "_tag" && field.shape._tag === "Literal" && !field.optional)
  const tag = tagField?.shape._tag === "Literal" ? tagField.shape.value : undefined
  const parameters = shape.fields.filter((field) => field !== tagField)
  const fieldsType = parameters.length === 0
    ? "{}"
    : `{ ${parameters.map((field) => `readonly ${propertyName(field.name)}${field.optional ? "?" : ""}: ${typeOf(field.shape)}`).join("; ")} }`
  const message = shape.fields.find((field) => field.name === "message" && field.shape._tag === "String" && !field.optional)
  const doc = jsdoc(
    [
      ...(shape.description === undefined ? [] : [shape.description, ""]),
      shape.error
        ? `A typed error of the contract (\`${shape.name}\`): \`instanceof ${shape.name}\` and \`_tag\` both tell it apart.`
        : `A class of the contract (\`${shape.name}\`): values are decoded into instances, so \`instanceof ${shape.name}\` holds.`
    ],
    ""
  )
  const fields = (prefix: string) =>
    shape.fields.filter((field) => !inherited.has(field.name)).flatMap((field) => [
      ...jsdoc(field.description === undefined ? [] : [field.description], "  "),
      `  ${prefix}readonly ${propertyName(field.name)}${field.optional ? "?" : ""}: ${typeOf(field.shape)}`
    ])
  const body = [
    ...(shape.error
      ? [`    super(${message === undefined ? "" : "fields.message"})`, `    this.name = ${JSON.stringify(shape.name)}`]
      : []),
    tag === undefined ? `    Object.assign(this, fields)` : `    Object.assign(this, fields, { _tag: ${JSON.stringify(tag)} })`,
    `  }`,
    `}`
  ]
  const heritage = shape.error ? " extends Error" : ""
  const codec = `Codec.instance(${shape.name}, Codec.struct(${fieldsCodec(shape.fields)}))`
  texts.ts.push(
    ...doc,
    `export class ${shape.name}${heritage} {`,
    ...fields("declare "),
    `  constructor(fields: ${fieldsType}) {`,
    ...body,
    `const ${shape.name}$: Codec.Codec<${shape.name}> = ${codec}`,
    ``
  )
  texts.js.push(...doc, `export class ${shape.name}${heritage} {`, `  constructor(fields) {`, ...body, `const ${shape.name}$ = ${codec}`, ``)
  texts.dts.push(...doc, `export declare class ${shape.name}${heritage} {`, ...fields(""), `  constructor(fields: ${fieldsType})`, `}`, ``)
}

// --- procedures --------------------------------------------------------------

const kindLine = (procedure: ProcedureShapes): string => {
  switch (procedure.kind) {
    case "subscription":
      return `Subscription over Server-Sent Events (sliding policy, ${capacities.subscription} values)${
        procedure.resumable === true ? "; resumable with Last-Event-ID" : ""
      }.`
    case "download":
      return `Download of ${procedure.contentType} (suspend policy, ${capacities.download} chunks).`
    case "export":
      return `Export as ${(procedure.formats ?? []).join(", ")} (default ${procedure.defaultFormat}; suspend policy, ${capacities.export} rows).`
    case "unary":
      return "Unary call: one typed response."
  }
}

const successName = (procedure: ProcedureShapes): string =>
  ({ subscription: "Value", export: "Row", unary: "Response", download: "" })[procedure.kind]

/** The module for `shapes`, in TypeScript and as JavaScript with its declarations. */
export const clientModule = (shapes: ClientShapes, options: ClientModuleOptions): ClientModule => {
  const group = shapes.group
  const warnings: Array<string> = []
  const unchecked = new Set<string>()
  const brands = { found: false }
  const fallbacks = shapes.procedures.filter((procedure) => procedure.fallback !== undefined)
  const withContract = fallbacks.length > 0 && options.contractImport !== undefined
  const runtime = options.runtime ?? defaultRuntime
  if (withContract && runtime !== defaultRuntime) {
    throw new RuntimeNeedsEffect(runtime, fallbacks.map((procedure) => ({ tag: procedure.tag, reason: procedure.fallback! })))
  }
  for (const procedure of shapes.procedures) {
    if (procedure.fallback !== undefined) {
      warnings.push(
        withContract
          ? `${procedure.tag}: ${procedure.fallback}; it falls back to Effect Schema (the contract's schemas, and effect in the bundle)`
          : `${procedure.tag}: ${procedure.fallback}; without the contract its payload, values and errors are not checked`
      )
      continue
    }
    for (const [what, shape] of [["payload", procedure.payload], ["value", procedure.success], ["error", procedure.failure]] as const) {
      if (shape !== undefined) collect(shape, unchecked, brands, `${procedure.tag} ${what}`)
    }
  }
  for (const shape of shapes.classes) {
    for (const field of shape.fields) collect(field.shape, unchecked, brands, `${shape.name}.${field.name}`)
  }

  const texts: Texts = { ts: [], js: [], dts: [] }
  const { ts, js, dts } = texts
  const all = (...lines: ReadonlyArray<string>) => {
    ts.push(...lines)
    js.push(...lines)
    dts.push(...lines)
  }
  /** Lines for the TypeScript module and the declarations alone. */
  const typed = (...lines: ReadonlyArray<string>) => {
    ts.push(...lines)
    dts.push(...lines)
  }

  all(
    `// Generated by effect-stream-rpc. Do not edit: regenerate with`,
    `//   ${options.command}`,
    `//`
  )
  if (withContract) {
    ts.push(
      `// The types and codecs of ${group} are written out below, but for the procedures that fall back to`,
      `// Effect Schema (listed below): they import the contract, and effect with it.`
    )
    js.push(
      `// The codecs of ${group} are written out below (their types in the declaration file beside this`,
      `// module), but for the procedures that fall back to Effect Schema (listed below): they import the`,
      `// contract, and effect with it.`
    )
    dts.push(
      `// The types of the JavaScript module beside this file, generated with it: those of ${group} are written`,
      `// out below, but for the procedures that fall back to Effect Schema (listed below): they are read`,
      `// off the contract.`
    )
  } else {
    ts.push(
      `// Self-contained: the types and codecs of ${group} are written out below and the only import is the`,
      `// runtime, ${runtime}, which has no runtime import of effect.`
    )
    js.push(
      `// Self-contained: the codecs of ${group} are written out below (their types in the declaration file`,
      `// beside this module) and the only import is the runtime, ${runtime}, which has no`,
      `// runtime import of effect.`
    )
    dts.push(
      `// The types of the JavaScript module beside this file, generated with it: the codecs of ${group} are`,
      `// written out there and its only import is the runtime, ${runtime}, which has no`,
      `// runtime import of effect.`
    )
  }
  ts.push(`// Checked here as the contract's Schemas check them: types, literals, required properties, Date and`)
  js.push(`// Checked here as the contract's Schemas check them: types, literals, required properties, Date and`)
  dts.push(`// Checked there as the contract's Schemas check them: types, literals, required properties, Date and`)
  all(

    `// bigint strings, and refinements with the constraints written out (lengths, ranges, integers,`,
    `// patterns, item counts).${brands.found ? " Brands are types only (a brand has no runtime check)." : ""}`,
    ...(unchecked.size === 0
      ? [`// Unchecked refinements: none.`]
      : [`// Unchecked refinements (the server checks them; this client does not):`, ...[...unchecked].map((line) => `//   ${line}`)]),
  )
  for (const procedure of fallbacks) {
    if (!withContract) all(`// ${procedure.tag} is not checked (${procedure.fallback}): generated without the contract.`)
    else {
      const line = `// ${procedure.tag} falls back to Effect Schema (${procedure.fallback}): it imports the contract and effect.`
      ts.push(line)
      js.push(line)
      dts.push(`// ${procedure.tag} falls back to Effect Schema (${procedure.fallback}): its types are read off the contract.`)
    }
  }
  const runtimeImport = JSON.stringify(runtime)
  ts.push(`import { Client, Codec } from ${runtimeImport}`)
  js.push(
    // A project that type-checks its JavaScript (checkJs) and includes this file reads the declarations instead.
    `// @ts-nocheck: the types of this module are the declaration file's.`,
    `import { Client, Codec } from ${runtimeImport}`
  )
  dts.push(`import type { Client } from ${runtimeImport}`)
  if (withContract) {
    const contract = JSON.stringify(options.contractImport)
    ts.push(
      `import type * as Rpc from "@effect/rpc/Rpc"`,
      `import type * as RpcGroup from "@effect/rpc/RpcGroup"`,
      `import { SchemaProcedure, type StreamClient } from "${defaultRuntime}/effect"`,
      `import { ${group} as Contract } from ${contract}`,
      ``,
      `type ContractProcedure<Tag extends string> = Rpc.ExtractTag<RpcGroup.Rpcs<typeof Contract>, Tag>`,
      `const fromContract = (tag: string) => SchemaProcedure.make(Contract.requests.get(tag) as unknown as Rpc.AnyWithProps)`
    )
    js.push(
      `import { SchemaProcedure } from "${defaultRuntime}/effect"`,
      `import { ${group} as Contract } from ${contract}`,
      ``,
      `const fromContract = (tag) => SchemaProcedure.make(Contract.requests.get(tag))`
    )
    dts.push(
      `import type * as Rpc from "@effect/rpc/Rpc"`,
      `import type * as RpcGroup from "@effect/rpc/RpcGroup"`,
      `import type { StreamClient } from "${defaultRuntime}/effect"`,
      `import type { ${group} as Contract } from ${contract}`,
      ``,
      `type ContractProcedure<Tag extends string> = Rpc.ExtractTag<RpcGroup.Rpcs<typeof Contract>, Tag>`
    )
  }
  all(``)
  if (brands.found) {
    typed(`declare const BrandId: unique symbol`, `/** A branded type of the contract. */`, `export interface Brand<B extends string> {`, `  readonly [BrandId]: { readonly [K in B]: B }`, `}`, ``)
  }
  for (const shape of shapes.classes) classDeclaration(shape, texts)

  const tableDoc = `/** The procedures of ${group}: their kinds and codecs. */`
  const table = { ts: [tableDoc, `export const ${group}Procedures = {`], js: [tableDoc, `export const ${group}Procedures = {`], dts: [tableDoc, `export declare const ${group}Procedures: {`] }
  const methods = { ts: [] as Array<string>, js: [] as Array<string>, dts: [] as Array<string> }
  for (const procedure of shapes.procedures) {
    const name = pascal(procedure.tag)
    const tag = JSON.stringify(procedure.tag)
    const types = {
      payload: `${name}Payload`,
      success: `${name}${successName(procedure)}`,
      failure: `${name}Error`
    }
    const hasSuccess = procedure.kind !== "download"
    if (procedure.fallback !== undefined && withContract) {
      typed(
        `/** ${procedure.tag} falls back to Effect Schema: ${jsdocText(procedure.fallback)}. */`,
        `export type ${types.payload} = StreamClient.PayloadOf<ContractProcedure<${tag}>>`,
        ...(hasSuccess ? [`export type ${types.success} = StreamClient.SuccessOf<ContractProcedure<${tag}>>`] : []),
        `export type ${types.failure} = StreamClient.ErrorOf<ContractProcedure<${tag}>>`,
        ``
      )
    } else if (procedure.fallback !== undefined) {
      typed(
        `/** ${procedure.tag} is not checked: ${jsdocText(procedure.fallback)}. */`,
        `export type ${types.payload} = unknown`,
        ...(hasSuccess ? [`export type ${types.success} = unknown`] : []),
        `export type ${types.failure} = unknown`,
        ``
      )
    } else {
      typed(
        `export type ${types.payload} = ${typeOf(procedure.payload!)}`,
        ...(hasSuccess ? [`export type ${types.success} = ${typeOf(procedure.success!)}`] : []),
        `export type ${types.failure} = ${typeOf(procedure.failure!)}`,
        ``
      )
    }
    const generics = procedure.kind === "download"
      ? `${types.payload}, ${types.failure}`
      : `${types.payload}, ${types.success}, ${types.failure}`
    const constructor = { subscription: "subscription", download: "download", export: "exportRows", unary: "unary" }[procedure.kind]
    const procedureType = `Client.${{ subscription: "Subscription", download: "Download", export: "Export", unary: "Unary" }[procedure.kind]}Procedure<${generics}>`
    const key = propertyName(procedure.tag)
    table.dts.push(`  readonly ${key}: ${procedureType}`)
    if (procedure.fallback !== undefined && withContract) {
      table.ts.push(`  ${key}: fromContract(${tag}) as unknown as ${procedureType},`)
      table.js.push(`  ${key}: fromContract(${tag}),`)
    } else {
      const codec = (shape: Shape | undefined) => (procedure.fallback !== undefined || shape === undefined ? "Codec.unknown" : codecOf(shape))
      const fields = [
        `payload: ${codec(procedure.payload)}`,
        ...(hasSuccess ? [`success: ${codec(procedure.success)}`] : []),
        `failure: ${procedure.fallback !== undefined ? "Codec.unknown" : codec(procedure.failure)}`,
        ...(procedure.kind === "download" ? [`contentType: ${JSON.stringify(procedure.contentType)}`] : []),
        ...(procedure.kind === "export"
          ? [
            `formats: ${JSON.stringify(procedure.formats)}`,
            `defaultFormat: ${JSON.stringify(procedure.defaultFormat)}`,
            ...(procedure.csv === undefined ? [] : [`csv: ${JSON.stringify(procedure.csv)}`])
          ]
          : [])
      ].map((field, i, fields) => `    ${field}${i < fields.length - 1 ? "," : ""}`)
      table.ts.push(`  ${key}: Client.${constructor}<${generics}>(${tag}, {`, ...fields, `  }),`)
      table.js.push(`  ${key}: Client.${constructor}(${tag}, {`, ...fields, `  }),`)
    }

    const doc = [
      ...(procedure.description === undefined ? [] : [procedure.description, ""]),
      kindLine(procedure),
      ...procedure.params
    ]
    const ref = `${group}Procedures.${identifier.test(procedure.tag) ? procedure.tag : `[${tag}]`}`
    const [optionsType, result, method] = {
      subscription: [
        `Client.SubscribeOptions<${types.success}, ${types.failure}>`,
        `Client.Subscription<${types.success}, ${types.failure}>`,
        "subscribe"
      ],
      download: ["Client.DownloadOptions", "Promise<Client.Download>", "download"],
      export: [
        `Client.ExportOptions<${(procedure.formats ?? []).map((format) => JSON.stringify(format)).join(" | ") || "Client.ExportFormat"}>`,
        `Promise<Client.Export<${types.success}>>`,
        "export"
      ],
      unary: ["Client.CallOptions", `Promise<${types.success}>`, "call"]
    }[procedure.kind]
    const call = `      client.${method}(${ref}, payload, options),`
    methods.ts.push(...jsdoc(doc, "    "), `    ${key}: (payload: ${types.payload}, options?: ${optionsType}): ${result} =>`, call)
    methods.js.push(...jsdoc(doc, "    "), `    ${key}: (payload, options) =>`, call)
    methods.dts.push(...jsdoc(doc, "  "), `  readonly ${key}: (payload: ${types.payload}, options?: ${optionsType}) => ${result}`)
  }
  const makeDoc = [
    `/**`,
    ` * A typed client for ${group}: one method per procedure.`,
    ` * \`options.baseUrl\` is where the procedures are mounted, e.g. \`"/rpc"\`.`,
    ` */`
  ]
  ts.push(
    ...table.ts,
    `} as const`,
    ``,
    ...makeDoc,
    `export const make${group}Client = (options: Client.ClientOptions) => {`,
    `  const client = Client.make(options)`,
    `  return {`,
    ...methods.ts,
    `  } as const`,
    `}`,
    ``,
    `export type ${group}Client = ReturnType<typeof make${group}Client>`,
    ``
  )
  js.push(
    ...table.js,
    `}`,
    ``,
    ...makeDoc,
    `export const make${group}Client = (options) => {`,
    `  const client = Client.make(options)`,
    `  return {`,
    ...methods.js,
    `  }`,
    `}`,
    ``
  )
  dts.push(
    ...table.dts,
    `}`,
    ``,
    ...makeDoc,
    `export declare const make${group}Client: (options: Client.ClientOptions) => {`,
    ...methods.dts,
    `}`,
    ``,
    `export type ${group}Client = ReturnType<typeof make${group}Client>`,
    ``,
    // Without it, a declaration file exports every name it declares (BrandId, ContractProcedure).
    ...(brands.found || withContract ? [`export {}`, ``] : [])
  )
  return { code: ts.join("\n"), javascript: js.join("\n"), declarations: dts.join("\n"), warnings }
}
