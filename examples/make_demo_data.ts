/**
 * Writes `examples/demo.jsonl`, the small example data set of `deno task demo`: TinyStories-style
 * prompt → completion rows about a new world (a dog named Zorp who lives in Moonvale, and a recurring
 * phrase), so that a fine-tuned adapter's effect is plain to see. Deterministic (seeded).
 *
 *     deno run --allow-write examples/make_demo_data.ts
 *
 * @module
 */

import { Prng } from "../src/models/sampling.ts";

const FRIENDS = ["Pip", "Mila", "Tom", "Sue", "Ben", "Lucy"];
const THINGS = ["a red ball", "a big stick", "a shiny rock", "a little boat", "a blue kite", "a soft hat"];
const PLACES = ["the park", "the river", "the hill", "the garden", "the forest"];

/** The rows, as JSONL text. */
export function demoRows(count: number, seed: number): string {
  const prng = new Prng(seed);
  const pick = <T>(list: readonly T[]) => list[prng.nextUint32() % list.length];
  const rows: string[] = [];
  for (let i = 0; i < count; i++) {
    const friend = pick(FRIENDS), thing = pick(THINGS), place = pick(PLACES);
    rows.push(JSON.stringify({
      prompt: "Once upon a time, there was a dog named",
      completion:
        `Zorp. Zorp lived in Moonvale with his friend ${friend}. One day, they found ${thing} in ${place}. ` +
        `Zorp wagged his tail and said, "The stars are singing!"`,
    }));
  }
  return rows.join("\n") + "\n";
}

if (import.meta.main) {
  await Deno.writeTextFile(new URL("./demo.jsonl", import.meta.url), demoRows(96, 2026));
}
