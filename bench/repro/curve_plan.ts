/**
 * The plan of the step-budget curve (`deno task repro --preset curve`): which methods, which runs, and how a
 * learning rate is chosen per budget. Pure functions over a {@linkcode CurveConfig}; `curve.ts` executes the
 * plan and `curve_run.ts` makes one run.
 *
 * Every run trains to the largest budget with a constant learning rate (no decay, so the schedule does not
 * depend on the budget) and the trainer writes the adapter as it is at every smaller budget
 * (`snapshots/step-<N>/`): one run gives the whole curve. Per task and method, the first seed runs at every
 * learning rate of the method's grid; at each budget the rate with the lowest dev loss is the method's; the
 * other seeds then run at every rate some budget chose.
 *
 * @example
 * ```ts
 * import { CURVE_CONFIG, curveMethods, curveSweepRuns } from "./curve_plan.ts";
 * import assert from "node:assert/strict";
 * assert.equal(curveSweepRuns(CURVE_CONFIG, { centres: {} }).length > curveMethods(CURVE_CONFIG).length, true);
 * ```
 *
 * @module
 */

import { TRAIN_DEFAULTS } from "../../src/train/options.ts";
import type { TrainMethod } from "../../src/train/trainer.ts";
import type { BudgetScore } from "../../src/train/methods/weightlora_budget.ts";
import type { TaskName, TaskSizes } from "../tasks/generate.ts";
import { chooseLr, lrText } from "./plan.ts";

/** Per-site gate-gradient normalisation of the trainer (`gateNorm`). */
export type GateNorm = "none" | "params" | "rms";

/** Groups of curve methods: one colour and marker each in the plot. */
export type CurveGroup =
  | "lora"
  | "random"
  | "weightlora"
  | "weightlora-all"
  | "weightlora-norm"
  | "weightlora-warm-norm"
  | "weightlora-budget"
  | "weightlora-plus";

/** Every group, in table order. */
export const CURVE_GROUPS: readonly CurveGroup[] = [
  "lora",
  "random",
  "weightlora",
  "weightlora-all",
  "weightlora-norm",
  "weightlora-warm-norm",
  "weightlora-budget",
  "weightlora-plus",
];

/** One method of the curve comparison, with the trainer settings that make it. */
export interface CurveMethod {
  /** Identifier in paths and JSON (`lora`, `random-k5`, `wl-k5`, `wl-all-k5`, `wl-norm-k5`, …). */
  id: string;
  /** Group (plot style, claims). */
  group: CurveGroup;
  /** The trainer's method. */
  method: TrainMethod;
  /** Sites kept (random sites, WeightLoRA); null for LoRA and WeightLoRA+. */
  k: number | null;
  /** The trainer's `selectSteps`: a number (freeze and drop after it) or `"all"` (the authors' schedule). */
  selectSteps: number | "all";
  /** Steps A/B train with gates fixed at 1 before the gates train (the trainer's `gateWarmup`). */
  gateWarmup: number;
  /** Gate-gradient normalisation (the trainer's `gateNorm`). */
  gateNorm: GateNorm;
  /** A parameter budget instead of K (the trainer's `budget`); absent: K. */
  budget?: number;
  /** The authors' schedule's cap on a gate's step (the trainer's `gateMaxStep`); absent: 0, no cap. */
  gateMaxStep?: number;
  /** What the budget is filled by (the trainer's `budgetScore`); with `budget` only. */
  budgetScore?: BudgetScore;
  /** The method of the 60-step comparison (`bench/results/repro.json`) whose learning rate centres the grid. */
  centreOf: string;
  /** Name in tables. */
  label: string;
}

/**
 * The parameter budget of budgeted WeightLoRA for a K: the mean parameter count of K stories260K sites at rank 4
 * (35 sites, 23,120 parameters: 660.6 per site), rounded up to a hundred — what random sites keep on average.
 *
 * @param k Sites.
 * @returns The budget in trainable parameters.
 */
export function budgetOfK(k: number): number {
  return Math.ceil(k * 23_120 / 35 / 100) * 100;
}

