/**
 * `Content-Disposition: attachment`, both halves. The server builds it with
 * an ASCII `filename=` fallback and an RFC 5987 / RFC 6266 `filename*=` for
 * the real name; clients read the name back (`filename*=` preferred).
 *
 * Names come from handlers and payloads, so everything that could inject a
 * header or a path is removed: control characters (CR and LF among them),
 * quotes, slashes and backslashes.
 */

const unsafe = /[\u0000-\u001f\u007f"\\/]/g

/** The name as a user would see it, minus what is unsafe in a header or a path. */
export const sanitize = (filename: string): string => {
  const cleaned = filename.replace(unsafe, "_").replace(/^[.\s]+/, "").trim()
  return cleaned === "" ? "download" : cleaned.slice(0, 255)
}

/** Printable ASCII only: every other character becomes `_`. */
export const asciiFallback = (filename: string): string =>
  sanitize(filename).normalize("NFKD").replace(/[\u0300-\u036f]/g, "").replace(/[^\x20-\x7e]/g, "_")

/** RFC 5987 `value-chars`: attr-char stays, everything else is percent-encoded UTF-8. */
const rfc5987 = (value: string): string =>
  encodeURIComponent(value).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

export const attachment = (filename: string): string => {
  const safe = sanitize(filename)
  return `attachment; filename="${asciiFallback(safe)}"; filename*=UTF-8''${rfc5987(safe)}`
}

/** The file name of a `Content-Disposition` header: `filename*=UTF-8''…` when present, else `filename=`. */
export const filenameOf = (header: string | null | undefined): string | undefined => {
  if (header === null || header === undefined) return undefined
  const extended = /(?:^|;)\s*filename\*\s*=\s*([^';\s]*)'[^']*'([^;\s]*)/i.exec(header)
  if (extended !== null) {
    const charset = (extended[1] ?? "").toLowerCase()
    const value = extended[2] ?? ""
    try {
      if (charset === "utf-8" || charset === "") return decodeURIComponent(value)
      if (charset === "iso-8859-1") return unescape(value)
    } catch {
      // malformed percent-encoding: fall back to filename=
    }
  }
  const plain = /(?:^|;)\s*filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/i.exec(header)
  if (plain === null) return undefined
  const quoted = plain[1]
  return quoted !== undefined ? quoted.replace(/\\(.)/g, "$1") : plain[2]
}
