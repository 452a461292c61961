/**
 * Reruns of the step-budget curve read together with the curve they extend: `deno task repro --preset
 * curve-merge` reads the base curve (`bench/results/repro_curve.json`) and later curve files that ran some of
 * its methods again (the authors' schedule with bounded gates) or new ones (budgeted WeightLoRA by a new score),
 * all with the same protocol (tasks, seeds, learning rates, data). A later file's rows replace the earlier rows
 * of the same method; the earlier ones stay, renamed, so that a table shows before and after. From the merged
 * rows it reads the claims again and answers the rerun's questions in words generated from the figures, and
 * writes `bench/results/repro_curve_rerun.{json,md}` and the `rerun-*` regions of `docs/results.md`.
 *
 *     deno task repro --preset curve-merge
 *
 * @example
 * ```ts
 * import { mergeCurveRows } from "./curve_merge.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(mergeCurveRows([]), []);
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { TASKS } from "../tasks/generate.ts";
import type { CurveConfig } from "./curve_plan.ts";
import type { CurveRunResult } from "./curve_run.ts";
import {
  aggregateCurve,
  claimsTable,
  compareCurveRows,
  type CurveComparison,
  type CurveRow,
  curveTaskTable,
  fillMarkedSections,
  isMlpSite,
  readCurveClaims,
  stabilityTable,
} from "./curve_summary.ts";
import type { Verdict } from "./summary.ts";
import { REPO_ROOT, writeAtomic } from "./runner.ts";
import { TRAIN_DEFAULTS } from "../../src/train/options.ts";
import { exists } from "../../src/io/_fs.ts";
import { type ChurnStudy, churnStudyMarkdown } from "./churn.ts";

/** One curve results file, as `curve.ts` writes it (the parts the merge reads). */
export interface CurveFile {
  /** Its name in labels (`repro_curve.json`). */
  name: string;
  /** What its runs differ in from the base, in words (`unbounded gates`); shown on superseded rows. */
  note: string;
  /** Its configuration. */
  config: CurveConfig;
  /** Its learning-rate grids by task and method. */
  grids: Record<string, Record<string, number[]>>;
  /** Its rows. */
  rows: CurveRow[];
  /** Its runs. */
  runs: CurveRunResult[];
}

/** The id a superseded method's rows get: its id and the file it came from. */
export function supersededId(id: string, file: string): string {
  return `${id}@${file.replace(/\.json$/, "")}`;
}

/**
 * Merges the rows of curve files, base first: a method a later file has rows for replaces the base's rows of
 * that method on every task (a rerun may cover fewer tasks: the base's rows are of other code) and another
 * file's rows of it on the same task; the replaced rows stay under {@linkcode supersededId} with their file's
 * note in their label.
 *
 * @param files Curve files, base first.
 * @returns The merged rows (base rows once per task).
 */
export function mergeCurveRows(files: readonly Pick<CurveFile, "name" | "note" | "rows">[]): CurveRow[] {
  const out: CurveRow[] = [];
  for (const [i, file] of files.entries()) {
    const later = files.slice(i + 1).flatMap((f) => f.rows);
    for (const row of file.rows) {
      if (row.methodId === "base") {
        if (!out.some((r) => r.methodId === "base" && r.task === row.task)) out.push(row);
        continue;
      }
      // the base's rows of a rerun method are of other code on every task; a rerun's, only where rerun
      const replaced = later.some((r) => r.methodId === row.methodId && (i === 0 || r.task === row.task));
      out.push(
        replaced
          ? { ...row, methodId: supersededId(row.methodId, file.name), label: `${row.label}, ${file.note}` }
          : row,
      );
    }
  }
  return out;
}

/**
 * The runs of curve files, renamed as {@linkcode mergeCurveRows} renames their rows: a run of a method that a
 * later file ran again gets {@linkcode supersededId}.
 *
 * @param files Curve files, base first.
 * @returns Every run.
 */
export function mergeCurveRuns(
  files: readonly Pick<CurveFile, "name" | "rows" | "runs">[],
): CurveRunResult[] {
  return files.flatMap((file, i) => {
    const later = files.slice(i + 1).flatMap((f) => f.rows);
    return file.runs.map((run) =>
      run.methodId !== "base" &&
        later.some((r) => r.methodId === run.methodId && (i === 0 || r.task === run.task))
        ? { ...run, methodId: supersededId(run.methodId, file.name) }
        : run
    );
  });
}

/** A seed's run that ended worse than the untrained model. */
export interface BlowUp {
  /** Task. */
  task: string;
  /** Method id. */
  methodId: string;
  /** Budget. */
  budget: number;
  /** Seed. */
  seed: number;
  /** Its eval loss. */
  evalLoss: number;
  /** The base model's. */
  baseLoss: number;
}

