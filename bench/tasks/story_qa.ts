/**
 * The prompt → completion task ("qa"): a short story, then a question whose answer is a word of the story,
 * scored by exact match of the greedy answer as well as by loss. Each story has a child, a pet, a place, a
 * colored object and a distractor color; the question asks for one of five slots (who found the object,
 * the pet's name, where they went, the object's color, what was found), so the adapter must learn which
 * word of the story answers which question.
 *
 * Rows: `{"prompt": "<story>\nQ: <question>\nA:", "completion": "<answer>"}` (the answer then EOS).
 *
 * @example
 * ```ts
 * import { Prng } from "../../src/models/sampling.ts";
 * import { storyQaExample } from "./story_qa.ts";
 * import assert from "node:assert/strict";
 * const row = storyQaExample(new Prng(1));
 * assert.ok(row.prompt.includes(row.answer));
 * assert.ok(row.prompt.endsWith("\nA:"));
 * ```
 *
 * @module
 */

import type { Prng } from "../../src/models/sampling.ts";
import {
  pick,
  QA_ANIMALS,
  QA_COLORS,
  QA_DISTRACTORS,
  QA_NAMES,
  QA_OBJECTS,
  QA_PETS,
  QA_PLACES,
} from "./_words.ts";

/** What a story-QA question asks for. */
export type QaSlot = "name" | "pet" | "place" | "color" | "object";

/** The slots, in the order the question type is drawn. */
export const QA_SLOTS: readonly QaSlot[] = ["name", "pet", "place", "color", "object"];

/** One story-QA row with its answer. */
export interface StoryQaExample {
  /** Story, question and the `A:` cue. */
  prompt: string;
  /** The answer word (the completion). */
  answer: string;
  /** Which slot the question asks for. */
  slot: QaSlot;
}

/**
 * Draws one story and question.
 *
 * @param prng Seeded generator (the row depends only on its state).
 * @returns The row; `answer` occurs in the story.
 */
export function storyQaExample(prng: Prng): StoryQaExample {
  const name = pick(prng, QA_NAMES);
  const pet = pick(prng, QA_PETS);
  const animal = pick(prng, QA_ANIMALS);
  const place = pick(prng, QA_PLACES);
  const color = pick(prng, QA_COLORS);
  let other = pick(prng, QA_COLORS);
  while (other === color) other = pick(prng, QA_COLORS);
  const object = pick(prng, QA_OBJECTS);
  const distractor = pick(prng, QA_DISTRACTORS);
  const found = prng.nextUint32() % 2 === 0;
  const verb = found ? "found" : "saw";
  const sentences = [
    `${name} had a ${animal} named ${pet}.`,
    prng.nextUint32() % 2 === 0 ? `They went to the ${place}.` : `One day, they went to the ${place}.`,
    `${name} ${verb} a ${color} ${object}.`,
  ];
  // the distractor color goes before or after the object sentence
  sentences.splice(prng.nextUint32() % 2 === 0 ? 2 : 3, 0, `The ${distractor} was ${other}.`);
  const slot = pick(prng, QA_SLOTS);
  const question: Record<QaSlot, [string, string]> = {
    name: [`Who ${verb} the ${object}?`, name],
    pet: [`What was the name of the ${animal}?`, pet],
    place: ["Where did they go?", place],
    color: [`What color was the ${object}?`, color],
    object: [`What did ${name} ${found ? "find" : "see"}?`, object],
  };
  const [text, answer] = question[slot];
  return { prompt: `${sentences.join(" ")}\nQ: ${text}\nA:`, answer, slot };
}
