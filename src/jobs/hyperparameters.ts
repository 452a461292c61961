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

import { type AdapterSite, LLAMA_MODULES, type LlamaModule } from "../models/sites.ts";
import { defaultSelectSteps, TRAIN_DEFAULTS } from "../train/options.ts";
import { GATE_NORMS } from "../train/adapter_trainer.ts";
import { TrainOptionError, validateTrainOptions } from "../train/methods/mod.ts";
import { TRAIN_METHODS, type TrainMethod, trainMethod, type TrainOptions } from "../train/trainer.ts";

/**
 * Trainer options a job stores (the server chooses the output folder and the execution provider), plus
 * the data option `completionEos` (end `{"prompt","completion"}` rows with EOS; the CLI's default, true).
 */
export type JobTrainOptions = Omit<TrainOptions, "out" | "ep"> & { completionEos: boolean };

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

type Kind =
  | { kind: "int"; min: number; max: number }
  | { kind: "number"; min: number; max: number; exclusiveMin?: boolean }
  | { kind: "bool" }
  | { kind: "enum"; values: readonly string[] }
  | { kind: "intOrAll"; min: number; max: number }
  | { kind: "modules" };

interface Spec {
  field: keyof JobTrainOptions | "nEpochs";
  type: Kind;
  /** Methods it belongs to (all when absent). */
  methods?: readonly TrainMethod[];
}

const INT = (min: number, max: number): Kind => ({ kind: "int", min, max });

/** The most training steps of one job, given as `steps` or reached through `n_epochs`. */
export const MAX_STEPS = 1_000_000;
const GATED: readonly TrainMethod[] = ["weightlora", "weightlora-plus"];
const NULLABLE = new Set(["budget"]);

/** Every hyperparameter: snake_case name → option field, type and range. */
const SPECS: Record<string, Spec> = {
  k: { field: "k", type: INT(1, 100_000), methods: ["weightlora", "random-sites"] },
  rank: { field: "rank", type: INT(1, 4096) },
  alpha: { field: "alpha", type: { kind: "number", min: 0, max: 1e6, exclusiveMin: true } },
  dropout: { field: "dropout", type: { kind: "number", min: 0, max: 0.99 } },
  rslora: { field: "rslora", type: { kind: "bool" } },
  target_modules: { field: "targetModules", type: { kind: "modules" } },
  steps: { field: "steps", type: INT(1, MAX_STEPS) },
  n_epochs: { field: "nEpochs", type: { kind: "number", min: 0, max: 10_000, exclusiveMin: true } },
  batch_size: { field: "batchSize", type: INT(1, 4096) },
  seq_len: { field: "seqLen", type: INT(2, 1_048_576) },
  grad_accum: { field: "gradAccum", type: INT(1, 4096) },
  optimizer: { field: "optimizer", type: { kind: "enum", values: ["adamw", "sgd"] } },
  learning_rate: { field: "lr", type: { kind: "number", min: 0, max: 100, exclusiveMin: true } },
  lr_gates: { field: "lrGates", type: { kind: "number", min: 0, max: 1e4 }, methods: GATED },
  weight_decay: { field: "weightDecay", type: { kind: "number", min: 0, max: 100 } },
  lr_schedule: { field: "lrSchedule", type: { kind: "enum", values: ["constant", "linear", "cosine"] } },
  warmup_steps: { field: "warmupSteps", type: INT(0, 1_000_000) },
  max_grad_norm: { field: "maxGradNorm", type: { kind: "number", min: 0, max: 1e6 } },
  select_steps: {
    field: "selectSteps",
    type: { kind: "intOrAll", min: 1, max: 1_000_000 },
    methods: ["weightlora"],
  },
  gate_warmup: { field: "gateWarmup", type: INT(0, 1_000_000), methods: GATED },
  gate_norm: { field: "gateNorm", type: { kind: "enum", values: GATE_NORMS }, methods: GATED },
  budget: { field: "budget", type: INT(1, 2 ** 53 - 1), methods: ["weightlora"] },
  reinit_survivors: { field: "reinitSurvivors", type: { kind: "bool" }, methods: ["weightlora"] },
  grow_every: { field: "growEvery", type: INT(1, 1_000_000), methods: ["weightlora-plus"] },
  grow_rounds: { field: "growRounds", type: INT(1, 30), methods: ["weightlora-plus"] },
  eval_every: { field: "evalEvery", type: INT(0, 1_000_000) },
  save_every: { field: "saveEvery", type: INT(0, 1_000_000) },
  seed: { field: "seed", type: INT(0, 2 ** 31 - 1) },
  completion_eos: { field: "completionEos", type: { kind: "bool" } },
};

/** Option field → job hyperparameter name. */
const SNAKE_NAMES = new Map<string, string>(
  Object.entries(SPECS).map(([name, spec]) => [spec.field as string, name]),
);

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

function checkValue(name: string, spec: Spec, value: unknown, param: string): unknown {
  const t = spec.type;
  const bad = (expected: string): never => {
    throw new HyperparameterError(
      `Invalid hyperparameter ${name} ${describe(value)}: expected ${expected}`,
      param,
    );
  };
  switch (t.kind) {
    case "int":
      if (typeof value !== "number" || !Number.isInteger(value) || value < t.min || value > t.max) {
        bad(`an integer in ${t.min}..${t.max}`);
      }
      return value;
    case "number": {
      const low = t.exclusiveMin ? (value as number) <= t.min : (value as number) < t.min;
      if (typeof value !== "number" || !Number.isFinite(value) || low || value > t.max) {
        bad(`a number in ${t.exclusiveMin ? "(" : "["}${t.min}, ${t.max}]`);
      }
      return value;
    }
    case "intOrAll":
      if (value === "all") return value;
      if (typeof value !== "number" || !Number.isInteger(value) || value < t.min || value > t.max) {
        bad(`"all" or an integer in ${t.min}..${t.max}`);
      }
      return value;
    case "bool":
      if (typeof value !== "boolean") bad("true or false");
      return value;
    case "enum":
      if (typeof value !== "string" || !t.values.includes(value)) bad(`one of ${t.values.join(", ")}`);
      return value;
    case "modules": {
      if (value === "all") return [...LLAMA_MODULES];
      const list = typeof value === "string"
        ? value.split(",").map((s) => s.trim()).filter(Boolean)
        : Array.isArray(value)
        ? value
        : bad(`"all" or a list of ${LLAMA_MODULES.join(", ")}`);
      const unknown = list.filter((m) => !(LLAMA_MODULES as readonly unknown[]).includes(m));
      if (list.length === 0 || unknown.length) bad(`"all" or a list of ${LLAMA_MODULES.join(", ")}`);
      return [...new Set(list)] as LlamaModule[];
    }
  }
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
    if (value === null && NULLABLE.has(name)) continue;
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
    const field = SPECS[name].field;
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
