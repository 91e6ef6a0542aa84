/** A topic's options as its in-memory core (`TopicState`) takes them. */
import * as Duration from "effect/Duration"
import type { Options } from "./Model.ts"
import type { Settings } from "./TopicState.ts"

/** What the in-memory core (`TopicState`) needs of `options`: the replay window in plain numbers, the defaults applied. */
export const settingsOf = <A>(options: Options<A>): Settings<A> => {
  const replay = options.replay
  return {
    key: options.key,
    replayCount: replay === undefined ? 0 : Math.max(0, Math.floor(replay.count ?? 1000)),
    replayAgeMillis: replay?.age === undefined ? Infinity : Duration.toMillis(Duration.decode(replay.age)),
    pace: options.pace !== false
  }
}
