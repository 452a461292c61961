/**
 * The plan of the reproduction: which methods, which runs, in which order, and how a learning rate is
 * chosen. Pure functions over a {@linkcode ReproConfig}; the runner ({@link ./repro.ts}) executes the plan.
 *
 * Per task, every method is first trained at every learning rate of the sweep on the first seed; the
 * learning rate with the lowest dev loss is the method's; the remaining seeds then run at it. A method's
 * reported figures are over all seeds at its chosen learning rate (the sweep run of the first seed is one
 * of them).
 *
 * @example
 * ```ts
 * import { methodSpecs, SMOKE_CONFIG, sweepRuns } from "./plan.ts";
 * import assert from "node:assert/strict";
 * const methods = methodSpecs(SMOKE_CONFIG);
 * assert.equal(sweepRuns(SMOKE_CONFIG).length, SMOKE_CONFIG.tasks.length * methods.length * SMOKE_CONFIG.lrs.length);
 * ```
 *
 * @module
 */

import type { TrainMethod } from "../../src/train/trainer.ts";
import type { TaskName, TaskSizes } from "../tasks/generate.ts";

/** Method families of the comparison. */
export type MethodFamily = "lora" | "randlora" | "weightlora" | "weightlora-plus";

/** Every setting that changes the results (not how the runs are scheduled). */
export interface ReproConfig {
  /** Tasks to run. */
  tasks: TaskName[];
  /** Method families to run. */
  families: MethodFamily[];
  /** K of random sites and WeightLoRA. */
  ks: number[];
  /** Learning rates of the sweep (A and B). */
  lrs: number[];
  /** Seeds; the first one is also the sweep's. */
  seeds: number[];
  /** Optimizer steps of every run. */
  steps: number;
  /** Rows per step. */
  batchSize: number;
  /** LoRA rank (the initial rank for WeightLoRA+). */
  rank: number;
  /** LoRA alpha (scale alpha / rank). */
  alpha: number;
  /** WeightLoRA selection steps. */
  selectSteps: number;
  /** WeightLoRA+: steps between rank doublings (F). */
  growEvery: number;
  /** WeightLoRA+: doublings (M). */
  growRounds: number;
  /** Learning rate of the gates (plain SGD). */
  lrGates: number;
  /** Learning-rate schedule. */
  lrSchedule: "constant" | "linear" | "cosine";
  /** Rows per task split. */
  sizes: TaskSizes;
  /** Longest row in tokens. */
  seqLen: number;
  /** Longest sampled story row in tokens. */
  storyTokens: number;
  /** Seed of the task data. */
  dataSeed: number;
  /** Execution provider of training and evaluation. */
  ep: "wasm" | "webgpu";
}

