import assert from "node:assert/strict";
import { type ReproConfig, SMOKE_CONFIG } from "../../../bench/repro/plan.ts";
import type { RunResult } from "../../../bench/repro/run_one.ts";
import {
  aggregate,
  compareRows,
  meanStd,
  type MethodRow,
  readClaims,
  reportMarkdown,
  taskTable,
} from "../../../bench/repro/summary.ts";

const config: ReproConfig = {
  ...SMOKE_CONFIG,
  tasks: ["qa"],
  families: ["lora", "randlora", "weightlora"],
  ks: [3],
  lrs: [1e-3, 1e-2],
  seeds: [0, 1, 2],
};

function result(
  methodId: string,
  lr: number | null,
  seed: number | null,
  evalLoss: number,
  extra: Partial<RunResult> = {},
): RunResult {
  return {
    key: `qa/${methodId}/${lr}-${seed}`,
    task: "qa",
    methodId,
    lr,
    seed,
    status: "ok",
    devLoss: evalLoss + 0.01,
    evalLoss,
    accuracy: 1 - evalLoss,
    trainLoss: evalLoss,
    parameters: methodId === "lora"
      ? { final: 1000, peak: 1000 }
      : { final: 100, peak: methodId === "weightlora-k3" ? 1010 : 100 },
    optimizerStateBytes: { final: 800, peak: 800 },
    selectedSites: methodId === "lora" ? [] : ["model.layers.0.mlp.up_proj"],
    ranks: {},
    stepMs: 10,
    tokensPerS: 1000,
    tokens: 100,
    wallS: 1,
    seqLen: 64,
    ...extra,
  };
}

/** LoRA best at 1e-3 (0.50, 0.52, 0.54), RandLoRA at 1e-2 (0.70 ± 0.02), WeightLoRA at 1e-2 (0.51 ± 0.01). */
function results(): RunResult[] {
  return [
    result("base", null, null, 2),
    result("lora", 1e-3, 0, 0.5),
    result("lora", 1e-2, 0, 0.6),
    result("lora", 1e-3, 1, 0.52),
    result("lora", 1e-3, 2, 0.54),
    result("randlora-k3", 1e-3, 0, 0.9),
    result("randlora-k3", 1e-2, 0, 0.7),
    result("randlora-k3", 1e-2, 1, 0.68),
    result("randlora-k3", 1e-2, 2, 0.72),
    result("weightlora-k3", 1e-3, 0, 0.8),
    result("weightlora-k3", 1e-2, 0, 0.5, { status: "ok" }),
    result("weightlora-k3", 1e-2, 1, 0.51, { parameters: { final: 130, peak: 1010 } }),
    result("weightlora-k3", 1e-2, 2, 0.52),
  ];
}

Deno.test("meanStd uses the sample standard deviation", () => {
  assert.deepEqual(meanStd([4]), { mean: 4, std: 0, n: 1 });
  const s = meanStd([0.5, 0.52, 0.54]);
  assert.ok(Math.abs(s.mean - 0.52) < 1e-12 && Math.abs(s.std - 0.02) < 1e-12);
  assert.throws(() => meanStd([]), RangeError);
});

Deno.test("aggregate picks each method's learning rate by dev loss and averages its seeds", () => {
  const rows = aggregate(config, results());
  assert.deepEqual(rows.map((r) => [r.methodId, r.lr]), [
    ["base", null],
    ["lora", 1e-3],
    ["randlora-k3", 1e-2],
    ["weightlora-k3", 1e-2],
  ]);
  const lora = rows[1];
  assert.ok(Math.abs(lora.evalLoss.mean - 0.52) < 1e-12);
  assert.equal(lora.evalLoss.n, 3);
  assert.deepEqual(lora.sweep.map((p) => p.lr), [1e-3, 1e-2]);
  assert.ok(Math.abs(lora.accuracy!.mean - 0.48) < 1e-12);
  assert.deepEqual(rows[3].sites, { "model.layers.0.mlp.up_proj": 3 });
  // the selected sites, and so the sizes, differ by seed: the mean is reported
  assert.deepEqual(rows[3].parameters, { final: 110, peak: 1010 });
});

Deno.test("aggregate leaves out a method whose runs are not all done, and counts diverged seeds", () => {
  const partial = results().filter((r) => !(r.methodId === "randlora-k3" && r.seed === 2));
  assert.ok(!aggregate(config, partial).some((r) => r.methodId === "randlora-k3"));
  const diverged = results().map((r) =>
    r.methodId === "lora" && r.seed === 2
      ? { ...r, status: "diverged" as const, evalLoss: null, devLoss: null }
      : r
  );
  const lora = aggregate(config, diverged).find((r) => r.methodId === "lora")!;
  assert.equal(lora.diverged, 1);
  assert.equal(lora.evalLoss.n, 2);
});

Deno.test("compareRows calls a difference within 2·SE a tie", () => {
  const rows = aggregate(config, results());
  const [, lora, rand, weight] = rows;
  assert.equal(compareRows(weight, rand).verdict, "better");
  assert.equal(compareRows(rand, weight).verdict, "worse");
  const tie = compareRows(weight, lora);
  assert.equal(tie.verdict, "tie");
  assert.ok(Math.abs(tie.delta - (0.51 - 0.52)) < 1e-12);
  assert.ok(Math.abs(tie.parameterRatio - 0.11) < 1e-12);
});

Deno.test("readClaims reads the three claims with their rules", () => {
  const claims = readClaims(aggregate(config, results()));
  assert.deepEqual(claims.map((c) => [c.claim, c.comparisons.length, c.held]), [[1, 1, 1], [2, 0, 0], [
    3,
    1,
    1,
  ]]);
});

Deno.test("taskTable and reportMarkdown show mean ± std, the chosen rate and the claims", () => {
  const rows: MethodRow[] = aggregate(config, results());
  const table = taskTable(rows);
  assert.match(table, /\| LoRA \(all sites\) \| 1e-3 \| 0\.5200 ± 0\.0200 \| 48\.0 ± 2\.0 \| 1,000 \|/);
  assert.match(table, /\| WeightLoRA \(K=3\) \| 1e-2 \| .* \| 110 \(peak 1,010\) \|/);
  const report = reportMarkdown(config, rows);
  assert.match(report, /\| WeightLoRA \(K=3\) \| 0\.8100 \| \*\*0\.5100\*\* \|/);
  assert.match(report, /\*\*Claim 3: learned selection beats random selection\.\*\*.*Held in 1 of 1/);
});
