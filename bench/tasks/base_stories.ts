/**
 * Stories sampled from the base model: each opening is continued by the model (seeded temperature sampling
 * on the wasm EP), and the story is cut back to whole sentences that fit a token budget.
 *
 * @example
 * ```ts
 * import { trimToSentences } from "./base_stories.ts";
 * import assert from "node:assert/strict";
 * assert.equal(trimToSentences("A cat sat. It ran away. Then it", (t) => t.length < 30), "A cat sat. It ran away.");
 * ```
 *
 * @module
 */

import type { LlamaGenerator } from "../../src/models/generate.ts";

/**
 * Splits text into sentences (each keeps its end mark and a closing quote); a trailing fragment without an
 * end mark is returned as its own last piece.
 *
 * @param text The text.
 * @returns The pieces, trimmed, in order.
 */
export function splitSentences(text: string): string[] {
  const pieces = text.replace(/\s+/g, " ").trim().match(/[^.!?]*[.!?]+["']?|[^.!?]+$/g) ?? [];
  return pieces.map((p) => p.trim()).filter((p) => p.length > 0);
}

/**
 * The longest run of whole sentences from the start that `fits`; the first sentence is always kept, and a
 * trailing fragment without an end mark is never kept.
 *
 * @param text A story.
 * @param fits Whether a candidate story is within budget.
 * @returns The trimmed story.
 */
export function trimToSentences(text: string, fits: (candidate: string) => boolean): string {
  const sentences = splitSentences(text);
  let kept = sentences[0] ?? "";
  for (let i = 1; i < sentences.length; i++) {
    if (!/[.!?]["']?$/.test(sentences[i])) break;
    const next = `${kept} ${sentences[i]}`;
    if (!fits(next)) break;
    kept = next;
  }
  return kept;
}

/** Options of {@linkcode sampleStories}. */
export interface SampleStoriesOptions {
  /** Seed of the sampler; story i uses `seed + i`. */
  seed: number;
  /** Tokens to sample after each opening. */
  maxTokens: number;
  /** Sampling temperature. @default {0.8} */
  temperature?: number;
}

/**
 * Continues every opening with the base model, one story per generation call: the rows of a batch would
 * share the sampler's random stream, and so often the same continuation.
 *
 * @param generator A generator of the base model (no LoRA inputs).
 * @param openings Story openings.
 * @param options Seed, length, temperature.
 * @returns One story (opening + continuation, whitespace collapsed) per opening, in order.
 */
export async function sampleStories(
  generator: LlamaGenerator,
  openings: readonly string[],
  options: SampleStoriesOptions,
): Promise<string[]> {
  const stories: string[] = [];
  for (const [i, opening] of openings.entries()) {
    const [result] = await generator.generate([opening], {
      maxTokens: options.maxTokens,
      temperature: options.temperature ?? 0.8,
      seed: options.seed + i,
      addBos: true,
    });
    stories.push(`${opening}${result.text}`.replace(/\s+/g, " ").trim());
  }
  return stories;
}