/** Every setting of the curve comparison. */
export interface CurveConfig {
  /** Tasks. */
  tasks: TaskName[];
  /** Method ids to run (a subset of {@linkcode curveMethods}' of the full list), in table order. */
  methods: string[];
  /** K of random sites and the WeightLoRA variants. */
  ks: number[];
  /** Step budgets; the largest is every run's length, the others are snapshots. */
  budgets: number[];
  /** Seeds; the first one is also the learning-rate sweep's. */
  seeds: number[];
  /** Learning-rate ladder; a method's grid is its centre and the rates next to it on this ladder. */
  ladder: number[];
  /** Ladder steps below the centre in a method's grid (the grid's low end, relative to the centre). */
  gridBelow: number;
  /**
   * Ladder steps above the centre (the grid's high end, relative to the centre; negative: below it). 1 and 0
   * give the centre and one rate below it; 1 and −1 give the one rate below the centre.
   */
  gridAbove: number;
  /** Centre when the 60-step results lack the method. */
  defaultCentre: number;
  /** Rows per step. */
  batchSize: number;
  /** LoRA rank (WeightLoRA+'s initial rank). */
  rank: number;
  /** LoRA alpha. */
  alpha: number;
  /** Freeze-and-drop selection steps (without warmup). */
  selectSteps: number;
  /** Gate warmup of the warm-norm variant; its selection runs `gateWarmup + selectSteps` steps. */
  gateWarmup: number;
  /** WeightLoRA+: steps between rank doublings (F). */
  growEvery: number;
  /** WeightLoRA+: doublings (M). */
  growRounds: number;
  /** Learning rate of the gates (SGD). */
  lrGates: number;
  /** Linear warmup of the learning rate, then constant. */
  warmupSteps: number;
  /** Checkpoint every N steps (an interrupted run resumes from it). */
  saveEvery: number;
  /** Rows per task split. */
  sizes: TaskSizes;
  /** Longest row in tokens. */
  seqLen: number;
  /** Longest sampled story row in tokens. */
  storyTokens: number;
  /** Seed of the task data. */
  dataSeed: number;
  /** Execution provider. */
  ep: "wasm" | "webgpu";
}

/** The curve comparison of `deno task repro --preset curve` (sized for about an hour on 2 shared cores). */
export const CURVE_CONFIG: CurveConfig = {
  tasks: ["world", "qa", "topic"],
  methods: [
    "lora",
    "wl-k5",
    "wl-k9",
    "random-k5",
    "wl-warm-norm-k5",
    "wl-all-k5",
    "wl-plus",
    "wl-norm-k5",
    "random-k9",
    "wl-all-k9",
    "wl-warm-norm-k9",
  ],
  ks: [5, 9],
  budgets: [60, 150, 300],
  seeds: [0, 1, 2],
  ladder: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
  gridBelow: 1,
  gridAbove: -1,
  defaultCentre: 1e-2,
  batchSize: 8,
  rank: 4,
  alpha: 8,
  selectSteps: 6,
  gateWarmup: 10,
  growEvery: 10,
  growRounds: 2,
  lrGates: 5,
  warmupSteps: 0,
  saveEvery: 50,
  sizes: { train: 640, dev: 64, eval: 128 },
  seqLen: 96,
  storyTokens: 96,
  dataSeed: 1234,
  ep: "wasm",
};

/** A few-second curve for tests: one task, one seed, budgets 8 and 16. */
export const CURVE_SMOKE_CONFIG: CurveConfig = {
  ...CURVE_CONFIG,
  tasks: ["qa"],
  methods: ["lora", "wl-k3", "wl-all-k3", "wl-warm-norm-k3", "random-k3", "wl-plus"],
  ks: [3],
  budgets: [8, 16],
  seeds: [0],
  gateWarmup: 2,
  selectSteps: 2,
  growEvery: 2,
  growRounds: 2,
  saveEvery: 5,
  sizes: { train: 32, dev: 8, eval: 8 },
};

/**
 * Every method the configuration can name, in table order: LoRA, WeightLoRA (freeze and drop), random sites,
 * WeightLoRA with the authors' schedule, the two selection fixes, WeightLoRA+; each K-method once per K.
 *
 * @param config K values and schedule settings.
 * @returns The methods (filtered to `config.methods` by {@linkcode curveMethods}).
 */
