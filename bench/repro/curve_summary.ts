/**
 * Aggregates the step-budget curve: per task, method and budget, the learning rate chosen at that budget, eval
 * loss and exact match over the seeds at that rate, adapter size, kept sites and their stability across seeds
 * (mean pairwise Jaccard, share of MLP sites); then reads the paper's claims at every budget with the rule of
 * `summary.ts` (a tie when |Δ| ≤ 2·SE) and renders Markdown.
 *
 * @example
 * ```ts
 * import { jaccard } from "./curve_summary.ts";
 * import assert from "node:assert/strict";
 * assert.equal(jaccard(["a", "b"], ["b", "c"]), 1 / 3);
 * ```
 *
 * @module
 */

import { type TaskName, TASKS } from "../tasks/generate.ts";
import {
  chooseLrPerBudget,
  CURVE_GROUPS,
  type CurveConfig,
  type CurveGroup,
  type CurveMethod,
  curveMethods,
} from "./curve_plan.ts";
import type { CurveRunResult } from "./curve_run.ts";
import { lrText } from "./plan.ts";
import { type MeanStd, meanStd, type Verdict } from "./summary.ts";

/** One row: a method on a task at one budget, at the rate chosen for that budget. */
export interface CurveRow {
  /** Task. */
  task: TaskName;
  /** Step budget (0 for the base model). */
  budget: number;
  /** Method id (`base` for the untrained model). */
  methodId: string;
  /** Name in tables. */
  label: string;
  /** Group (`base` for the untrained model). */
  group: CurveGroup | "base";
  /** K where the method has one. */
  k: number | null;
  /** Rate chosen at this budget (null for `base`). */
  lr: number | null;
  /** Dev loss at this budget per rate of the grid (first seed; null: diverged before it). */
  sweep: { lr: number; devLoss: number | null }[];
  /** Eval loss over the seeds. */
  evalLoss: MeanStd;
  /** Exact match over the seeds, where the task has answers. */
  accuracy: MeanStd | null;
  /** Adapter parameters at this budget, mean over seeds rounded. */
  parameters: number;
  /** Most parameters trained at once, mean over seeds rounded. */
  peakParameters: number;
  /** Kept sites per seed (empty for LoRA and base). */
  keptSets: string[][];
  /** Mean pairwise Jaccard similarity of the kept sets across seeds (null without sites or with one seed). */
  jaccard: number | null;
  /** Share of kept sites that are MLP projections (gate, up, down), over seeds (null without sites). */
  mlpShare: number | null;
  /** Seeds whose run diverged before this budget. */
  diverged: number;
}

/**
 * Jaccard similarity of two sets (1 for two empty sets).
 *
 * @param a One set.
 * @param b Another.
 * @returns |a ∩ b| / |a ∪ b|.
 */
export function jaccard(a: readonly string[], b: readonly string[]): number {
  const sa = new Set(a), sb = new Set(b);
  const union = new Set([...sa, ...sb]).size;
  if (union === 0) return 1;
  return [...sa].filter((x) => sb.has(x)).length / union;
}

/**
 * Mean pairwise Jaccard similarity.
 *
 * @param sets Kept sets (one per seed).
 * @returns The mean over pairs, or null for fewer than two sets.
 */
export function meanPairwiseJaccard(sets: readonly (readonly string[])[]): number | null {
  const values: number[] = [];
  for (let i = 0; i < sets.length; i++) {
    for (let j = i + 1; j < sets.length; j++) values.push(jaccard(sets[i], sets[j]));
  }
  return values.length ? values.reduce((s, v) => s + v, 0) / values.length : null;
}

/**
 * Whether a site is an MLP projection (`…mlp.gate_proj`, `up_proj`, `down_proj`).
 *
 * @param site PEFT module path.
 * @returns True for gate, up and down.
 */
export function isMlpSite(site: string): boolean {
  return /\.mlp\.(gate|up|down)_proj$/.test(site);
}

