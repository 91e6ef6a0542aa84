/**
 * `Content-Disposition: attachment` with an ASCII `filename=` fallback and an
 * RFC 5987 / RFC 6266 `filename*=` for the real name. Names come from
 * handlers and payloads, so everything that could inject a header or a path
 * is removed: control characters (CR and LF among them), quotes, slashes
 * and backslashes.
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
