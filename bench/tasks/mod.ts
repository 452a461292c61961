/**
 * The seeded fine-tuning tasks of the reproduction on stories260K: `world` (domain shift), `qa` (story
 * question → answer word, exact match) and `topic` (story → label word, exact match), written as
 * `{train,dev,eval}.jsonl` per task by {@linkcode generateTasks} (CLI: `deno run -A bench/tasks/generate.ts`).
 *
 * @example
 * ```ts
 * import { Prng } from "../../src/models/sampling.ts";
 * import { rewriteWorld, storyQaExample, TASK_NAMES } from "./mod.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(TASK_NAMES, ["world", "qa", "topic"]);
 * assert.ok(rewriteWorld("Lily ran.").startsWith("Zara ran."));
 * assert.ok(storyQaExample(new Prng(0)).prompt.endsWith("A:"));
 * ```
 *
 * @module
 */

export * from "./generate.ts";
export * from "./world_shift.ts";
export * from "./story_qa.ts";
export * from "./story_topic.ts";
export * from "./base_stories.ts";
export * from "./stories260k.ts";
