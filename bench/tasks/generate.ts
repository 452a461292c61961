/**
 * Generates the three fine-tuning tasks of the reproduction for stories260K, seeded and deterministic:
 *
 * - `world` (domain shift): stories sampled from the base model, moved to a new world
 *   ({@linkcode rewriteWorld}); `{"text"}` rows, scored by loss.
 * - `qa` (prompt → completion): a story and a question whose answer is in it ({@linkcode storyQaExample});
 *   scored by exact match and loss.
 * - `topic` (classification as generation): a base-model story after a topic opening, then the label word
 *   ({@linkcode topicRow}); scored by exact match and loss.
 *
 * Each task is written as `<out>/<task>/{train,dev,eval}.jsonl` (dev picks learning rates, eval is
 * reported) with `<out>/manifest.json` (settings, row counts, SHA-256 of every file). A folder whose
 * manifest has the same settings is reused as is.
 *
 *     deno run -A bench/tasks/generate.ts --out out/tasks [--seed 1234] [--train 640] [--dev 64] [--eval 128]
 *       [--seq-len 96] [--story-tokens 96] [--tasks world,qa,topic]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import type { Tokenizer } from "../../src/io/tokenizer.ts";
import { LlamaGenerator } from "../../src/models/generate.ts";
import type { LlamaConfig } from "../../src/models/config.ts";
import type { LlamaWeights } from "../../src/models/llama/forward.ts";
import { Prng } from "../../src/models/sampling.ts";
import { shuffled } from "./_words.ts";
import { sampleStories, trimToSentences } from "./base_stories.ts";
import { storyQaExample } from "./story_qa.ts";
import { TOPIC_LABELS, topicOpening, topicRow } from "./story_topic.ts";
import { rewriteWorld, worldOpening } from "./world_shift.ts";
import { ensureStories260k } from "./stories260k.ts";

/** The tasks. */
export type TaskName = "world" | "qa" | "topic";

/** Every task, in report order. */
export const TASK_NAMES: readonly TaskName[] = ["world", "qa", "topic"];

/** What a task is and how it is scored. */
export interface TaskInfo {
  /** One line for tables. */
  title: string;
  /** Row shape. */
  rows: "text" | "prompt-completion";
  /** Whether rows have an answer scored by exact match of the greedy completion. */
  exactMatch: boolean;
}

/** The tasks' descriptions. */
export const TASKS: Readonly<Record<TaskName, TaskInfo>> = {
  world: { title: "domain shift (new names, places, recurring phrase)", rows: "text", exactMatch: false },
  qa: { title: "story question → answer word", rows: "prompt-completion", exactMatch: true },
  topic: { title: "story → topic label (4 classes)", rows: "prompt-completion", exactMatch: true },
};

/** Rows per split. */
export interface TaskSizes {
  /** Training rows. */
  train: number;
  /** Rows that choose the learning rate. */
  dev: number;
  /** Rows that are reported. */
  eval: number;
}

/** A training row as written to JSONL. */
export type TaskRow = { text: string } | { prompt: string; completion: string };

/** The splits of one task. */
export interface TaskSplits {
  /** Training rows. */
  train: TaskRow[];
  /** Learning-rate selection rows. */
  dev: TaskRow[];
  /** Reported rows. */
  eval: TaskRow[];
}

/** Options of {@linkcode generateTasks}. */
export interface GenerateTasksOptions {
  /** Output folder. */
  out: string;
  /** Tasks to write. @default all */
  tasks?: readonly TaskName[];
  /** Rows per split. */
  sizes: TaskSizes;
  /** Longest row in tokens (BOS and EOS included); a row that cannot fit is an error. */
  seqLen: number;
  /** Longest sampled story row in tokens (`world`, `topic`: stories are cut to whole sentences that fit). */
  storyTokens: number;
  /** Seed of every draw. @default {1234} */
  seed?: number;
}

/** `<out>/manifest.json`. */
export interface TaskManifest {
  /** Settings the files were made with. */
  settings: {
    tasks: TaskName[];
    sizes: TaskSizes;
    seqLen: number;
    storyTokens: number;
    seed: number;
    model: string;
  };
  /** Per task and split: rows and SHA-256 of the file. */
  files: Record<string, Record<keyof TaskSizes, { rows: number; sha256: string }>>;
  /** Seconds the generation took. */
  seconds: number;
}

