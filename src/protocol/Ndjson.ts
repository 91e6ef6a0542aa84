/**
 * NDJSON: one JSON document per line, each line ended by `\n`. Blank lines
 * are skipped; a CR before the LF is tolerated.
 */
import { parseJson, type RowDecoder, type RowEncoder, RowsTruncated } from "./Rows.ts"

const jsonOf = (row: unknown): string => JSON.stringify(row ?? null)

/** `json` gives the text of a row (default: `JSON.stringify`; a server passes its compiled encoder). */
export const encoder = (json: (row: unknown) => string = jsonOf): RowEncoder => ({
  header: "",
  rows(rows) {
    let out = ""
    for (let i = 0; i < rows.length; i++) out += json(rows[i]) + "\n"
    return out
  },
  footer: ""
})

/** Only the line being read is buffered, as fragments joined once its end arrives. */
export const decoder = (): RowDecoder<unknown> => {
  let pending: Array<string> = []
  const line = (text: string, out: Array<unknown>) => {
    const trimmed = text.endsWith("\r") ? text.slice(0, -1) : text
    if (trimmed.trim() !== "") out.push(parseJson(trimmed))
  }
  return {
    push(text) {
      const out: Array<unknown> = []
      let start = 0
      let newline = text.indexOf("\n")
      while (newline !== -1) {
        let piece = text.slice(start, newline)
        if (pending.length > 0) {
          pending.push(piece)
          piece = pending.join("")
          pending = []
        }
        line(piece, out)
        start = newline + 1
        newline = text.indexOf("\n", start)
      }
      if (start < text.length) pending.push(text.slice(start))
      return out
    },
    end() {
      if (pending.length > 0) {
        pending = []
        throw new RowsTruncated("NDJSON: truncated: the body ended inside a line")
      }
      return []
    }
  }
}
