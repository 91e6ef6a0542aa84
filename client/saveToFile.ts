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
  const file = createWriteStream(path)
  try {
    await pipeline(Readable.fromWeb(download.body as unknown as NodeReadableStream<Uint8Array>), file)
  } catch (error) {
    // The file may still be opening when the transfer fails: removed once it is closed, not before.
    if (!file.closed) await new Promise<void>((resolve) => file.once("close", () => resolve()))
    await rm(path, { force: true }).catch(() => undefined)
    throw error
  }
}
