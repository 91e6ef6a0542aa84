/**
 * Micro-benchmark: our SSE frame writer (`event` in src/protocol/Sse.ts)
 * against `@effect/experimental/Sse`'s `encoder.write`, in process.
 *
 * Each round writes 1,000,000 frames (quick: 200,000) with each writer, from
 * inputs built up front (4,096 distinct events, cycled), so neither pays for
 * building its argument. Two shapes:
 * - value: what the server writes for every value of a subscription,
 *   `id:` + one `data:` line of ~100 bytes of JSON, type "message";
 * - multi-line: a typed event whose data spans three lines.
 * Within a round the writers take turns in blocks of 10,000 frames, so that
 * both run under the same conditions (other load on the machine, a hotter or
 * colder heap); the best round of each counts.
 * Before timing, every input is checked to give byte-identical frames
 * (test/protocol/SseEncoder.test.ts says where, and why, they may differ).
 *
 * Run: npx tsx bench/sseEncoder.ts [--quick]
 */
import * as ExperimentalSse from "@effect/experimental/Sse"
import { event } from "../src/protocol/Sse.ts"

const DISTINCT = 4096

interface Input {
  readonly type: string | undefined
  readonly id: string
  readonly data: string
}

const shapes: ReadonlyArray<{ readonly name: string; readonly make: (i: number) => Input }> = [
  {
    name: "value",
    make: (i) => ({
      type: undefined,
      id: `${1_700_000_000_000 + i}-0`,
      data: `{"seq":${i},"symbol":"ACME","price":${(100 + (i % 997) / 10).toFixed(2)},"qty":${i % 500},"side":"buy"}`
    })
  },
  {
    name: "multi-line",
    make: (i) => ({
      type: "tick",
      id: `${i}`,
      data: `{"seq":${i},\n"symbol":"ACME",\n"price":${(100 + (i % 997) / 10).toFixed(2)}}`
    })
  }
]

const BLOCK = 10_000

/** Frames `[from, from + BLOCK)` written with our writer: time taken, characters written. */
const blockOurs = (inputs: ReadonlyArray<Input>, from: number): { ms: number; chars: number } => {
  let chars = 0
  const start = performance.now()
  for (let i = from; i < from + BLOCK; i++) chars += event(inputs[i & (DISTINCT - 1)]!).length
  return { ms: performance.now() - start, chars }
}

/** The same with experimental's encoder. */
const blockTheirs = (inputs: ReadonlyArray<ExperimentalSse.Event>, from: number): { ms: number; chars: number } => {
  let chars = 0
  const start = performance.now()
  for (let i = from; i < from + BLOCK; i++) chars += ExperimentalSse.encoder.write(inputs[i & (DISTINCT - 1)]!).length
  return { ms: performance.now() - start, chars }
}

/** One round: `frames` frames with each writer, in alternating blocks. */
const round = (
  ours: ReadonlyArray<Input>,
  theirs: ReadonlyArray<ExperimentalSse.Event>,
  frames: number
): { ours: number; theirs: number } => {
  let oursMs = 0
  let theirsMs = 0
  for (let from = 0; from < frames; from += BLOCK) {
    const t = blockTheirs(theirs, from)
    const o = blockOurs(ours, from)
    if (o.chars !== t.chars) throw new Error("the writers wrote different amounts")
    theirsMs += t.ms
    oursMs += o.ms
  }
  return { ours: oursMs, theirs: theirsMs }
}

const main = () => {
  const quick = process.argv.includes("--quick")
  const frames = quick ? 200_000 : 1_000_000
  const rounds = quick ? 3 : 7
  console.log(`SSE frame writer, ${frames.toLocaleString("en")} frames a round, best of ${rounds} rounds`)
  for (const shape of shapes) {
    const ours = Array.from({ length: DISTINCT }, (_, i) => shape.make(i))
    const theirs: Array<ExperimentalSse.Event> = ours.map((e) => ({
      _tag: "Event",
      event: e.type ?? "message",
      id: e.id,
      data: e.data
    }))
    for (let i = 0; i < DISTINCT; i++) {
      if (event(ours[i]!) !== ExperimentalSse.encoder.write(theirs[i]!)) {
        throw new Error(`${shape.name}: the writers disagree on input ${i}`)
      }
    }
    round(ours, theirs, frames)
    let oursBest = Infinity
    let theirsBest = Infinity
    for (let r = 0; r < rounds; r++) {
      const times = round(ours, theirs, frames)
      oursBest = Math.min(oursBest, times.ours)
      theirsBest = Math.min(theirsBest, times.theirs)
    }
    const ns = (ms: number) => ((ms * 1e6) / frames).toFixed(1).padStart(6)
    console.log(
      `  ${shape.name.padEnd(10)} ours ${ns(oursBest)} ns/frame   experimental ${ns(theirsBest)} ns/frame   ` +
        `experimental / ours ${(theirsBest / oursBest).toFixed(2)}`
    )
  }
}

main()