/**
 * Builds the rows from the runs' results; a row whose runs are not all there is left out.
 *
 * @param config The configuration.
 * @param grids Each task's and method's learning-rate grid.
 * @param results Every run's result.
 * @returns Rows, task by task, budget by budget, in method order (the base row first, budget 0).
 */
export function aggregateCurve(
  config: CurveConfig,
  grids: Partial<Record<string, Record<string, number[]>>>,
  results: readonly CurveRunResult[],
): CurveRow[] {
  const rows: CurveRow[] = [];
  const sweepSeed = config.seeds[0];
  for (const task of config.tasks) {
    const of = (id: string) => results.filter((r) => r.task === task && r.methodId === id);
    const [base] = of("base");
    if (base) {
      const b = base.budgets[0];
      rows.push({
        task,
        budget: 0,
        methodId: "base",
        label: "base model (no adapter)",
        group: "base",
        k: null,
        lr: null,
        sweep: [],
        evalLoss: meanStd([b.evalLoss]),
        accuracy: b.accuracy === null ? null : meanStd([b.accuracy]),
        parameters: 0,
        peakParameters: 0,
        keptSets: [],
        jaccard: null,
        mlpShare: null,
        diverged: 0,
      });
    }
    const methods = displayOrder(curveMethods(config));
    for (const budget of config.budgets) {
      for (const method of methods) {
        const row = methodRow(
          config,
          task,
          budget,
          method,
          grids[task]?.[method.id] ?? [],
          of(method.id),
          sweepSeed,
        );
        if (row) rows.push(row);
      }
    }
  }
  return rows;
}

/**
 * Methods in table order: LoRA; then per K random sites and the WeightLoRA variants (freeze and drop, all
 * steps, norm, warmup + norm); WeightLoRA+ last.
 *
 * @param methods The methods.
 * @returns A sorted copy.
 */
export function displayOrder(methods: readonly CurveMethod[]): CurveMethod[] {
  const rank = (m: CurveMethod) =>
    m.group === "lora"
      ? -1
      : m.group === "weightlora-plus"
      ? Infinity
      : (m.k ?? 0) * 100 + CURVE_GROUPS.indexOf(m.group);
  return [...methods].sort((a, b) => rank(a) - rank(b));
}

function methodRow(
  config: CurveConfig,
  task: TaskName,
  budget: number,
  method: CurveMethod,
  grid: readonly number[],
  runs: readonly CurveRunResult[],
  sweepSeed: number,
): CurveRow | undefined {
  const sweepRuns = grid.map((lr) => runs.find((r) => r.seed === sweepSeed && r.lr === lr));
  if (grid.length === 0 || sweepRuns.some((r) => r === undefined)) return undefined;
  const points = (sweepRuns as CurveRunResult[]).map((r) => ({
    lr: r.lr!,
    devLoss: { [budget]: r.budgets.find((b) => b.step === budget)?.devLoss ?? null },
  }));
  const lr = chooseLrPerBudget([budget], points)[budget];
  if (lr === undefined) return undefined;
  const atLr = config.seeds.map((seed) => runs.find((r) => r.seed === seed && r.lr === lr));
  if (atLr.some((r) => r === undefined)) return undefined;
  const reached = (atLr as CurveRunResult[]).map((r) => r.budgets.find((b) => b.step === budget))
    .filter((b) => b !== undefined);
  if (reached.length === 0) return undefined;
  const withSites = method.group !== "lora";
  const keptSets = withSites ? reached.map((b) => [...b.sites].sort()) : [];
  const kept = keptSets.flat();
  const avg = (values: number[]) => Math.round(values.reduce((s, v) => s + v, 0) / values.length);
  return {
    task,
    budget,
    methodId: method.id,
    label: method.label,
    group: method.group,
    k: method.k,
    lr,
    sweep: points.map((p) => ({ lr: p.lr, devLoss: p.devLoss[budget] })),
    evalLoss: meanStd(reached.map((b) => b.evalLoss)),
    accuracy: TASKS[task].exactMatch ? meanStd(reached.map((b) => b.accuracy!)) : null,
    parameters: avg(reached.map((b) => b.parameters)),
    peakParameters: avg((atLr as CurveRunResult[]).map((r) => r.peakParameters)),
    keptSets,
    jaccard: withSites ? meanPairwiseJaccard(keptSets) : null,
    mlpShare: kept.length ? kept.filter(isMlpSite).length / kept.length : null,
    diverged: config.seeds.length - reached.length,
  };
}