/**
 * Runs (at the rate a row chose) whose eval loss at a budget is above the untrained model's: an adapter that
 * made the model worse, as the unbounded gates did.
 *
 * @param rows Rows (for the chosen rates and the base losses).
 * @param runs The runs of the rows' methods.
 * @param methodIds Which methods to look at.
 * @param share Count a run above this share of the base model's loss (0: every run).
 * @returns The blow-ups.
 */
export function blowUps(
  rows: readonly CurveRow[],
  runs: readonly CurveRunResult[],
  methodIds: readonly string[],
  share = 1,
): BlowUp[] {
  const out: BlowUp[] = [];
  for (const row of rows) {
    if (!methodIds.includes(row.methodId)) continue;
    const base = rows.find((r) => r.task === row.task && r.methodId === "base");
    if (!base) continue;
    for (const run of runs) {
      if (run.task !== row.task || run.methodId !== row.methodId || run.lr !== row.lr) continue;
      const at = run.budgets.find((b) => b.step === row.budget);
      const loss = at?.evalLoss ?? Infinity;
      if (!(loss <= share * base.evalLoss.mean)) {
        out.push({
          task: row.task,
          methodId: row.methodId,
          budget: row.budget,
          seed: run.seed!,
          evalLoss: loss,
          baseLoss: base.evalLoss.mean,
        });
      }
    }
  }
  return out;
}

/** Verdict counts of some comparisons. */
export function verdictCounts(comparisons: readonly CurveComparison[]): Record<Verdict, number> {
  const out: Record<Verdict, number> = { better: 0, tie: 0, worse: 0 };
  for (const c of comparisons) out[c.verdict]++;
  return out;
}

function countText(c: Record<Verdict, number>): string {
  return `better in ${c.better}, tied in ${c.tie}, worse in ${c.worse}`;
}

function where(comparisons: readonly CurveComparison[], verdict: Verdict): string {
  const xs = comparisons.filter((c) => c.verdict === verdict);
  if (xs.length === 0) return "nowhere";
  // several K compare on one task: name the K where the method id has one
  const k = (c: CurveComparison) => /-k(\d+)(@|$)/.exec(c.method)?.[1];
  const ks = new Set(comparisons.map(k));
  return xs.map((c) =>
    `${c.task}${ks.size > 1 && k(c) ? ` K=${k(c)}` : ""} at ${c.budget} (${signed(c.delta)} ± ${
      c.noise.toFixed(4)
    })`
  ).join(", ");
}

function signed(x: number): string {
  return `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(4)}`;
}

/** A seed whose eval loss rose from one budget to the next: a run that got worse as it trained on. */
export interface Rise {
  /** Task. */
  task: string;
  /** Method id. */
  methodId: string;
  /** Seed. */
  seed: number;
  /** The earlier budget and its eval loss. */
  from: { budget: number; evalLoss: number };
  /** The later budget and its eval loss. */
  to: { budget: number; evalLoss: number };
}

/** How much a seed's eval loss must rise from one budget to the next to count as a {@linkcode Rise}. */
export const RISE_SHARE = 0.05;

/**
 * The seeds (at the rate their row chose) whose eval loss rose by more than {@linkcode RISE_SHARE} from one
 * budget to the next.
 *
 * @param rows Rows (for the chosen rates).
 * @param runs Runs of the methods.
 * @param methodIds Which methods.
 * @returns The rises, one per seed and pair of budgets.
 */
export function rises(
  rows: readonly CurveRow[],
  runs: readonly CurveRunResult[],
  methodIds: readonly string[],
): Rise[] {
  const out: Rise[] = [];
  for (const run of runs) {
    if (!methodIds.includes(run.methodId)) continue;
    const chosen = (budget: number) =>
      rows.find((r) => r.task === run.task && r.methodId === run.methodId && r.budget === budget)?.lr;
    for (let i = 1; i < run.budgets.length; i++) {
      const a = run.budgets[i - 1], b = run.budgets[i];
      if (chosen(b.step) !== run.lr) continue;
      if (b.evalLoss > (1 + RISE_SHARE) * a.evalLoss) {
        out.push({
          task: run.task,
          methodId: run.methodId,
          seed: run.seed!,
          from: { budget: a.step, evalLoss: a.evalLoss },
          to: { budget: b.step, evalLoss: b.evalLoss },
        });
      }
    }
  }
  return out;
}

/** Kept-set changes of some runs at their last budget (runs that did not record them are left out). */
export interface ChurnCount {
  /** Runs that recorded their changes. */
  runs: number;
  /** Runs whose kept set changed at least once after the first projection. */
  changed: number;
  /** Changes over all those runs. */
  total: number;
  /** The most changes of one run. */
  max: number;
}