/** The base model the stories come from. */
export interface TaskModel {
  /** Model id. */
  id: string;
  /** Shape. */
  config: LlamaConfig;
  /** Weights. */
  weights: LlamaWeights;
  /** Tokenizer. */
  tokenizer: Tokenizer;
}

function splitRows(rows: TaskRow[], sizes: TaskSizes): TaskSplits {
  return {
    eval: rows.slice(0, sizes.eval),
    dev: rows.slice(sizes.eval, sizes.eval + sizes.dev),
    train: rows.slice(sizes.eval + sizes.dev),
  };
}

/** A seeded generator per task and purpose, independent of the other tasks' draws. */
function taskPrng(seed: number, task: string): Prng {
  let h = 2166136261;
  for (const ch of task) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  return new Prng((seed * 4294967296 + h) % Number.MAX_SAFE_INTEGER);
}

/**
 * Token counts of rows as training reads them (BOS + text, or BOS + prompt + completion + EOS).
 *
 * @param tokenizer The model's tokenizer.
 * @param row A row.
 * @returns Its length in tokens.
 */
export function rowTokens(tokenizer: Pick<Tokenizer, "encode">, row: TaskRow): number {
  if ("text" in row) return 1 + tokenizer.encode(row.text, { addBos: false }).length;
  return 2 + tokenizer.encode(row.prompt, { addBos: false }).length +
    tokenizer.encode(row.completion, { addBos: false }).length;
}

/**
 * Makes one task's rows in memory.
 *
 * @param task The task.
 * @param model The base model (stories are sampled from it for `world` and `topic`).
 * @param options Sizes, sequence length, seed.
 * @returns The splits.
 * @throws {Error} When a row cannot fit the sequence length.
 */
export async function makeTask(
  task: TaskName,
  model: TaskModel,
  options: { sizes: TaskSizes; seqLen: number; storyTokens: number; seed: number },
): Promise<TaskSplits> {
  const total = options.sizes.train + options.sizes.dev + options.sizes.eval;
  const prng = taskPrng(options.seed, task);
  const fits = (row: TaskRow) => rowTokens(model.tokenizer, row) <= options.seqLen;
  const fitsStory = (row: TaskRow) =>
    rowTokens(model.tokenizer, row) <= Math.min(options.storyTokens, options.seqLen);
  if (task === "qa") {
    const rows = Array.from({ length: total }, (_, i) => {
      const example = storyQaExample(prng);
      const row = { prompt: example.prompt, completion: example.answer };
      if (!fits(row)) {
        throw new Error(
          `Cannot make task "qa": row ${i} has ${rowTokens(model.tokenizer, row)} tokens, more than ` +
            `the sequence length ${options.seqLen}`,
        );
      }
      return row;
    });
    return splitRows(rows, options.sizes);
  }
  const generator = await LlamaGenerator.create(model, { ep: "wasm" });
  try {
    const sampleSeed = prng.nextUint32();
    if (task === "world") {
      const openings = Array.from({ length: total }, () => worldOpening(prng));
      const stories = await sampleStories(generator, openings, {
        seed: sampleSeed,
        maxTokens: options.seqLen,
      });
      const rows = stories.map((story) => {
        const kept = trimToSentences(story, (s) => fitsStory({ text: rewriteWorld(s) }));
        return { text: rewriteWorld(kept) };
      });
      return splitRows(rows, options.sizes);
    }
    const labels = shuffled(
      prng,
      Array.from({ length: total }, (_, i) => TOPIC_LABELS[i % TOPIC_LABELS.length]),
    );
    const openings = labels.map((label) => topicOpening(prng, label));
    const stories = await sampleStories(generator, openings, {
      seed: sampleSeed,
      maxTokens: options.storyTokens,
    });
    const rows = stories.map((story, i) => {
      const kept = trimToSentences(story, (s) => fitsStory(topicRow(s, labels[i])));
      const row = topicRow(kept, labels[i]);
      if (!fits(row)) {
        throw new Error(
          `Cannot make task "topic": the opening of row ${i} alone has ${rowTokens(model.tokenizer, row)} ` +
            `tokens, more than the sequence length ${options.seqLen}`,
        );
      }
      return row;
    });
    return splitRows(rows, options.sizes);
  } finally {
    await generator.release();
  }
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Reads a manifest when present.
 *
 * @param out The tasks folder.
 * @returns The manifest, or undefined when there is none.
 */
export async function readTaskManifest(out: string): Promise<TaskManifest | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(`${out}/manifest.json`)) as TaskManifest;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`Cannot read the task manifest ${out}/manifest.json: ${(e as Error).message}`);
  }
}