/** One comparison of eval loss at one budget. */
export interface CurveComparison {
  /** Task. */
  task: TaskName;
  /** Budget. */
  budget: number;
  /** The method the claim is about (id). */
  method: string;
  /** Its label. */
  label: string;
  /** The baseline's id. */
  baseline: string;
  /** Mean eval loss of `method` minus the baseline's (negative: better). */
  delta: number;
  /** 2·SE of the difference. */
  noise: number;
  /** Verdict. */
  verdict: Verdict;
  /** Adapter parameters of `method` over the baseline's. */
  parameterRatio: number;
}

/**
 * Compares two rows' eval loss (a tie when |Δ| ≤ 2·SE over seeds).
 *
 * @param a The method the claim is about.
 * @param b The baseline.
 * @returns The comparison.
 */
export function compareCurveRows(a: CurveRow, b: CurveRow): CurveComparison {
  const delta = a.evalLoss.mean - b.evalLoss.mean;
  const noise = 2 * Math.sqrt(a.evalLoss.std ** 2 / a.evalLoss.n + b.evalLoss.std ** 2 / b.evalLoss.n);
  return {
    task: a.task,
    budget: a.budget,
    method: a.methodId,
    label: a.label,
    baseline: b.methodId,
    delta,
    noise,
    verdict: delta < -noise ? "better" : delta > noise ? "worse" : "tie",
    parameterRatio: b.parameters ? a.parameters / b.parameters : NaN,
  };
}

/** A question read off the curve: comparisons of each method with its baseline at every budget and task. */
export interface CurveClaim {
  /** Short id (`lora`, `plus`, `random`, `default`). */
  id: string;
  /** The question in words. */
  statement: string;
  /** When a comparison counts as held. */
  rule: string;
  /** Which verdicts count as held. */
  holds: Verdict[];
  /** The comparisons. */
  comparisons: CurveComparison[];
}

const SELECTING: readonly CurveGroup[] = [
  "weightlora",
  "weightlora-all",
  "weightlora-norm",
  "weightlora-warm-norm",
  "weightlora-budget",
];

/**
 * Reads the claims at every budget: WeightLoRA(K) (each schedule and fix) against LoRA and against random
 * sites (K); WeightLoRA+ against LoRA; each schedule and fix against freeze-and-drop WeightLoRA at the same K.
 *
 * @param rows The rows.
 * @returns The claims.
 */
