/**
 * The interface every training method implements, and the names of training options in the two places users
 * give them: `deno task train` flags (`--select-steps`) and fine-tuning job hyperparameters (`select_steps`).
 *
 * A method decides four things and nothing else: which candidate sites start with an adapter, whether and
 * how the gates move after each step, which structural move follows a step (freeze and drop, grow ranks), and
 * what K it was asked for. The loop in `train()` is the same for every method.
 *
 * @module
 */

import type { AdapterSiteState } from "../../lora/adapter.ts";
import type { AdapterTrainer, GateUpdate } from "../adapter_trainer.ts";
import type { TrainMethod, TrainOptions } from "../trainer.ts";

/** Training phases: gates select (WeightLoRA), gates select and ranks grow (WeightLoRA+), or plain training. */
export type Phase = "select" | "grow" | "train";

/** What a method carries from step to step (saved in checkpoints). */
export interface MethodState {
  /** The phase. */
  phase: Phase;
  /** Sites the gates are projected onto now. */
  k: number;
  /** WeightLoRA+ growth rounds done. */
  growRound: number;
}

/** What a method's structural move may use after a step. */
export interface StepContext {
  /** The step just taken (1-based). */
  step: number;
  /** The run's options. */
  options: TrainOptions;
  /** The state before the move. */
  state: MethodState;
  /** The trainer (its sites, gates and graph). */
  trainer: AdapterTrainer;
  /** Candidate sites. */
  candidates: number;
  /** Records the gates under a label in `weightlora.json` (`after_selection`, `after_round_1`, …). */
  recordGates(label: string): void;
  /**
   * Records, under a label, the gate values the last projection chose from (every site's, before the
   * unselected ones were set to 0): what the selection saw.
   */
  recordScores(label: string): void;
  /** A human-readable progress note. */
  note(message: string): void;
}

/** A training method: one file per method under `src/train/methods/`. */
export interface TrainingMethod {
  /** Its name (`--method`). */
  readonly name: TrainMethod;
  /**
   * Checks the options against the candidate sites.
   *
   * @param options The run's options.
   * @param sites Every candidate site, initialised (rank and size known).
   * @param warmAdapter Training starts from an adapter whose B is not zero (`--init-adapter`).
   * @throws {TrainOptionError} Naming the option that does not fit.
   */
  validate(options: TrainOptions, sites: readonly AdapterSiteState[], warmAdapter: boolean): void;
  /** The state at step 0. */
  start(options: TrainOptions, candidates: number): MethodState;
  /** Turns the freshly initialised candidates into the starting adapter (e.g. K random sites). */
  initialSites(sites: AdapterSiteState[], options: TrainOptions): AdapterSiteState[];
  /** Whether the training graph has trainable gates in this state. */
  gatesTrainable(state: MethodState): boolean;
  /** How the gates move after step `step` (undefined: they stay as they are). */
  gateUpdate(state: MethodState, step: number, options: TrainOptions): GateUpdate | undefined;
  /** The structural move after a step's update (freeze, drop, grow), returning the new state. */
  afterStep(context: StepContext): Promise<MethodState>;
  /** The K asked for (`k_requested` in `weightlora.json`); null when the method keeps every site or a budget. */
  kRequested(options: TrainOptions, candidates: number): number | null;
}

/** Names an option for a message: a CLI flag (`--select-steps`) or a job hyperparameter (`select_steps`). */
export type OptionNamer = (field: keyof TrainOptions) => string;

const CLI_FLAG_NAMES: Partial<Record<keyof TrainOptions, string>> = { targetModules: "--target-modules" };

/** Names options as `deno task train` flags. */
export const cliOptionName: OptionNamer = (field) =>
  CLI_FLAG_NAMES[field] ?? `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/**
 * An option that does not fit the model, the data or another option. Its message names the option as a CLI
 * flag; {@linkcode TrainOptionError.render} names it the way another front end does (jobs: `select_steps`).
 */
export class TrainOptionError extends RangeError {
  /** The option at fault. */
  readonly field: keyof TrainOptions;
  /** The message with options named by `namer`. */
  readonly render: (namer: OptionNamer) => string;
  /**
   * @param field The option at fault.
   * @param render The message, given how to name options.
   */
  constructor(field: keyof TrainOptions, render: (namer: OptionNamer) => string) {
    super(render(cliOptionName));
    this.name = "TrainOptionError";
    this.field = field;
    this.render = render;
  }
}

/**
 * The first step whose gate gradient can tell sites apart: B starts at zero, so every gate gradient is exactly
 * 0 until A/B have taken one step (unless training starts from a trained adapter); gates held at 1 for
 * `gateWarmup` steps start moving after them.
 *
 * @param options The run's options.
 * @param warmAdapter Training starts from an adapter whose B is not zero.
 * @returns The first step on which a gate update can select.
 */
export function firstSelectingStep(options: TrainOptions, warmAdapter: boolean): number {
  return Math.max(options.gateWarmup + 1, warmAdapter ? 1 : 2);
}
