/**
 * Budgeted WeightLoRA (`--budget P`): WeightLoRA's schedule with a parameter budget instead of a count — keep
 * the sites with the best gate per adapter parameter whose adapters total at most P trainable parameters
 * ({@linkcode selectWithinBudget}). What an operator pays for, in memory and in serving cost, is parameters.
 *
 * @module
 */

import { selectWithinBudget } from "../../lora/budget.ts";
import type { AdapterSiteState } from "../../lora/adapter.ts";
import type { TrainingMethod } from "./method.ts";
import { TrainOptionError } from "./method.ts";
import { type SelectionRule, weightLoraMethod } from "./weightlora.ts";

/** A site's adapter parameters at its rank. */
export function siteParameters(s: AdapterSiteState): number {
  return s.rank * (s.site.inFeatures + s.site.outFeatures);
}

/** The budget rule: the best gate per parameter, within the budget. */
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
  selector: (options) => (gates, sites) =>
    selectWithinBudget(gates, sites.map(siteParameters), options.budget!),
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
  describe: (options) => `budget ${options.budget} parameters`,
};

/** WeightLoRA with the parameter-budget rule. */
export const WEIGHTLORA_BUDGET: TrainingMethod = weightLoraMethod(BUDGET);