export function readCurveClaims(rows: readonly CurveRow[]): CurveClaim[] {
  const find = (task: string, budget: number, pred: (r: CurveRow) => boolean) =>
    rows.find((r) => r.task === task && r.budget === budget && pred(r));
  const lora: CurveComparison[] = [], plus: CurveComparison[] = [], random: CurveComparison[] = [];
  const fixes: CurveComparison[] = [];
  for (const row of rows) {
    const at = (pred: (r: CurveRow) => boolean) => find(row.task, row.budget, pred);
    const loraRow = at((r) => r.group === "lora");
    if (SELECTING.includes(row.group as CurveGroup)) {
      if (loraRow) lora.push(compareCurveRows(row, loraRow));
      const rnd = at((r) => r.group === "random" && r.k === row.k);
      if (rnd) random.push(compareCurveRows(row, rnd));
      const plain = at((r) => r.group === "weightlora" && r.k === row.k);
      if (plain && row.group !== "weightlora") fixes.push(compareCurveRows(row, plain));
    }
    if (row.group === "weightlora-plus" && loraRow) plus.push(compareCurveRows(row, loraRow));
  }
  return [
    {
      id: "lora",
      statement: "WeightLoRA(K) keeps LoRA's quality with far fewer parameters (paper's claim 1)",
      rule: "eval loss better than or tied with LoRA (all sites)",
      holds: ["better", "tie"],
      comparisons: lora,
    },
    {
      id: "plus",
      statement: "WeightLoRA+ beats LoRA (paper's claim 2)",
      rule: "eval loss better than LoRA (all sites)",
      holds: ["better"],
      comparisons: plus,
    },
    {
      id: "random",
      statement: "learned selection beats random sites (paper's claim 3)",
      rule: "eval loss better than random sites at the same K",
      holds: ["better"],
      comparisons: random,
    },
    {
      id: "default",
      statement: "a schedule or selection fix beats freeze-and-drop WeightLoRA",
      rule: "eval loss better than WeightLoRA (freeze and drop) at the same K",
      holds: ["better"],
      comparisons: fixes,
    },
  ];
}

const SIGN: Record<Verdict, string> = { better: "+", tie: "=", worse: "−" };

function signed(x: number, digits: number): string {
  return `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(digits)}`;
}

function pm(value: MeanStd, digits: number, scale = 1): string {
  const m = (value.mean * scale).toFixed(digits);
  return value.n > 1 ? `${m} ± ${(value.std * scale).toFixed(digits)}` : m;
}

/**
 * The claims table: one line per claim and method, one column per budget; a cell counts the tasks where the
 * claim held and lists each task's verdict (`+` better, `=` tie, `−` worse) in task order.
 *
 * @param claims From {@linkcode readCurveClaims}.
 * @param tasks Task order.
 * @param budgets Budgets.
 * @returns Markdown.
 */
export function claimsTable(
  claims: readonly CurveClaim[],
  tasks: readonly string[],
  budgets: readonly number[],
): string {
  const lines = [
    `| claim | method | ${budgets.map((b) => `${b} steps`).join(" | ")} |`,
    `|---|---|${budgets.map(() => "---").join("|")}|`,
  ];
  for (const c of claims) {
    const methods = [...new Set(c.comparisons.map((x) => x.method))];
    for (const m of methods) {
      const label = c.comparisons.find((x) => x.method === m)!.label;
      const cells = budgets.map((b) => {
        const xs = tasks.map((t) =>
          c.comparisons.find((x) => x.method === m && x.budget === b && x.task === t)
        );
        const known = xs.filter((x) => x !== undefined);
        if (known.length === 0) return "—";
        const held = known.filter((x) => c.holds.includes(x.verdict)).length;
        return `${held}/${known.length} (${xs.map((x) => (x ? SIGN[x.verdict] : "?")).join(" ")})`;
      });
      lines.push(`| ${c.id} | ${label} | ${cells.join(" | ")} |`);
    }
  }
  return lines.join("\n");
}

/**
 * Every comparison of one claim as a table (task, budget, Δ, 2·SE, verdict, parameter ratio).
 *
 * @param claim The claim.
 * @returns Markdown.
 */
export function comparisonsTable(claim: CurveClaim): string {
  const lines = [
    "| task | steps | method | vs | Δ eval loss | 2·SE | verdict | params ratio |",
    "|---|---:|---|---|---:|---:|---|---:|",
  ];
  for (const x of claim.comparisons) {
    lines.push(
      `| ${x.task} | ${x.budget} | ${x.label} | ${x.baseline} | ${signed(x.delta, 4)} | ${
        x.noise.toFixed(4)
      } | ` +
        `${x.verdict} | ${Number.isNaN(x.parameterRatio) ? "—" : x.parameterRatio.toFixed(3)} |`,
    );
  }
  return lines.join("\n");
}

