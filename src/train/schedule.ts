/**
 * Learning-rate schedules: linear warmup, then constant, linear decay to 0, or cosine decay to 0.
 *
 * @module
 */

/** Schedule shapes after warmup. */
export type LrScheduleKind = "constant" | "linear" | "cosine";

/** Options for {@linkcode learningRate}. */
export interface LrScheduleOptions {
  /** Peak learning rate. */
  lr: number;
  /** Shape after warmup. */
  schedule: LrScheduleKind;
  /** Steps of linear warmup from 0. */
  warmupSteps: number;
  /** Total optimizer steps. */
  totalSteps: number;
}

/**
 * The learning rate at a 1-based optimizer step: Hugging Face's `get_*_schedule_with_warmup` shapes, except
 * that warmup starts at lr/warmup rather than at 0 (no wasted first step).
 *
 * @param step The step about to be taken (1 … totalSteps).
 * @param options Peak rate, shape, warmup and total steps.
 * @returns The learning rate.
 * @example
 * ```ts
 * import { learningRate } from "./schedule.ts";
 * console.assert(learningRate(3, { lr: 1, schedule: "linear", warmupSteps: 0, totalSteps: 4 }) === 0.5);
 * ```
 */
export function learningRate(step: number, options: LrScheduleOptions): number {
  const { lr, warmupSteps, totalSteps } = options;
  const t = step - 1; // steps already taken
  if (t < warmupSteps) return lr * (t + 1) / warmupSteps;
  if (options.schedule === "constant") return lr;
  const progress = Math.min(1, (t - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
  if (options.schedule === "linear") return lr * (1 - progress);
  return lr * 0.5 * (1 + Math.cos(Math.PI * progress));
}
