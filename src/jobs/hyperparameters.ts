/**
 * The `method` of a fine-tuning job request — `{type: "weightlora" | "weightlora-plus" | "lora" |
 * "random-sites", <type>: {hyperparameters: {...}}}` — checked and resolved into the trainer's options
 * (`randlora`, the old name of `random-sites`, is accepted as an alias).
 *
 * Hyperparameters are the training CLI's options in snake_case, each with the CLI's default (`"auto"`
 * also means the default), plus `completion_eos` (the CLI's `--no-completion-eos` is `false`); `n_epochs` is converted to steps once the data is known. An unknown name, a
 * name that does not belong to the method, a wrong type or an out-of-range value is a
 * {@linkcode HyperparameterError} naming the parameter.
 *
 * @module
 */

import type { AdapterSite } from "../models/sites.ts";
import {
  checkOptionValue,
  defaultSelectSteps,
  MAX_STEPS,
  type OptionField,
  TRAIN_DEFAULTS,
  TRAIN_OPTION_SPECS,
  type TrainOptionSpec,
} from "../train/options.ts";
import { TrainOptionError, validateTrainOptions } from "../train/methods/mod.ts";
import { TRAIN_METHODS, type TrainMethod, trainMethod, type TrainOptions } from "../train/trainer.ts";

/**
 * Trainer options a job stores (the server chooses the output folder and the execution provider), plus
 * the data option `completionEos` (end `{"prompt","completion"}` rows with EOS; the CLI's default, true).
 */
export type JobTrainOptions = Omit<TrainOptions, "out" | "ep"> & { completionEos: boolean };

export { MAX_STEPS };

/** A bad `method` or hyperparameter (a 400 naming {@linkcode HyperparameterError.param}). */
export class HyperparameterError extends RangeError {
  /** The request parameter, e.g. `method.weightlora.hyperparameters.rank`. */
  readonly param: string;
  /**
   * @param message What is wrong, with the bad value.
   * @param param The parameter.
   */
  constructor(message: string, param: string) {
    super(message);
    this.name = "HyperparameterError";
    this.param = param;
  }
}

/** The methods a job may ask for. */
export const JOB_METHODS: readonly TrainMethod[] = TRAIN_METHODS;

/** Every hyperparameter by its snake_case name: the training options that have one. */
const SPECS: Record<string, TrainOptionSpec> = Object.fromEntries(
  TRAIN_OPTION_SPECS.filter((s) => s.job !== null).map((s) => [s.job!, s]),
);

/** Option field → job hyperparameter name. */
const SNAKE_NAMES = new Map<string, string>(Object.entries(SPECS).map(([name, spec]) => [spec.field, name]));

/** The defaults: the training CLI's ({@linkcode TRAIN_DEFAULTS}); `selectSteps` follows `steps` when not given. */
const DEFAULTS: Omit<JobTrainOptions, "method" | "selectSteps"> = (() => {
  const { ep: _ep, method: _method, ...rest } = TRAIN_DEFAULTS;
  return { ...rest, completionEos: true };
})();

/** A parsed `method`, before the data is known. */
export interface ParsedMethod {
  /** The method. */
  type: TrainMethod;
  /** The hyperparameters as given (snake_case, `"auto"` removed). */
  given: Record<string, unknown>;
  /** Options with defaults filled in; `steps` and `selectSteps` are final only after {@linkcode resolveMethod}. */
  options: JobTrainOptions;
  /** Epochs, when given instead of steps. */
  nEpochs?: number;
}

/** What {@linkcode resolveMethod} needs to know about the model and the data. */
export interface DataFacts {
  /** Candidate adapter sites of the model for the chosen target modules. */
  candidates: readonly AdapterSite[];
  /** Training rows. */
  rows: number;
  /** Longest row in tokens (training and validation data), after truncation to `seqLen`. */
  longestRow: number;
}

