/**
 * Codecs: the small combinators generated clients are written in. A
 * generated module compiles each schema of the contract into an expression of
 * these (`Codec.struct({ at: Codec.field(Codec.date) })`), so the module is
 * readable and the behaviour lives here: a fix never requires regenerating.
 *
 * `decode` reads the wire form (JSON) and returns the value the contract's
 * Schema would decode — `Date` from ISO strings, `bigint` from strings, class
 * instances, excess properties dropped — or throws a `CodecError` naming the
 * path; `encode` checks a value against the same constraints and returns its
 * wire form.
 *
 * No runtime import of `effect`: this is what lets a browser bundle leave it out.
 */
import type { Constraints } from "../src/protocol/Constraints.ts"

export class CodecError extends Error {
  readonly _tag = "CodecError" as const
  /** Where the input went wrong: the keys and indexes from the root. */
  readonly path: Array<string | number>
  constructor(readonly expected: string, readonly actual: unknown, options?: { readonly cause?: unknown }) {
    super(`Expected ${expected}, actual ${show(actual)}`, options)
    this.name = "CodecError"
    this.path = []
  }
}

const show = (u: unknown): string => {
  if (typeof u === "string") return JSON.stringify(u.length > 60 ? `${u.slice(0, 60)}…` : u)
  if (typeof u === "bigint") return `${u}n`
  if (u instanceof Date) return Number.isNaN(u.getTime()) ? "Invalid Date" : u.toISOString()
  if (Array.isArray(u)) return "an array"
  if (typeof u === "object" && u !== null) return "an object"
  return String(u)
}

export interface Codec<T> {
  /** The wire form (parsed JSON) to a value; throws `CodecError`. */
  decode(wire: unknown): T
  /** A value to its wire form (before `JSON.stringify`); throws `CodecError`. */
  encode(value: T): unknown
}

export type TypeOf<C> = C extends Codec<infer T> ? T : never

/** `error` with its path, as a message: `Expected a number, actual "x" at ["items"][3]["price"]`. */
export const describe = (error: CodecError): string =>
  error.path.length === 0 ? error.message : `${error.message} at ${error.path.map((key) => `[${JSON.stringify(key)}]`).join("")}`

const at = (error: unknown, key: string | number): unknown => {
  if (error instanceof CodecError) error.path.unshift(key)
  return error
}

const fail = (expected: string, actual: unknown): never => {
  throw new CodecError(expected, actual)
}

const primitive = <T>(expected: string, is: (u: unknown) => u is T): Codec<T> => {
  const check = (u: unknown): T => (is(u) ? u : fail(expected, u))
  return { decode: check, encode: check }
}

export const string: Codec<string> = primitive("a string", (u): u is string => typeof u === "string")
export const number: Codec<number> = primitive("a number", (u): u is number => typeof u === "number")
export const boolean: Codec<boolean> = primitive("a boolean", (u): u is boolean => typeof u === "boolean")
export const unknown: Codec<unknown> = { decode: (u) => u, encode: (u) => u }
/** Nothing is accepted (a procedure without typed errors). */
export const never: Codec<never> = { decode: (u) => fail("never", u), encode: (u) => fail("never", u) }
export const undefined_: Codec<undefined> = primitive("undefined", (u): u is undefined => u === undefined)
export { undefined_ as undefined }

export const literal = <const L extends string | number | boolean | null>(value: L): Codec<L> =>
  primitive(JSON.stringify(value), (u): u is L => u === value)

/** `Schema.Date` (`noInvalidDate`: an unparseable string is refused) or `Schema.DateFromString` (it is not). */
export const date = (valid = true): Codec<Date> => ({
  decode: (u) => {
    if (typeof u !== "string") return fail("a string to be decoded into a Date", u)
    const date = new Date(u)
    return valid && Number.isNaN(date.getTime()) ? fail("a valid Date", u) : date
  },
  encode: (d) => {
    if (!(d instanceof Date) || (valid && Number.isNaN(d.getTime()))) return fail("a valid Date", d)
    return d.toISOString()
  }
})

/** `Schema.NumberFromString`: a number as a string (`"NaN"`, `"Infinity"` and `"-Infinity"` included). */
export const numberFromString: Codec<number> = {
  decode: (u) => {
    if (typeof u !== "string") return fail("a string to be decoded into a number", u)
    if (u === "NaN") return NaN
    if (u === "Infinity") return Infinity
    if (u === "-Infinity") return -Infinity
    const n = u.trim() === "" ? NaN : Number(u)
    return Number.isNaN(n) ? fail("a number", u) : n
  },
  encode: (n) => (typeof n === "number" ? String(n) : fail("a number", n))
}

/** `Schema.BigInt`: a bigint as a decimal string. */
export const bigint: Codec<bigint> = {
  decode: (u) => {
    if (typeof u !== "string") return fail("a string to be decoded into a bigint", u)
    if (u.trim() === "") return fail("a bigint", u)
    try {
      return BigInt(u)
    } catch {
      return fail("a bigint", u)
    }
  },
  encode: (b) => (typeof b === "bigint" ? String(b) : fail("a bigint", b))
}

export const array = <T>(item: Codec<T>): Codec<ReadonlyArray<T>> => {
  const map = (u: unknown, f: (x: unknown) => unknown): Array<unknown> => {
    if (!Array.isArray(u)) return fail("an array", u)
    const out = new Array<unknown>(u.length)
    let i = 0
    try {
      for (; i < u.length; i++) out[i] = f(u[i])
    } catch (error) {
      throw at(error, i)
    }
    return out
  }
  return {
    decode: (u) => map(u, item.decode) as Array<T>,
    encode: (a) => map(a, item.encode as (x: unknown) => unknown)
  }
}