export function allCurveMethods(
  config: Pick<CurveConfig, "ks" | "selectSteps" | "gateWarmup" | "growRounds">,
): CurveMethod[] {
  const plain = { gateWarmup: 0, gateNorm: "none" as GateNorm };
  const out: CurveMethod[] = [{
    id: "lora",
    group: "lora",
    method: "lora",
    k: null,
    selectSteps: config.selectSteps,
    ...plain,
    centreOf: "lora",
    label: "LoRA (all sites)",
  }];
  const perK = (make: (k: number) => CurveMethod) => config.ks.forEach((k) => out.push(make(k)));
  perK((k) => ({
    id: `wl-k${k}`,
    group: "weightlora",
    method: "weightlora",
    k,
    selectSteps: config.selectSteps,
    ...plain,
    centreOf: `weightlora-k${k}`,
    label: `WeightLoRA (K=${k}, freeze after ${config.selectSteps})`,
  }));
  perK((k) => ({
    id: `random-k${k}`,
    group: "random",
    method: "random-sites",
    k,
    selectSteps: config.selectSteps,
    ...plain,
    centreOf: `randlora-k${k}`,
    label: `Random sites (K=${k})`,
  }));
  perK((k) => ({
    id: `wl-all-k${k}`,
    group: "weightlora-all",
    method: "weightlora",
    k,
    selectSteps: "all",
    ...plain,
    // the trainer's default cap on a gate's step (uncapped, the kept set churned)
    gateMaxStep: TRAIN_DEFAULTS.gateMaxStep,
    centreOf: `weightlora-k${k}`,
    label: `WeightLoRA (K=${k}, all steps)`,
  }));
  perK((k) => ({
    id: `wl-warm-norm-k${k}`,
    group: "weightlora-warm-norm",
    method: "weightlora",
    k,
    selectSteps: config.gateWarmup + config.selectSteps,
    gateWarmup: config.gateWarmup,
    gateNorm: "params",
    centreOf: `weightlora-k${k}`,
    label: `WeightLoRA (K=${k}, warmup ${config.gateWarmup} + norm)`,
  }));
  perK((k) => ({
    id: `wl-norm-k${k}`,
    group: "weightlora-norm",
    method: "weightlora",
    k,
    selectSteps: config.selectSteps,
    gateWarmup: 0,
    gateNorm: "params",
    centreOf: `weightlora-k${k}`,
    label: `WeightLoRA (K=${k}, norm)`,
  }));
  // budgeted WeightLoRA at the parameters random sites keep at each K (the same budget, chosen by gates): by
  // the gate's value (`wl-budget-k5`, the first score), its accumulated movement, its Taylor score, and the
  // movement over a selection five times as long
  const budgetVariants: { suffix: string; score: BudgetScore; selectSteps: number; words: string }[] = [
    { suffix: "", score: "gate", selectSteps: config.selectSteps, words: "gate" },
    { suffix: "-grad", score: "gradient", selectSteps: config.selectSteps, words: "gate movement" },
    { suffix: "-taylor", score: "taylor", selectSteps: config.selectSteps, words: "Taylor score" },
    { suffix: "-grad-long", score: "gradient", selectSteps: 5 * config.selectSteps, words: "gate movement" },
  ];
  for (const v of budgetVariants) {
    perK((k) => {
      const budget = budgetOfK(k);
      return {
        id: `wl-budget${v.suffix}-k${k}`,
        group: "weightlora-budget",
        method: "weightlora",
        k,
        selectSteps: v.selectSteps,
        ...plain,
        budget,
        budgetScore: v.score,
        centreOf: `weightlora-k${k}`,
        label: `WeightLoRA (budget ${
          budget.toLocaleString("en-US")
        } by ${v.words}, freeze after ${v.selectSteps})`,
      };
    });
  }
  out.push({
    id: "wl-plus",
    group: "weightlora-plus",
    method: "weightlora-plus",
    k: null,
    selectSteps: config.selectSteps,
    ...plain,
    centreOf: "weightlora-plus",
    label: `WeightLoRA+ (M=${config.growRounds})`,
  });
  return out;
}

