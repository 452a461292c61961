/**
 * Every training option, declared once: its `deno task train` flag, its fine-tuning job hyperparameter name,
 * its type and range, its default, the methods it applies to and its help text. The CLI's parser and help,
 * the jobs API's checks and echo, the docs' flag tables and {@linkcode TRAIN_DEFAULTS} are all made from
 * {@linkcode TRAIN_OPTION_SPECS}, so the front ends cannot disagree.
 *
 * @module
 */

import { LLAMA_MODULES, type LlamaModule } from "../models/sites.ts";
import type { GateNorm } from "./adapter_trainer.ts";
import type { BudgetScore } from "./methods/weightlora_budget.ts";
import type { TrainMethod, TrainOptions } from "./trainer.ts";

/** Every gate-gradient normalisation ({@linkcode GateNorm}). */
export const GATE_NORMS: readonly GateNorm[] = ["none", "params", "rms"];

/** Every score of budgeted WeightLoRA ({@linkcode BudgetScore}). */
export const BUDGET_SCORES: readonly BudgetScore[] = ["gradient", "taylor", "gate"];

/** The value types of options, with their ranges. */
export type OptionKind =
  | { kind: "int"; min: number; max: number }
  | { kind: "number"; min: number; max: number; exclusiveMin?: boolean }
  | { kind: "bool" }
  | { kind: "enum"; values: readonly string[] }
  | { kind: "intOrAll"; min: number; max: number }
  | { kind: "modules" };

/** Fields an option may set: a trainer option, or one of the two that the data and the jobs API add. */
export type OptionField = keyof TrainOptions | "nEpochs" | "completionEos";

/** One training option. */
export interface TrainOptionSpec {
  /** The option's field. */
  field: OptionField;
  /** Its `deno task train` flag without dashes (null: no flag). */
  flag: string | null;
  /** The flag says the opposite of the field (`--no-completion-eos` sets `completionEos: false`). */
  negated?: boolean;
  /** Its job hyperparameter name (null: not a hyperparameter). */
  job: string | null;
  /** Type and range. */
  type: OptionKind;
  /** The default (undefined: computed, see `defaultText`, or none). */
  default?: unknown;
  /** How the help describes a computed or absent default. */
  defaultText?: string;
  /** Methods it applies to (all when absent). */
  methods?: readonly TrainMethod[];
  /** The help's placeholder of the value. */
  value?: string;
  /** The help section. */
  group: "Method" | "Adapter" | "Optimisation" | "Run" | "Model and data";
  /** What it does. */
  doc: string;
}

const INT = (min: number, max: number): OptionKind => ({ kind: "int", min, max });
const GATED: readonly TrainMethod[] = ["weightlora", "weightlora-plus"];

/** The most training steps of one run, given as `steps` or reached through `n_epochs`. */
export const MAX_STEPS = 1_000_000;