function describe(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

function checkValue(name: string, spec: TrainOptionSpec, value: unknown, param: string): unknown {
  const checked = checkOptionValue(spec, value);
  if ("expected" in checked) {
    throw new HyperparameterError(
      `Invalid hyperparameter ${name} ${describe(value)}: expected ${checked.expected}`,
      param,
    );
  }
  return checked.value;
}

/**
 * Checks a request's `method` (and an optional top-level `seed`) and fills in defaults.
 *
 * @param method The request's `method` (`undefined`: WeightLoRA with defaults).
 * @param seed The request's top-level `seed`, if any (the hyperparameter wins when both are given and agree).
 * @returns The method type, the given hyperparameters and the options so far.
 * @throws {HyperparameterError} On a bad method, an unknown or misplaced name, or a bad value.
 * @example
 * ```ts
 * import { parseMethod } from "./hyperparameters.ts";
 * const m = parseMethod({ type: "lora", lora: { hyperparameters: { rank: 4, steps: 3 } } });
 * console.assert(m.options.rank === 4 && m.options.lr === 1e-3);
 * ```
 */
export function parseMethod(method: unknown, seed?: unknown): ParsedMethod {
  const m = method ?? { type: "weightlora" };
  if (typeof m !== "object" || m === null || Array.isArray(m)) {
    throw new HyperparameterError(
      `Invalid method ${describe(m)}: expected an object {type, <type>}`,
      "method",
    );
  }
  const record = m as Record<string, unknown>;
  const type = record.type;
  if (typeof type !== "string" || !([...JOB_METHODS, "randlora"] as readonly string[]).includes(type)) {
    throw new HyperparameterError(
      `Invalid method.type ${describe(type)}: expected one of ${JOB_METHODS.join(", ")}`,
      "method.type",
    );
  }
  const resolved = trainMethod(type);
  const extra = Object.keys(record).filter((key) => key !== "type" && key !== type);
  if (extra.length) {
    throw new HyperparameterError(
      `Invalid method: unknown field ${extra.map((k) => `"${k}"`).join(", ")} for type ${type}`,
      `method.${extra[0]}`,
    );
  }
  const body = record[type] ?? {};
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HyperparameterError(
      `Invalid method.${type} ${describe(body)}: expected an object`,
      `method.${type}`,
    );
  }
  const bodyKeys = Object.keys(body).filter((k) => k !== "hyperparameters");
  if (bodyKeys.length) {
    throw new HyperparameterError(
      `Invalid method.${type}: unknown field "${bodyKeys[0]}" (only "hyperparameters")`,
      `method.${type}.${bodyKeys[0]}`,
    );
  }
  const hp = (body as Record<string, unknown>).hyperparameters ?? {};
  if (typeof hp !== "object" || hp === null || Array.isArray(hp)) {
    throw new HyperparameterError(
      `Invalid method.${type}.hyperparameters ${describe(hp)}: expected an object`,
      `method.${type}.hyperparameters`,
    );
  }
  const prefix = `method.${type}.hyperparameters`;
  const names = Object.keys(hp);
  const unknown = names.filter((n) => !(n in SPECS));
  if (unknown.length) {
    throw new HyperparameterError(
      `Unknown hyperparameter${unknown.length > 1 ? "s" : ""} ${unknown.map((n) => `"${n}"`).join(", ")}; ` +
        `known for ${type}: ${knownFor(resolved).join(", ")}`,
      `${prefix}.${unknown[0]}`,
    );
  }
  const misplaced = names.filter((n) => SPECS[n].methods && !SPECS[n].methods!.includes(resolved));
  if (misplaced.length) {
    throw new HyperparameterError(
      `Hyperparameter "${misplaced[0]}" does not apply to method ${type}; known for ${type}: ` +
        knownFor(resolved).join(", "),
      `${prefix}.${misplaced[0]}`,
    );
  }
  const given: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(hp as Record<string, unknown>)) {
    if (value === "auto" && SPECS[name].type.kind !== "enum") continue;
    if (value === null && SPECS[name].default === null) continue;
    given[name] = checkValue(name, SPECS[name], value, `${prefix}.${name}`);
  }
  if (seed !== undefined && seed !== null) {
    const s = checkValue("seed", SPECS.seed, seed, "seed");
    if (given.seed !== undefined && given.seed !== s) {
      throw new HyperparameterError(
        `Conflicting seeds: seed ${s} and hyperparameter seed ${given.seed}`,
        "seed",
      );
    }
    given.seed = s;
  }
  if (given.k !== undefined && given.budget !== undefined) {
    throw new HyperparameterError(
      "Give k or budget, not both: the sites to keep or their parameter budget",
      `${prefix}.budget`,
    );
  }
  if (given.steps !== undefined && given.n_epochs !== undefined) {
    throw new HyperparameterError("Give steps or n_epochs, not both", `${prefix}.n_epochs`);
  }
  const options = {
    ...DEFAULTS,
    targetModules: [...DEFAULTS.targetModules],
    method: resolved,
    selectSteps: 0,
  } as JobTrainOptions;
  let nEpochs: number | undefined;
  for (const [name, value] of Object.entries(given)) {
    const field: OptionField = SPECS[name].field;
    if (field === "nEpochs") nEpochs = value as number;
    else (options as unknown as Record<string, unknown>)[field] = value;
  }
  return { type: resolved, given, options, nEpochs };
}