/**
 * Counts the kept-set changes of the runs of some methods (at the rate their row chose, last budget).
 *
 * @param rows Rows (for the chosen rates).
 * @param runs Runs.
 * @param methodIds Which methods.
 * @returns The counts.
 */
export function churnCount(
  rows: readonly CurveRow[],
  runs: readonly CurveRunResult[],
  methodIds: readonly string[],
): ChurnCount {
  const counts = runs.filter((run) =>
    methodIds.includes(run.methodId) &&
    rows.some((r) => r.task === run.task && r.methodId === run.methodId && r.lr === run.lr)
  ).map((run) => run.budgets.at(-1)?.keptChanges).filter((c): c is number => c !== undefined);
  return {
    runs: counts.length,
    changed: counts.filter((c) => c > 0).length,
    total: counts.reduce((s, c) => s + c, 0),
    max: counts.length ? Math.max(...counts) : 0,
  };
}

/**
 * Compares the final kept sites of some runs with the freeze-and-drop run (`wl-k<K>`) of the same task, K, seed
 * and learning rate.
 *
 * @param runs Every run.
 * @param methodIds The methods to compare (ids ending in `-k<K>`).
 * @returns Runs with a counterpart, and how many kept the same sites.
 */
export function sameSites(
  runs: readonly CurveRunResult[],
  methodIds: readonly string[],
): { runs: number; same: number } {
  let n = 0, same = 0;
  for (const run of runs) {
    const k = methodIds.includes(run.methodId) ? /-k(\d+)$/.exec(run.methodId)?.[1] : undefined;
    if (!k) continue;
    const twin = runs.find((r) =>
      r.methodId === `wl-k${k}` && r.task === run.task && r.seed === run.seed && r.lr === run.lr
    );
    const a = run.budgets.at(-1)?.sites, b = twin?.budgets.at(-1)?.sites;
    if (!a || !b) continue;
    n++;
    if (a.length === b.length && a.every((x) => b.includes(x))) same++;
  }
  return { runs: n, same };
}

/** What the rerun answers, with the comparisons behind each answer. */
export interface RerunAnswers {
  /**
   * Seeds that ended above the base model: the authors' schedule with capped gate steps (the latest rerun),
   * with bounded but uncapped gates (the first rerun), and unbounded (the curve).
   */
  blowUps: { capped: BlowUp[]; bounded: BlowUp[]; unbounded: BlowUp[] };
  /** The capped schedule's highest eval loss of any seed, task, K and budget. */
  worstCapped?: BlowUp;
  /** The capped schedule's kept-set changes. */
  churn: ChurnCount;
  /**
   * Runs of the capped schedule with a freeze-and-drop run of the same task, K, seed and rate, and how many of
   * them ended with the same kept sites.
   */
  sameSitesAsFreeze: { runs: number; same: number };
  /** Seeds whose eval loss rose from one budget to the next: capped, and bounded but uncapped. */
  rises: { capped: Rise[]; bounded: Rise[] };
  /** The capped authors' schedule against freeze and drop at the same K. */
  allVsFreeze: CurveComparison[];
  /** The capped authors' schedule against its bounded, uncapped run (where that ran). */
  allVsBounded: CurveComparison[];
  /** The capped authors' schedule against its unbounded run. */
  allVsUnbounded: CurveComparison[];
  /** The new budget score against random sites at the same K (about the same parameters). */
  budgetVsRandom: CurveComparison[];
  /** The new budget score against the first one (the gate's value). */
  budgetVsGate: CurveComparison[];
  /** The first score against random sites, for reference. */
  gateVsRandom: CurveComparison[];
  /** The new budget score against freeze-and-drop WeightLoRA at the same K. */
  budgetVsFreeze: CurveComparison[];
}

/**
 * Reads the rerun's answers from merged rows.
 *
 * @param rows Merged rows ({@linkcode mergeCurveRows}).
 * @param runs Every run of every file, renamed ({@linkcode mergeCurveRuns}).
 * @param ids The method ids: the capped authors' schedule, its superseded bounded (uncapped) and unbounded
 *   rows, the new budget score's and the first score's.
 * @returns The answers.
 */
