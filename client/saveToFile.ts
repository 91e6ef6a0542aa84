/**
 * Writes a download (or an export's bytes) to a file, in Node. Not part of the
 * browser bundle: the only client module that imports Node built-ins.
 *
 * The transfer streams through `stream/promises.pipeline`, so the network is
 * read only as fast as the disk accepts it. When the transfer fails (a
 * truncated body, an abort) the partial file is removed and the promise
 * rejects with the download's error (a `ClientError`).
 */
import { createWriteStream } from "node:fs"
import { rm } from "node:fs/promises"
import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import type { ReadableStream as NodeReadableStream } from "node:stream/web"
import type { Download } from "./Transfer.ts"

export const saveToFile = async (download: Download, path: string): Promise<void> => {
  try {
    await pipeline(
      Readable.fromWeb(download.body as unknown as NodeReadableStream<Uint8Array>),
      createWriteStream(path)
    )
  } catch (error) {
    await rm(path, { force: true }).catch(() => undefined)
    throw error
  }
}