/** Every training option, in help order. */
export const TRAIN_OPTION_SPECS: readonly TrainOptionSpec[] = [
  {
    field: "method",
    flag: "method",
    job: null, // a job's method is `method.type`
    type: { kind: "enum", values: ["weightlora", "weightlora-plus", "lora", "random-sites", "randlora"] },
    default: "weightlora",
    value: "M",
    group: "Method",
    doc: "weightlora | weightlora-plus | lora | random-sites (LoRA on K sites drawn at random; " +
      "randlora is an alias).",
  },
  {
    field: "k",
    flag: "k",
    job: "k",
    type: INT(1, 100_000),
    default: 5,
    defaultText: "5 (unless --budget)",
    methods: ["weightlora", "random-sites"],
    value: "K",
    group: "Method",
    doc: "Sites to keep (weightlora, random-sites), 1..number of candidate sites.",
  },
  {
    field: "budget",
    flag: "budget",
    job: "budget",
    type: INT(1, Number.MAX_SAFE_INTEGER),
    default: null,
    defaultText: "none",
    methods: ["weightlora"],
    value: "P",
    group: "Method",
    doc: "WeightLoRA: instead of --k, keep the sites with the best score per parameter (--budget-score) " +
      "whose adapters total at most P trainable parameters.",
  },
  {
    field: "budgetScore",
    flag: "budget-score",
    job: "budget_score",
    type: { kind: "enum", values: BUDGET_SCORES },
    default: "gradient",
    methods: ["weightlora"],
    value: "S",
    group: "Method",
    doc: "With --budget, what a site is worth: gradient (its gate's accumulated SGD movement, Σ −lr·∂L/∂g) " +
      "| taylor (Σ −g·∂L/∂g, the loss a removal would cost) | gate (the gate's value: ≈ 1 early on, so the " +
      "smallest adapters win).",
  },
  {
    field: "selectSteps",
    flag: "select-steps",
    job: "select_steps",
    type: { kind: "intOrAll", min: 1, max: MAX_STEPS },
    defaultText: "max(2, steps / 10)",
    methods: ["weightlora"],
    value: "T|all",
    group: "Method",
    doc: "WeightLoRA selection: gates trained and projected onto K for T steps, then frozen and the other " +
      "sites dropped (phase 2 trains K adapters only); `all`: the authors' schedule, gates trained and " +
      "projected after every step of the run (dropped sites may return), the K survivors exported.",
  },
  {
    field: "gateBound",
    flag: "gate-bound",
    job: "gate_bound",
    type: { kind: "enum", values: ["simplex", "none"] },
    default: "simplex",
    methods: ["weightlora"],
    value: "B",
    group: "Method",
    doc:
      "With --select-steps all: simplex projects the kept gates onto {w ≥ 0, Σw ≤ K} after each step and " +
      "keeps a gated-off site's A/B still (its AdamW moments zeroed); none is the authors' unbounded gates.",
  },
  {
    field: "gateMaxStep",
    flag: "gate-max-step",
    job: "gate_max_step",
    type: { kind: "number", min: 0, max: 1e4 },
    default: 0.05,
    methods: ["weightlora"],
    value: "S",
    group: "Method",
    doc:
      "With --select-steps all: cap each gate's SGD step Δ softly at S, as Δ / (1 + |Δ| / S) (the order of " +
      "the steps is kept), so a kept site leaves only by decaying over many steps and a site enters from 0; " +
      "uncapped (0, the authors'), the kept gates overshoot through 0 once the adapters have grown and the " +
      "kept set churns.",
  },
  {
    field: "gateWarmup",
    flag: "gate-warmup",
    job: "gate_warmup",
    type: INT(0, MAX_STEPS),
    default: 0,
    methods: GATED,
    value: "W",
    group: "Method",
    doc: "WeightLoRA, WeightLoRA+: hold the gates at 1 for W steps while A and B train, then select.",
  },
  {
    field: "gateNorm",
    flag: "gate-norm",
    job: "gate_norm",
    type: { kind: "enum", values: GATE_NORMS },
    default: "none",
    methods: GATED,
    value: "N",
    group: "Method",
    doc: "WeightLoRA, WeightLoRA+: per-site normalisation of the gate gradient: none | params (by the " +
      "adapter's parameter count) | rms (by the norm of its update B·A); both remove the width bias of " +
      "early selection.",
  },
  {
    field: "lrGates",
    flag: "lr-gates",
    job: "lr_gates",
    type: { kind: "number", min: 0, max: 1e4 },
    default: 5,
    methods: GATED,
    value: "LR",
    group: "Method",
    doc:
      "Peak learning rate of the gates (plain SGD; it follows --lr-schedule and --warmup-steps like A and B).",
  },
  {
    field: "reinitSurvivors",
    flag: "reinit-survivors",
    job: "reinit_survivors",
    type: { kind: "bool" },
    default: false,
    methods: ["weightlora"],
    group: "Method",
    doc: "After selection, re-initialise the survivors' A/B and restart the optimizer.",
  },
  {
    field: "growEvery",
    flag: "grow-every",
    job: "grow_every",
    type: INT(1, MAX_STEPS),
    default: 10,
    methods: ["weightlora-plus"],
    value: "F",
    group: "Method",
    doc: "WeightLoRA+: steps between rank doublings.",
  },
  {
    field: "growRounds",
    flag: "grow-rounds",
    job: "grow_rounds",
    type: INT(1, 30),
    default: 2,
    methods: ["weightlora-plus"],
    value: "M",
    group: "Method",
    doc: "WeightLoRA+: doublings (K halves each time, from all sites).",
  },
  {
    field: "targetModules",
    flag: "target-modules",
    job: "target_modules",
    type: { kind: "modules" },
    default: [...LLAMA_MODULES],
    defaultText: "all",
    value: "LIST",
    group: "Adapter",
    doc: `Candidate modules, comma-separated from ${LLAMA_MODULES.join(",")}.`,
  },
  {
    field: "rank",
    flag: "rank",
    job: "rank",
    type: INT(1, 4096),
    default: 8,
    value: "R",
    group: "Adapter",
    doc: "LoRA rank.",
  },
  {
    field: "alpha",
    flag: "alpha",
    job: "alpha",
    type: { kind: "number", min: 0, max: 1e6, exclusiveMin: true },
    default: 16,
    value: "A",
    group: "Adapter",
    doc: "LoRA alpha (scale alpha/r).",
  },
  {
    field: "rslora",
    flag: "rslora",
    job: "rslora",
    type: { kind: "bool" },
    default: false,
    group: "Adapter",
    doc: "Scale by alpha/√r instead.",
  },
  {
    field: "dropout",
    flag: "dropout",
    job: "dropout",
    type: { kind: "number", min: 0, max: 0.99 },
    default: 0,
    value: "P",
    group: "Adapter",
    doc: "LoRA dropout on each adapted layer's input, in [0, 0.99].",
  },
  {
    field: "steps",
    flag: "steps",
    job: "steps",
    type: INT(1, MAX_STEPS),
    default: 200,
    value: "N",
    group: "Optimisation",
    doc: "Optimizer steps.",
  },
  {
    field: "nEpochs",
    flag: null,
    job: "n_epochs",
    type: { kind: "number", min: 0, max: 10_000, exclusiveMin: true },
    group: "Optimisation",
    doc: "Epochs over the training rows, instead of steps.",
  },
  {
    field: "batchSize",
    flag: "batch-size",
    job: "batch_size",
    type: INT(1, 4096),
    default: 8,
    value: "B",
    group: "Optimisation",
    doc: "Rows per micro-batch.",
  },
  {
    field: "seqLen",
    flag: "seq-len",
    job: "seq_len",
    type: INT(2, 1_048_576),
    default: 256,
    value: "L",
    group: "Optimisation",
    doc: "Tokens per row (longer rows are truncated; shorter data shrinks it).",
  },
  {
    field: "gradAccum",
    flag: "grad-accum",
    job: "grad_accum",
    type: INT(1, 4096),
    default: 1,
    value: "G",
    group: "Optimisation",
    doc: "Micro-batches per optimizer step.",
  },
  {
    field: "groupByLength",
    flag: "group-by-length",
    job: "group_by_length",
    type: { kind: "bool" },
    default: false,
    group: "Optimisation",
    doc: "Draw batches of rows of similar length (each batch is padded to its longest row, so less padding " +
      "is computed; the order within an epoch is less random).",
  },
  {
    field: "optimizer",
    flag: "optimizer",
    job: "optimizer",
    type: { kind: "enum", values: ["adamw", "sgd"] },
    default: "adamw",
    value: "O",
    group: "Optimisation",
    doc: "adamw | sgd (for A and B).",
  },
  {
    field: "lr",
    flag: "lr",
    job: "learning_rate",
    type: { kind: "number", min: 0, max: 100, exclusiveMin: true },
    default: 1e-3,
    value: "LR",
    group: "Optimisation",
    doc: "Peak learning rate of A and B.",
  },
  {
    field: "weightDecay",
    flag: "weight-decay",
    job: "weight_decay",
    type: { kind: "number", min: 0, max: 100 },
    default: 0,
    value: "W",
    group: "Optimisation",
    doc: "Weight decay of A and B.",
  },
  {
    field: "lrSchedule",
    flag: "lr-schedule",
    job: "lr_schedule",
    type: { kind: "enum", values: ["constant", "linear", "cosine"] },
    default: "linear",
    value: "S",
    group: "Optimisation",
    doc: "constant | linear | cosine.",
  },
  {
    field: "warmupSteps",
    flag: "warmup-steps",
    job: "warmup_steps",
    type: INT(0, MAX_STEPS),
    default: 0,
    value: "N",
    group: "Optimisation",
    doc: "Linear warmup steps.",
  },
  {
    field: "maxGradNorm",
    flag: "max-grad-norm",
    job: "max_grad_norm",
    type: { kind: "number", min: 0, max: 1e6 },
    default: 1,
    value: "X",
    group: "Optimisation",
    doc: "Clip the global gradient norm of A and B; 0 disables.",
  },
  {
    field: "seed",
    flag: "seed",
    job: "seed",
    type: INT(0, 2 ** 31 - 1),
    default: 0,
    value: "S",
    group: "Optimisation",
    doc: "Seed of initialisation, shuffling and random sites.",
  },
  {
    field: "evalEvery",
    flag: "eval-every",
    job: "eval_every",
    type: INT(0, MAX_STEPS),
    default: 0,
    value: "N",
    group: "Run",
    doc: "Evaluate every N steps (0: at the end only).",
  },
  {
    field: "saveEvery",
    flag: "save-every",
    job: "save_every",
    type: INT(0, MAX_STEPS),
    default: 100,
    value: "N",
    group: "Run",
    doc: "Checkpoint every N steps (0: at the end only).",
  },
  {
    field: "ep",
    flag: "ep",
    job: null, // the server chooses
    type: { kind: "enum", values: ["auto", "wasm", "webgpu"] },
    default: "auto",
    value: "E",
    group: "Run",
    doc: "Execution provider: auto (WebGPU on a hardware adapter, else wasm), wasm or webgpu.",
  },
  {
    field: "completionEos",
    flag: "no-completion-eos",
    negated: true,
    job: "completion_eos",
    type: { kind: "bool" },
    default: true,
    group: "Model and data",
    doc: 'Do not end {"prompt","completion"} rows with EOS (for models that never learned EOS, such as ' +
      "llama2.c's TinyStories models).",
  },
];