/** A fixed tuple, optionally followed by any number of `rest`. */
export const tuple = <T extends ReadonlyArray<unknown>>(
  elements: ReadonlyArray<{ readonly codec: Codec<unknown>; readonly optional: boolean }>,
  rest?: Codec<unknown>
): Codec<T> => {
  const map = (u: unknown, encode: boolean): Array<unknown> => {
    if (!Array.isArray(u)) return fail("an array", u)
    if (rest === undefined && u.length > elements.length) return fail(`a tuple of ${elements.length}`, u)
    const out: Array<unknown> = []
    let i = 0
    try {
      for (; i < elements.length; i++) {
        const element = elements[i]!
        if (i >= u.length) {
          if (element.optional) break
          fail("a value", undefined)
        }
        out.push(encode ? element.codec.encode(u[i]) : element.codec.decode(u[i]))
      }
      if (rest !== undefined) for (; i < u.length; i++) out.push(encode ? rest.encode(u[i]) : rest.decode(u[i]))
    } catch (error) {
      throw at(error, i)
    }
    return out
  }
  return { decode: (u) => map(u, false) as unknown as T, encode: (t) => map(t, true) }
}

export interface Field<T> {
  readonly codec: Codec<T>
  readonly optional: boolean
}

export const field = <T>(codec: Codec<T>): Field<T> => ({ codec, optional: false })
export const optional = <T>(codec: Codec<T>): Field<T> => ({ codec, optional: true })

const has = Object.prototype.hasOwnProperty

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * An object with known properties (excess properties are dropped, as Schema
 * drops them), and optionally index signatures (`Schema.Record`).
 */
export const struct = <T>(
  fields: { readonly [K: string]: Field<unknown> },
  /** The values of `Schema.Record`s with string keys, for the properties not in `fields`. */
  records: ReadonlyArray<Codec<unknown>> = []
): Codec<T> => {
  const names = Object.keys(fields)
  const entries = names.map((name) => [name, fields[name]!] as const)
  const map = (u: unknown, encode: boolean): Record<string, unknown> => {
    if (!isRecord(u)) return fail("an object", u)
    const out: Record<string, unknown> = {}
    let key = ""
    try {
      for (const [name, field] of entries) {
        key = name
        // A missing required property is read as `undefined`, as Schema reads it (`Schema.Unknown` takes it).
        if (field.optional && !has.call(u, name)) continue
        out[name] = encode ? field.codec.encode(u[name]) : field.codec.decode(u[name])
      }
      for (const record of records) {
        for (const name of Object.keys(u)) {
          key = name
          const value = encode ? record.encode(u[name]) : record.decode(u[name])
          // A `__proto__` key (JSON.parse makes it an own property) stays one, instead of becoming the prototype.
          if (name === "__proto__") Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true })
          else out[name] = value
        }
      }
    } catch (error) {
      throw at(error, key)
    }
    return out
  }
  return { decode: (u) => map(u, false) as T, encode: (t) => map(t, true) }
}

/** The first member that decodes (Schema tries union members in order). */
export const union = <T>(members: ReadonlyArray<Codec<unknown>>, expected: string): Codec<T> => {
  const first = (u: unknown, encode: boolean): unknown => {
    for (const member of members) {
      try {
        return encode ? member.encode(u) : member.decode(u)
      } catch (error) {
        if (!(error instanceof CodecError)) throw error
      }
    }
    return fail(expected, u)
  }
  return { decode: (u) => first(u, false) as T, encode: (t) => first(t, true) }
}

/** The constraints a refinement of the contract carries (`protocol/Constraints.ts`). */
export type { Constraints }

const satisfies = (u: unknown, c: Constraints, pattern: RegExp | undefined): boolean => {
  if (typeof u === "number") {
    return !((c.integer === true && !Number.isSafeInteger(u)) ||
      (c.minimum !== undefined && !(u >= c.minimum)) ||
      (c.maximum !== undefined && !(u <= c.maximum)) ||
      (c.exclusiveMinimum !== undefined && !(u > c.exclusiveMinimum)) ||
      (c.exclusiveMaximum !== undefined && !(u < c.exclusiveMaximum)) ||
      (c.multipleOf !== undefined && !Number.isInteger(u / c.multipleOf)))
  }
  const length = typeof u === "string" || Array.isArray(u) ? u.length : undefined
  if (length === undefined) return true
  const min = typeof u === "string" ? c.minLength : c.minItems
  const max = typeof u === "string" ? c.maxLength : c.maxItems
  return !((min !== undefined && length < min) || (max !== undefined && length > max) ||
    (pattern !== undefined && typeof u === "string" && !pattern.test(u)))
}

export const refine = <T>(codec: Codec<T>, constraints: Constraints, expected: string): Codec<T> => {
  const pattern = constraints.pattern === undefined ? undefined : new RegExp(constraints.pattern)
  const check = (t: T): T => (satisfies(t, constraints, pattern) ? t : fail(expected, t))
  return {
    decode: (u) => check(codec.decode(u)),
    encode: (t) => codec.encode(check(t))
  }
}

/**
 * A class of the contract: its fields decoded, then `new Class(fields)`;
 * encoding reads the fields back. It takes any object with the fields, as
 * the class's TypeScript type does (Schema wants an instance of its class).
 */
export const instance = <T, F>(Class: new(fields: F) => T, fields: Codec<F>): Codec<T> => ({
  decode: (u) => new Class(fields.decode(u)),
  encode: (t) => fields.encode(t as unknown as F)
})

/** Defers a codec, for schemas that refer to themselves. */
export const lazy = <T>(f: () => Codec<T>): Codec<T> => {
  let codec: Codec<T> | undefined
  return {
    decode: (u) => (codec ??= f()).decode(u),
    encode: (t) => (codec ??= f()).encode(t)
  }
}
