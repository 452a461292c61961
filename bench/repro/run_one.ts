/**
 * One run of the reproduction, in its own process: trains one method on one task at one learning rate and
 * seed (or, for the `base` row, trains nothing), then measures the exported PEFT adapter — loss on the dev
 * and eval splits, exact match of greedy answers on the eval split where the task has answers — and writes
 * `result.json` into the run's folder. A folder that already has `result.json` is left alone; one with a
 * trainer checkpoint (an interrupted run) resumes from it.
 *
 *     deno run -A bench/repro/run_one.ts JOB.json      # JOB: {"spec", "config", "paths"}, written by repro.ts
 *
 * @module
 */

import { loadModelFolder, type ModelFolder } from "../../src/io/model_folder.ts";
import { loadPeftAdapter, type PeftAdapter } from "../../src/lora/peft.ts";
import { LlamaGenerator } from "../../src/models/generate.ts";
import { LLAMA_MODULES } from "../../src/models/sites.ts";
import { countTargets, type Dataset, IGNORE_LABEL, parseJsonl } from "../../src/train/data.ts";
import { evaluateLoss } from "../../src/train/evaluate.ts";
import { type StepRecord, train, type TrainOptions, type TrainSummary } from "../../src/train/trainer.ts";
import { type TaskName, TASKS } from "../tasks/generate.ts";
import type { ReproConfig, RunSpec } from "./plan.ts";

/** The row of the untrained base model for one task. */
export interface BaseSpec {
  /** `<task>/base`. */
  key: string;
  /** Task. */
  task: TaskName;
  /** Marks the base row. */
  base: true;
}

/** Where a run reads and writes. */
export interface RunPaths {
  /** The converted base model's folder. */
  model: string;
  /** The generated tasks' folder (`<task>/{train,dev,eval}.jsonl`). */
  tasks: string;
  /** The run's own folder. */
  run: string;
}

/** What a child process is asked to do. */
export interface RunJob {
  /** The run. */
  spec: RunSpec | BaseSpec;
  /** Settings. */
  config: ReproConfig;
  /** Folders. */
  paths: RunPaths;
}

/** Sizes held in training, at the end and at the most. */
export interface SizePair {
  /** In the last phase (what the method finally trains). */
  final: number;
  /** In the largest phase (WeightLoRA's selection phase, WeightLoRA+'s last). */
  peak: number;
}

/** `result.json` of a run. */
export interface RunResult {
  /** The run's key. */
  key: string;
  /** Task. */
  task: TaskName;
  /** Method id (`base` for the untrained model). */
  methodId: string;
  /** Learning rate (null for `base`). */
  lr: number | null;
  /** Seed (null for `base`). */
  seed: number | null;
  /** Whether the run trained to the end, or stopped on a non-finite loss. */
  status: "ok" | "diverged";
  /** The trainer's message when the run diverged. */
  error?: string;
  /** Mean token loss on the dev split (null when diverged). */
  devLoss: number | null;
  /** Mean token loss on the eval split (null when diverged). */
  evalLoss: number | null;
  /** Exact-match accuracy of greedy answers on the eval split (null where the task has none). */
  accuracy: number | null;
  /** Last training step's loss. */
  trainLoss: number | null;
  /** Trainable parameters. */
  parameters: SizePair;
  /** Bytes of optimizer state (AdamW moments). */
  optimizerStateBytes: SizePair;
  /** Sites with an adapter at the end. */
  selectedSites: string[];
  /** Rank per selected site at the end. */
  ranks: Record<string, number>;
  /** Median wall time of one optimizer step, ms (over the last phase's steps, from the log's clock). */
  stepMs: number | null;
  /** Median training tokens/s over the last phase's steps. */
  tokensPerS: number | null;
  /** Training tokens seen. */
  tokens: number;
  /** Wall time of the whole run (training and measuring), s. */
  wallS: number;
  /** Sequence length of the training graphs. */
  seqLen: number;
}

