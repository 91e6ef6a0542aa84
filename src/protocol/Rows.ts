/**
 * What every export format is made of: a streaming row encoder (the server
 * side) and an incremental row decoder (the client side), and the two ways a
 * body can be wrong.
 *
 * One truncation rule for every format and every client: the server always
 * ends a body completely (the last NDJSON line and CSV record with their line
 * break, the JSON array with its `]`), so a body that stops short of that is
 * `RowsTruncated`, never a shorter success.
 */

/** Streaming encoder: `header` once, `rows` per chunk, `footer` once after the last row. */
export interface RowEncoder {
  readonly header: string
  rows(rows: ReadonlyArray<unknown>): string
  readonly footer: string
}

/** Turns pieces of text into rows; `end` checks that the document is complete. */
export interface RowDecoder<R> {
  /** The rows completed by this piece. Throws `RowSyntaxError`. */
  push(text: string): Array<R>
  /** The end of the body. Throws `RowsTruncated` when the body stopped short of its end. */
  end(): Array<R>
}

/** The body is not the format it claims to be. */
export class RowSyntaxError extends Error {
  readonly _tag: "RowSyntaxError" | "RowsTruncated" = "RowSyntaxError"
}

/** The body ended before the format's own end: a cut transfer. */
export class RowsTruncated extends RowSyntaxError {
  override readonly _tag = "RowsTruncated"
}

/** One JSON document, or a `RowSyntaxError` naming its start. */
export const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch (cause) {
    throw new RowSyntaxError(`Not valid JSON: ${text.slice(0, 100)}`, { cause })
  }
}

/** A row decoder fed with bytes (streaming UTF-8 decode: a character split across pieces is kept whole). */
export interface RowByteDecoder<R> {
  push(bytes: Uint8Array): Array<R>
  end(): Array<R>
}

export const fromBytes = <R>(rows: RowDecoder<R>): RowByteDecoder<R> => {
  const text = new TextDecoder()
  return {
    push: (bytes) => rows.push(text.decode(bytes, { stream: true })),
    end: () => {
      const last = rows.push(text.decode())
      const rest = rows.end()
      return rest.length === 0 ? last : [...last, ...rest]
    }
  }
}