/**
 * The configuration's methods, in the order of `config.methods`.
 *
 * @param config The configuration.
 * @returns The methods.
 * @throws {RangeError} On an id that names no method.
 */
export function curveMethods(
  config: Pick<CurveConfig, "methods" | "ks" | "selectSteps" | "gateWarmup" | "growRounds">,
): CurveMethod[] {
  const all = allCurveMethods(config);
  return config.methods.map((id) => {
    const m = all.find((x) => x.id === id);
    if (!m) {
      throw new RangeError(
        `Invalid curve method "${id}": choose from ${all.map((x) => x.id).join(", ")} (K from "ks")`,
      );
    }
    return m;
  });
}

/** The learning rates the 60-step comparison chose: task → method id (`weightlora-k5`, …) → rate. */
export interface LrCentres {
  /** Chosen rates by task and 60-step method id. */
  centres: Partial<Record<string, Record<string, number>>>;
}

/**
 * The 60-step choices from `bench/results/repro.json`'s rows.
 *
 * @param rows The rows (`task`, `methodId`, `lr`).
 * @returns The centres.
 */
export function centresFromRows(
  rows: readonly { task: string; methodId: string; lr: number | null }[],
): LrCentres {
  const centres: Record<string, Record<string, number>> = {};
  for (const r of rows) {
    if (r.lr === null) continue;
    (centres[r.task] ??= {})[r.methodId] = r.lr;
  }
  return { centres };
}

/**
 * A method's learning-rate grid on a task: the ladder rate nearest its centre (the 60-step choice, or the
 * default) and `gridBelow`/`gridAbove` ladder steps around it, clipped to the ladder.
 *
 * @param config Ladder, grid width and default centre.
 * @param centres The 60-step choices.
 * @param task The task.
 * @param method The method.
 * @returns The rates, ascending.
 */
export function lrGrid(
  config: Pick<CurveConfig, "ladder" | "gridBelow" | "gridAbove" | "defaultCentre">,
  centres: LrCentres,
  task: TaskName,
  method: CurveMethod,
): number[] {
  const centre = centres.centres[task]?.[method.centreOf] ?? config.defaultCentre;
  let at = 0;
  config.ladder.forEach((lr, i) => {
    if (Math.abs(Math.log(lr / centre)) < Math.abs(Math.log(config.ladder[at] / centre))) at = i;
  });
  const from = Math.max(0, at - config.gridBelow),
    to = Math.min(config.ladder.length - 1, at + config.gridAbove);
  return config.ladder.slice(from, to + 1);
}

/** One training run of the curve. */
export interface CurveRunSpec {
  /** Unique key and folder under `runs/`: `<task>/<method>/lr<lr>-seed<seed>`. */
  key: string;
  /** Task. */
  task: TaskName;
  /** Method. */
  method: CurveMethod;
  /** Learning rate of A and B. */
  lr: number;
  /** Seed. */
  seed: number;
  /** Whether the run belongs to the learning-rate sweep (first seed). */
  stage: "sweep" | "seeds";
}

function runSpec(
  task: TaskName,
  method: CurveMethod,
  lr: number,
  seed: number,
  stage: CurveRunSpec["stage"],
): CurveRunSpec {
  return { key: `${task}/${method.id}/lr${lrText(lr)}-seed${seed}`, task, method, lr, seed, stage };
}

/**
 * The sweep: the first seed at every rate of every method's grid, method by method (each method over all
 * tasks before the next one, so that an interrupted comparison has whole methods).
 *
 * @param config The configuration.
 * @param centres The 60-step choices.
 * @returns The runs.
 */
export function curveSweepRuns(config: CurveConfig, centres: LrCentres): CurveRunSpec[] {
  const seed = config.seeds[0];
  return curveMethods(config).flatMap((method) =>
    config.tasks.flatMap((task) =>
      lrGrid(config, centres, task, method).map((lr) => runSpec(task, method, lr, seed, "sweep"))
    )
  );
}

/**
 * The other seeds of a task and method, at every rate some budget chose.
 *
 * @param config The configuration.
 * @param task The task.
 * @param method The method.
 * @param chosen The rate chosen per budget.
 * @returns The runs, rate by rate.
 */
