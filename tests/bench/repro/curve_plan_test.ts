import assert from "node:assert/strict";
import {
  budgetOfK,
  centresFromRows,
  chooseLrPerBudget,
  CURVE_CONFIG,
  CURVE_SMOKE_CONFIG,
  curveMethods,
  curveSeedRuns,
  curveSettingsDiffer,
  curveSweepRuns,
  lrGrid,
  validateCurveConfig,
} from "../../../bench/repro/curve_plan.ts";

Deno.test("curveMethods gives each variant its trainer settings, in the configured order", () => {
  const methods = curveMethods(CURVE_CONFIG);
  assert.deepEqual(methods.map((m) => m.id), CURVE_CONFIG.methods);
  const byId = Object.fromEntries(methods.map((m) => [m.id, m]));
  assert.equal(byId["wl-k5"].selectSteps, 6);
  assert.equal(byId["wl-all-k9"].selectSteps, "all");
  assert.deepEqual(
    [
      byId["wl-warm-norm-k5"].gateWarmup,
      byId["wl-warm-norm-k5"].selectSteps,
      byId["wl-warm-norm-k5"].gateNorm,
    ],
    [10, 16, "params"],
  );
  assert.equal(byId["wl-norm-k5"].gateWarmup, 0);
  assert.equal(byId["random-k9"].method, "random-sites");
  assert.equal(byId["random-k9"].centreOf, "randlora-k9");
  assert.equal(byId["wl-plus"].k, null);
  assert.throws(() => curveMethods({ ...CURVE_CONFIG, methods: ["wl-k7"] }), /Invalid curve method "wl-k7"/);
});

Deno.test("lrGrid centres on the 60-step choice (nearest ladder rate) and clips to the ladder", () => {
  const centres = centresFromRows([
    { task: "qa", methodId: "weightlora-k5", lr: 3e-2 },
    { task: "qa", methodId: "lora", lr: 0.0031 },
    { task: "qa", methodId: "base", lr: null },
  ]);
  const [lora, wl5] = curveMethods({ ...CURVE_CONFIG, methods: ["lora", "wl-all-k5"] });
  const two = { ...CURVE_CONFIG, gridBelow: 1, gridAbove: 0 };
  assert.deepEqual(lrGrid(two, centres, "qa", wl5), [1e-2, 3e-2]);
  assert.deepEqual(lrGrid(two, centres, "qa", lora), [1e-3, 3e-3]);
  assert.deepEqual(lrGrid(two, centres, "world", lora), [3e-3, 1e-2]); // default centre
  assert.deepEqual(lrGrid(CURVE_CONFIG, centres, "qa", wl5), [1e-2]); // the preset: one rate below the centre
  assert.deepEqual(
    lrGrid({ ...CURVE_CONFIG, gridBelow: 9, gridAbove: 9 }, centres, "qa", lora),
    CURVE_CONFIG.ladder,
  );
});

Deno.test("curveSweepRuns runs the first seed over each grid, whole methods first, with unique keys", () => {
  const runs = curveSweepRuns({ ...CURVE_CONFIG, gridAbove: 0 }, { centres: {} });
  assert.equal(runs.length, CURVE_CONFIG.methods.length * 3 * 2);
  assert.equal(new Set(runs.map((r) => r.key)).size, runs.length);
  assert.ok(runs.every((r) => r.seed === 0 && r.stage === "sweep"));
  assert.deepEqual(runs.slice(0, 6).map((r) => r.key), [
    "world/lora/lr3e-3-seed0",
    "world/lora/lr1e-2-seed0",
    "qa/lora/lr3e-3-seed0",
    "qa/lora/lr1e-2-seed0",
    "topic/lora/lr3e-3-seed0",
    "topic/lora/lr1e-2-seed0",
  ]);
});

