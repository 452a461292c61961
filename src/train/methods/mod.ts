/**
 * Training methods, one file each behind {@linkcode TrainingMethod}: WeightLoRA (top K or a parameter budget),
 * WeightLoRA+, LoRA on every site, and random sites.
 *
 * @module
 */

import type { TrainOptions } from "../trainer.ts";
import type { AdapterSite } from "../../models/sites.ts";
import { type AdapterSiteState, loraScale } from "../../lora/adapter.ts";
import type { TrainingMethod } from "./method.ts";
import { WEIGHTLORA } from "./weightlora.ts";
import { WEIGHTLORA_BUDGET } from "./weightlora_budget.ts";
import { WEIGHTLORA_PLUS } from "./weightlora_plus.ts";
import { LORA } from "./lora.ts";
import { RANDOM_SITES } from "./random_sites.ts";

export * from "./method.ts";

/**
 * The method of a run's options (`weightlora` with a `budget` is budgeted WeightLoRA).
 *
 * @param options The run's options.
 * @returns The method.
 */
export function trainingMethod(options: Pick<TrainOptions, "method" | "budget">): TrainingMethod {
  switch (options.method) {
    case "weightlora":
      return options.budget === null || options.budget === undefined ? WEIGHTLORA : WEIGHTLORA_BUDGET;
    case "weightlora-plus":
      return WEIGHTLORA_PLUS;
    case "lora":
      return LORA;
    case "random-sites":
      return RANDOM_SITES;
  }
}

/**
 * Checks a run's options against the model's candidate sites before any training (what the jobs API does
 * when a job is created): the method's own checks on sites initialised at the run's rank.
 *
 * @param options The run's options.
 * @param candidates The candidate sites (the model's sites of the target modules).
 * @throws {TrainOptionError} Naming the option that does not fit.
 */
export function validateTrainOptions(options: TrainOptions, candidates: readonly AdapterSite[]): void {
  const sites: AdapterSiteState[] = candidates.map((site) => ({
    site,
    rank: options.rank,
    scale: loraScale(options.alpha, options.rank, options.rslora),
    gate: 1,
    active: true,
    a: new Float32Array(),
    b: new Float32Array(),
  }));
  trainingMethod(options).validate(options, sites, false);
}
