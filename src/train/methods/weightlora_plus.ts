/**
 * WeightLoRA+ (arXiv 2506.02724): start from every candidate site; every `growEvery` steps, project the gates
 * onto the top K with K halved, drop the rest, and double the survivors' rank with a function-preserving
 * init (the freed budget goes into rank); after `growRounds` rounds the gates freeze and the survivors train.
 *
 * @module
 */

import { projectTopK } from "../../lora/top_k.ts";
import { firstSelectingStep, type MethodState, type TrainingMethod, TrainOptionError } from "./method.ts";

/** K after `round` halvings of `candidates` sites. */
function kAfter(candidates: number, round: number): number {
  return Math.max(1, candidates >> round);
}

/** WeightLoRA+. */
export const WEIGHTLORA_PLUS: TrainingMethod = {
  name: "weightlora-plus",
  validate(options, sites, warmAdapter) {
    const n = sites.length;
    if (n >> options.growRounds < 1) {
      throw new TrainOptionError(
        "growRounds",
        (name) => `Cannot train: ${name("growRounds")} ${options.growRounds} would halve ${n} sites below 1`,
      );
    }
    const last = options.growEvery * options.growRounds;
    if (last >= options.steps) {
      throw new TrainOptionError(
        "growEvery",
        (name) =>
          `Cannot train: ${options.growRounds} growth rounds every ${options.growEvery} steps end at step ${last}, ` +
          `not before the run's last step (${name("steps")} ${options.steps}); lower ${
            name("growEvery")
          } or ` +
          `${name("growRounds")}, or raise ${name("steps")}`,
      );
    }
    const first = firstSelectingStep(options, warmAdapter);
    if (options.growEvery < first) {
      throw new TrainOptionError(
        "growEvery",
        (name) =>
          `Cannot select at step ${options.growEvery} (${name("growEvery")}): the gate gradients can first ` +
          `tell sites apart at step ${first}`,
      );
    }
  },
  start: (_options, candidates) => ({ phase: "grow", k: candidates, growRound: 0 }),
  initialSites: (sites) => sites,
  gatesTrainable: (state) => state.phase === "grow",
  gateUpdate(state, step, options) {
    if (state.phase !== "grow" || step <= options.gateWarmup) return undefined;
    const k = state.k;
    return {
      lr: options.lrGates,
      norm: options.gateNorm,
      select: (gates) => projectTopK(gates, Math.min(k, gates.length)).kept,
      topK: k,
      force: false,
    };
  },
  async afterStep(c): Promise<MethodState> {
    const { options, trainer, step } = c;
    const { growRound } = c.state;
    if (c.state.phase !== "grow" || step % options.growEvery !== 0 || growRound >= options.growRounds) {
      return c.state;
    }
    const round = growRound + 1;
    const k = kAfter(c.candidates, round);
    await trainer.projectGates((gates) => projectTopK(gates, Math.min(k, gates.length)).kept);
    c.recordScores(`scores_round_${round}`);
    const dropped = await trainer.dropUnselected("reset");
    if (trainer.survivors().length !== k) {
      throw new Error(
        `WeightLoRA+ kept ${trainer.survivors().length} sites instead of K = ${k} (a trainer bug)`,
      );
    }
    await trainer.doubleRanks(round, options.seed);
    c.recordGates(`after_round_${round}`);
    c.note(`Growth round ${round} at step ${step}: K = ${k}, dropped ${dropped.length}, ranks doubled`);
    if (round === options.growRounds) {
      await trainer.freezeGates({ reinitSurvivors: false, seed: options.seed });
      c.note(`Gates frozen after ${round} growth rounds`);
      return { phase: "train", k, growRound: round };
    }
    return { phase: "grow", k, growRound: round };
  },
  kRequested: (options, candidates) => kAfter(candidates, options.growRounds),
};
