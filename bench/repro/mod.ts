/**
 * The reproduction of the WeightLoRA paper's comparison (`deno task repro`, see `repro.ts`): the plan of
 * runs and learning-rate choice, one run in its own process, the aggregation into tables and the reading of
 * the paper's claims, and the plot.
 *
 * @example
 * ```ts
 * import { FULL_CONFIG, methodSpecs, sweepRuns } from "./mod.ts";
 * import assert from "node:assert/strict";
 * assert.equal(methodSpecs(FULL_CONFIG).length, 10);
 * assert.equal(sweepRuns(FULL_CONFIG).length, 180);
 * ```
 *
 * @module
 */

export * from "./plan.ts";
export * from "./run_one.ts";
export * from "./summary.ts";
export * from "./plot.ts";