function knownFor(type: TrainMethod): string[] {
  return Object.keys(SPECS).filter((n) => !SPECS[n].methods || SPECS[n].methods!.includes(type));
}

/**
 * Completes the options once the model and the data are known: `n_epochs` → steps, the sequence length
 * shrunk to the longest row (as the CLI does), `select_steps` defaulted as the CLI does, and the trainer's
 * own checks of the method against the model (K ≤ candidate sites, a schedule that selects, a budget that
 * fits, WeightLoRA+ rounds that fit the run), with the hyperparameter named in snake_case.
 *
 * @param parsed From {@linkcode parseMethod}.
 * @param facts Candidate sites, rows, longest row.
 * @returns The trainer options and the method echo for the job object (every hyperparameter resolved).
 * @throws {HyperparameterError} When a value does not fit the model or the data.
 */
export function resolveMethod(
  parsed: ParsedMethod,
  facts: DataFacts,
): { options: JobTrainOptions; method: Record<string, unknown> } {
  const options = { ...parsed.options };
  const prefix = `method.${parsed.type}.hyperparameters`;
  if (parsed.nEpochs !== undefined) {
    const perStep = options.batchSize * options.gradAccum;
    const steps = Math.max(1, Math.ceil(parsed.nEpochs * facts.rows / perStep));
    if (!(steps <= MAX_STEPS)) {
      throw new HyperparameterError(
        `Invalid hyperparameter n_epochs ${parsed.nEpochs}: with ${facts.rows} rows and ${perStep} rows per step ` +
          `it makes ${steps} steps, over the limit of ${MAX_STEPS}`,
        `${prefix}.n_epochs`,
      );
    }
    options.steps = steps;
  }
  options.seqLen = Math.max(2, Math.min(options.seqLen, facts.longestRow));
  if (parsed.given.select_steps === undefined) options.selectSteps = defaultSelectSteps(options.steps);
  try {
    validateTrainOptions({ ...options, out: "", ep: "wasm" }, facts.candidates);
  } catch (e) {
    if (!(e instanceof TrainOptionError)) throw e;
    const name = SNAKE_NAMES.get(e.field) ?? e.field;
    throw new HyperparameterError(e.render((field) => SNAKE_NAMES.get(field) ?? field), `${prefix}.${name}`);
  }
  const hyperparameters: Record<string, unknown> = {};
  for (const name of knownFor(parsed.type)) {
    const field = SPECS[name].field;
    hyperparameters[name] = field === "nEpochs"
      ? parsed.nEpochs ?? null
      : options[field as keyof JobTrainOptions];
  }
  return { options, method: { type: parsed.type, [parsed.type]: { hyperparameters } } };
}