/** The task's splits, tokenized for the model. */
export interface TaskData {
  /** Training rows. */
  train: Dataset;
  /** Learning-rate selection rows. */
  dev: Dataset;
  /** Reported rows. */
  eval: Dataset;
  /** Longest row over the splits (the static graphs' sequence length). */
  seqLen: number;
}

/**
 * Drops the EOS token that `parseJsonl` puts after a completion. stories260K never saw EOS in training
 * (llama2.c separates stories with BOS), so its EOS embedding is untrained and adapters on the blocks
 * barely move its probability: measured on the qa task after 240 LoRA steps, the answer tokens' loss was
 * 0.07 and the EOS token's 5.3 — the EOS term would swamp every difference between methods. Rows end at the
 * answer instead, and exact match reads the first word of the greedy continuation.
 */
function withoutEos(data: Dataset, eosId: number): Dataset {
  const examples = data.examples.map((e) => {
    const n = e.inputIds.length;
    return e.inputIds[n - 1] === eosId && e.labels[n - 1] === eosId
      ? { inputIds: e.inputIds.slice(0, -1), labels: e.labels.slice(0, -1) }
      : e;
  });
  return { ...data, examples, targets: examples.reduce((s, e) => s + countTargets(e), 0) };
}

/**
 * Reads and tokenizes a task's splits (prompt/completion rows without the final EOS, see above).
 *
 * @param dir The tasks folder.
 * @param task The task.
 * @param options Tokenizer and the longest row allowed.
 * @returns The splits and their sequence length.
 */
export async function loadTaskData(
  dir: string,
  task: TaskName,
  options: { tokenizer: ModelFolder["tokenizer"]; seqLen: number },
): Promise<TaskData> {
  const read = async (split: string) => {
    const path = `${dir}/${task}/${split}.jsonl`;
    const data = parseJsonl(await Deno.readTextFile(path), path, options);
    if (data.truncated || data.empty) {
      throw new Error(
        `Cannot use ${path}: ${data.truncated} rows exceed ${options.seqLen} tokens and ${data.empty} have no ` +
          `target (regenerate the tasks with the same --seq-len)`,
      );
    }
    const eos = options.tokenizer.eosIds[0];
    return TASKS[task].rows === "prompt-completion" && eos !== undefined ? withoutEos(data, eos) : data;
  };
  // one split after the other, so that a bad file is reported in the same order every time
  const trainData = await read("train");
  const dev = await read("dev");
  const evalData = await read("eval");
  const seqLen = Math.max(
    ...[trainData, dev, evalData].flatMap((d) => d.examples.map((e) => e.inputIds.length)),
  );
  return { train: trainData, dev, eval: evalData, seqLen };
}

/**
 * The first word of a generated text (letters, digits, apostrophes and hyphens after leading space).
 *
 * @param text Generated text.
 * @returns The word, or `""`.
 */
