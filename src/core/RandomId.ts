/** Unguessable ids from the platform's cryptographic random source (Node and browsers alike). */

/** `bytes` random bytes as 2 base-36 digits each. */
export const randomId = (bytes: number): string => {
  const random = new Uint8Array(bytes)
  globalThis.crypto.getRandomValues(random)
  let id = ""
  for (const byte of random) id += byte.toString(36).padStart(2, "0")
  return id
}
