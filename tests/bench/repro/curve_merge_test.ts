import assert from "node:assert/strict";
import {
  blowUps,
  churnCount,
  mergeCurveRows,
  mergeCurveRuns,
  readRerunAnswers,
  rerunAnswersMarkdown,
  rises,
  sameSites,
  supersededId,
  verdictCounts,
} from "../../../bench/repro/curve_merge.ts";
import type { CurveRunResult } from "../../../bench/repro/curve_run.ts";
import type { CurveRow } from "../../../bench/repro/curve_summary.ts";
import { meanStd } from "../../../bench/repro/summary.ts";

function row(methodId: string, group: CurveRow["group"], losses: number[], k: number | null = 5): CurveRow {
  return {
    task: "world",
    budget: methodId === "base" ? 0 : 60,
    methodId,
    label: methodId,
    group,
    k,
    lr: methodId === "base" ? null : 1e-2,
    sweep: [],
    evalLoss: meanStd(losses),
    accuracy: null,
    parameters: 3000,
    peakParameters: 3000,
    keptSets: [],
    jaccard: null,
    mlpShare: null,
    diverged: 0,
  };
}

function run(methodId: string, seed: number, evalLoss: number): CurveRunResult {
  return {
    key: `world/${methodId}/${seed}`,
    task: "world",
    methodId,
    lr: 1e-2,
    seed,
    status: "ok",
    budgets: [{ step: 60, devLoss: evalLoss, evalLoss, accuracy: null, parameters: 3000, sites: [] }],
    peakParameters: 3000,
    kRequested: 5,
    kKept: 5,
    stepMs: 1,
    wallS: 1,
    seqLen: 40,
  };
}

const base = {
  name: "repro_curve.json",
  note: "unbounded gates",
  rows: [
    row("base", "base", [3]),
    row("wl-k5", "weightlora", [0.6, 0.61, 0.62]),
    row("random-k5", "random", [0.7, 0.71, 0.72]),
    row("wl-all-k5", "weightlora-all", [0.5, 5, 8]),
  ],
};
const rerun = {
  name: "repro_curve_bounded.json",
  note: "",
  rows: [row("wl-all-k5", "weightlora-all", [0.5, 0.51, 0.52])],
};
const budget = {
  name: "repro_curve_budget_grad.json",
  note: "",
  rows: [row("base", "base", [3]), row("wl-budget-grad-k5", "weightlora-budget", [0.8, 0.81, 0.82])],
};

Deno.test("mergeCurveRows: a later file's method replaces the earlier rows, which stay renamed", () => {
  const rows = mergeCurveRows([base, rerun, budget]);
  assert.equal(rows.filter((r) => r.methodId === "base").length, 1, "one base row per task");
  const all = rows.filter((r) => r.methodId.startsWith("wl-all-k5"));
  assert.deepEqual(all.map((r) => r.methodId), [supersededId("wl-all-k5", "repro_curve.json"), "wl-all-k5"]);
  assert.equal(all[0].methodId, "wl-all-k5@repro_curve");
  assert.equal(all[0].label, "wl-all-k5, unbounded gates");
  assert.equal(all[1].evalLoss.mean, 0.51);
  assert.ok(rows.some((r) => r.methodId === "wl-budget-grad-k5"));
  // a rerun on fewer tasks still supersedes the method on every task
  const qa = { ...base.rows[3], task: "qa" as const };
  const merged = mergeCurveRows([{ ...base, rows: [...base.rows, qa] }, rerun]);
  assert.deepEqual(
    merged.filter((r) => r.task === "qa").map((r) => r.methodId),
    ["wl-all-k5@repro_curve"],
  );
});

Deno.test("blowUps finds the seeds that ended above the untrained model", () => {
  const rows = mergeCurveRows([base, rerun]);
  const old = supersededId("wl-all-k5", "repro_curve.json");
  const runs = [run(old, 0, 0.5), run(old, 1, 5), run(old, 2, 8), run("wl-all-k5", 0, 0.5)];
  const found = blowUps(rows, runs, [old, "wl-all-k5"]);
  assert.deepEqual(found.map((b) => [b.methodId, b.seed, b.evalLoss]), [[old, 1, 5], [old, 2, 8]]);
});

