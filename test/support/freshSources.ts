/**
 * Set-up of every file of `npm test`, which runs its files without isolation
 * (test/vitest.config.ts): the packages (Effect above all) stay loaded in the
 * worker from one file to the next, but the modules of this repository are
 * evaluated afresh for each file, as in a process of its own, so that no state
 * of theirs carries over: the admission's event-loop sampler (a previous
 * file's long synchronous test would read as a late loop and shed the next
 * file's first calls), the fan-out delay, shared timers.
 */
import { vi } from "vitest"

vi.resetModules()
