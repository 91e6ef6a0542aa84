/**
 * Shapes as text: the TypeScript type of a shape, its codec as an expression
 * of the runtime's `Codec` combinators, and what it leaves to the server;
 * plus the names and JSDoc the client module is written with.
 */
import type { Field, Shape } from "./Shape.ts"

export const identifier = /^[A-Za-z_$][A-Za-z0-9_$]*$/

export const propertyName = (name: string): string => (identifier.test(name) ? name : JSON.stringify(name))

/** Text safe inside a JSDoc block. */
export const jsdocText = (text: string): string => text.replace(/\*\//g, "*\\/").replace(/\r\n?/g, "\n")

export const jsdoc = (lines: ReadonlyArray<string>, indent: string): Array<string> =>
  lines.length === 0
    ? []
    : [`${indent}/**`, ...lines.flatMap((line) => jsdocText(line).split("\n")).map((line) => (line === "" ? `${indent} *` : `${indent} * ${line}`)), `${indent} */`]

export const pascal = (tag: string): string => {
  const words = tag.replace(/[^A-Za-z0-9]+/g, " ").trim().split(" ")
  const name = words.map((word) => word.charAt(0).toUpperCase() + word.slice(1)).join("")
  return /^[A-Za-z_$]/.test(name) ? name : `P${name}`
}

// --- types -------------------------------------------------------------------

export const typeOf = (shape: Shape): string => {
  switch (shape._tag) {
    case "String":
      return "string"
    case "Number":
      return "number"
    case "Boolean":
      return "boolean"
    case "Unknown":
      return "unknown"
    case "Void":
      return "void"
    case "Undefined":
      return "undefined"
    case "Never":
      return "never"
    case "Literal":
      return JSON.stringify(shape.value)
    case "Date":
      return "Date"
    case "BigInt":
      return "bigint"
    case "NumberFromString":
      return "number"
    case "Array":
      return `ReadonlyArray<${typeOf(shape.item)}>`
    case "Tuple": {
      const elements = shape.elements.map((element) => `${typeOf(element.shape)}${element.optional ? "?" : ""}`)
      if (shape.rest !== null) elements.push(`...Array<${typeOf(shape.rest)}>`)
      return `readonly [${elements.join(", ")}]`
    }
    case "Struct": {
      const parts = [
        ...shape.fields.map((field) => `readonly ${propertyName(field.name)}${field.optional ? "?" : ""}: ${typeOf(field.shape)}`),
        ...shape.records.map((value) => `readonly [key: string]: ${typeOf(value)}`)
      ]
      return parts.length === 0 ? "{}" : `{ ${parts.join("; ")} }`
    }
    case "Union":
      return shape.members.length === 0 ? "never" : shape.members.map(typeOf).join(" | ")
    case "Refine":
    case "Unchecked":
      return typeOf(shape.from)
    case "Brand":
      return `${wrap(typeOf(shape.from))} & Brand<${shape.brands.map((brand) => JSON.stringify(brand)).join(" | ")}>`
    case "Class":
      return shape.name
  }
}

export const wrap = (type: string): string => (type.includes(" | ") ? `(${type})` : type)

// --- codecs ------------------------------------------------------------------

export const fieldsCodec = (fields: ReadonlyArray<Field>): string =>
  fields.length === 0
    ? "{}"
    : `{ ${fields.map((field) => `${propertyName(field.name)}: Codec.${field.optional ? "optional" : "field"}(${codecOf(field.shape)})`).join(", ")} }`

export const codecOf = (shape: Shape): string => {
  switch (shape._tag) {
    case "String":
      return "Codec.string"
    case "Number":
      return "Codec.number"
    case "Boolean":
      return "Codec.boolean"
    case "Unknown":
    case "Void":
      return "Codec.unknown"
    case "Undefined":
      return "Codec.undefined"
    case "Never":
      return "Codec.never"
    case "Literal":
      return `Codec.literal(${JSON.stringify(shape.value)})`
    case "Date":
      return shape.valid ? "Codec.date()" : "Codec.date(false)"
    case "BigInt":
      return "Codec.bigint"
    case "NumberFromString":
      return "Codec.numberFromString"
    case "Array":
      return `Codec.array(${codecOf(shape.item)})`
    case "Tuple": {
      const elements = shape.elements.map((element) => `{ codec: ${codecOf(element.shape)}, optional: ${element.optional} }`)
      return `Codec.tuple([${elements.join(", ")}]${shape.rest === null ? "" : `, ${codecOf(shape.rest)}`})`
    }
    case "Struct":
      return `Codec.struct(${fieldsCodec(shape.fields)}${
        shape.records.length === 0 ? "" : `, [${shape.records.map(codecOf).join(", ")}]`
      })`
    case "Union":
      return `Codec.union([${shape.members.map(codecOf).join(", ")}], ${JSON.stringify(typeOf(shape))})`
    case "Refine":
      return `Codec.refine(${codecOf(shape.from)}, ${JSON.stringify(shape.constraints)}, ${JSON.stringify(shape.expected)})`
    case "Unchecked":
      return `${codecOf(shape.from)} /* unchecked: ${shape.description.replace(/\*\//g, "* /")} */`
    case "Brand":
      return codecOf(shape.from)
    case "Class":
      return `${shape.name}$`
  }
}

/** Descriptions of the refinements a shape leaves to the server, and whether it has brands. */
export const collect = (shape: Shape, unchecked: Set<string>, brands: { found: boolean }, where: string): void => {
  switch (shape._tag) {
    case "Array":
      return collect(shape.item, unchecked, brands, `${where}[]`)
    case "Tuple":
      shape.elements.forEach((element, i) => collect(element.shape, unchecked, brands, `${where}[${i}]`))
      if (shape.rest !== null) collect(shape.rest, unchecked, brands, `${where}[]`)
      return
    case "Struct":
      for (const field of shape.fields) collect(field.shape, unchecked, brands, `${where}.${field.name}`)
      for (const value of shape.records) collect(value, unchecked, brands, `${where}[key]`)
      return
    case "Union":
      for (const member of shape.members) collect(member, unchecked, brands, where)
      return
    case "Refine":
      return collect(shape.from, unchecked, brands, where)
    case "Unchecked":
      unchecked.add(`${where} (${shape.description})`)
      return collect(shape.from, unchecked, brands, where)
    case "Brand":
      brands.found = true
      return collect(shape.from, unchecked, brands, where)
    default:
      return
  }
}