/**
 * The results of one task: one line per method, eval loss (and exact match) at every budget with the chosen
 * rate, and the adapter's parameters at the last budget.
 *
 * @param rows The task's rows.
 * @param budgets Budgets.
 * @returns Markdown.
 */
export function curveTaskTable(rows: readonly CurveRow[], budgets: readonly number[]): string {
  const withAccuracy = rows.some((r) => r.accuracy !== null);
  const header = [
    "method",
    ...budgets.map((b) => `${b} steps: eval loss${withAccuracy ? " / exact match %" : ""} (lr)`),
    "params (last)",
    "peak params",
  ];
  const lines = [`| ${header.join(" | ")} |`, `|---|${header.slice(1).map(() => "---:").join("|")}|`];
  const base = rows.find((r) => r.group === "base");
  if (base) {
    const cell = pm(base.evalLoss, 4) + (base.accuracy ? ` / ${pm(base.accuracy, 1, 100)}` : "");
    lines.push(`| ${base.label} | ${budgets.map(() => cell).join(" | ")} | 0 | 0 |`);
  }
  const ids = [...new Set(rows.filter((r) => r.group !== "base").map((r) => r.methodId))];
  for (const id of ids) {
    const of = rows.filter((r) => r.methodId === id);
    const cells = budgets.map((b) => {
      const r = of.find((x) => x.budget === b);
      if (!r) return "—";
      const acc = r.accuracy ? ` / ${pm(r.accuracy, 1, 100)}` : "";
      const div = r.diverged ? ` (${r.diverged} diverged)` : "";
      return `${pm(r.evalLoss, 4)}${acc} (${lrText(r.lr!)})${div}`;
    });
    const last = of.at(-1)!;
    lines.push(
      `| ${of[0].label} | ${cells.join(" | ")} | ${last.parameters.toLocaleString("en-US")} | ` +
        `${last.peakParameters.toLocaleString("en-US")} |`,
    );
  }
  return lines.join("\n");
}

/**
 * Selection stability: per method with sites and task, at every budget, the mean pairwise Jaccard of the kept
 * sets across seeds and the share of MLP sites among them.
 *
 * @param rows The rows.
 * @param budgets Budgets.
 * @param randomMlpShare The MLP share of a uniform random choice (MLP sites / all sites).
 * @returns Markdown.
 */
export function stabilityTable(
  rows: readonly CurveRow[],
  budgets: readonly number[],
  randomMlpShare: number,
): string {
  const lines = [
    `| method | task | ${budgets.map((b) => `${b} steps: Jaccard / MLP share`).join(" | ")} |`,
    `|---|---|${budgets.map(() => "---:").join("|")}|`,
  ];
  const withSites = rows.filter((r) => r.keptSets.length > 0);
  const ids = [...new Set(withSites.map((r) => r.methodId))];
  const tasks = [...new Set(withSites.map((r) => r.task))];
  for (const id of ids) {
    for (const task of tasks) {
      const of = withSites.filter((r) => r.methodId === id && r.task === task);
      if (of.length === 0) continue;
      const cells = budgets.map((b) => {
        const r = of.find((x) => x.budget === b);
        if (!r) return "—";
        const j = r.jaccard === null ? "—" : r.jaccard.toFixed(2);
        return `${j} / ${r.mlpShare === null ? "—" : `${Math.round(100 * r.mlpShare)}%`}`;
      });
      lines.push(`| ${of[0].label} | ${task} | ${cells.join(" | ")} |`);
    }
  }
  lines.push(
    "",
    `_A uniform random choice keeps ${Math.round(100 * randomMlpShare)}% MLP sites on average._`,
  );
  return lines.join("\n");
}

