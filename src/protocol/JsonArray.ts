/**
 * A JSON array streamed element by element: `[`, one element per line
 * separated by commas, `]` and a final newline.
 */
import { parseJson, type RowDecoder, type RowEncoder, RowSyntaxError, RowsTruncated } from "./Rows.ts"

const jsonOf = (row: unknown): string => JSON.stringify(row ?? null)

/** `json` gives the text of a row (default: `JSON.stringify`; a server passes its compiled encoder). */
export const encoder = (json: (row: unknown) => string = jsonOf): RowEncoder => {
  let first = true
  return {
    header: "[",
    rows(rows) {
      let out = ""
      for (let i = 0; i < rows.length; i++) {
        out += first ? "\n" : ",\n"
        first = false
        out += json(rows[i])
      }
      return out
    },
    get footer() {
      return first ? "]\n" : "\n]\n"
    }
  }
}

const isJsonWhitespace = (c: number): boolean => c === 32 || c === 10 || c === 13 || c === 9

/**
 * Elements of a top-level JSON array whose text arrives in pieces. Tracks
 * string, escape and nesting state to find the commas between elements;
 * only the element being read is buffered.
 */
export const decoder = (): RowDecoder<unknown> => {
  let phase: "before" | "inside" | "after" = "before"
  let pending = ""
  let depth = 0
  let inString = false
  let escaped = false
  let count = 0

  const element = (text: string, closing: boolean, out: Array<unknown>): void => {
    const trimmed = text.trim()
    if (trimmed === "") {
      if (closing && count === 0) return
      throw new RowSyntaxError("JSON array: missing element")
    }
    out.push(parseJson(trimmed))
    count++
  }

  return {
    push(text) {
      const out: Array<unknown> = []
      const length = text.length
      let i = 0
      if (phase === "before") {
        while (i < length && isJsonWhitespace(text.charCodeAt(i))) i++
        if (i === length) return out
        if (text.charCodeAt(i) !== 91) throw new RowSyntaxError("JSON export: expected an array")
        phase = "inside"
        i++
      }
      let start = i
      while (phase === "inside" && i < length) {
        const c = text.charCodeAt(i)
        if (inString) {
          if (escaped) escaped = false
          else if (c === 92) escaped = true // \
          else if (c === 34) inString = false // "
        } else if (c === 34) {
          inString = true
        } else if (c === 123 || c === 91) { // { [
          depth++
        } else if (c === 125 || c === 93) { // } ]
          if (depth === 0) {
            if (c === 125) throw new RowSyntaxError("JSON array: unbalanced }")
            element(pending + text.slice(start, i), true, out)
            pending = ""
            phase = "after"
            start = i + 1
          } else {
            depth--
          }
        } else if (c === 44 && depth === 0) { // ,
          element(pending + text.slice(start, i), false, out)
          pending = ""
          start = i + 1
        }
        i++
      }
      if (phase === "inside") {
        pending += text.slice(start)
      } else {
        for (let j = start; j < length; j++) {
          if (!isJsonWhitespace(text.charCodeAt(j))) throw new RowSyntaxError("JSON export: text after the array")
        }
      }
      return out
    },
    end() {
      if (phase !== "after") throw new RowsTruncated("JSON export: truncated: the array is not closed")
      return []
    }
  }
}