/** The configuration of `deno task repro` (the paper's comparison, sized for a 2-core machine). */
export const FULL_CONFIG: ReproConfig = {
  tasks: ["world", "qa", "topic"],
  families: ["lora", "randlora", "weightlora", "weightlora-plus"],
  ks: [3, 5, 9, 17],
  lrs: [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
  seeds: [0, 1, 2],
  steps: 60,
  batchSize: 8,
  rank: 4,
  alpha: 8,
  selectSteps: 6,
  growEvery: 10,
  growRounds: 2,
  lrGates: 5,
  lrSchedule: "linear",
  sizes: { train: 640, dev: 64, eval: 128 },
  seqLen: 96,
  storyTokens: 96,
  dataSeed: 1234,
  ep: "wasm",
};

/** The CI configuration: one task, one seed, two learning rates, a few steps. */
export const SMOKE_CONFIG: ReproConfig = {
  ...FULL_CONFIG,
  tasks: ["qa"],
  ks: [3],
  lrs: [1e-3, 1e-2],
  seeds: [0],
  steps: 6,
  selectSteps: 2,
  growEvery: 2,
  growRounds: 2,
  sizes: { train: 32, dev: 8, eval: 8 },
};

/** One method of the comparison. */
export interface MethodSpec {
  /** Identifier used in paths and JSON (`lora`, `randlora-k3`, `weightlora-k3`, `weightlora-plus`). */
  id: string;
  /** Family. */
  family: MethodFamily;
  /** The trainer's method. */
  method: TrainMethod;
  /** Sites kept (random sites, WeightLoRA); null for LoRA and WeightLoRA+. */
  k: number | null;
  /** Name in tables. */
  label: string;
}

/**
 * The methods of a configuration, in table order: LoRA, then random sites (K) and WeightLoRA(K) for each K,
 * then WeightLoRA+.
 *
 * @param config The configuration.
 * @returns The methods.
 */
export function methodSpecs(config: Pick<ReproConfig, "families" | "ks" | "growRounds">): MethodSpec[] {
  const out: MethodSpec[] = [];
  const has = (f: MethodFamily) => config.families.includes(f);
  if (has("lora")) {
    out.push({ id: "lora", family: "lora", method: "lora", k: null, label: "LoRA (all sites)" });
  }
  for (const k of config.ks) {
    if (has("randlora")) {
      out.push({
        id: `randlora-k${k}`,
        family: "randlora",
        method: "random-sites", // family and ids keep the old name, so earlier results still match
        k,
        label: `Random sites (K=${k})`,
      });
    }
  }
  for (const k of config.ks) {
    if (has("weightlora")) {
      out.push({
        id: `weightlora-k${k}`,
        family: "weightlora",
        method: "weightlora",
        k,
        label: `WeightLoRA (K=${k})`,
      });
    }
  }
  if (has("weightlora-plus")) {
    out.push({
      id: "weightlora-plus",
      family: "weightlora-plus",
      method: "weightlora-plus",
      k: null,
      label: `WeightLoRA+ (M=${config.growRounds})`,
    });
  }
  return out;
}

/** One training run. */
export interface RunSpec {
  /** Unique key, also the run's folder under `runs/`: `<task>/<method>/lr<lr>-seed<seed>`. */
  key: string;
  /** Task. */
  task: TaskName;
  /** Method. */
  method: MethodSpec;
  /** Learning rate of A and B. */
  lr: number;
  /** Seed. */
  seed: number;
  /** Whether the run belongs to the learning-rate sweep. */
  stage: "sweep" | "seeds";
}

/**
 * A learning rate as it appears in keys (`3e-4`, `1e-3`, `0.01` → `1e-2`).
 *
 * @param lr The learning rate.
 * @returns Its short text.
 */
export function lrText(lr: number): string {
  return lr.toExponential().replace(/\.?0+e/, "e").replace("e+", "e");
}

function runSpec(
  task: TaskName,
  method: MethodSpec,
  lr: number,
  seed: number,
  stage: RunSpec["stage"],
): RunSpec {
  return { key: `${task}/${method.id}/lr${lrText(lr)}-seed${seed}`, task, method, lr, seed, stage };
}

/**
 * The sweep: every task × method × learning rate, on the first seed.
 *
 * @param config The configuration.
 * @returns The runs, task by task, method by method.
 */
export function sweepRuns(config: ReproConfig): RunSpec[] {
  const seed = config.seeds[0];
  return config.tasks.flatMap((task) =>
    methodSpecs(config).flatMap((method) => config.lrs.map((lr) => runSpec(task, method, lr, seed, "sweep")))
  );
}

/**
 * The remaining seeds of one task and method at its chosen learning rate.
 *
 * @param config The configuration.
 * @param task The task.
 * @param method The method.
 * @param lr The chosen learning rate.
 * @returns The runs (none when there is one seed).
 */
export function seedRuns(config: ReproConfig, task: TaskName, method: MethodSpec, lr: number): RunSpec[] {
  return config.seeds.slice(1).map((seed) => runSpec(task, method, lr, seed, "seeds"));
}

/** What the learning-rate choice reads from a sweep run. */
export interface SweepPoint {
  /** Learning rate. */
  lr: number;
  /** Dev loss; null when the run diverged. */
  devLoss: number | null;
}

/**
 * The learning rate with the lowest dev loss (diverged runs never win; on a tie the smaller rate).
 *
 * @param points The sweep's results for one task and method.
 * @returns The chosen learning rate.
 * @throws {Error} When every run diverged.
 */
export function chooseLr(points: readonly SweepPoint[]): number {
  let best: SweepPoint | undefined;
  for (const p of points) {
    if (p.devLoss === null || !Number.isFinite(p.devLoss)) continue;
    if (!best || p.devLoss < best.devLoss! || (p.devLoss === best.devLoss && p.lr < best.lr)) best = p;
  }
  if (!best) {
    throw new Error(
      `Cannot choose a learning rate: every sweep run diverged (rates ${points.map((p) => p.lr).join(", ")})`,
    );
  }
  return best.lr;
}

/** Settings that only choose which runs exist; every run's folder is keyed by them (task, method, rate, seed). */
export const PLAN_KEYS: readonly (keyof ReproConfig)[] = ["tasks", "families", "ks", "lrs", "seeds"];

/**
 * The settings that change what a run computes and differ between two configurations. Runs made under one
 * are valid under the other when none differ, so a comparison may be extended (another learning rate, seed,
 * K or task) in the same work folder.
 *
 * @param a One configuration.
 * @param b Another.
 * @returns The differing run settings' names.
 */
export function runSettingsDiffer(a: ReproConfig, b: ReproConfig): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)] as (keyof ReproConfig)[]);
  return [...keys].filter((k) => !PLAN_KEYS.includes(k) && JSON.stringify(a[k]) !== JSON.stringify(b[k]));
}

/**
 * Checks a configuration, naming the bad setting.
 *
 * @param config The configuration.
 * @param candidateSites Adapter sites of the model (35 for stories260K).
 * @throws {RangeError} On an empty list, a K outside 1..candidateSites, selection or growth that does not
 *   fit in the steps.
 */
export function validateConfig(config: ReproConfig, candidateSites: number): void {
  for (const field of ["tasks", "families", "lrs", "seeds"] as const) {
    if (config[field].length === 0) throw new RangeError(`Invalid repro configuration: "${field}" is empty`);
  }
  const needsK = config.families.some((f) => f === "randlora" || f === "weightlora");
  if (needsK && config.ks.length === 0) throw new RangeError(`Invalid repro configuration: "ks" is empty`);
  const badK = config.ks.find((k) => !Number.isInteger(k) || k < 1 || k > candidateSites);
  if (badK !== undefined) {
    throw new RangeError(`Invalid repro configuration: K ${badK} is outside 1..${candidateSites}`);
  }
  if (config.families.includes("weightlora") && config.selectSteps >= config.steps) {
    throw new RangeError(
      `Invalid repro configuration: selectSteps ${config.selectSteps} must be below steps ${config.steps}`,
    );
  }
  if (config.families.includes("weightlora-plus") && config.growEvery * config.growRounds >= config.steps) {
    throw new RangeError(
      `Invalid repro configuration: ${config.growRounds} growth rounds every ${config.growEvery} steps do ` +
        `not fit in ${config.steps} steps`,
    );
  }
  if (new Set(config.seeds).size !== config.seeds.length) {
    throw new RangeError(`Invalid repro configuration: seeds ${config.seeds.join(", ")} repeat`);
  }
}
