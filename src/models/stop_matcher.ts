/**
 * {@linkcode StopMatcher}: stop strings over streamed text. Text is released only when no stop string can
 * start inside it, so a stop string is never emitted in part; on a match the text before it is released
 * and the row ends.
 *
 * @module
 */

/** What {@linkcode StopMatcher.push} releases. */
export interface StopResult {
  /** Text safe to emit. */
  text: string;
  /** Whether a stop string was found (the row ends; nothing after it is emitted). */
  stopped: boolean;
}

/** Holds back streamed text that could be the start of a stop string. */
export class StopMatcher {
  #stops: readonly string[];
  #pending = "";
  #stopped = false;

  /**
   * Creates a matcher.
   *
   * @param stops Non-empty stop strings.
   * @throws {RangeError} On an empty stop string.
   */
  constructor(stops: readonly string[]) {
    for (const s of stops) {
      if (typeof s !== "string" || s.length === 0) {
        throw new RangeError(`Invalid stop string ${JSON.stringify(s)}: stop strings must be non-empty`);
      }
    }
    this.#stops = stops;
  }

  /** Adds streamed text; returns what can be emitted now. */
  push(text: string): StopResult {
    if (this.#stopped) return { text: "", stopped: true };
    const buffer = this.#pending + text;
    let cut = -1;
    for (const stop of this.#stops) {
      const at = buffer.indexOf(stop);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.#pending = "";
      this.#stopped = true;
      return { text: buffer.slice(0, cut), stopped: true };
    }
    // keep the longest suffix that is a proper prefix of some stop string
    let hold = 0;
    for (const stop of this.#stops) {
      for (let n = Math.min(stop.length - 1, buffer.length); n > hold; n--) {
        if (buffer.endsWith(stop.slice(0, n))) {
          hold = n;
          break;
        }
      }
    }
    this.#pending = buffer.slice(buffer.length - hold);
    return { text: buffer.slice(0, buffer.length - hold), stopped: false };
  }

  /** Adds the last text of a stream and releases everything held back (cut at a stop string if any). */
  finish(text: string): StopResult {
    const result = this.push(text);
    if (result.stopped) return result;
    const rest = this.#pending;
    this.#pending = "";
    return { text: result.text + rest, stopped: false };
  }
}
