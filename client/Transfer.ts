/**
 * Transfers: a download (raw bytes) or an export (rows in a file format),
 * read on demand with progress, and an export's rows decoded with the
 * contract's row schema by the format's incremental decoder. A transfer cut
 * short — fewer bytes than `Content-Length`, a failed connection, a body that
 * stops before its format's end — is a `ClientError("Truncated")`, never a
 * shorter success.
 */
import * as ContentDisposition from "../src/protocol/ContentDisposition.ts"
import * as ExportFormat from "../src/protocol/ExportFormat.ts"
import * as Names from "../src/protocol/Names.ts"
import * as Rows from "../src/protocol/Rows.ts"
import { ClientError, ofRows } from "./ClientError.ts"
import * as ClientProcedure from "./ClientProcedure.ts"
import * as CsvRows from "./CsvRows.ts"
import { type DownloadProgress, withProgress } from "./DownloadProgress.ts"

export interface DownloadOptions {
  /** Aborting cancels the transfer: the promise rejects, or `body` errors, with `ClientError("Aborted")`. */
  readonly signal?: AbortSignal
  /** Called after every chunk of the body is read. */
  readonly onProgress?: (progress: DownloadProgress) => void
}

export interface Download {
  /** From `Content-Disposition` (`filename*=` preferred over `filename=`). */
  readonly filename: string | undefined
  readonly contentType: string
  /** From `Content-Length`; `undefined` when unknown (or the body is content-encoded). */
  readonly size: number | undefined
  /** The bytes, read on demand; errors with `ClientError("Truncated")` when the transfer is cut short. */
  readonly body: ReadableStream<Uint8Array>
  /** Reads the whole body (use either `body` or `blob`, once). */
  readonly blob: () => Promise<Blob>
}

export interface ExportOptions<F extends string = ExportFormat.ExportFormat> extends DownloadOptions {
  /** Default: the procedure's default format. */
  readonly format?: F
}

/**
 * An export: the file as a `Download`, and its rows decoded with the
 * contract's row schema by `for await` (json, ndjson, and csv when the
 * contract declares `columns`). Use either the rows or the bytes, once.
 */
export interface Export<A> extends Download, AsyncIterable<A> {}

/** Bytes the body will hold, from `Content-Length`; `undefined` when unknown or counted before a content coding. */
export const sizeOf = (headers: Headers): number | undefined => {
  const encoding = headers.get(Names.headers.contentEncoding)
  // With a content coding the length counts encoded bytes, not the bytes read.
  if (encoding !== null && encoding.trim().toLowerCase() !== "identity") return undefined
  const length = headers.get(Names.headers.contentLength)
  if (length === null || !/^\s*\d+\s*$/.test(length)) return undefined
  return Number(length)
}

const toDownload = (
  procedure: ClientProcedure.ClientProcedure,
  response: Response,
  options: DownloadOptions | undefined
): Download => {
  const size = sizeOf(response.headers)
  const contentType = response.headers.get(Names.headers.contentType) ?? Names.contentTypes.octetStream
  const signal = options?.signal
  const source = response.body ?? new ReadableStream<Uint8Array>({ start: (controller) => controller.close() })
  const body = withProgress(source, {
    total: size,
    onProgress: options?.onProgress,
    failure: (reason, received, cause) => {
      if (signal?.aborted) return new ClientError("Aborted", `${procedure.tag}: aborted`, { cause: signal.reason })
      return new ClientError(
        "Truncated",
        reason === "ended"
          ? `${procedure.tag}: the transfer ended after ${received} of ${size} bytes`
          : `${procedure.tag}: the connection failed after ${received} bytes${size === undefined ? "" : ` of ${size}`}`,
        cause === undefined ? undefined : { cause }
      )
    }
  })
  return {
    filename: ContentDisposition.filenameOf(response.headers.get(Names.headers.contentDisposition)),
    contentType,
    size,
    body,
    blob: async () => {
      const reader = body.getReader()
      const parts: Array<Uint8Array> = []
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        parts.push(value)
      }
      return new Blob(parts as Array<BlobPart>, { type: contentType })
    }
  }
}

export const download = async (
  procedure: ClientProcedure.ClientProcedure,
  transport: ClientProcedure.Transport,
  payload: unknown,
  options?: DownloadOptions
): Promise<Download> => {
  ClientProcedure.expectKind(procedure, ["download", "export"], "download")
  const response = await ClientProcedure.post(procedure, transport, ClientProcedure.encodePayload(procedure, payload), {
    signal: options?.signal,
    accept: procedure.kind === "download" ? procedure.contentType ?? "*/*" : "*/*"
  })
  return toDownload(procedure, response, options)
}

/** The raw rows of an export body in `format`, before the row schema decodes them. */
const rowDecoderOf = (procedure: ClientProcedure.ClientProcedure, format: string): Rows.RowDecoder<unknown> => {
  switch (format) {
    case "json":
    case "ndjson":
      return ExportFormat.jsonDecoder(format)
    case "csv":
      if (procedure.csv === undefined) {
        throw new ClientError("Protocol", `${procedure.tag}: CSV rows can be decoded only when the contract declares columns`)
      }
      return CsvRows.decoder(procedure.csv)
    default:
      throw new ClientError("Protocol", `${procedure.tag}: unknown export format ${format}`)
  }
}

export const exportRows = async (
  procedure: ClientProcedure.ClientProcedure,
  transport: ClientProcedure.Transport,
  payload: unknown,
  options?: ExportOptions<string>
): Promise<Export<unknown>> => {
  const tag = procedure.tag
  ClientProcedure.expectKind(procedure, ["export"], "export")
  const formats: ReadonlyArray<string> = procedure.formats ?? ExportFormat.formats
  const format = options?.format ?? procedure.defaultFormat ?? formats[0]!
  if (!formats.includes(format)) {
    throw new ClientError("Protocol", `${tag}: format ${format} is not one of ${formats.join(", ")}`)
  }
  const response = await ClientProcedure.post(procedure, transport, ClientProcedure.encodePayload(procedure, payload), {
    signal: options?.signal,
    query: `?${Names.query.format}=${encodeURIComponent(format)}`,
    accept: "*/*"
  })
  const file = toDownload(procedure, response, options)
  async function* rows(): AsyncGenerator<unknown, void, undefined> {
    const reader = file.body.getReader()
    let finished = false
    try {
      const decoder = Rows.fromBytes(rowDecoderOf(procedure, format))
      for (;;) {
        const { done, value } = await reader.read()
        let raw: Array<unknown>
        try {
          raw = done ? decoder.end() : decoder.push(value)
        } catch (error) {
          throw ofRows(tag, error)
        }
        for (const row of raw) yield ClientProcedure.decodeOrThrow(procedure.decodeSuccess, row, tag, "a row")
        if (done) {
          finished = true
          return
        }
      }
    } finally {
      if (!finished) reader.cancel().catch(() => undefined)
      reader.releaseLock()
    }
  }
  return { ...file, [Symbol.asyncIterator]: rows }
}
