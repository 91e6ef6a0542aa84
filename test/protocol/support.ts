/**
 * Chunk splits for round-trip tests: a body cut in two at every offset, and
 * cut at random multi-splits, fed piece by piece to an incremental decoder.
 */
import type { RowDecoder } from "../../src/protocol/Rows.ts"
import * as Rows from "../../src/protocol/Rows.ts"

export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

interface Sliceable<T> {
  readonly length: number
  slice(start: number, end?: number): T
}

/** `whole` (text or bytes) cut at `offsets` (taken modulo its length). */
const cutAt = <T extends Sliceable<T>>(whole: T, offsets: ReadonlyArray<number>): Array<T> => {
  const cuts = [...new Set(offsets.map((o) => o % (whole.length + 1)))].sort((a, b) => a - b)
  const pieces: Array<T> = []
  let from = 0
  for (const cut of cuts) {
    pieces.push(whole.slice(from, cut))
    from = cut
  }
  pieces.push(whole.slice(from))
  return pieces
}

export const splitAt = (text: string, offsets: ReadonlyArray<number>): Array<string> => cutAt(text, offsets)

export const splitBytesAt = (bytes: Uint8Array, offsets: ReadonlyArray<number>): Array<Uint8Array> =>
  cutAt<Uint8Array>(bytes, offsets)

/** Every way to cut `bytes` in two, the cut before the first byte and after the last included. */
export const everySplit = (bytes: Uint8Array): Array<Array<Uint8Array>> =>
  Array.from({ length: bytes.length + 1 }, (_, k) => [bytes.subarray(0, k), bytes.subarray(k)])

export const feedAll = <R>(decoder: RowDecoder<R>, pieces: ReadonlyArray<string>): Array<R> => {
  const out: Array<R> = []
  for (const piece of pieces) out.push(...decoder.push(piece))
  out.push(...decoder.end())
  return out
}

export const feedBytes = <R>(decoder: RowDecoder<R>, pieces: ReadonlyArray<Uint8Array>): Array<R> => {
  const bytes = Rows.fromBytes(decoder)
  const out: Array<R> = []
  for (const piece of pieces) out.push(...bytes.push(piece))
  out.push(...bytes.end())
  return out
}

/** The text an encoder writes for `rows` sent in `chunks` of the given sizes. */
export const encodeAll = (
  encoder: { readonly header: string; rows(rows: ReadonlyArray<unknown>): string; readonly footer: string },
  rows: ReadonlyArray<unknown>,
  chunkSize: number
): string => {
  let text = encoder.header
  for (let i = 0; i < rows.length; i += chunkSize) text += encoder.rows(rows.slice(i, i + chunkSize))
  return text + encoder.footer
}
