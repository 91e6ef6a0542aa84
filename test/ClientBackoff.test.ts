import { afterEach, describe, expect, it, vi } from "vitest"
import * as Backoff from "../client/internal/Backoff.ts"

describe("a client's wait before trying again", () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it("after a 503 with Retry-After: the time asked for, plus the jittered backoff, so clients refused together come back spread out", () => {
    const random = vi.spyOn(Math, "random")
    random.mockReturnValue(0)
    expect(Backoff.retryWait(1, 500, 30_000, 1000)).toBe(1000)
    random.mockReturnValue(0.5)
    expect(Backoff.retryWait(1, 500, 30_000, 1000)).toBe(1250)
    expect(Backoff.retryWait(3, 500, 30_000, 1000)).toBe(2000) // ceiling 500 · 2² = 2000, half of it
    random.mockReturnValue(0.999)
    expect(Backoff.retryWait(1, 500, 30_000, 1000)).toBeCloseTo(1499.5)
  })

  it("without Retry-After: full jitter only; a Retry-After past maxDelayMs counts as maxDelayMs", () => {
    const random = vi.spyOn(Math, "random").mockReturnValue(0.5)
    expect(Backoff.retryWait(2, 500, 30_000, undefined)).toBe(500)
    expect(Backoff.retryWait(20, 500, 30_000, undefined)).toBe(15_000)
    random.mockReturnValue(0)
    expect(Backoff.retryWait(1, 500, 5_000, 3_600_000)).toBe(5_000)
  })

  it("reads Retry-After in seconds, and nothing else", () => {
    const of = (value: string) => Backoff.retryAfterOf(new Response(null, { status: 503, headers: { "retry-after": value } }))
    expect(of("1")).toBe(1000)
    expect(of(" 30 ")).toBe(30_000)
    expect(of("Wed, 21 Oct 2015 07:28:00 GMT")).toBeUndefined()
    expect(of("-1")).toBeUndefined()
  })
})