/** The spec of a field. */
export function optionSpec(field: OptionField): TrainOptionSpec {
  const spec = TRAIN_OPTION_SPECS.find((s) => s.field === field);
  if (!spec) throw new Error(`No training option ${field}`);
  return spec;
}

/**
 * Checks a value against an option's type and range.
 *
 * @param spec The option.
 * @param value The value (JSON types; for `modules` also a comma-separated string or `"all"`).
 * @returns `{value}` (normalised: module lists deduplicated) or `{expected}` describing what was wanted.
 */
export function checkOptionValue(
  spec: TrainOptionSpec,
  value: unknown,
): { value: unknown } | { expected: string } {
  const t = spec.type;
  switch (t.kind) {
    case "int":
      return typeof value === "number" && Number.isInteger(value) && value >= t.min && value <= t.max
        ? { value }
        : { expected: `an integer in ${t.min}..${t.max}` };
    case "number": {
      const ok = typeof value === "number" && Number.isFinite(value) &&
        (t.exclusiveMin ? value > t.min : value >= t.min) && value <= t.max;
      return ok ? { value } : { expected: `a number in ${t.exclusiveMin ? "(" : "["}${t.min}, ${t.max}]` };
    }
    case "intOrAll":
      if (value === "all") return { value };
      return typeof value === "number" && Number.isInteger(value) && value >= t.min && value <= t.max
        ? { value }
        : { expected: `"all" or an integer in ${t.min}..${t.max}` };
    case "bool":
      return typeof value === "boolean" ? { value } : { expected: "true or false" };
    case "enum":
      return typeof value === "string" && t.values.includes(value)
        ? { value }
        : { expected: `one of ${t.values.join(", ")}` };
    case "modules": {
      const expected = { expected: `"all" or a list of ${LLAMA_MODULES.join(", ")}` };
      if (value === "all") return { value: [...LLAMA_MODULES] };
      const list = typeof value === "string"
        ? value.split(",").map((s) => s.trim()).filter(Boolean)
        : Array.isArray(value)
        ? value
        : undefined;
      if (!list || list.length === 0) return expected;
      const unknown = list.filter((m) => !(LLAMA_MODULES as readonly unknown[]).includes(m));
      if (unknown.length) return { expected: `${expected.expected} (unknown ${unknown.join(", ")})` };
      return { value: [...new Set(list)] as LlamaModule[] };
    }
  }
}