export function firstWord(text: string): string {
  return /^\s*([\p{L}\p{N}'-]*)/u.exec(text)![1];
}

/**
 * Exact match of greedy answers: every row's prompt tokens (as training saw them) are continued greedily
 * for one token more than its answer has, and the first word of the text must equal the answer.
 *
 * @param generator A generator over the adapter's sites (or none).
 * @param data Rows with prompt (labels −100) and answer parts.
 * @param options Decoder and adapter.
 * @returns The share of rows answered exactly.
 */
export async function exactMatch(
  generator: LlamaGenerator,
  data: Dataset,
  options: { decode: (ids: number[]) => string; adapter?: PeftAdapter },
): Promise<number> {
  const rows = data.examples.map((e) => {
    const start = e.labels.findIndex((l) => l !== IGNORE_LABEL);
    return { prompt: e.inputIds.slice(0, start), answer: options.decode(e.inputIds.slice(start)).trim() };
  });
  const maxTokens = 1 +
    Math.max(...data.examples.map((e) => e.labels.filter((l) => l !== IGNORE_LABEL).length));
  let correct = 0;
  for (let i = 0; i < rows.length; i += 32) {
    const chunk = rows.slice(i, i + 32);
    const results = await generator.generate(chunk.map((r) => r.prompt), {
      temperature: 0,
      maxTokens,
      adapter: options.adapter?.sites,
    });
    results.forEach((r, j) => {
      if (firstWord(r.text) === chunk[j].answer) correct++;
    });
  }
  return correct / rows.length;
}

/**
 * The median.
 *
 * @param values Numbers.
 * @returns Their median, or null for none.
 */
export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function trainOptions(spec: RunSpec, config: ReproConfig, seqLen: number, out: string): TrainOptions {
  return {
    method: spec.method.method,
    k: spec.method.k ?? 1,
    rank: config.rank,
    alpha: config.alpha,
    rslora: false,
    targetModules: [...LLAMA_MODULES],
    steps: config.steps,
    batchSize: config.batchSize,
    seqLen,
    gradAccum: 1,
    optimizer: "adamw",
    lr: spec.lr,
    lrGates: config.lrGates,
    weightDecay: 0,
    lrSchedule: config.lrSchedule,
    warmupSteps: 0,
    maxGradNorm: 1,
    selectSteps: config.selectSteps,
    reinitSurvivors: false,
    gateWarmup: 0,
    gateNorm: "none",
    gateBound: "simplex",
    gateMaxStep: 0,
    budget: null,
    budgetScore: "gate",
    growEvery: config.growEvery,
    growRounds: config.growRounds,
    evalEvery: 0,
    saveEvery: Math.max(1, Math.ceil(config.steps / 3)),
    seed: spec.seed,
    ep: config.ep,
    out,
  };
}

/**
 * Reads a trainer's `train_log.jsonl`.
 *
 * @param path The file.
 * @returns Its step records.
 */
export async function readLog(path: string): Promise<StepRecord[]> {
  const text = await Deno.readTextFile(path);
  return text.split("\n").filter(Boolean).map((line) => JSON.parse(line) as StepRecord);
}

/**
 * Measures an adapter (or the base model): dev and eval loss, and exact match where the task has answers.
 *
 * @param model The base model.
 * @param data The task's splits.
 * @param task The task.
 * @param config Batch size and execution provider.
 * @param adapter The adapter, or none for the base model.
 * @returns The figures.
 */
export async function measure(
  model: ModelFolder,
  data: TaskData,
  task: TaskName,
  config: Pick<ReproConfig, "batchSize" | "ep">,
  adapter: PeftAdapter | undefined,
): Promise<{ devLoss: number; evalLoss: number; accuracy: number | null }> {
  const lossOptions = { batchSize: config.batchSize, seqLen: data.seqLen, adapter, ep: config.ep };
  const devLoss = (await evaluateLoss(model, data.dev, lossOptions)).loss;
  const evalLoss = (await evaluateLoss(model, data.eval, lossOptions)).loss;
  let accuracy: number | null = null;
  if (TASKS[task].exactMatch) {
    const generator = await LlamaGenerator.create(model, {
      ep: config.ep,
      loraSites: adapter ? [...adapter.sites.keys()] : [],
    });
    try {
      accuracy = await exactMatch(generator, data.eval, {
        decode: (ids) => model.tokenizer.decode(ids, { skipSpecialTokens: true }),
        adapter,
      });
    } finally {
      await generator.release();
    }
  }
  return { devLoss, evalLoss, accuracy };
}

function phaseSizes(summary: TrainSummary): { parameters: SizePair; optimizerStateBytes: SizePair } {
  const last = summary.phases.at(-1)!;
  return {
    parameters: { final: last.parameters, peak: Math.max(...summary.phases.map((p) => p.parameters)) },
    optimizerStateBytes: {
      final: last.optimizerStateBytes,
      peak: Math.max(...summary.phases.map((p) => p.optimizerStateBytes)),
    },
  };
}

/**
 * Executes one run (or the base row) and writes `result.json`; returns the existing result when there is one.
 *
 * @param job The run, settings and folders.
 * @returns The run's result.
 */
export async function executeRun(job: RunJob): Promise<RunResult> {
  const { spec, config, paths } = job;
  const resultPath = `${paths.run}/result.json`;
  try {
    return JSON.parse(await Deno.readTextFile(resultPath)) as RunResult;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const started = performance.now();
  const model = await loadModelFolder(paths.model, { id: "stories260K" });
  const data = await loadTaskData(paths.tasks, spec.task, {
    tokenizer: model.tokenizer,
    seqLen: config.seqLen,
  });
  await Deno.mkdir(paths.run, { recursive: true });
  let result: RunResult;
  if ("base" in spec) {
    const m = await measure(model, data, spec.task, config, undefined);
    result = {
      key: spec.key,
      task: spec.task,
      methodId: "base",
      lr: null,
      seed: null,
      status: "ok",
      ...m,
      trainLoss: null,
      parameters: { final: 0, peak: 0 },
      optimizerStateBytes: { final: 0, peak: 0 },
      selectedSites: [],
      ranks: {},
      stepMs: null,
      tokensPerS: null,
      tokens: 0,
      wallS: (performance.now() - started) / 1000,
      seqLen: data.seqLen,
    };
  } else {
    const options = trainOptions(spec, config, data.seqLen, paths.run);
    let resume: string | undefined;
    try {
      await Deno.stat(`${paths.run}/checkpoint/trainer_state.json`);
      resume = `${paths.run}/checkpoint`;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    const base = {
      key: spec.key,
      task: spec.task,
      methodId: spec.method.id,
      lr: spec.lr,
      seed: spec.seed,
      seqLen: data.seqLen,
    };
    let summary: TrainSummary;
    try {
      summary = await train(
        { model: { id: model.id, config: model.config, weights: model.weights }, train: data.train, resume },
        options,
      );
    } catch (e) {
      const message = (e as Error).message;
      if (!message.startsWith("Training stopped: the loss is")) throw e;
      result = {
        ...base,
        status: "diverged",
        error: message,
        devLoss: null,
        evalLoss: null,
        accuracy: null,
        trainLoss: null,
        parameters: { final: 0, peak: 0 },
        optimizerStateBytes: { final: 0, peak: 0 },
        selectedSites: [],
        ranks: {},
        stepMs: null,
        tokensPerS: null,
        tokens: 0,
        wallS: (performance.now() - started) / 1000,
      };
      await writeResult(paths.run, result);
      return result;
    }
    const adapter = await loadPeftAdapter(paths.run, model.config);
    const m = await measure(model, data, spec.task, config, adapter);
    const log = await readLog(`${paths.run}/train_log.jsonl`);
    const lastPhaseFrom = summary.phases.at(-1)!.from_step;
    const steady = log.filter((r) => r.step > lastPhaseFrom);
    const stepSeconds = steady.map((r) => r.elapsed - log.find((x) => x.step === r.step - 1)!.elapsed);
    result = {
      ...base,
      status: "ok",
      ...m,
      trainLoss: summary.final_train_loss,
      ...phaseSizes(summary),
      selectedSites: summary.selected_sites,
      ranks: summary.ranks,
      stepMs: median(stepSeconds.map((s) => 1000 * s)),
      tokensPerS: median(steady.map((r) => r.tokens_per_s)),
      tokens: summary.tokens_seen,
      wallS: (performance.now() - started) / 1000,
    };
  }
  await writeResult(paths.run, result);
  return result;
}

async function writeResult(dir: string, result: RunResult): Promise<void> {
  await Deno.writeTextFile(`${dir}/result.json.tmp`, JSON.stringify(result, null, 2) + "\n");
  await Deno.rename(`${dir}/result.json.tmp`, `${dir}/result.json`);
  await Deno.remove(`${dir}/checkpoint`, { recursive: true }).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
}

if (import.meta.main) {
  const [jobPath] = Deno.args;
  if (!jobPath) throw new Error("Usage: deno run -A bench/repro/run_one.ts JOB.json");
  const result = await executeRun(JSON.parse(await Deno.readTextFile(jobPath)) as RunJob);
  console.log(JSON.stringify(result));
}