export function readRerunAnswers(
  rows: readonly CurveRow[],
  runs: readonly CurveRunResult[],
  ids: { all: string[]; bounded: string[]; unbounded: string[]; budget: string[]; gateBudget: string[] },
): RerunAnswers {
  const pairs = (of: string[], baseline: (r: CurveRow) => CurveRow | undefined) =>
    rows.filter((r) => of.includes(r.methodId)).flatMap((r) => {
      const b = baseline(r);
      return b ? [compareCurveRows(r, b)] : [];
    });
  const at = (r: CurveRow, pred: (x: CurveRow) => boolean) =>
    rows.find((x) => x.task === r.task && x.budget === r.budget && pred(x));
  return {
    blowUps: {
      capped: blowUps(rows, runs, ids.all),
      bounded: blowUps(rows, runs, ids.bounded),
      unbounded: blowUps(rows, runs, ids.unbounded),
    },
    worstCapped: blowUps(rows, runs, ids.all, 0)
      .reduce<BlowUp | undefined>((m, x) => (!m || x.evalLoss > m.evalLoss ? x : m), undefined),
    churn: churnCount(rows, runs, ids.all),
    sameSitesAsFreeze: sameSites(runs, ids.all),
    rises: { capped: rises(rows, runs, ids.all), bounded: rises(rows, runs, ids.bounded) },
    allVsFreeze: pairs(ids.all, (r) => at(r, (x) => x.group === "weightlora" && x.k === r.k)),
    allVsBounded: pairs(ids.all, (r) => at(r, (x) => ids.bounded.includes(x.methodId) && x.k === r.k)),
    allVsUnbounded: pairs(ids.all, (r) => at(r, (x) => ids.unbounded.includes(x.methodId) && x.k === r.k)),
    budgetVsRandom: pairs(ids.budget, (r) => at(r, (x) => x.group === "random" && x.k === r.k)),
    budgetVsGate: pairs(ids.budget, (r) => at(r, (x) => ids.gateBudget.includes(x.methodId) && x.k === r.k)),
    gateVsRandom: pairs(ids.gateBudget, (r) => at(r, (x) => x.group === "random" && x.k === r.k)),
    budgetVsFreeze: pairs(ids.budget, (r) => at(r, (x) => x.group === "weightlora" && x.k === r.k)),
  };
}

/** What the answers say beyond the rerun's rows. */
export interface RerunContext {
  /** The default cap on a gate's step (`--gate-max-step`). */
  gateMaxStep: number;
  /** Mean kept-set changes per run of the churn study's uncapped gate lr 5 runs, by task (absent: no study). */
  uncappedChurn?: Record<string, number>;
  /** A step of the authors' schedule over a step of freeze and drop after selection (`all_step_cost.ts`). */
  stepCost?: { ratio: number; k: number };
}

function riseText(xs: readonly Rise[]): string {
  if (xs.length === 0) return "none";
  const worst = xs.reduce((
    m,
    x,
  ) => (x.to.evalLoss / x.from.evalLoss > m.to.evalLoss / m.from.evalLoss ? x : m));
  return `${xs.length} (worst: ${worst.task} ${worst.methodId.replace(/@.*/, "")} seed ${worst.seed}, ` +
    `${worst.from.evalLoss.toFixed(4)} at ${worst.from.budget} → ${worst.to.evalLoss.toFixed(4)} at ` +
    `${worst.to.budget} steps)`;
}

/**
 * The answers in words: every figure is read from the comparisons.
 *
 * @param a The answers.
 * @param context The default cap and the churn study's uncapped figures.
 * @returns Markdown bullets.
 */
