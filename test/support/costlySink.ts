/**
 * Test support: a `Topic.Sink` whose every write takes `millis` of the event
 * loop (busy-waiting), standing for a subscriber whose socket writes cost
 * that much (many sockets, in effect). `written()` counts its writes.
 */
import type * as Topic from "../../src/topic/Topic.ts"

export const costlySink = (millis: number): { readonly sink: Topic.Sink; readonly written: () => number } => {
  let written = 0
  const sink: Topic.Sink = {
    write: () => {
      const until = performance.now() + millis
      while (performance.now() < until) { /* the write's cost */ }
      written++
      return true
    },
    end: () => {}
  }
  return { sink, written: () => written }
}
