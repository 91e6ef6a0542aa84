/**
 * Encoders of JSON-compatible structs, from a plain description of their
 * fields: the encoded copy of a value (what `Schema.encode` gives: excess
 * keys dropped, a `Date` as its ISO string) and its JSON text, as closures
 * or as generated code (one function per struct, the common fields inlined).
 * A value the description cannot vouch for gives `SLOW`, and the caller
 * takes the slow path. Which schemas have such a description is the
 * schema side's to say (`server/internal/CompiledEncoder.ts`).
 */
import * as IsoDate from "./IsoDate.ts"

/** Marks a value the fast path cannot encode: the caller falls back to Schema. */
export const SLOW: unique symbol = Symbol("slow")

export type Check = (value: unknown) => boolean

/** A field's fast path: how to check a value, copy it encoded, and write its JSON. */
export interface Field {
  readonly check: Check
  /** The encoded value (a valid Date becomes its ISO string). */
  readonly copy: (value: unknown) => unknown
  /** JSON text of a checked value (SLOW from a nested struct that cannot vouch for it). */
  readonly json: (value: unknown) => string | typeof SLOW
  /** Whether `undefined` is a value of the type (an optional field may hold it). */
  readonly acceptsUndefined: boolean
}

/** A struct's fast path: the encoded object and its JSON text, or SLOW. */
export interface Struct {
  readonly copy: (value: unknown) => unknown
  readonly json: (value: unknown) => string | typeof SLOW
}

/** How a field is written by generated code: its own code for the common kinds, else its closures. */
export type Kind = "string" | "number" | "boolean" | "date" | "other"

/** A property of a struct. */
export interface Property {
  readonly name: string
  readonly optional: boolean
  readonly kind: Kind
  readonly field: Field
}