export function rerunAnswersMarkdown(a: RerunAnswers, context: RerunContext): string {
  const worst = (xs: BlowUp[]) =>
    xs.length ? xs.reduce((m, x) => (x.evalLoss > m.evalLoss ? x : m)) : undefined;
  const fmt = (x: BlowUp) =>
    `${x.task} at ${x.budget} steps, seed ${x.seed}: ${x.evalLoss.toFixed(4)} against the base model's ${
      x.baseLoss.toFixed(4)
    }`;
  const lines: string[] = [];
  const c = a.churn;
  const study = context.uncappedChurn
    ? Object.entries(context.uncappedChurn).map(([t, n]) => `${t} ${n.toFixed(1)}`).join(", ")
    : undefined;
  lines.push(
    `- **Does the authors' schedule still churn?** With the gate step capped at ${context.gateMaxStep} ` +
      `(\`--gate-max-step\`, the default), ${c.changed} of ${c.runs} runs changed their kept set after the ` +
      `first projection (${c.total} changes in all, at most ${c.max} in one run)` +
      (study ? `; uncapped at gate lr 5, the churn study's runs changed it ${study} times per run.` : ".") +
      (a.sameSitesAsFreeze.runs === 0
        ? ""
        : ` ${
          a.sameSitesAsFreeze.same === a.sameSitesAsFreeze.runs
            ? "Capped, it no longer selects after its first projections: all"
            : "Capped,"
        } ${a.sameSitesAsFreeze.same} of ${a.sameSitesAsFreeze.runs} runs ended with the same sites as freeze ` +
          "and drop (selection after 6 steps) at the same task, K and seed" +
          (a.sameSitesAsFreeze.same === a.sameSitesAsFreeze.runs
            ? "; what differs is that the kept gates go on training."
            : ".")),
  );
  const capped = a.blowUps.capped, bounded = a.blowUps.bounded, unbounded = a.blowUps.unbounded;
  const wc = worst(capped);
  lines.push(
    `- **Does it still degrade?** Seeds whose eval loss rose by more than ${100 * RISE_SHARE} % from one ` +
      `budget to the next: capped ${riseText(a.rises.capped)}; bounded but uncapped (the first rerun) ` +
      `${riseText(a.rises.bounded)}. ${
        capped.length === 0
          ? "No capped seed ended above the untrained model's eval loss"
          : `${capped.length} capped seed-budget(s) ended above the untrained model (worst: ${fmt(wc!)})`
      }; its highest eval loss was ${a.worstCapped ? fmt(a.worstCapped) : "—"}. Bounded but uncapped, ` +
      `${bounded.length} seed-budget(s) ended above it; unbounded, ${unbounded.length}${
        unbounded.length ? ` (worst: ${fmt(worst(unbounded)!)})` : ""
      }.`,
  );
  const fv = verdictCounts(a.allVsFreeze);
  lines.push(
    `- **Does it beat freeze and drop?** ${countText(fv)} of ${a.allVsFreeze.length} comparisons at the ` +
      `same K (better: ${where(a.allVsFreeze, "better")}; worse: ${where(a.allVsFreeze, "worse")}). ` +
      `Against the bounded, uncapped runs it was ${countText(verdictCounts(a.allVsBounded))} of ` +
      `${a.allVsBounded.length}; against the unbounded curve ${countText(verdictCounts(a.allVsUnbounded))} ` +
      `of ${a.allVsUnbounded.length}.`,
  );
  const rv = verdictCounts(a.budgetVsRandom), gv = verdictCounts(a.gateVsRandom);
  lines.push(
    `- **Does the new budget score beat random sites at equal parameters?** ${countText(rv)} of ` +
      `${a.budgetVsRandom.length} comparisons (better: ${where(a.budgetVsRandom, "better")}; worse: ${
        where(a.budgetVsRandom, "worse")
      }). The first score (the gate's value) was ${countText(gv)} of ${a.gateVsRandom.length}; against it ` +
      `the new score was ${countText(verdictCounts(a.budgetVsGate))} of ${a.budgetVsGate.length}, and ` +
      `against freeze-and-drop WeightLoRA at the same K ${countText(verdictCounts(a.budgetVsFreeze))} of ` +
      `${a.budgetVsFreeze.length}.`,
  );
  // the authors' schedule trains every site at every step: it replaces freeze and drop as the default only
  // when it is better in most comparisons and worse in none
  const switches = fv.worse === 0 && 2 * fv.better > a.allVsFreeze.length;
  const betterTasks = [...new Set(a.allVsFreeze.filter((x) => x.verdict === "better").map((x) => x.task))];
  lines.push(
    `- **Default:** ${
      switches
        ? "the capped authors' schedule is the better default schedule: it was better than freeze and drop in " +
          `${fv.better} of ${a.allVsFreeze.length} comparisons and worse in none`
        : `freeze and drop stays the default schedule: the capped authors' schedule was better in ${fv.better} ` +
          `of ${a.allVsFreeze.length} comparisons (${
            betterTasks.length ? `on ${betterTasks.join(", ")}` : "nowhere"
          }` +
          `), worse in ${fv.worse}, and every one of its steps trains and computes an adapter at every site, ` +
          "where freeze and drop trains K after its selection" + (context.stepCost
            ? ` (a step took ${context.stepCost.ratio.toFixed(2)}× a step of freeze and drop at K = ` +
              `${context.stepCost.k}, alternating runs, \`bench/results/all_step_cost.json\`)`
            : "")
    }; \`--select-steps all\` caps the gate step at ${context.gateMaxStep} by default; --budget fills its ` +
      `budget by the gates' movement per parameter (--budget-score gradient).`,
  );
  return lines.join("\n");
}

/** The runs of a stopped attempt (`bench/results/gate_fold_attempt.json`): training loss per step. */
export interface AttemptFile {
  /** What was tried. */
  what: string;
  /** The commit that ran it. */
  commit: string;
  /** Its runs. */
  runs: {
    task: string;
    methodId: string;
    lr: number;
    seed: number;
    /** Eval loss at each budget the run reached, where it finished. */
    evalLoss?: Record<string, number>;
    steps: { step: number; loss: number }[];
  }[];
}

/**
 * The attempt's runs in words: per run, the highest training loss and its step, the last step logged and, where
 * the run finished, its eval loss at each budget.
 *
 * @param attempt The attempt.
 * @param file Its path, for the reference.
 * @returns One bullet per run, then the reference.
 */
