/**
 * Aggregates the reproduction's runs: per task and method, the chosen learning rate, eval loss and
 * accuracy over seeds (mean ± sample standard deviation), sizes and step time; then reads the paper's three
 * claims off the table with an explicit rule, and renders Markdown.
 *
 * The rule: a difference of means Δ between two methods is called a tie when |Δ| ≤ 2·SE, where
 * SE = √(s₁²/n₁ + s₂²/n₂) over the seeds (with one seed, SE = 0 and any difference counts).
 *
 * @example
 * ```ts
 * import { meanStd } from "./summary.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(meanStd([1, 2, 3]), { mean: 2, std: 1, n: 3 });
 * ```
 *
 * @module
 */

import { type TaskName, TASKS } from "../tasks/generate.ts";
import { chooseLr, lrText, type MethodFamily, methodSpecs, type ReproConfig } from "./plan.ts";
import type { RunResult, SizePair } from "./run_one.ts";

/** Mean, sample standard deviation and count. */
export interface MeanStd {
  /** Mean. */
  mean: number;
  /** Sample standard deviation (n − 1); 0 for one value. */
  std: number;
  /** Values. */
  n: number;
}

/**
 * Mean and sample standard deviation.
 *
 * @param values At least one value.
 * @returns The statistics.
 * @throws {RangeError} On no values.
 */
export function meanStd(values: readonly number[]): MeanStd {
  if (values.length === 0) throw new RangeError("Cannot average no values");
  const n = values.length;
  const mean = values.reduce((s, v) => s + v, 0) / n;
  const variance = n > 1 ? values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1) : 0;
  return { mean, std: Math.sqrt(variance), n };
}

/** One row of the results table: a method on a task at its chosen learning rate. */
export interface MethodRow {
  /** Task. */
  task: TaskName;
  /** Method id (`base` for the untrained model). */
  methodId: string;
  /** Name in tables. */
  label: string;
  /** Family (`base` for the untrained model). */
  family: MethodFamily | "base";
  /** K where the method has one. */
  k: number | null;
  /** The chosen learning rate (null for `base`). */
  lr: number | null;
  /** Dev loss per swept learning rate (null: diverged). */
  sweep: { lr: number; devLoss: number | null }[];
  /** Eval loss over the seeds. */
  evalLoss: MeanStd;
  /** Exact-match accuracy over the seeds, where the task has answers. */
  accuracy: MeanStd | null;
  /** Trainable parameters, mean over seeds rounded (WeightLoRA's selected sites, and so sizes, vary by seed). */
  parameters: SizePair;
  /** Optimizer-state bytes, mean over seeds rounded. */
  optimizerStateBytes: SizePair;
  /** Mean over seeds of the median step time, ms (null for `base`). */
  stepMs: number | null;
  /** Mean over seeds of the median training tokens/s. */
  tokensPerS: number | null;
  /** How often each site was kept, over the seeds (WeightLoRA, random sites, WeightLoRA+). */
  sites: Record<string, number>;
  /** Seeds whose run diverged at the chosen learning rate. */
  diverged: number;
}

function meanSizes(pairs: readonly SizePair[]): SizePair {
  const avg = (f: (p: SizePair) => number) => Math.round(pairs.reduce((s, p) => s + f(p), 0) / pairs.length);
  return { final: avg((p) => p.final), peak: avg((p) => p.peak) };
}

function mean(values: readonly number[]): number | null {
  return values.length ? values.reduce((s, v) => s + v, 0) / values.length : null;
}

/**
 * Builds the table from the runs' results; methods whose runs are not all there yet are left out.
 *
 * @param config The configuration the runs were made with.
 * @param results Every run's result (sweep, seeds and `base` rows).
 * @returns Rows, task by task in method order (the `base` row first).
 */
