import assert from "node:assert/strict";
import {
  chooseLr,
  FULL_CONFIG,
  lrText,
  methodSpecs,
  runSettingsDiffer,
  seedRuns,
  SMOKE_CONFIG,
  sweepRuns,
  validateConfig,
} from "../../../bench/repro/plan.ts";

Deno.test("methodSpecs lists LoRA, RandLoRA(K), WeightLoRA(K), WeightLoRA+ in table order", () => {
  const ids = methodSpecs(FULL_CONFIG).map((m) => m.id);
  assert.deepEqual(ids, [
    "lora",
    "randlora-k3",
    "randlora-k5",
    "randlora-k9",
    "randlora-k17",
    "weightlora-k3",
    "weightlora-k5",
    "weightlora-k9",
    "weightlora-k17",
    "weightlora-plus",
  ]);
  const plus = methodSpecs(FULL_CONFIG).at(-1)!;
  assert.equal(plus.label, "WeightLoRA+ (M=2)");
  assert.deepEqual(methodSpecs({ ...FULL_CONFIG, families: ["weightlora"], ks: [5] }).map((m) => m.k), [5]);
});

Deno.test("sweepRuns covers every task, method and learning rate on the first seed, with unique keys", () => {
  const runs = sweepRuns(FULL_CONFIG);
  assert.equal(runs.length, 3 * 10 * 6);
  assert.equal(new Set(runs.map((r) => r.key)).size, runs.length);
  assert.ok(runs.every((r) => r.seed === 0 && r.stage === "sweep"));
  assert.equal(runs[0].key, "world/lora/lr3e-4-seed0");
});

Deno.test("seedRuns adds the remaining seeds at the chosen rate", () => {
  const [method] = methodSpecs(FULL_CONFIG);
  const runs = seedRuns(FULL_CONFIG, "qa", method, 3e-3);
  assert.deepEqual(runs.map((r) => r.key), ["qa/lora/lr3e-3-seed1", "qa/lora/lr3e-3-seed2"]);
  assert.deepEqual(seedRuns(SMOKE_CONFIG, "qa", method, 1e-3), []);
});

Deno.test("lrText writes learning rates compactly", () => {
  assert.deepEqual([3e-4, 0.001, 0.003, 0.01, 2.5e-3, 1].map(lrText), [
    "3e-4",
    "1e-3",
    "3e-3",
    "1e-2",
    "2.5e-3",
    "1e0",
  ]);
});

Deno.test("chooseLr picks the lowest dev loss, never a diverged run, the smaller rate on a tie", () => {
  assert.equal(
    chooseLr([{ lr: 1e-3, devLoss: 0.5 }, { lr: 1e-2, devLoss: 0.4 }, { lr: 3e-2, devLoss: null }]),
    1e-2,
  );
  assert.equal(chooseLr([{ lr: 1e-2, devLoss: 0.4 }, { lr: 1e-3, devLoss: 0.4 }]), 1e-3);
  assert.throws(
    () => chooseLr([{ lr: 1e-2, devLoss: null }, { lr: 3e-2, devLoss: null }]),
    /Cannot choose a learning rate: every sweep run diverged \(rates 0.01, 0.03\)/,
  );
});

Deno.test("validateConfig accepts both presets and names a bad setting", () => {
  validateConfig(FULL_CONFIG, 35);
  validateConfig(SMOKE_CONFIG, 35);
  assert.throws(() => validateConfig({ ...FULL_CONFIG, ks: [3, 40] }, 35), /K 40 is outside 1\.\.35/);
  assert.throws(() => validateConfig({ ...FULL_CONFIG, seeds: [] }, 35), /"seeds" is empty/);
  assert.throws(() => validateConfig({ ...FULL_CONFIG, seeds: [1, 1] }, 35), /seeds 1, 1 repeat/);
  assert.throws(
    () => validateConfig({ ...FULL_CONFIG, steps: 6 }, 35),
    /selectSteps 6 must be below steps 6/,
  );
  assert.throws(
    () => validateConfig({ ...FULL_CONFIG, families: ["weightlora-plus"], steps: 20 }, 35),
    /2 growth rounds every 10 steps do not fit in 20 steps/,
  );
});

Deno.test("runSettingsDiffer ignores which runs exist and names what changes a run", () => {
  assert.deepEqual(
    runSettingsDiffer(FULL_CONFIG, { ...FULL_CONFIG, lrs: [3e-2], seeds: [5], tasks: ["qa"] }),
    [],
  );
  assert.deepEqual(runSettingsDiffer(FULL_CONFIG, { ...FULL_CONFIG, steps: 7, rank: 8 }), ["steps", "rank"]);
  assert.deepEqual(runSettingsDiffer(FULL_CONFIG, SMOKE_CONFIG).sort(), [
    "growEvery",
    "selectSteps",
    "sizes",
    "steps",
  ]);
});
