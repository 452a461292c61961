/**
 * One run of the step-budget curve, in its own process: trains one method on one task at one learning rate
 * and seed to the largest budget, with the trainer writing the adapter at every smaller budget
 * (`snapshots/step-<N>/`); then measures each budget's adapter (dev and eval loss, exact match where the
 * task has answers) and writes `result.json`. The `base` row measures the untrained model once. A folder with
 * `result.json` is left alone; one with a trainer checkpoint resumes from it. A run that diverges still
 * reports the budgets it reached.
 *
 *     deno run -A bench/repro/curve_run.ts JOB.json   # JOB: {"spec", "config", "paths"}, written by curve.ts
 *
 * @module
 */

import { loadModelFolder } from "../../src/io/model_folder.ts";
import { loadPeftAdapter, type PeftAdapter } from "../../src/lora/peft.ts";
import { LLAMA_MODULES } from "../../src/models/sites.ts";
import { train, type TrainEvents, type TrainOptions, type TrainSummary } from "../../src/train/trainer.ts";
import type { TaskName } from "../tasks/generate.ts";
import type { CurveConfig, CurveRunSpec } from "./curve_plan.ts";
import { type BaseSpec, loadTaskData, measure, median, readLog, type RunPaths } from "./run_one.ts";

/** What a curve child process is asked to do. */
export interface CurveJob {
  /** The run, or the base row. */
  spec: CurveRunSpec | BaseSpec;
  /** Settings. */
  config: CurveConfig;
  /** Folders. */
  paths: RunPaths;
}

/** The figures of one budget of a run. */
export interface BudgetResult {
  /** Optimizer steps taken (0 for the base model). */
  step: number;
  /** Mean token loss on the dev split. */
  devLoss: number;
  /** Mean token loss on the eval split. */
  evalLoss: number;
  /** Exact match on the eval split (null where the task has no answers). */
  accuracy: number | null;
  /** Parameters of the adapter at this budget (its A and B). */
  parameters: number;
  /** Sites of the adapter at this budget. */
  sites: string[];
  /** Rank per site where they differ from the config's rank (WeightLoRA+). */
  ranks?: Record<string, number>;
  /**
   * Projections up to this step that changed the kept set after the first one (`kept_in`/`kept_out` in the
   * trainer's log); absent for methods without trained gates and in runs made before it was logged.
   */
  keptChanges?: number;
}

/** `result.json` of a curve run. */
export interface CurveRunResult {
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
  /** Whether the run reached the last budget or stopped on a non-finite loss. */
  status: "ok" | "diverged";
  /** The trainer's message when it diverged. */
  error?: string;
  /** Figures per budget reached (the base row: one entry at step 0). */
  budgets: BudgetResult[];
  /** Most parameters trained at once (the selection phase trains every candidate). */
  peakParameters: number;
  /** K asked for and K kept (the trainer's `k_requested`, `k_kept`; null where the method has no K). */
  kRequested: number | null;
  /** K kept at the end. */
  kKept: number | null;
  /** Median ms per optimizer step over the last phase. */
  stepMs: number | null;
  /** Wall time of the run (training and measuring), s. */
  wallS: number;
  /** Sequence length of the graphs. */
  seqLen: number;
}

/**
 * The trainer's options for a curve run: the largest budget's steps, constant learning rate, the method's
 * selection settings.
 *
 * @param spec The run.
 * @param config The configuration.
 * @param seqLen The task's sequence length.
 * @param out The run's folder.
 * @returns The options.
 */
export function curveTrainOptions(
  spec: CurveRunSpec,
  config: CurveConfig,
  seqLen: number,
  out: string,
): TrainOptions {
  const m = spec.method;
  return {
    method: m.method,
    k: m.k ?? 1,
    rank: config.rank,
    alpha: config.alpha,
    rslora: false,
    targetModules: [...LLAMA_MODULES],
    steps: config.budgets.at(-1)!,
    batchSize: config.batchSize,
    seqLen,
    gradAccum: 1,
    optimizer: "adamw",
    lr: spec.lr,
    lrGates: config.lrGates,
    weightDecay: 0,
    lrSchedule: "constant",
    warmupSteps: config.warmupSteps,
    maxGradNorm: 1,
    selectSteps: m.selectSteps,
    gateWarmup: m.gateWarmup,
    gateNorm: m.gateNorm,
    gateBound: "simplex",
    gateMaxStep: m.gateMaxStep ?? 0,
    budget: m.budget ?? null,
    budgetScore: m.budgetScore ?? "gate",
    reinitSurvivors: false,
    growEvery: config.growEvery,
    growRounds: config.growRounds,
    evalEvery: 0,
    saveEvery: config.saveEvery,
    seed: spec.seed,
    ep: config.ep,
    out,
  };
}