export function attemptMarkdown(attempt: AttemptFile, file: string): string {
  const lines = attempt.runs.map((r) => {
    const worst = r.steps.reduce((m, x) => (x.loss > m.loss ? x : m));
    const last = r.steps.at(-1)!;
    const evals = Object.entries(r.evalLoss ?? {}).map(([b, v]) => `${v.toFixed(4)} at ${b}`);
    const end = evals.length ? `; eval loss ${evals.join(", ")} steps` : " when it was stopped";
    return `- ${r.task}, ${r.methodId}, seed ${r.seed}: highest training loss ${worst.loss.toFixed(2)} at ` +
      `step ${worst.step} (step 1: ${r.steps[0].loss.toFixed(2)}), ${last.loss.toFixed(2)} at step ` +
      `${last.step}${end}`;
  });
  return `${lines.join("\n")}\n\n(commit ${attempt.commit.slice(0, 7)}, \`${file}\`)`;
}

const HELP = `Usage: deno task repro --preset curve-merge [options]

Reads the base step-budget curve and the reruns that extend it, merges their rows (a rerun's method replaces
the base's; the base's stays, renamed), and writes the rerun's claims and answers.

  --base F        Default: bench/results/repro_curve.json.
  --base-note T   What the base's superseded rows are called. Default: "unbounded gates (first run)".
  --file F        A later curve file (repeatable). Default: bench/results/repro_curve_budget.json (the first
                  budget score), repro_curve_bounded.json and repro_curve_bounded_qa.json (bounded gates on
                  world and qa), repro_curve_budget_grad.json (the new budget score at K = 5's budget),
                  repro_curve_capped.json (capped gate steps), repro_curve_budget_grad_k9.json (at K = 9's).
  --study F       The budget-score study (short runs). Default: bench/results/repro_budget_score_study.json.
  --churn F       A churn study of the authors' schedule (bench/repro/churn.ts; repeatable). Default:
                  bench/results/churn_study.json and churn_study_qa.json.
  --json F        Default: bench/results/repro_curve_rerun.json.
  --markdown F    Default: bench/results/repro_curve_rerun.md.
  --doc F         Fill its <!-- repro-curve:rerun-NAME --> regions. Default: docs/results.md; "none" for none.
  -h, --help      Show this help.`;

async function readChurnStudies(paths: readonly string[]): Promise<ChurnStudy[]> {
  const out: ChurnStudy[] = [];
  for (const path of paths) {
    try {
      out.push(JSON.parse(await Deno.readTextFile(path)) as ChurnStudy);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw new Error(`Cannot read the churn study ${path}: ${(e as Error).message}`);
    }
  }
  return out;
}

async function readCurveFile(path: string, note: string): Promise<CurveFile & { mlpShare: number }> {
  let json: CurveFile & {
    sites?: { name: string }[];
    keptSets?: { task: string; methodId: string; budget: number; sets: string[][] }[];
  };
  try {
    json = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new Error(`Cannot read the curve file ${path}: ${(e as Error).message}`);
  }
  return {
    name: path.split("/").at(-1)!,
    note,
    config: json.config,
    grids: json.grids,
    // the file keeps the kept sets apart from the rows
    rows: json.rows.map((r) => ({
      ...r,
      keptSets:
        json.keptSets?.find((k) => k.task === r.task && k.methodId === r.methodId && k.budget === r.budget)
          ?.sets ?? [],
    })),
    runs: json.runs,
    mlpShare: json.sites?.length
      ? json.sites.filter((x) => isMlpSite(x.name)).length / json.sites.length
      : NaN,
  };
}

/**
 * The budget-score study's rows: its short runs and the first score's runs (from the budget curve) on the
 * study's seeds and budgets, aggregated alike, with random sites (K) for reference.
 *
 * @param study The study file.
 * @param others Files holding the reference methods' runs.
 * @param referenceIds The reference methods.
 * @returns Rows of the study's configuration.
 */
export function studyRows(
  study: CurveFile,
  others: readonly CurveFile[],
  referenceIds: string[],
): CurveRow[] {
  const config: CurveConfig = { ...study.config, methods: [...referenceIds, ...study.config.methods] };
  const grids: Record<string, Record<string, number[]>> = structuredClone(study.grids);
  const runs: CurveRunResult[] = [...study.runs];
  for (const f of others) {
    for (const task of config.tasks) {
      for (const id of referenceIds) {
        if (f.grids[task]?.[id]) (grids[task] ??= {})[id] = f.grids[task][id];
      }
    }
    runs.push(...f.runs.filter((r) => referenceIds.includes(r.methodId)));
  }
  const seeds = new Set(config.seeds);
  return aggregateCurve(
    config,
    grids,
    runs.filter((r) => r.methodId === "base" || seeds.has(r.seed!)),
  );
}