export function aggregate(config: ReproConfig, results: readonly RunResult[]): MethodRow[] {
  const rows: MethodRow[] = [];
  const sweepSeed = config.seeds[0];
  for (const task of config.tasks) {
    const of = (methodId: string) => results.filter((r) => r.task === task && r.methodId === methodId);
    const [base] = of("base");
    if (base) {
      rows.push({
        task,
        methodId: "base",
        label: "base model (no adapter)",
        family: "base",
        k: null,
        lr: null,
        sweep: [],
        evalLoss: meanStd([base.evalLoss!]),
        accuracy: base.accuracy === null ? null : meanStd([base.accuracy]),
        parameters: { final: 0, peak: 0 },
        optimizerStateBytes: { final: 0, peak: 0 },
        stepMs: null,
        tokensPerS: null,
        sites: {},
        diverged: 0,
      });
    }
    for (const method of methodSpecs(config)) {
      const runs = of(method.id);
      const sweep = config.lrs.map((lr) => {
        const r = runs.find((x) => x.seed === sweepSeed && x.lr === lr);
        return { lr, devLoss: r ? r.devLoss : undefined };
      });
      if (sweep.some((p) => p.devLoss === undefined)) continue;
      const points = sweep as { lr: number; devLoss: number | null }[];
      let lr: number;
      try {
        lr = chooseLr(points);
      } catch {
        continue;
      }
      const atLr = config.seeds.map((seed) => runs.find((x) => x.seed === seed && x.lr === lr));
      if (atLr.some((r) => r === undefined)) continue;
      const done = atLr as RunResult[];
      const ok = done.filter((r) => r.status === "ok");
      if (ok.length === 0) continue;
      const sites: Record<string, number> = {};
      if (method.family !== "lora") {
        for (const r of ok) for (const s of r.selectedSites) sites[s] = (sites[s] ?? 0) + 1;
      }
      rows.push({
        task,
        methodId: method.id,
        label: method.label,
        family: method.family,
        k: method.k,
        lr,
        sweep: points,
        evalLoss: meanStd(ok.map((r) => r.evalLoss!)),
        accuracy: TASKS[task].exactMatch ? meanStd(ok.map((r) => r.accuracy!)) : null,
        parameters: meanSizes(ok.map((r) => r.parameters)),
        optimizerStateBytes: meanSizes(ok.map((r) => r.optimizerStateBytes)),
        stepMs: mean(ok.map((r) => r.stepMs!).filter((v) => v !== null)),
        tokensPerS: mean(ok.map((r) => r.tokensPerS!).filter((v) => v !== null)),
        sites,
        diverged: done.length - ok.length,
      });
    }
  }
  return rows;
}

/** The verdict of one comparison. */
export type Verdict = "better" | "tie" | "worse";

/** One comparison of eval loss between two methods on one task. */
export interface Comparison {
  /** Task. */
  task: TaskName;
  /** The method the claim is about. */
  method: string;
  /** What it is compared with. */
  baseline: string;
  /** Mean eval loss of `method` minus `baseline` (negative: `method` is better). */
  delta: number;
  /** 2·SE of the difference. */
  noise: number;
  /** Below −noise: better; above +noise: worse; else a tie. */
  verdict: Verdict;
  /** Trainable parameters of `method` over `baseline`'s (final phases). */
  parameterRatio: number;
  /** Mean accuracy difference (method − baseline), where the task has answers. */
  accuracyDelta: number | null;
}

/** The three claims of the paper, each with its comparisons and whether it held. */
export interface ClaimReading {
  /** Claim number (1, 2, 3). */
  claim: 1 | 2 | 3;
  /** The claim in words. */
  statement: string;
  /** What "held" means here. */
  rule: string;
  /** The comparisons. */
  comparisons: Comparison[];
  /** Comparisons where it held, out of all. */
  held: number;
}

/**
 * Compares two rows' eval loss.
 *
 * @param a The method the claim is about.
 * @param b The baseline.
 * @returns Difference, noise band and verdict.
 */
