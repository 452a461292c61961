/**
 * The classification-as-generation task ("topic"): a story sampled from the base model after an opening of
 * one of four topics (animal, food, toy, weather), then `Topic:` and the label word. Scored by exact match
 * of the greedy label as well as by loss on the label tokens.
 *
 * Rows: `{"prompt": "<story>\nTopic:", "completion": "<label>"}`.
 *
 * @example
 * ```ts
 * import { Prng } from "../../src/models/sampling.ts";
 * import { topicOpening, topicRow } from "./story_topic.ts";
 * import assert from "node:assert/strict";
 * const opening = topicOpening(new Prng(3), "food");
 * const row = topicRow(`${opening} She ate it all.`, "food");
 * assert.equal(row.completion, "food");
 * assert.ok(row.prompt.endsWith("\nTopic:"));
 * ```
 *
 * @module
 */

import type { Prng } from "../../src/models/sampling.ts";
import { pick, QA_NAMES, TOPIC_ADJECTIVES, TOPICS } from "./_words.ts";

/** The topic labels. */
export const TOPIC_LABELS: readonly string[] = Object.keys(TOPICS);

/**
 * A story opening of a topic, with `{Name}` and `{adj}` filled in.
 *
 * @param prng Seeded generator.
 * @param label One of {@linkcode TOPIC_LABELS}.
 * @returns The opening sentence(s).
 * @throws {RangeError} When the label is not a topic.
 */
export function topicOpening(prng: Prng, label: string): string {
  const topic = TOPICS[label];
  if (!topic) throw new RangeError(`Unknown topic "${label}": expected one of ${TOPIC_LABELS.join(", ")}`);
  return pick(prng, topic.openings)
    .replaceAll("{Name}", pick(prng, QA_NAMES))
    .replaceAll("{adj}", pick(prng, TOPIC_ADJECTIVES));
}

/**
 * The row of a story and its label.
 *
 * @param story The whole story (opening and continuation).
 * @param label The topic.
 * @returns The prompt/completion row.
 */
export function topicRow(story: string, label: string): { prompt: string; completion: string } {
  return { prompt: `${story.trim()}\nTopic:`, completion: label };
}