const needsEscape = /["\\\u0000-\u001f\ud800-\udfff]/

const jsonString = (value: unknown): string =>
  needsEscape.test(value as string) ? JSON.stringify(value) : `"${value as string}"`

const jsonNumber = (value: unknown): string => (Number.isFinite(value) ? `${value as number}` : "null")

const identity = (value: unknown): unknown => value

const isValidDate = (value: unknown): boolean => value instanceof Date && !Number.isNaN(value.getTime())

// ---------------------------------------------------------------------------
// fields
// ---------------------------------------------------------------------------

export const date = (): Field => ({
  check: isValidDate,
  copy: (value) => IsoDate.ofDate(value as Date),
  json: (value) => `"${IsoDate.ofDate(value as Date)}"`,
  acceptsUndefined: false
})

export const string = (): Field => ({
  check: (v) => typeof v === "string",
  copy: identity,
  json: jsonString,
  acceptsUndefined: false
})

export const number = (): Field => ({
  check: (v) => typeof v === "number",
  copy: identity,
  json: jsonNumber,
  acceptsUndefined: false
})

export const boolean = (): Field => ({
  check: (v) => typeof v === "boolean",
  copy: identity,
  json: (v) => (v ? "true" : "false"),
  acceptsUndefined: false
})

const undefined_ = (): Field => ({ check: (v) => v === undefined, copy: identity, json: () => "null", acceptsUndefined: true })
export { undefined_ as undefined }

export const literal = (literal: string | number | boolean | null): Field => {
  const text = JSON.stringify(literal)
  return { check: (v) => v === literal, copy: identity, json: () => text, acceptsUndefined: false }
}

/** A value of the first member that checks it. */
export const union = (members: ReadonlyArray<Field>): Field => {
  const pick = (value: unknown): Field | undefined => {
    for (let i = 0; i < members.length; i++) if (members[i]!.check(value)) return members[i]
    return undefined
  }
  return {
    check: (v) => pick(v) !== undefined,
    copy: (v) => pick(v)!.copy(v),
    json: (v) => pick(v)!.json(v),
    acceptsUndefined: members.some((m) => m.acceptsUndefined)
  }
}

/** A nested struct as a field. */
export const struct = (struct: Struct): Field => ({
  check: (v) => typeof v === "object" && v !== null,
  copy: (v) => struct.copy(v),
  json: (v) => struct.json(v),
  acceptsUndefined: false
})

// ---------------------------------------------------------------------------
// structs
// ---------------------------------------------------------------------------

/** The struct's encoders as closures over its fields. */
export const closures = (properties: ReadonlyArray<Property>): Struct => {
  const names = properties.map((p) => p.name)
  const keys = properties.map((p) => JSON.stringify(p.name) + ":")
  const fields = properties.map((p) => p.field)
  const optional = properties.map((p) => p.optional)
  const count = names.length
  // An absent optional field stays absent (an absent required one is Schema's to report);
  // a present `undefined` is kept only where the type allows it.
  const copy = (value: unknown): unknown => {
    if (typeof value !== "object" || value === null) return SLOW
    const row = value as Record<string, unknown>
    const out: Record<string, unknown> = {}
    for (let i = 0; i < count; i++) {
      const v = row[names[i]!]
      if (v === undefined && !Object.hasOwn(row, names[i]!)) {
        if (optional[i]) continue
        return SLOW
      }
      const field = fields[i]!
      if (!field.check(v)) return SLOW
      const encoded = field.copy(v)
      if (encoded === SLOW) return SLOW
      out[names[i]!] = encoded
    }
    return out
  }
  const json = (value: unknown): string | typeof SLOW => {
    if (typeof value !== "object" || value === null) return SLOW
    const row = value as Record<string, unknown>
    let out = "{"
    let first = true
    for (let i = 0; i < count; i++) {
      const v = row[names[i]!]
      if (v === undefined) {
        if (!Object.hasOwn(row, names[i]!)) {
          if (optional[i]) continue
          return SLOW
        }
        // JSON.stringify leaves out a key whose value is undefined.
        if (fields[i]!.check(v)) continue
        return SLOW
      }
      const field = fields[i]!
      if (!field.check(v)) return SLOW
      const text = field.json(v)
      if (text === SLOW) return SLOW
      out += first ? keys[i]! + text : "," + keys[i]! + text
      first = false
    }
    return out + "}"
  }
  return { copy, json }
}

/**
 * The struct's encoders as generated code (one function per struct, the
 * fields inlined: no call per field for strings, numbers, booleans and
 * dates). Where code cannot be generated (`new Function` refused, as in
 * some edge runtimes), the closures do the same work.
 */
export const generated = (properties: ReadonlyArray<Property>): Struct => {
  const fields = properties.map((p) => p.field)
  const json: Array<string> = ["if (typeof row !== 'object' || row === null) return SLOW", "var s = '{', c = '', v, t"]
  const copy: Array<string> = ["if (typeof row !== 'object' || row === null) return SLOW", "var o = {}, v, t"]
  properties.forEach((p, i) => {
    const name = JSON.stringify(p.name)
    const key = JSON.stringify(JSON.stringify(p.name) + ":")
    const missing = p.optional ? "" : "return SLOW"
    const absent = `if (v === undefined && !hasOwn(row, ${name})) { ${missing} } else`
    let check: string
    let text: string
    let value: string
    switch (p.kind) {
      case "string":
        check = "typeof v !== 'string'"
        text = "(escape.test(v) ? JSON.stringify(v) : '\"' + v + '\"')"
        value = "v"
        break
      case "number":
        check = "typeof v !== 'number'"
        text = "(Number.isFinite(v) ? '' + v : 'null')"
        value = "v"
        break
      case "boolean":
        check = "typeof v !== 'boolean'"
        text = "(v ? 'true' : 'false')"
        value = "v"
        break
      case "date":
        check = "!(v instanceof Date) || (t = v.getTime()) !== t"
        // `t` holds `v.getTime()` once checked.
        text = "'\"' + iso(t) + '\"'"
        value = "iso(t)"
        break
      case "other":
        check = `!f[${i}].check(v)`
        text = `f[${i}].json(v)`
        value = `f[${i}].copy(v)`
        break
    }
    const undefinedOk = p.field.acceptsUndefined
    // A present undefined: JSON leaves the key out; the encoded copy keeps it where the type allows it.
    json.push(
      `v = row[${name}]`,
      `${absent} if (v === undefined && ${undefinedOk}) {} else { if (${check}) return SLOW; t = ${text}; if (t === SLOW) return SLOW; s += c + ${key} + t; c = ',' }`
    )
    copy.push(
      `v = row[${name}]`,
      `${absent} { if (${check}) return SLOW; t = ${value}; if (t === SLOW) return SLOW; o[${name}] = t }`
    )
  })
  json.push("return s + '}'")
  copy.push("return o")
  try {
    const make = (body: Array<string>) =>
      new Function("SLOW", "f", "hasOwn", "escape", "iso", `return function (row) {\n${body.join("\n")}\n}`)(
        SLOW,
        fields,
        Object.hasOwn,
        needsEscape,
        IsoDate.isoString
      ) as (row: unknown) => never
    return { json: make(json), copy: make(copy) }
  } catch {
    return closures(properties)
  }
}