/**
 * Writes every task's splits and the manifest, unless the folder already holds the same settings.
 *
 * @param model The base model.
 * @param options Output folder, tasks, sizes, sequence length, seed.
 * @returns The manifest.
 */
export async function generateTasks(model: TaskModel, options: GenerateTasksOptions): Promise<TaskManifest> {
  const settings = {
    tasks: [...(options.tasks ?? TASK_NAMES)],
    sizes: { ...options.sizes },
    seqLen: options.seqLen,
    storyTokens: options.storyTokens,
    seed: options.seed ?? 1234,
    model: model.id,
  };
  const existing = await readTaskManifest(options.out);
  if (existing && JSON.stringify(existing.settings) === JSON.stringify(settings)) return existing;
  const started = performance.now();
  const files: TaskManifest["files"] = {};
  for (const task of settings.tasks) {
    const splits = await makeTask(task, model, settings);
    await Deno.mkdir(`${options.out}/${task}`, { recursive: true });
    const entry = {} as TaskManifest["files"][string];
    for (const split of ["train", "dev", "eval"] as const) {
      const text = splits[split].map((row) => JSON.stringify(row)).join("\n") + "\n";
      await Deno.writeTextFile(`${options.out}/${task}/${split}.jsonl`, text);
      entry[split] = { rows: splits[split].length, sha256: await sha256(text) };
    }
    files[task] = entry;
  }
  const manifest: TaskManifest = { settings, files, seconds: (performance.now() - started) / 1000 };
  await Deno.writeTextFile(`${options.out}/manifest.json.tmp`, JSON.stringify(manifest, null, 2) + "\n");
  await Deno.rename(`${options.out}/manifest.json.tmp`, `${options.out}/manifest.json`);
  return manifest;
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    args: Deno.args,
    options: {
      out: { type: "string" },
      seed: { type: "string", default: "1234" },
      train: { type: "string", default: "640" },
      dev: { type: "string", default: "64" },
      eval: { type: "string", default: "128" },
      "seq-len": { type: "string", default: "96" },
      "story-tokens": { type: "string", default: "96" },
      tasks: { type: "string", default: TASK_NAMES.join(",") },
    },
  });
  if (!v.out) throw new Error("Cannot generate tasks: --out is required");
  const int = (name: string, text: string) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < (name === "seed" ? 0 : 1)) {
      throw new Error(
        `Invalid --${name} ${JSON.stringify(text)}: expected a ${
          name === "seed" ? "non-negative" : "positive"
        } integer`,
      );
    }
    return n;
  };
  const tasks = v.tasks.split(",").map((t) => t.trim()) as TaskName[];
  const bad = tasks.filter((t) => !TASK_NAMES.includes(t));
  if (bad.length) {
    throw new Error(`Invalid --tasks: unknown ${bad.join(", ")}; choose from ${TASK_NAMES.join(",")}`);
  }
  const model = await loadModelFolder(await ensureStories260k(`${v.out}/.model`), { id: "stories260K" });
  const manifest = await generateTasks(model, {
    out: v.out,
    tasks,
    seed: int("seed", v.seed),
    seqLen: int("seq-len", v["seq-len"]),
    storyTokens: int("story-tokens", v["story-tokens"]),
    sizes: { train: int("train", v.train), dev: int("dev", v.dev), eval: int("eval", v.eval) },
  });
  console.log(JSON.stringify(manifest, null, 2));
}

if (import.meta.main) await main();