/**
 * The learning-rate choices: per task and method, the dev loss of every grid rate at every budget (first
 * seed), the chosen one in bold.
 *
 * @param rows The rows.
 * @param budgets Budgets.
 * @returns Markdown.
 */
export function curveSweepTable(rows: readonly CurveRow[], budgets: readonly number[]): string {
  const lines = [
    `| task | method | ${budgets.map((b) => `${b} steps: dev loss per lr`).join(" | ")} |`,
    `|---|---|${budgets.map(() => "---").join("|")}|`,
  ];
  const trained = rows.filter((r) => r.group !== "base");
  const keys = [...new Set(trained.map((r) => `${r.task}\u0000${r.methodId}`))];
  for (const key of keys) {
    const [task, id] = key.split("\u0000");
    const of = trained.filter((r) => r.task === task && r.methodId === id);
    const cells = budgets.map((b) => {
      const r = of.find((x) => x.budget === b);
      if (!r) return "—";
      return r.sweep.map((p) => {
        const text = `${lrText(p.lr)}: ${p.devLoss === null ? "diverged" : p.devLoss.toFixed(4)}`;
        return p.lr === r.lr ? `**${text}**` : text;
      }).join(", ");
    });
    lines.push(`| ${task} | ${of[0].label} | ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

/** One candidate site's module and shape. */
export interface SiteShape {
  /** Module kind (`q_proj`, …). */
  module: string;
  /** Input width. */
  inFeatures: number;
  /** Output width. */
  outFeatures: number;
}

/**
 * Adapter parameters per module at a rank: one line per module kind, with its shape, parameters per site
 * (r · (in + out)) and the count of sites.
 *
 * @param sites Every candidate site.
 * @param rank The LoRA rank.
 * @returns Markdown.
 */
export function sitesTable(sites: readonly SiteShape[], rank: number): string {
  const lines = [
    `| module | in → out | parameters per site at rank ${rank} | sites | all sites |`,
    "|---|---|---:|---:|---:|",
  ];
  const modules = [...new Set(sites.map((s) => s.module))];
  let total = 0;
  for (const m of modules) {
    const of = sites.filter((s) => s.module === m);
    const per = rank * (of[0].inFeatures + of[0].outFeatures);
    total += per * of.length;
    lines.push(
      `| ${m} | ${of[0].inFeatures} → ${of[0].outFeatures} | ${
        per.toLocaleString("en-US")
      } | ${of.length} | ` +
        `${(per * of.length).toLocaleString("en-US")} |`,
    );
  }
  lines.push(`| all | | | ${sites.length} | ${total.toLocaleString("en-US")} |`);
  return lines.join("\n");
}

/**
 * The report's tables by name, for the Markdown report and for the marked regions of a document:
 * `claims`, `task-<task>`, `stability`, `comparisons`, `learning-rates` and (with sites) `sites`.
 *
 * @param config The configuration.
 * @param rows The rows.
 * @param options The MLP share of a random choice; the candidate sites for their parameter table.
 * @returns Markdown per name (no headings).
 */
export function curveReportSections(
  config: CurveConfig,
  rows: readonly CurveRow[],
  options: { randomMlpShare: number; sites?: readonly SiteShape[] },
): Record<string, string> {
  const claims = readCurveClaims(rows);
  const tasks = config.tasks.filter((t) => rows.some((r) => r.task === t));
  const sections: Record<string, string> = {
    claims:
      `Cells: tasks where the claim held / tasks compared, then each task's verdict in the order ${
        tasks.join(", ")
      } (\`+\` better, \`=\` tie within 2·SE over seeds, \`−\` worse).\n\n` +
      claimsTable(claims, tasks, config.budgets),
  };
  for (const task of tasks) {
    sections[`task-${task}`] = curveTaskTable(rows.filter((r) => r.task === task), config.budgets);
  }
  sections.stability =
    "Mean pairwise Jaccard similarity of the kept sites across seeds (1: every seed kept the " +
    "same sites) and the share of MLP projections (gate, up, down) among them.\n\n" +
    stabilityTable(rows, config.budgets, options.randomMlpShare);
  sections.comparisons = claims.map((c) =>
    `**${c.statement}.** Held when: ${c.rule}.\n\n${comparisonsTable(c)}`
  ).join("\n\n");
  sections["learning-rates"] =
    "Dev loss at each budget for every rate of the method's grid (first seed); the " +
    "chosen rate in bold.\n\n" + curveSweepTable(rows, config.budgets);
  if (options.sites) sections.sites = sitesTable(options.sites, config.rank);
  return sections;
}

/**
 * The whole curve report: claims table, per-task results, stability, claims' comparisons, learning rates,
 * adapter sites.
 *
 * @param config The configuration.
 * @param rows The rows.
 * @param options The MLP share of a random choice; the candidate sites for their parameter table.
 * @returns Markdown.
 */
export function curveReportMarkdown(
  config: CurveConfig,
  rows: readonly CurveRow[],
  options: { randomMlpShare: number; sites?: readonly SiteShape[] },
): string {
  const sections = curveReportSections(config, rows, options);
  const out: string[] = ["### Claims at every budget", "", sections.claims, ""];
  for (const task of config.tasks) {
    const table = sections[`task-${task}`];
    if (table) out.push(`### Task \`${task}\`: ${TASKS[task].title}`, "", table, "");
  }
  out.push("### Selection stability", "", sections.stability, "");
  out.push("### Comparisons", "", sections.comparisons, "");
  out.push("### Learning rates", "", sections["learning-rates"], "");
  if (sections.sites) out.push("### Adapter sites", "", sections.sites, "");
  return out.join("\n");
}

/**
 * Replaces the marked regions of a document (`<!-- repro-curve:NAME -->` … `<!-- /repro-curve:NAME -->`) with
 * the named sections; text outside the markers is kept.
 *
 * @param doc The document.
 * @param sections Markdown per name.
 * @returns The document and the names it had no section for.
 */
export function fillMarkedSections(
  doc: string,
  sections: Record<string, string>,
): { text: string; missing: string[] } {
  const missing: string[] = [];
  const text = doc.replace(
    /<!-- repro-curve:([\w-]+) -->\n[\s\S]*?<!-- \/repro-curve:\1 -->/g,
    (whole, name: string) => {
      if (!(name in sections)) {
        missing.push(name);
        return whole;
      }
      return `<!-- repro-curve:${name} -->\n\n${sections[name]}\n\n<!-- /repro-curve:${name} -->`;
    },
  );
  return { text, missing };
}

/**
 * Runs at rates outside the plan (made before a change of the learning-rate rule, kept in the work folder):
 * per task, method and rate, the eval loss at every budget over the seeds there are.
 *
 * @param runs The off-plan runs.
 * @param budgets Budgets.
 * @returns Markdown (empty when there are none).
 */
export function otherRatesTable(runs: readonly CurveRunResult[], budgets: readonly number[]): string {
  if (runs.length === 0) return "";
  const lines = [
    `| task | method | lr | seeds | ${budgets.map((b) => `${b} steps: eval loss`).join(" | ")} |`,
    `|---|---|---|---:|${budgets.map(() => "---:").join("|")}|`,
  ];
  const keys = [...new Set(runs.map((r) => `${r.task}\u0000${r.methodId}\u0000${r.lr}`))].sort();
  for (const key of keys) {
    const [task, id, lr] = key.split("\u0000");
    const of = runs.filter((r) => r.task === task && r.methodId === id && String(r.lr) === lr);
    const cells = budgets.map((b) => {
      const values = of.flatMap((r) => r.budgets.filter((x) => x.step === b).map((x) => x.evalLoss));
      return values.length ? pm(meanStd(values), 4) : "—";
    });
    lines.push(`| ${task} | ${id} | ${lrText(Number(lr))} | ${of.length} | ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}