export function compareRows(a: MethodRow, b: MethodRow): Comparison {
  const delta = a.evalLoss.mean - b.evalLoss.mean;
  const noise = 2 * Math.sqrt(a.evalLoss.std ** 2 / a.evalLoss.n + b.evalLoss.std ** 2 / b.evalLoss.n);
  const verdict: Verdict = delta < -noise ? "better" : delta > noise ? "worse" : "tie";
  return {
    task: a.task,
    method: a.label,
    baseline: b.label,
    delta,
    noise,
    verdict,
    parameterRatio: b.parameters.final ? a.parameters.final / b.parameters.final : NaN,
    accuracyDelta: a.accuracy && b.accuracy ? a.accuracy.mean - b.accuracy.mean : null,
  };
}

/**
 * Reads the paper's three claims off the table.
 *
 * 1. WeightLoRA(K) keeps or improves quality with far fewer trainable parameters than LoRA on all sites:
 *    held where WeightLoRA(K) is better than or tied with LoRA.
 * 2. WeightLoRA+ beats LoRA: held where it is better.
 * 3. Learned selection beats random selection: held where WeightLoRA(K) is better than random sites (K).
 *
 * @param rows The table.
 * @returns One reading per claim.
 */
export function readClaims(rows: readonly MethodRow[]): ClaimReading[] {
  const tasks = [...new Set(rows.map((r) => r.task))];
  const find = (task: TaskName, family: string, k: number | null) =>
    rows.find((r) => r.task === task && r.family === family && r.k === k);
  const one: Comparison[] = [], two: Comparison[] = [], three: Comparison[] = [];
  for (const task of tasks) {
    const lora = find(task, "lora", null);
    const plus = find(task, "weightlora-plus", null);
    if (lora && plus) two.push(compareRows(plus, lora));
    for (const row of rows.filter((r) => r.task === task && r.family === "weightlora")) {
      if (lora) one.push(compareRows(row, lora));
      const random = find(task, "randlora", row.k);
      if (random) three.push(compareRows(row, random));
    }
  }
  return [
    {
      claim: 1,
      statement: "WeightLoRA keeps or improves quality with far fewer trainable parameters than LoRA",
      rule: "WeightLoRA(K) eval loss better than or tied with LoRA (all sites)",
      comparisons: one,
      held: one.filter((c) => c.verdict !== "worse").length,
    },
    {
      claim: 2,
      statement: "WeightLoRA+ beats LoRA",
      rule: "WeightLoRA+ eval loss better than LoRA (all sites)",
      comparisons: two,
      held: two.filter((c) => c.verdict === "better").length,
    },
    {
      claim: 3,
      statement: "learned selection beats random selection",
      rule: "WeightLoRA(K) eval loss better than random sites (K)",
      comparisons: three,
      held: three.filter((c) => c.verdict === "better").length,
    },
  ];
}

function pm(value: MeanStd, digits: number, scale = 1): string {
  const m = (value.mean * scale).toFixed(digits);
  return value.n > 1 ? `${m} ± ${(value.std * scale).toFixed(digits)}` : m;
}