function adapterFigures(
  adapter: PeftAdapter,
  rank: number,
): Pick<BudgetResult, "parameters" | "sites" | "ranks"> {
  let parameters = 0;
  const ranks: Record<string, number> = {};
  for (const [name, t] of adapter.sites) {
    parameters += t.a.length + t.b.length;
    if (t.rank !== rank) ranks[name] = t.rank;
  }
  const sites = [...adapter.sites.keys()];
  return { parameters, sites, ...(Object.keys(ranks).length ? { ranks } : {}) };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Executes one curve run (or the base row) and writes `result.json`; returns the existing result when there is
 * one.
 *
 * @param job The run, settings and folders.
 * @returns The result.
 */
export async function executeCurveRun(job: CurveJob): Promise<CurveRunResult> {
  const { spec, config, paths } = job;
  const resultPath = `${paths.run}/result.json`;
  try {
    return JSON.parse(await Deno.readTextFile(resultPath)) as CurveRunResult;
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
  let result: CurveRunResult;
  if ("base" in spec) {
    const m = await measure(model, data, spec.task, config, undefined);
    result = {
      key: spec.key,
      task: spec.task,
      methodId: "base",
      lr: null,
      seed: null,
      status: "ok",
      budgets: [{ step: 0, ...m, parameters: 0, sites: [] }],
      peakParameters: 0,
      kRequested: null,
      kKept: null,
      stepMs: null,
      wallS: (performance.now() - started) / 1000,
      seqLen: data.seqLen,
    };
  } else {
    const options = curveTrainOptions(spec, config, data.seqLen, paths.run);
    const resume = await exists(`${paths.run}/checkpoint/trainer_state.json`)
      ? `${paths.run}/checkpoint`
      : undefined;
    const last = config.budgets.at(-1)!;
    const events: TrainEvents = { snapshotSteps: config.budgets.slice(0, -1) };
    let summary: TrainSummary | undefined;
    let error: string | undefined;
    try {
      summary = await train(
        { model: { id: model.id, config: model.config, weights: model.weights }, train: data.train, resume },
        options,
        events,
      );
    } catch (e) {
      const message = (e as Error).message;
      if (!message.startsWith("Training stopped: the loss is")) throw e;
      error = message;
    }
    const gated = spec.method.method === "weightlora" || spec.method.method === "weightlora-plus";
    const changes = gated
      ? (await readLog(`${paths.run}/train_log.jsonl`)).filter((r) => r.kept_in || r.kept_out).map((r) =>
        r.step
      )
      : [];
    const budgets: BudgetResult[] = [];
    for (const step of config.budgets) {
      const dir = step === last ? paths.run : `${paths.run}/snapshots/step-${step}`;
      if (step === last ? !summary : !(await exists(`${dir}/adapter_config.json`))) continue;
      const adapter = await loadPeftAdapter(dir, model.config);
      const m = await measure(model, data, spec.task, config, adapter);
      budgets.push({
        step,
        ...m,
        ...adapterFigures(adapter, config.rank),
        ...(gated ? { keptChanges: changes.filter((c) => c <= step).length } : {}),
      });
    }
    let stepMs: number | null = null;
    let peakParameters = 0;
    const s = summary;
    if (s) {
      const log = await readLog(`${paths.run}/train_log.jsonl`);
      const from = s.phases.at(-1)!.from_step;
      const steady = log.filter((r) => r.step > from + 1);
      stepMs = median(
        steady.map((r) => 1000 * (r.elapsed - log.find((x) => x.step === r.step - 1)!.elapsed)),
      );
      peakParameters = Math.max(...s.phases.map((p) => p.parameters));
    }
    result = {
      key: spec.key,
      task: spec.task,
      methodId: spec.method.id,
      lr: spec.lr,
      seed: spec.seed,
      status: error ? "diverged" : "ok",
      ...(error ? { error } : {}),
      budgets,
      peakParameters,
      kRequested: s?.k_requested ?? spec.method.k,
      kKept: s?.k_kept ?? null,
      stepMs,
      wallS: (performance.now() - started) / 1000,
      seqLen: data.seqLen,
    };
  }
  await Deno.writeTextFile(`${paths.run}/result.json.tmp`, JSON.stringify(result, null, 2) + "\n");
  await Deno.rename(`${paths.run}/result.json.tmp`, resultPath);
  await Deno.remove(`${paths.run}/checkpoint`, { recursive: true }).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  return result;
}

if (import.meta.main) {
  const [jobPath] = Deno.args;
  if (!jobPath) throw new Error("Usage: deno run -A bench/repro/curve_run.ts JOB.json");
  const result = await executeCurveRun(JSON.parse(await Deno.readTextFile(jobPath)) as CurveJob);
  console.log(JSON.stringify(result));
}
