/**
 * Micro-benchmark: our SSE parser vs the `eventsource-parser` package.
 *
 * Input: ~50 MB (quick: ~8 MB) of ~100-byte events shaped like the wire
 * protocol (`id:` + one `data:` JSON line, a heartbeat comment now and then),
 * as UTF-8 bytes in 64 KiB chunks. Both parsers get the same bytes: ours
 * through `feedBytes`, the peer through a streaming `TextDecoder` and `feed`
 * (it takes text only), so decoding is counted for both. A text-only run
 * (the same chunks decoded up front) is reported alongside: it isolates the
 * parsing, since most of the bytes-in difference is decoding (our `feedBytes`
 * uses one-shot `TextDecoder#decode`, much faster on Node than `stream: true`).
 *
 * Run: npx tsx bench/parser.ts [--quick]
 */
import { pathToFileURL } from "node:url"
import { createParser } from "eventsource-parser"
import { makeSseParser } from "../src/protocol/SseParser.ts"

const CHUNK = 64 * 1024

const makeInput = (targetBytes: number): Uint8Array => {
  const parts: Array<string> = []
  let size = 0
  for (let i = 0; size < targetBytes; i++) {
    let event = `id: ${i}\ndata: {"seq":${i},"symbol":"ACME","price":${(100 + (i % 997) / 10).toFixed(2)},"qty":${i % 500},"side":"buy"}\n\n`
    if (i % 1000 === 999) event += ": heartbeat\n\n"
    parts.push(event)
    size += event.length
  }
  return new TextEncoder().encode(parts.join(""))
}

const chunksOf = (bytes: Uint8Array): Array<Uint8Array> => {
  const chunks: Array<Uint8Array> = []
  for (let i = 0; i < bytes.length; i += CHUNK) chunks.push(bytes.subarray(i, i + CHUNK))
  return chunks
}

interface Run {
  readonly events: number
  readonly dataChars: number
}

const ourBytes = (chunks: ReadonlyArray<Uint8Array>): Run => {
  let events = 0
  let dataChars = 0
  const parser = makeSseParser({
    onEvent: (e) => {
      events++
      dataChars += e.data.length
    }
  })
  for (const chunk of chunks) parser.feedBytes(chunk)
  parser.end()
  return { events, dataChars }
}

const peerBytes = (chunks: ReadonlyArray<Uint8Array>): Run => {
  let events = 0
  let dataChars = 0
  const parser = createParser({
    onEvent: (e) => {
      events++
      dataChars += e.data.length
    }
  })
  const decoder = new TextDecoder()
  for (const chunk of chunks) parser.feed(decoder.decode(chunk, { stream: true }))
  return { events, dataChars }
}

const ourText = (chunks: ReadonlyArray<string>): Run => {
  let events = 0
  let dataChars = 0
  const parser = makeSseParser({
    onEvent: (e) => {
      events++
      dataChars += e.data.length
    }
  })
  for (const chunk of chunks) parser.feed(chunk)
  parser.end()
  return { events, dataChars }
}

const peerText = (chunks: ReadonlyArray<string>): Run => {
  let events = 0
  let dataChars = 0
  const parser = createParser({
    onEvent: (e) => {
      events++
      dataChars += e.data.length
    }
  })
  for (const chunk of chunks) parser.feed(chunk)
  return { events, dataChars }
}

interface Measured {
  readonly mbps: number
  readonly run: Run
}

/**
 * Best MB/s (10^6 bytes per second) of each contender over `iterations`
 * rounds, after one warm-up round; the contenders take turns in every round
 * so that neither always runs on a hotter or colder heap.
 */
const measurePair = <A>(
  input: A,
  bytes: number,
  iterations: number,
  ours: (input: A) => Run,
  peer: (input: A) => Run
): { ours: Measured; peer: Measured } => {
  let oursRun = ours(input)
  let peerRun = peer(input)
  let oursBest = Infinity
  let peerBest = Infinity
  for (let i = 0; i < iterations; i++) {
    let start = performance.now()
    peerRun = peer(input)
    peerBest = Math.min(peerBest, performance.now() - start)
    start = performance.now()
    oursRun = ours(input)
    oursBest = Math.min(oursBest, performance.now() - start)
  }
  const mbps = (ms: number) => bytes / 1e6 / (ms / 1000)
  return { ours: { mbps: mbps(oursBest), run: oursRun }, peer: { mbps: mbps(peerBest), run: peerRun } }
}

const sameRun = (a: Run, b: Run, what: string): void => {
  if (a.events !== b.events || a.dataChars !== b.dataChars) {
    throw new Error(`${what}: parsers disagree: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`)
  }
}

export interface ParserBenchResult {
  /** Our MB/s, bytes in (decoding included). */
  readonly ours: number
  /** eventsource-parser's MB/s, bytes in (streaming TextDecoder + feed). */
  readonly peer: number
  /** ours / peer. */
  readonly ratio: number
}

export const runParserBench = async (opts: { quick: boolean }): Promise<ParserBenchResult> => {
  const { result } = await runDetailed(opts)
  return result
}

const runDetailed = async (opts: { quick: boolean }) => {
  const bytes = makeInput(opts.quick ? 8e6 : 50e6)
  const chunks = chunksOf(bytes)
  const iterations = opts.quick ? 3 : 7

  const { ours, peer } = measurePair(chunks, bytes.length, iterations, ourBytes, peerBytes)
  sameRun(ours.run, peer.run, "bytes")

  const decoder = new TextDecoder()
  const textChunks = chunks.map((c) => decoder.decode(c, { stream: true }))
  const text = measurePair(textChunks, bytes.length, iterations, ourText, peerText)
  const oursT = text.ours
  const peerT = text.peer
  sameRun(oursT.run, peerT.run, "text")

  const result: ParserBenchResult = { ours: ours.mbps, peer: peer.mbps, ratio: ours.mbps / peer.mbps }
  return {
    result,
    detail: {
      inputBytes: bytes.length,
      events: ours.run.events,
      text: { ours: oursT.mbps, peer: peerT.mbps, ratio: oursT.mbps / peerT.mbps }
    }
  }
}

const main = async () => {
  const quick = process.argv.includes("--quick")
  const { result, detail } = await runDetailed({ quick })
  const f = (n: number) => n.toFixed(1).padStart(7)
  console.log(
    `SSE parser, ${(detail.inputBytes / 1e6).toFixed(1)} MB, ${detail.events} events, ${CHUNK / 1024} KiB chunks (best of runs)`
  )
  console.log(`  bytes in:  ours ${f(result.ours)} MB/s   eventsource-parser ${f(result.peer)} MB/s   ratio ${result.ratio.toFixed(2)}`)
  console.log(
    `  text in:   ours ${f(detail.text.ours)} MB/s   eventsource-parser ${f(detail.text.peer)} MB/s   ratio ${detail.text.ratio.toFixed(2)}`
  )
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main()
}
