/**
 * The one wait on a condition that the tests share (test/support/http.ts,
 * test/support/redis.ts and test/soak/harness.ts re-export it): resolves once
 * `condition` holds, checked at once and then after pauses growing from 1 ms to
 * 50 ms (quick to see a condition that holds soon, cheap on one that takes
 * seconds); rejects, naming `what`, once `timeoutMs` have passed without it.
 * `timeoutMs` bounds a hang so that it fails with a message instead of at the
 * test's timeout; it is never an assertion on how long something took.
 */
export const eventually = async (
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
  what = "a condition"
): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  let pause = 1
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, pause))
    pause = Math.min(pause * 2, 50)
  }
}