/**
 * Merges the curve files from the command line and writes the rerun report.
 *
 * @param args The command line.
 */
export async function curveMergeMain(args: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args,
    strict: true,
    options: {
      preset: { type: "string" },
      base: { type: "string" },
      "base-note": { type: "string" },
      file: { type: "string", multiple: true },
      churn: { type: "string", multiple: true },
      study: { type: "string" },
      json: { type: "string" },
      markdown: { type: "string" },
      doc: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (v.help) {
    console.log(HELP);
    return;
  }
  const inRepo = (p: string) => `${REPO_ROOT}/${p}`;
  const paths = v.file ?? [
    "repro_curve_budget.json",
    "repro_curve_bounded.json",
    "repro_curve_bounded_qa.json",
    "repro_curve_budget_grad.json",
    "repro_curve_capped.json",
    "repro_curve_budget_grad_k9.json",
  ].map((f) => inRepo(`bench/results/${f}`));
  const base = await readCurveFile(
    v.base ?? inRepo("bench/results/repro_curve.json"),
    v["base-note"] ?? "unbounded gates (first run)",
  );
  const later: CurveFile[] = [];
  for (const path of paths) {
    // the default list names the latest reruns too; one that has not been run (a cut) is left out
    if (!v.file && !(await exists(path))) {
      console.error(`repro curve-merge: no ${path}; left out`);
      continue;
    }
    later.push(
      await readCurveFile(path, /bounded/.test(path) ? "bounded gates, uncapped steps" : "earlier run"),
    );
  }
  const files = [base, ...later];
  const rows = mergeCurveRows(files);
  const runs = mergeCurveRuns(files);
  const isAll = (id: string) => id.startsWith("wl-all-");
  const isGateBudget = (id: string) => /^wl-budget-k\d+$/.test(id);
  // the reruns of the authors' schedule: with capped gate steps (`*capped*`), and the earlier ones with
  // bounded, uncapped gates
  const allFiles = later.filter((f) => f.config.methods.some(isAll));
  const cappedFiles = allFiles.filter((f) => /capped/.test(f.name));
  const allIds = [...new Set(cappedFiles.flatMap((f) => f.config.methods.filter(isAll)))];
  const present = new Set(rows.map((r) => r.methodId));
  const ids = {
    all: allIds,
    bounded: allFiles.filter((f) => !cappedFiles.includes(f)).flatMap((f) =>
      f.config.methods.filter(isAll).map((id) => supersededId(id, f.name)).filter((id) => present.has(id))
    ),
    unbounded: allIds.map((id) => supersededId(id, base.name)),
    budget: [
      ...new Set(
        later.flatMap((f) =>
          f.config.methods.filter((id) => id.startsWith("wl-budget-") && !isGateBudget(id))
        ),
      ),
    ],
    gateBudget: [...new Set(later.flatMap((f) => f.config.methods.filter(isGateBudget)))],
  };
  const answers = readRerunAnswers(rows, runs, ids);
  const churnFiles = await readChurnStudies(
    v.churn ?? ["churn_study.json", "churn_study_qa.json"].map((f) => inRepo(`bench/results/${f}`)),
  );
  const uncapped = Object.fromEntries(
    churnFiles.flatMap((f) => f.byVariant.base ? [[f.settings.task, f.byVariant.base.meanChanges]] : []),
  );
  let stepCost: RerunContext["stepCost"];
  try {
    const cost = JSON.parse(await Deno.readTextFile(inRepo("bench/results/all_step_cost.json")));
    stepCost = { ratio: cost.medianRatio, k: cost.settings.k };
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const context: RerunContext = {
    gateMaxStep: TRAIN_DEFAULTS.gateMaxStep,
    ...(stepCost ? { stepCost } : {}),
    ...(Object.keys(uncapped).length ? { uncappedChurn: uncapped } : {}),
  };
  const shown = new Set([
    "base",
    "lora",
    ...ids.all,
    ...ids.bounded,
    ...ids.unbounded,
    ...ids.budget,
    ...ids.gateBudget,
  ]);
  const ks = [...new Set(rows.filter((r) => shown.has(r.methodId)).map((r) => r.k))];
  const reference = (r: CurveRow) => (r.group === "weightlora" || r.group === "random") && ks.includes(r.k);
  const tableRows = rows.filter((r) => shown.has(r.methodId) || reference(r));
  const budgets = base.config.budgets;
  const tasks = base.config.tasks;
  const claims = readCurveClaims(tableRows).map((c) => ({
    ...c,
    comparisons: c.comparisons.filter((x) =>
      [...ids.all, ...ids.bounded, ...ids.unbounded, ...ids.budget, ...ids.gateBudget].includes(x.method)
    ),
  })).filter((c) => c.comparisons.length > 0);
  const sections: Record<string, string> = {
    "rerun-answers": rerunAnswersMarkdown(answers, context),
    ...(churnFiles.length ? { "rerun-churn": churnStudyMarkdown(churnFiles) } : {}),
    "rerun-claims":
      `Cells: tasks where the claim held / tasks compared, then each task's verdict in the order ${
        tasks.join(", ")
      } (\`+\` better, \`=\` tie within 2·SE over seeds, \`−\` worse).\n\n` +
      claimsTable(claims, tasks, budgets),
    "rerun-stability": stabilityTable(
      tableRows.filter((r) => [...ids.budget, ...ids.gateBudget, ...ids.all].includes(r.methodId)),
      budgets,
      base.mlpShare,
    ),
  };
  for (const task of tasks) {
    sections[`rerun-task-${task}`] = curveTaskTable(tableRows.filter((r) => r.task === task), budgets);
  }
  let study: CurveRow[] = [];
  const studyPath = v.study ?? inRepo("bench/results/repro_budget_score_study.json");
  try {
    const s = await readCurveFile(studyPath, "");
    const refs = ["random-k5", "wl-k5", "wl-budget-k5"].filter((id) =>
      files.some((f) => f.grids[tasks[0]]?.[id])
    );
    study = studyRows(s, files, refs);
    const studyBudgets = s.config.budgets;
    sections["rerun-study"] = [
      `Seeds ${s.config.seeds.join(", ")}; budgets ${
        studyBudgets.join(", ")
      } steps; the reference rows are ` +
      `the same seeds' runs of the main curve.`,
      "",
      ...s.config.tasks.flatMap((t) => [
        `**${t}**`,
        "",
        curveTaskTable(study.filter((r) => r.task === t), studyBudgets),
        "",
      ]),
      stabilityTable(study.filter((r) => r.keptSets.length > 0), studyBudgets, base.mlpShare),
    ].join("\n");
  } catch (e) {
    if (!(e instanceof Error && /Cannot read the curve file/.test(e.message))) throw e;
    console.error(`repro curve-merge: no study (${e.message})`);
  }
  for (const [name, file] of [["fold", "gate_fold_attempt.json"], ["simplex", "gate_simplex_attempt.json"]]) {
    try {
      const path = `bench/results/${file}`;
      const attempt = JSON.parse(await Deno.readTextFile(inRepo(path))) as AttemptFile;
      sections[`rerun-${name}`] = attemptMarkdown(attempt, path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  const json = {
    date: new Date().toISOString(),
    command: ["deno task repro", ...args].join(" "),
    files: files.map((f) => ({ name: f.name, methods: f.config.methods, note: f.note })),
    ids,
    answers,
    rows: tableRows.map(({ keptSets: _, ...r }) => r),
    keptSets: tableRows.filter((r) => r.keptSets.length).map((r) => ({
      task: r.task,
      methodId: r.methodId,
      budget: r.budget,
      sets: r.keptSets,
    })),
    study: study.map(({ keptSets: _, ...r }) => r),
  };
  await writeAtomic(
    v.json ?? inRepo("bench/results/repro_curve_rerun.json"),
    JSON.stringify(json, null, 1) + "\n",
  );
  const md = [
    "# The step-budget curve, rerun: bounded and capped gates, and a budget score",
    "",
    `Command: \`${json.command}\` — ${json.date}. Files: ${files.map((f) => `\`${f.name}\``).join(", ")}.`,
    "",
    "## Answers",
    "",
    sections["rerun-answers"],
    "",
    ...(sections["rerun-churn"] ? ["## Churn of the kept set", "", sections["rerun-churn"], ""] : []),
    "## Claims",
    "",
    sections["rerun-claims"],
    "",
    ...tasks.flatMap((t) => [`## Task \`${t}\`: ${TASKS[t].title}`, "", sections[`rerun-task-${t}`], ""]),
    "## Selection stability",
    "",
    sections["rerun-stability"],
    "",
    ...(sections["rerun-study"] ? ["## Budget-score study", "", sections["rerun-study"], ""] : []),
  ].join("\n");
  await writeAtomic(v.markdown ?? inRepo("bench/results/repro_curve_rerun.md"), md);
  const doc = v.doc === "none" ? null : v.doc ?? inRepo("docs/results.md");
  if (doc) {
    const filled = fillMarkedSections(await Deno.readTextFile(doc), sections);
    await writeAtomic(doc, filled.text);
  }
  console.log(md);
}
