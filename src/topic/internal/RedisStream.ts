/**
 * A Redis Stream as `RedisTopic` uses it: the publish script that gives
 * values their offsets and appends them, entry ids (`0-<offset>`), and
 * reading the replies node-redis hands over (RESP2 arrays or RESP3 maps).
 */

/**
 * KEYS: meta, stream[, fence]. ARGV: candidate epoch, maxlen, time (ms),
 * fence token ("" without a fence), values...
 * A meta created here is a new incarnation: a stream left without one is
 * removed first, so offsets and entry ids start again together. Values are
 * appended only while the fence key holds the token (else the error
 * `FENCED`, nothing appended, no offset taken).
 * Returns { epoch, last offset }; with no value, only that: the current
 * incarnation (created if missing) and its last offset.
 */
export const publishScript = `
local meta, stream = KEYS[1], KEYS[2]
if redis.call('HSETNX', meta, 'epoch', ARGV[1]) == 1 then redis.call('DEL', stream) end
local epoch = redis.call('HGET', meta, 'epoch')
local n = #ARGV - 4
if n == 0 then return {epoch, tostring(redis.call('HINCRBY', meta, 'offset', 0))} end
if KEYS[3] and redis.call('GET', KEYS[3]) ~= ARGV[4] then
  return redis.error_reply('FENCED the lease ' .. KEYS[3] .. ' is not held by this publisher')
end
local last = redis.call('HINCRBY', meta, 'offset', n)
local first = last - n
for i = 1, n do
  redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], '0-' .. (first + i), 'e', epoch, 't', ARGV[3], 'v', ARGV[4 + i])
end
return {epoch, tostring(last)}
`

/** The script's SHA-1, for `EVALSHA`. */
export const publishSha: Promise<string> = (async () => {
  const { createHash } = await import("node:crypto")
  return createHash("sha1").update(publishScript).digest("hex")
})()

/** The id of the entry at `offset`: offsets are the sequence part of ids `0-<offset>`. */
export const idOf = (offset: number): string => `0-${offset}`

/** A reply as node-redis hands it over (RESP2 or RESP3). */
export type Raw = unknown

/** An entry as stored: its offset, incarnation, publish time and value text. */
export interface RawEntry {
  readonly offset: number
  readonly epoch: string | undefined
  readonly at: number
  /** Undefined for an entry not written by a RedisTopic. */
  readonly text: string | undefined
}

/** A reply as text. */
export const text = (raw: Raw): string => (typeof raw === "string" ? raw : Buffer.isBuffer(raw) ? raw.toString("utf8") : String(raw))

/** One `[id, [field, value, ...]]` stream entry. */
const parseEntry = (raw: Raw): RawEntry | undefined => {
  if (!Array.isArray(raw) || raw.length < 2) return undefined
  const id = text(raw[0])
  const dash = id.indexOf("-")
  const offset = Number(id.slice(dash + 1))
  const fields = raw[1]
  let epoch: string | undefined
  let at = 0
  let value: string | undefined
  if (Array.isArray(fields)) {
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const name = text(fields[i])
      if (name === "v") value = text(fields[i + 1])
      else if (name === "t") at = Number(text(fields[i + 1]))
      else if (name === "e") epoch = text(fields[i + 1])
    }
  } else if (typeof fields === "object" && fields !== null) {
    const record = fields as Record<string, Raw>
    if (record["v"] !== undefined) value = text(record["v"])
    if (record["t"] !== undefined) at = Number(text(record["t"]))
    if (record["e"] !== undefined) epoch = text(record["e"])
  }
  if (!Number.isFinite(offset)) return undefined
  return { offset, epoch, at, text: value }
}

/** An `XRANGE` reply (entries that cannot be read are left out). */
export const parseEntries = (raw: Raw): Array<RawEntry> => {
  const out: Array<RawEntry> = []
  if (!Array.isArray(raw)) return out
  for (const item of raw) {
    const entry = parseEntry(item)
    if (entry !== undefined) out.push(entry)
  }
  return out
}

/** An `XREAD` reply for one stream (RESP2: `[[key, entries]]`, RESP3: `{ key: entries }`). */
export const parseRead = (raw: Raw): Array<RawEntry> => {
  if (raw === null || raw === undefined) return []
  if (Array.isArray(raw)) {
    const first = raw[0]
    return Array.isArray(first) ? parseEntries(first[1]) : []
  }
  if (raw instanceof Map) {
    for (const value of raw.values()) return parseEntries(value)
    return []
  }
  if (typeof raw === "object") {
    for (const value of Object.values(raw as Record<string, Raw>)) return parseEntries(value)
  }
  return []
}

export const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** The reader's loop: whether it is stopped, and how to cut its backoff short. */
export interface Control {
  stopped: boolean
  /** Ends the current backoff at once (on stop). */
  wake: () => void
}

/** Waits `millis`, or less when the reader stops. */
export const sleep = (millis: number, control: Control): Promise<void> =>
  new Promise<void>((resolve) => {
    if (control.stopped) return resolve()
    const timer = setTimeout(done, millis)
    function done() {
      clearTimeout(timer)
      control.wake = () => {}
      resolve()
    }
    control.wake = done
  })
