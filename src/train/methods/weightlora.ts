/**
 * WeightLoRA (arXiv 2506.02724): a LoRA adapter with a scalar gate at every candidate site; the gates take SGD
 * steps and are projected onto a kept set (the top K) after each step. Two schedules:
 *
 * - **freeze and drop** (`selectSteps: T`): after step T the last projection's K sites are kept, their gates
 *   frozen, the other sites dropped from the graph — phase 2 trains K adapters only (the cheap schedule);
 * - **the authors'** (`selectSteps: "all"`): the gates train and are projected after every step of the run; a
 *   site gated off gets no A/B gradient (its output is multiplied by 0) but its gate gradient is not zero, so it
 *   may come back; the K survivors of the last step are exported. With `gateBound: "simplex"` (the default)
 *   the kept gates are projected onto {w ≥ 0, Σw ≤ K} after each projection (`../../lora/gate_bound.ts`) and a
 *   site gated off keeps its A/B still: the authors' own set, {w : ‖w‖₀ ≤ K}, does not bound the gates, and
 *   over 300 steps they grew until the loss diverged. `"none"` is the authors' algorithm as it is.
 *
 * Gates are held at 1 for `gateWarmup` steps first, and `gateNorm` normalises their gradient per site. The
 * kept-set rule is a parameter, so the budgeted variant (`./weightlora_budget.ts`) shares this schedule.
 *
 * @module
 */

import { projectTopK } from "../../lora/top_k.ts";
import type { AdapterSiteState } from "../../lora/adapter.ts";
import type { GateSelector } from "../adapter_trainer.ts";
import type { TrainOptions } from "../trainer.ts";
import {
  firstSelectingStep,
  type MethodState,
  type StepContext,
  type TrainingMethod,
  TrainOptionError,
} from "./method.ts";

/** How a WeightLoRA variant chooses its kept set. */
export interface SelectionRule {
  /** Checks the rule's options (K in range, a budget that fits) against the candidates. */
  validate(options: TrainOptions, sites: readonly AdapterSiteState[]): void;
  /** The selector for the run's options. */
  selector(options: TrainOptions): GateSelector;
  /** The K asked for, or null (a budget). */
  kRequested(options: TrainOptions): number | null;
  /** Checks the kept set after the last selection (throws when the rule was not met). */
  check(kept: readonly AdapterSiteState[], options: TrainOptions): void;
  /** The kept set in words, for notes. */
  describe(options: TrainOptions): string;
}

/** The top-K rule: exactly K sites. */
export const TOP_K: SelectionRule = {
  validate(options, sites) {
    const n = sites.length;
    if (!Number.isInteger(options.k) || options.k < 1 || options.k > n) {
      throw new TrainOptionError(
        "k",
        (name) =>
          `Cannot train with ${
            name("k")
          } ${options.k}: K must be an integer in 1..${n} (the number of candidate sites)`,
      );
    }
  },
  selector: (options) => (gates) => projectTopK(gates, Math.min(options.k, gates.length)).kept,
  kRequested: (options) => options.k,
  check(kept, options) {
    if (kept.length !== options.k) {
      throw new Error(`WeightLoRA kept ${kept.length} sites instead of K = ${options.k} (a trainer bug)`);
    }
  },
  describe: (options) => `K = ${options.k}`,
};

/** The last step of the selection: the freeze step, or the run's last step for the authors' schedule. */
export function lastSelectionStep(options: TrainOptions): number {
  return options.selectSteps === "all" ? options.steps : options.selectSteps;
}

/**
 * Checks a WeightLoRA selection schedule: it must end before the run does (freeze and drop) and contain a
 * step whose gate gradient can tell sites apart.
 *
 * @param options The run's options.
 * @param warmAdapter Training starts from an adapter whose B is not zero.
 * @throws {TrainOptionError} Naming `selectSteps` or `gateWarmup`.
 */
export function validateSchedule(options: TrainOptions, warmAdapter: boolean): void {
  const first = firstSelectingStep(options, warmAdapter);
  const s = options.selectSteps;
  if (s !== "all" && (!Number.isInteger(s) || s < 1)) {
    throw new TrainOptionError(
      "selectSteps",
      (n) => `Invalid ${n("selectSteps")} ${s}: expected "all" or an integer ≥ 1`,
    );
  }
  if (s !== "all" && s >= options.steps) {
    throw new TrainOptionError(
      "selectSteps",
      (n) => `Cannot train: ${n("selectSteps")} ${s} must be below ${n("steps")} ${options.steps}`,
    );
  }
  const last = lastSelectionStep(options);
  if (last < first) {
    const why = options.gateWarmup > 0
      ? (n: (f: keyof TrainOptions) => string) =>
        `the gates are held at 1 for ${n("gateWarmup")} ${options.gateWarmup} steps`
      : () => "B starts at zero, so every gate gradient is 0 at step 1 and no site can be told from another";
    throw new TrainOptionError(
      options.selectSteps === "all" ? "steps" : "selectSteps",
      (n) =>
        `Cannot select: ${why(n)}; the selection must reach step ${first} (${
          options.selectSteps === "all" ? `${n("steps")} ≥ ${first}` : `${n("selectSteps")} ≥ ${first}`
        })`,
    );
  }
}

/**
 * A WeightLoRA method with the given kept-set rule.
 *
 * @param rule Top K, or a parameter budget.
 * @returns The method.
 */
export function weightLoraMethod(rule: SelectionRule): TrainingMethod {
  return {
    name: "weightlora",
    validate(options, sites, warmAdapter) {
      rule.validate(options, sites);
      validateSchedule(options, warmAdapter);
    },
    start: (options) => ({ phase: "select", k: options.k, growRound: 0 }),
    initialSites: (sites) => sites,
    gatesTrainable: (state) => state.phase === "select",
    gateUpdate(state, step, options) {
      if (state.phase !== "select" || step <= options.gateWarmup) return undefined;
      return {
        lr: options.lrGates,
        norm: options.gateNorm,
        select: rule.selector(options),
        // plain top K while selecting to freeze: the optimizer graph steps and projects the gates
        topK: rule === TOP_K && options.selectSteps !== "all" ? options.k : undefined,
        force: step === lastSelectionStep(options),
        bound: options.selectSteps === "all" && options.gateBound === "simplex",
        holdGatedOff: options.selectSteps === "all" && options.gateBound === "simplex",
        maxStep: options.selectSteps === "all" ? options.gateMaxStep : 0,
      };
    },
    async afterStep(c: StepContext): Promise<MethodState> {
      const { options, trainer, step } = c;
      if (c.state.phase !== "select" || step !== lastSelectionStep(options)) return c.state;
      c.recordScores("selection_scores");
      if (options.selectSteps === "all") {
        rule.check(trainer.survivors(), options);
        return c.state; // the run ends here: the survivors are exported
      }
      await trainer.sync();
      c.recordGates("after_selection");
      const dropped = await trainer.freezeGates({
        reinitSurvivors: options.reinitSurvivors,
        seed: options.seed,
      });
      rule.check(trainer.survivors(), options);
      c.note(
        `Selection done at step ${step} (${
          rule.describe(options)
        }): kept ${trainer.sizes.activeSites} sites, ` +
          `dropped ${dropped.length}`,
      );
      return { ...c.state, phase: "train" };
    },
    kRequested: (options) => rule.kRequested(options),
  };
}

/** WeightLoRA with the top-K rule. */
export const WEIGHTLORA: TrainingMethod = weightLoraMethod(TOP_K);
