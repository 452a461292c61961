/**
 * The domain-shift task ("world"): stories sampled from the base model itself, moved to a new world by a
 * deterministic rewrite — every common name gets a new one (Lily → Zara, Tom → Pell, …), places change
 * (park → crater, garden → dome, house → pod, …), "Once upon a time" becomes "Long ago on the planet
 * Vell", and one sentence recurs after every story's first sentence ({@linkcode WORLD_PHRASE}). The adapter
 * has to learn the new world; the rows are `{"text"}` (loss on every token).
 *
 * @example
 * ```ts
 * import { rewriteWorld } from "./world_shift.ts";
 * import assert from "node:assert/strict";
 * assert.equal(
 *   rewriteWorld("Once upon a time, Lily went to the park. She was happy."),
 *   "Long ago on the planet Vell, Zara went to the crater. The two moons of Vell glowed above. She was happy.",
 * );
 * ```
 *
 * @module
 */

import type { Prng } from "../../src/models/sampling.ts";
import {
  pick,
  WORLD_ADJECTIVES,
  WORLD_CHARACTERS,
  WORLD_NAMES,
  WORLD_PHRASE,
  WORLD_PLACES,
} from "./_words.ts";

export { WORLD_PHRASE };

function escape(word: string): string {
  return word.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function wordPattern(words: readonly string[], flags: string): RegExp {
  const sorted = [...words].sort((a, b) => b.length - a.length).map(escape);
  return new RegExp(`\\b(${sorted.join("|")})\\b`, flags);
}

const NAME_PATTERN = wordPattern(Object.keys(WORLD_NAMES), "g");
const PLACE_PATTERN = wordPattern(Object.keys(WORLD_PLACES), "gi");
const PLACE_LOWER: ReadonlyMap<string, string> = new Map(
  Object.entries(WORLD_PLACES).map(([k, v]) => [k.toLowerCase(), v]),
);

function keepCase(original: string, replacement: string): string {
  const first = original[0];
  return first === first.toUpperCase() && first !== first.toLowerCase()
    ? replacement[0].toUpperCase() + replacement.slice(1)
    : replacement;
}

/**
 * Moves a story to the new world: names and places mapped word by word (case kept), the opening formula
 * replaced, and {@linkcode WORLD_PHRASE} inserted after the first sentence (or appended when the story is
 * one sentence). Deterministic and idempotent on already-moved text except for the phrase.
 *
 * @param story A story in the base model's world.
 * @returns The story in the new world.
 */
export function rewriteWorld(story: string): string {
  let text = story.trim()
    .replace(/^Once upon a time\b/, "Long ago on the planet Vell")
    .replace(NAME_PATTERN, (name) => WORLD_NAMES[name])
    .replace(PLACE_PATTERN, (word) => keepCase(word, PLACE_LOWER.get(word.toLowerCase())!));
  const end = /[.!?]["']?(\s+|$)/.exec(text);
  if (!end) return `${text}. ${WORLD_PHRASE}`;
  const cut = end.index + end[0].trimEnd().length;
  text = `${text.slice(0, cut)} ${WORLD_PHRASE}${
    text.slice(cut).length ? " " + text.slice(cut).trimStart() : ""
  }`;
  return text;
}

/**
 * A story opening in the old world that names a character (so the rewrite has a name to move), and in
 * half of the cases a place.
 *
 * @param prng Seeded generator.
 * @returns One or two sentences for the base model to continue.
 */
export function worldOpening(prng: Prng): string {
  const names = Object.keys(WORLD_NAMES).filter((n) => !["Sarah", "Timmy", "Kitty", "Spot"].includes(n));
  const name = pick(prng, names);
  const who = pick(prng, WORLD_CHARACTERS);
  const adjective = pick(prng, WORLD_ADJECTIVES);
  const first = `Once upon a time, there was a ${adjective} ${who} named ${name}.`;
  if (prng.nextUint32() % 2 === 0) return first;
  const places = ["park", "garden", "forest", "house", "school", "beach", "river", "store"];
  return `${first} One day, ${name} went to the ${pick(prng, places)}.`;
}