Deno.test("readRerunAnswers compares the capped schedule and the new budget score with their baselines", () => {
  const capped = {
    name: "repro_curve_capped.json",
    note: "",
    rows: [row("wl-all-k5", "weightlora-all", [0.4, 0.41])],
  };
  const rows = mergeCurveRows([base, rerun, budget, capped]);
  const old = supersededId("wl-all-k5", "repro_curve.json");
  const bounded = supersededId("wl-all-k5", "repro_curve_bounded.json");
  assert.ok(rows.some((r) => r.methodId === bounded), "the bounded rerun stays, renamed");
  const runs = [run(old, 1, 5), run(bounded, 0, 3.5), run("wl-all-k5", 0, 0.5)];
  const a = readRerunAnswers(rows, runs, {
    all: ["wl-all-k5"],
    bounded: [bounded],
    unbounded: [old],
    budget: ["wl-budget-grad-k5"],
    gateBudget: [],
  });
  assert.equal(a.blowUps.capped.length, 0);
  assert.deepEqual(a.blowUps.bounded.map((b) => b.seed), [0]);
  assert.equal(a.blowUps.unbounded.length, 1);
  assert.deepEqual(verdictCounts(a.allVsFreeze), { better: 1, tie: 0, worse: 0 });
  assert.deepEqual(verdictCounts(a.allVsBounded), { better: 1, tie: 0, worse: 0 });
  assert.deepEqual(verdictCounts(a.budgetVsRandom), { better: 0, tie: 0, worse: 1 });
  assert.deepEqual(a.churn, { runs: 0, changed: 0, total: 0, max: 0 }, "these runs recorded no changes");
  assert.deepEqual(a.sameSitesAsFreeze, { runs: 0, same: 0 }, "no freeze-and-drop run to compare with");
  const text = rerunAnswersMarkdown(a, { gateMaxStep: 0.05, uncappedChurn: { world: 29 } });
  assert.match(text, /capped at 0\.05 .*0 of 0 runs changed their kept set/);
  assert.match(text, /uncapped at gate lr 5, the churn study's runs changed it world 29\.0 times per run/);
  assert.match(text, /No capped seed ended above the untrained model/);
  assert.match(text, /Bounded but uncapped, 1 seed-budget\(s\) ended above it/);
  assert.match(text, /better in 1, tied in 0, worse in 0 of 1 comparisons at the same K/);
  assert.match(
    text,
    /the capped authors' schedule is the better default schedule: it was better than freeze/,
  );
  // better in one of two, tied in the other: not enough to change the default
  const tied = { ...a, allVsFreeze: [...a.allVsFreeze, { ...a.allVsFreeze[0], verdict: "tie" as const }] };
  assert.match(
    rerunAnswersMarkdown(tied, { gateMaxStep: 0.05, stepCost: { ratio: 1.7, k: 5 } }),
    /freeze and drop stays the default schedule: the capped authors' schedule was better in 1 of 2 comparisons \(on world\), worse in 0.*a step took 1\.70× a step of freeze and drop at K = 5/,
  );
});

Deno.test("rises finds the seeds that got worse from one budget to the next; churnCount sums kept-set changes", () => {
  const r = row("wl-all-k5", "weightlora-all", [0.5]);
  const rows = [r, { ...r, budget: 150 }];
  const two = (seed: number, a: number, b: number, changes: number): CurveRunResult => ({
    ...run("wl-all-k5", seed, a),
    budgets: [
      { step: 60, devLoss: a, evalLoss: a, accuracy: null, parameters: 1, sites: [], keptChanges: 0 },
      { step: 150, devLoss: b, evalLoss: b, accuracy: null, parameters: 1, sites: [], keptChanges: changes },
    ],
  });
  // seed 0 rose 4 % (under the 5 % that counts), seed 1 rose 80 %, seed 2 fell
  const runs = [two(0, 0.5, 0.52, 0), two(1, 0.5, 0.9, 12), two(2, 0.5, 0.4, 3)];
  const found = rises(rows, runs, ["wl-all-k5"]);
  assert.deepEqual(found.map((x) => [x.seed, x.from.budget, x.to.budget, x.to.evalLoss]), [[
    1,
    60,
    150,
    0.9,
  ]]);
  assert.deepEqual(churnCount(rows, runs, ["wl-all-k5"]), { runs: 3, changed: 2, total: 15, max: 12 });
  // the kept sites against freeze and drop's run of the same task, K, seed and rate
  const sites = (id: string, seed: number, names: string[]): CurveRunResult => ({
    ...run(id, seed, 0.5),
    budgets: [{ step: 60, devLoss: 0.5, evalLoss: 0.5, accuracy: null, parameters: 1, sites: names }],
  });
  assert.deepEqual(
    sameSites([
      sites("wl-all-k5", 0, ["a", "b"]),
      sites("wl-k5", 0, ["b", "a"]),
      sites("wl-all-k5", 1, ["a", "c"]),
      sites("wl-k5", 1, ["a", "b"]),
      sites("wl-all-k5", 2, ["a", "b"]),
    ], ["wl-all-k5"]),
    { runs: 2, same: 1 },
  );
  // a run at another rate than the row chose is not counted
  assert.equal(rises(rows, [{ ...two(1, 0.5, 0.9, 12), lr: 3e-3 }], ["wl-all-k5"]).length, 0);
});

Deno.test("mergeCurveRuns renames the runs of superseded methods as their rows are", () => {
  const runs = mergeCurveRuns([
    { ...base, runs: [run("wl-all-k5", 0, 5), run("wl-k5", 0, 0.6)] },
    { ...rerun, runs: [run("wl-all-k5", 0, 0.5)] },
  ]);
  assert.deepEqual(runs.map((r) => r.methodId), ["wl-all-k5@repro_curve", "wl-k5", "wl-all-k5"]);
});