/**
 * Reads a command-line flag's text as the option's value type (numbers from digits, `"all"` kept), for
 * {@linkcode checkOptionValue}.
 *
 * @param spec The option.
 * @param text The flag's text.
 * @returns The value to check.
 */
export function optionValueFromText(spec: TrainOptionSpec, text: string): unknown {
  const t = spec.type.kind;
  if (t === "int" || t === "number" || (t === "intOrAll" && text !== "all")) {
    return text.trim() === "" ? NaN : Number(text);
  }
  return text;
}

/** Default value of every option but `out` and `selectSteps` (see {@linkcode defaultSelectSteps}). */
export const TRAIN_DEFAULTS: Readonly<Omit<TrainOptions, "out" | "selectSteps">> = Object.freeze(
  Object.fromEntries(
    TRAIN_OPTION_SPECS
      .filter((s) => s.default !== undefined && s.field !== "completionEos")
      .map((s) => [s.field, s.default]),
  ),
) as Omit<TrainOptions, "out" | "selectSteps">;

/**
 * The default selection schedule of a run of `steps` steps: a tenth of the run, and at least 2 steps (B starts
 * at zero, so the gate gradients first tell sites apart at step 2).
 *
 * @param steps The run's steps.
 * @returns max(2, ⌊steps / 10⌋).
 */
export function defaultSelectSteps(steps: number): number {
  return Math.max(2, Math.floor(steps / 10));
}

/**
 * Fills in the defaults.
 *
 * @param options The options that are set (`out` is required).
 * @returns Complete options; `selectSteps` defaults to {@linkcode defaultSelectSteps}.
 * @example
 * ```ts
 * import { withTrainDefaults } from "./options.ts";
 * const o = withTrainDefaults({ out: "runs/x", steps: 50 });
 * console.assert(o.selectSteps === 5 && o.method === "weightlora");
 * ```
 */
export function withTrainDefaults(options: Partial<TrainOptions> & { out: string }): TrainOptions {
  const steps = options.steps ?? TRAIN_DEFAULTS.steps;
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  return {
    ...TRAIN_DEFAULTS,
    targetModules: [...TRAIN_DEFAULTS.targetModules],
    selectSteps: defaultSelectSteps(steps),
    ...defined,
  } as TrainOptions;
}
