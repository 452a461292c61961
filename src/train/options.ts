/**
 * The defaults of every training option, shared by `deno task train`, the demo, fine-tuning jobs and the
 * benchmarks, so that each of them means the same thing by "default".
 *
 * @module
 */

import { LLAMA_MODULES } from "../models/sites.ts";
import type { TrainOptions } from "./trainer.ts";

/**
 * Default value of every option but `out` and `selectSteps` (see {@linkcode defaultSelectSteps}).
 */
export const TRAIN_DEFAULTS: Readonly<Omit<TrainOptions, "out" | "selectSteps">> = {
  method: "weightlora",
  k: 5,
  rank: 8,
  alpha: 16,
  rslora: false,
  dropout: 0,
  targetModules: [...LLAMA_MODULES],
  steps: 200,
  batchSize: 8,
  seqLen: 256,
  gradAccum: 1,
  optimizer: "adamw",
  lr: 1e-3,
  lrGates: 5,
  weightDecay: 0,
  lrSchedule: "linear",
  warmupSteps: 0,
  maxGradNorm: 1,
  reinitSurvivors: false,
  gateWarmup: 0,
  gateNorm: "none",
  budget: null,
  growEvery: 10,
  growRounds: 2,
  evalEvery: 0,
  saveEvery: 100,
  seed: 0,
  ep: "auto",
};

/**
 * The default selection schedule of a run of `steps` steps: a tenth of the run, and at least 2 steps (B starts
 * at zero, so the gate gradients first tell sites apart at step 2).
 *
 * @param steps The run's steps.
 * @returns max(2, ⌊steps / 10⌋).
 */
export function defaultSelectSteps(steps: number): number {
  return Math.max(2, Math.floor(steps / 10));
}

/**
 * Fills in the defaults.
 *
 * @param options The options that are set (`out` is required).
 * @returns Complete options; `selectSteps` defaults to {@linkcode defaultSelectSteps}.
 * @example
 * ```ts
 * import { withTrainDefaults } from "./options.ts";
 * const o = withTrainDefaults({ out: "runs/x", steps: 50 });
 * console.assert(o.selectSteps === 5 && o.method === "weightlora");
 * ```
 */
export function withTrainDefaults(options: Partial<TrainOptions> & { out: string }): TrainOptions {
  const steps = options.steps ?? TRAIN_DEFAULTS.steps;
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  return {
    ...TRAIN_DEFAULTS,
    targetModules: [...TRAIN_DEFAULTS.targetModules],
    selectSteps: defaultSelectSteps(steps),
    ...defined,
  } as TrainOptions;
}