function bytes(n: number): string {
  if (n === 0) return "0";
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(2)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

function sizes(pair: SizePair, format: (n: number) => string): string {
  return pair.peak > pair.final ? `${format(pair.final)} (peak ${format(pair.peak)})` : format(pair.final);
}

function signed(x: number, digits: number): string {
  return `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(digits)}`;
}

/**
 * The results table of one task as Markdown.
 *
 * @param rows The task's rows.
 * @returns The table (no trailing newline).
 */
export function taskTable(rows: readonly MethodRow[]): string {
  const withAccuracy = rows.some((r) => r.accuracy !== null);
  const header = [
    "method",
    "lr",
    "eval loss",
    ...(withAccuracy ? ["exact match %"] : []),
    "trainable params",
    "optimizer state",
    "ms/step",
    "train tok/s",
  ];
  const lines = [
    `| ${header.join(" | ")} |`,
    `|${header.map((_, i) => (i < 2 ? "---" : "---:")).join("|")}|`,
  ];
  for (const r of rows) {
    const cells = [
      r.label + (r.diverged ? ` (${r.diverged} diverged)` : ""),
      r.lr === null ? "—" : lrText(r.lr),
      pm(r.evalLoss, 4),
      ...(withAccuracy ? [r.accuracy ? pm(r.accuracy, 1, 100) : "—"] : []),
      sizes(r.parameters, (n) => n.toLocaleString("en-US")),
      sizes(r.optimizerStateBytes, bytes),
      r.stepMs === null ? "—" : r.stepMs.toFixed(0),
      r.tokensPerS === null ? "—" : Math.round(r.tokensPerS).toLocaleString("en-US"),
    ];
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

/**
 * The learning-rate sweep of one task as Markdown (dev loss per rate, the chosen one in bold).
 *
 * @param rows The task's rows.
 * @param lrs The swept rates.
 * @returns The table.
 */
export function sweepTable(rows: readonly MethodRow[], lrs: readonly number[]): string {
  const header = ["method", ...lrs.map((lr) => `lr ${lrText(lr)}`)];
  const lines = [`| ${header.join(" | ")} |`, `|---|${lrs.map(() => "---:").join("|")}|`];
  for (const r of rows.filter((x) => x.family !== "base")) {
    const cells = r.sweep.map((p) => {
      const text = p.devLoss === null ? "diverged" : p.devLoss.toFixed(4);
      return p.lr === r.lr ? `**${text}**` : text;
    });
    lines.push(`| ${r.label} | ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

/**
 * The claims as Markdown: per claim, the rule, the count of comparisons where it held, and each comparison.
 *
 * @param readings From {@linkcode readClaims}.
 * @returns Markdown.
 */
export function claimsMarkdown(readings: readonly ClaimReading[]): string {
  const out: string[] = [];
  for (const c of readings) {
    out.push(
      `**Claim ${c.claim}: ${c.statement}.** Rule: ${c.rule} (tie: |Δ| ≤ 2·SE over seeds). ` +
        `Held in ${c.held} of ${c.comparisons.length} comparisons.`,
      "",
      "| task | method | vs | Δ eval loss | 2·SE | verdict | params ratio | Δ exact match |",
      "|---|---|---|---:|---:|---|---:|---:|",
    );
    for (const x of c.comparisons) {
      out.push(
        `| ${x.task} | ${x.method} | ${x.baseline} | ${signed(x.delta, 4)} | ${x.noise.toFixed(4)} | ` +
          `${x.verdict} | ${Number.isNaN(x.parameterRatio) ? "—" : x.parameterRatio.toFixed(3)} | ` +
          `${x.accuracyDelta === null ? "—" : `${signed(100 * x.accuracyDelta, 1)} pt`} |`,
      );
    }
    out.push("");
  }
  return out.join("\n");
}

/**
 * The whole report: per task, the results and sweep tables; then the claims.
 *
 * @param config The configuration.
 * @param rows The table.
 * @returns Markdown.
 */
export function reportMarkdown(config: ReproConfig, rows: readonly MethodRow[]): string {
  const out: string[] = [];
  for (const task of config.tasks) {
    const taskRows = rows.filter((r) => r.task === task);
    if (taskRows.length === 0) continue;
    out.push(`### Task \`${task}\`: ${TASKS[task].title}`, "", taskTable(taskRows), "");
    out.push(`Dev loss of the learning-rate sweep (seed ${config.seeds[0]}; chosen rate in bold):`, "");
    out.push(sweepTable(taskRows, config.lrs), "");
  }
  out.push("### The paper's claims", "", claimsMarkdown(readClaims(rows)));
  return out.join("\n");
}