Deno.test("chooseLrPerBudget chooses by dev loss at each budget; curveSeedRuns runs every chosen rate once", () => {
  const chosen = chooseLrPerBudget([60, 150, 300], [
    { lr: 1e-2, devLoss: { 60: 0.5, 150: 0.45, 300: null } },
    { lr: 3e-2, devLoss: { 60: 0.4, 150: 0.46, 300: null } },
  ]);
  assert.deepEqual(chosen, { 60: 3e-2, 150: 1e-2 }); // every rate diverged before 300: no choice
  const [m] = curveMethods({ ...CURVE_CONFIG, methods: ["wl-k5"] });
  assert.deepEqual(curveSeedRuns(CURVE_CONFIG, "qa", m, chosen).map((r) => r.key), [
    "qa/wl-k5/lr1e-2-seed1",
    "qa/wl-k5/lr1e-2-seed2",
    "qa/wl-k5/lr3e-2-seed1",
    "qa/wl-k5/lr3e-2-seed2",
  ]);
  assert.deepEqual(curveSeedRuns(CURVE_CONFIG, "qa", m, { 60: 1e-2, 300: 1e-2 }).length, 2);
});

Deno.test("validateCurveConfig accepts both presets and rejects schedules that end after the first budget", () => {
  validateCurveConfig(CURVE_CONFIG, 35);
  validateCurveConfig(CURVE_SMOKE_CONFIG, 35);
  assert.throws(
    () => validateCurveConfig({ ...CURVE_CONFIG, budgets: [12, 150] }, 35),
    /wl-warm-norm-k5 selects for 16 steps, not before the first budget 12/,
  );
  assert.throws(
    () => validateCurveConfig({ ...CURVE_CONFIG, methods: ["wl-plus"], budgets: [20, 40] }, 35),
    /2 growth rounds every 10 steps do not end before the first budget 20/,
  );
  assert.throws(() => validateCurveConfig({ ...CURVE_CONFIG, budgets: [60, 60] }, 35), /increasing/);
  assert.throws(() => validateCurveConfig({ ...CURVE_CONFIG, ks: [5, 40] }, 35), /K 40 is outside 1\.\.35/);
  assert.throws(() => validateCurveConfig({ ...CURVE_CONFIG, seeds: [] }, 35), /"seeds" is empty/);
});

Deno.test("curveSettingsDiffer ignores which runs exist and names what changes a run", () => {
  assert.deepEqual(curveSettingsDiffer(CURVE_CONFIG, { ...CURVE_CONFIG, methods: ["lora"], seeds: [4] }), []);
  assert.deepEqual(curveSettingsDiffer(CURVE_CONFIG, { ...CURVE_CONFIG, budgets: [60, 600], rank: 8 }), [
    "budgets",
    "rank",
  ]);
});

Deno.test("budgeted WeightLoRA runs at the parameters K average sites hold", () => {
  assert.equal(budgetOfK(5), 3400);
  assert.equal(budgetOfK(9), 6000);
  const [budget] = curveMethods({ ...CURVE_CONFIG, methods: ["wl-budget-k5"] });
  assert.equal(budget.budget, 3400);
  assert.equal(budget.method, "weightlora");
  assert.equal(budget.group, "weightlora-budget");
  assert.equal(budget.selectSteps, 6);
  assert.equal(budget.budgetScore, "gate", "wl-budget-kK is the first score, the gate's value");
  const [grad, taylor, long] = curveMethods({
    ...CURVE_CONFIG,
    methods: ["wl-budget-grad-k5", "wl-budget-taylor-k5", "wl-budget-grad-long-k5"],
  });
  assert.deepEqual([grad.budgetScore, taylor.budgetScore, long.budgetScore], [
    "gradient",
    "taylor",
    "gradient",
  ]);
  assert.deepEqual([grad.selectSteps, long.selectSteps], [6, 30]);
  assert.ok([grad, taylor, long].every((m) => m.budget === 3400 && m.group === "weightlora-budget"));
});
