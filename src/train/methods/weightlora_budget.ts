/**
 * Budgeted WeightLoRA (`--budget P`): WeightLoRA's schedule with a parameter budget instead of a count — keep
 * the sites with the best score per adapter parameter whose adapters total at most P trainable parameters
 * ({@linkcode selectWithinBudget}). What an operator pays for, in memory and in serving cost, is parameters.
 *
 * The score (`--budget-score`) is what the gates' steps say a site is worth ({@linkcode GateEvidence}):
 * `gradient`, the gate's accumulated SGD movement (the default); `taylor`, the accumulated first-order loss a
 * removal would cost; or `gate`, the gate's value — which stays near 1 over a short selection, so "best gate per
 * parameter" keeps the smallest adapters (measured: attention only, on every task and seed).
 *
 * @module
 */

import { selectWithinBudget } from "../../lora/budget.ts";
import type { AdapterSiteState } from "../../lora/adapter.ts";
import type { GateEvidence } from "../adapter_trainer.ts";
import type { TrainingMethod } from "./method.ts";
import { TrainOptionError } from "./method.ts";
import { type SelectionRule, weightLoraMethod } from "./weightlora.ts";

/**
 * What budgeted WeightLoRA fills its budget by, per parameter: `gradient` (the gate's accumulated movement),
 * `taylor` (Σ −g·∂L/∂g) or `gate` (the gate's value).
 */
export type BudgetScore = "gradient" | "taylor" | "gate";

/**
 * The scores a budget selection ranks by (divided by each site's parameters in {@linkcode selectWithinBudget}).
 *
 * @param score Which score.
 * @param gates The gates after this step's SGD update.
 * @param evidence The gates' accumulated evidence.
 * @returns One score per site; only positive scores are taken greedily.
 */
export function budgetScores(score: BudgetScore, gates: Float32Array, evidence: GateEvidence): Float32Array {
  return score === "gate" ? gates : score === "taylor" ? evidence.taylor : evidence.movement;
}

/** A site's adapter parameters at its rank. */
export function siteParameters(s: AdapterSiteState): number {
  return s.rank * (s.site.inFeatures + s.site.outFeatures);
}

/** The budget rule: the best score per parameter, within the budget. */
export const BUDGET: SelectionRule = {
  validate(options, sites) {
    const budget = options.budget;
    const smallest = Math.min(...sites.map(siteParameters));
    if (budget === null || !Number.isInteger(budget) || budget < smallest) {
      throw new TrainOptionError(
        "budget",
        (name) =>
          `Cannot train with ${name("budget")} ${budget}: the smallest candidate adapter has ${smallest} ` +
          `parameters at rank ${options.rank}, so the budget must be an integer ≥ ${smallest}`,
      );
    }
  },
  selector: (options) => (gates, sites, evidence) =>
    selectWithinBudget(
      budgetScores(options.budgetScore, gates, evidence),
      sites.map(siteParameters),
      options.budget!,
    ),
  kRequested: () => null,
  check(kept, options) {
    const total = kept.reduce((n, s) => n + siteParameters(s), 0);
    if (kept.length === 0 || total > options.budget!) {
      throw new Error(
        `Budgeted WeightLoRA kept ${kept.length} sites with ${total} parameters over the budget ${options.budget} ` +
          "(a trainer bug)",
      );
    }
  },
  describe: (options) => `budget ${options.budget} parameters by ${options.budgetScore} score`,
};

/** WeightLoRA with the parameter-budget rule. */
export const WEIGHTLORA_BUDGET: TrainingMethod = weightLoraMethod(BUDGET);