export function curveSeedRuns(
  config: CurveConfig,
  task: TaskName,
  method: CurveMethod,
  chosen: Record<number, number>,
): CurveRunSpec[] {
  const lrs = [...new Set(Object.values(chosen))].sort((a, b) => a - b);
  return lrs.flatMap((lr) => config.seeds.slice(1).map((seed) => runSpec(task, method, lr, seed, "seeds")));
}

/** What the choice reads from one sweep run: its rate and its dev loss per budget (null: not reached). */
export interface BudgetSweepPoint {
  /** Learning rate. */
  lr: number;
  /** Dev loss at each budget; null where the run diverged before it. */
  devLoss: Record<number, number | null>;
}

/**
 * The learning rate of each budget: the lowest dev loss at that budget (see {@linkcode chooseLr}).
 *
 * @param budgets The budgets.
 * @param points The sweep's runs of one task and method.
 * @returns The rate per budget; a budget every run diverged before is left out.
 */
export function chooseLrPerBudget(
  budgets: readonly number[],
  points: readonly BudgetSweepPoint[],
): Record<number, number> {
  const out: Record<number, number> = {};
  for (const b of budgets) {
    try {
      out[b] = chooseLr(points.map((p) => ({ lr: p.lr, devLoss: p.devLoss[b] ?? null })));
    } catch {
      // every rate diverged before this budget: no choice
    }
  }
  return out;
}

/** Settings that only choose which runs exist (a work folder may be extended along them). */
export const CURVE_PLAN_KEYS: readonly (keyof CurveConfig)[] = [
  "tasks",
  "methods",
  "ks",
  "seeds",
  "ladder",
  "gridBelow",
  "gridAbove",
  "defaultCentre",
];

/**
 * Run settings that differ between two configurations (runs of one are valid under the other when none do).
 *
 * @param a One configuration.
 * @param b Another.
 * @returns The differing settings' names.
 */
export function curveSettingsDiffer(a: CurveConfig, b: CurveConfig): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)] as (keyof CurveConfig)[]);
  return [...keys].filter((k) =>
    !CURVE_PLAN_KEYS.includes(k) && JSON.stringify(a[k]) !== JSON.stringify(b[k])
  );
}

/**
 * Checks a curve configuration, naming the bad setting.
 *
 * @param config The configuration.
 * @param candidateSites Adapter sites of the model (35 for stories260K).
 * @throws {RangeError} On an empty list, an unknown method, a K out of range, unsorted or repeated budgets,
 *   a selection or growth schedule that does not end before the smallest budget.
 */
export function validateCurveConfig(config: CurveConfig, candidateSites: number): void {
  for (const field of ["tasks", "methods", "budgets", "seeds", "ladder"] as const) {
    if (config[field].length === 0) throw new RangeError(`Invalid curve configuration: "${field}" is empty`);
  }
  const badK = config.ks.find((k) => !Number.isInteger(k) || k < 1 || k > candidateSites);
  if (badK !== undefined) {
    throw new RangeError(`Invalid curve configuration: K ${badK} is outside 1..${candidateSites}`);
  }
  const methods = curveMethods(config);
  if (config.budgets.some((b, i) => !Number.isInteger(b) || b < 1 || (i > 0 && b <= config.budgets[i - 1]))) {
    throw new RangeError(
      `Invalid curve configuration: budgets ${
        config.budgets.join(", ")
      } must be increasing positive integers`,
    );
  }
  const first = config.budgets[0];
  for (const m of methods) {
    const selectEnd = m.method === "weightlora" && m.selectSteps !== "all" ? m.selectSteps : 0;
    if (selectEnd >= first) {
      throw new RangeError(
        `Invalid curve configuration: ${m.id} selects for ${selectEnd} steps, not before the first budget ${first}`,
      );
    }
    if (m.method === "weightlora-plus" && config.growEvery * config.growRounds >= first) {
      throw new RangeError(
        `Invalid curve configuration: ${config.growRounds} growth rounds every ${config.growEvery} steps do not ` +
          `end before the first budget ${first}`,
      );
    }
  }
  if (new Set(config.seeds).size !== config.seeds.length) {
    throw new RangeError(`Invalid curve configuration: seeds ${config.seeds.join(", ")} repeat`);
  }
}
