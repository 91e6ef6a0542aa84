/**
 * CSV records back into rows of a contract's row schema. A CSV cell is text;
 * the schema's encoded side says what it held: numbers and booleans are
 * parsed (unless the field also accepts a string), nested objects and arrays
 * are JSON, an empty unquoted cell is no value, and the formula guard is
 * undone (`Csv.unneutralize`).
 */
import type * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as Csv from "../src/protocol/Csv.ts"
import type { RowDecoder } from "../src/protocol/Rows.ts"

interface FieldKinds {
  string: boolean
  number: boolean
  boolean: boolean
  null: boolean
  undefined: boolean
  json: boolean
}

const noKinds = (): FieldKinds => ({
  string: false,
  number: false,
  boolean: false,
  null: false,
  undefined: false,
  json: false
})

const collectKinds = (ast: SchemaAST.AST, kinds: FieldKinds, seen: Set<SchemaAST.AST>): void => {
  if (seen.has(ast)) return
  seen.add(ast)
  switch (ast._tag) {
    case "StringKeyword":
    case "TemplateLiteral":
    case "BigIntKeyword":
    case "SymbolKeyword":
    case "UniqueSymbol":
      kinds.string = true
      return
    case "NumberKeyword":
      kinds.number = true
      return
    case "BooleanKeyword":
      kinds.boolean = true
      return
    case "UndefinedKeyword":
    case "VoidKeyword":
      kinds.undefined = true
      return
    case "Literal":
      if (ast.literal === null) kinds.null = true
      else if (typeof ast.literal === "number") kinds.number = true
      else if (typeof ast.literal === "boolean") kinds.boolean = true
      else kinds.string = true
      return
    case "Enums":
      for (const [, value] of ast.enums) {
        if (typeof value === "number") kinds.number = true
        else kinds.string = true
      }
      return
    case "Union":
      for (const member of ast.types) collectKinds(member, kinds, seen)
      return
    case "Refinement":
      collectKinds(ast.from, kinds, seen)
      return
    case "Transformation":
      collectKinds(ast.from, kinds, seen)
      return
    case "Suspend":
      collectKinds(ast.f(), kinds, seen)
      return
    case "TypeLiteral":
    case "TupleType":
    case "ObjectKeyword":
      kinds.json = true
      return
    case "Declaration":
    case "UnknownKeyword":
    case "AnyKeyword":
      kinds.string = true
      return
    case "NeverKeyword":
      return
  }
}

interface CsvField {
  readonly optional: boolean
  readonly kinds: FieldKinds
}

/** The fields of a row schema, on its encoded side (what a CSV cell holds), by name. */
const csvFields = (schema: Schema.Schema.Any): ReadonlyMap<string, CsvField> => {
  const fields = new Map<string, CsvField>()
  const visit = (ast: SchemaAST.AST, depth: number): void => {
    if (depth > 20) return
    switch (ast._tag) {
      case "Refinement":
      case "Transformation":
        return visit(ast.from, depth + 1)
      case "Suspend":
        return visit(ast.f(), depth + 1)
      case "Union":
        for (const member of ast.types) visit(member, depth + 1)
        return
      case "TypeLiteral":
        for (const property of ast.propertySignatures) {
          if (typeof property.name !== "string") continue
          const previous = fields.get(property.name)
          const kinds = previous?.kinds ?? noKinds()
          collectKinds(property.type, kinds, new Set())
          fields.set(property.name, { optional: property.isOptional || (previous?.optional ?? false), kinds })
        }
        return
      default:
        return
    }
  }
  visit(SchemaAST.encodedAST(schema.ast), 0)
  return fields
}

const missing = Symbol("missing")

/**
 * The encoded value of one CSV cell, by the type of its field: numbers and
 * booleans are parsed (unless the field also accepts a string), nested
 * objects and arrays are JSON, an empty unquoted cell is no value (or
 * `null`, or `""`, whichever the field accepts first).
 */
const cellValue = (field: CsvField | undefined, cell: Csv.Cell): unknown => {
  if (!cell.quoted && cell.text === "") {
    if (field === undefined || field.optional || field.kinds.undefined) return missing
    if (field.kinds.null) return null
    if (field.kinds.string) return ""
    return missing
  }
  const text = Csv.unneutralize(cell.text)
  if (field === undefined) return text
  const kinds = field.kinds
  if (kinds.string) return text
  if (kinds.boolean && (text === "true" || text === "false")) return text === "true"
  if (kinds.number) {
    const number = Number(text)
    if (text.trim() !== "" && (!Number.isNaN(number) || text === "NaN")) return number
  }
  if (kinds.json) {
    try {
      return JSON.parse(text)
    } catch {
      return text
    }
  }
  return text
}

/** CSV records to row objects: the first record names the columns. */
export const decoder = (schema: Schema.Schema.Any): RowDecoder<unknown> => {
  const parser = Csv.decoder()
  const fields = csvFields(schema)
  let header: ReadonlyArray<string> | undefined
  const toRows = (records: Array<ReadonlyArray<Csv.Cell>>): Array<unknown> => {
    const rows: Array<unknown> = []
    for (const record of records) {
      if (header === undefined) {
        header = record.map((cell) => cell.text)
        continue
      }
      const row: Record<string, unknown> = {}
      for (let c = 0; c < header.length; c++) {
        const name = header[c]!
        const value = cellValue(fields.get(name), record[c] ?? { text: "", quoted: false })
        if (value !== missing) row[name] = value
      }
      rows.push(row)
    }
    return rows
  }
  return {
    push: (text) => toRows(parser.push(text)),
    end: () => toRows(parser.end())
  }
}
