import assert from "node:assert/strict";
import { CURVE_SMOKE_CONFIG, type CurveConfig } from "../../../bench/repro/curve_plan.ts";
import type { CurveRunResult } from "../../../bench/repro/curve_run.ts";
import { curveLossSvg, sitesHeatmapSvg } from "../../../bench/repro/curve_plot.ts";
import {
  aggregateCurve,
  claimsTable,
  curveReportMarkdown,
  fillMarkedSections,
  isMlpSite,
  jaccard,
  meanPairwiseJaccard,
  otherRatesTable,
  readCurveClaims,
  sitesTable,
} from "../../../bench/repro/curve_summary.ts";

const config: CurveConfig = {
  ...CURVE_SMOKE_CONFIG,
  tasks: ["qa"],
  methods: ["lora", "wl-k3", "random-k3"],
  budgets: [8, 16],
  seeds: [0, 1, 2],
};
const grids = { qa: { lora: [1e-3, 1e-2], "wl-k3": [1e-3, 1e-2], "random-k3": [1e-3, 1e-2] } };
const Q = (l: number) => `model.layers.${l}.self_attn.q_proj`;
const UP = (l: number) => `model.layers.${l}.mlp.up_proj`;

function run(
  methodId: string,
  lr: number,
  seed: number,
  losses: [number, number] | [number],
  sites: string[] = [],
): CurveRunResult {
  return {
    key: `qa/${methodId}/${lr}-${seed}`,
    task: "qa",
    methodId,
    lr,
    seed,
    status: losses.length === 2 ? "ok" : "diverged",
    budgets: losses.map((loss, i) => ({
      step: config.budgets[i],
      devLoss: loss + 0.01,
      evalLoss: loss,
      accuracy: 0.5,
      parameters: sites.length ? 100 * sites.length : 1000,
      sites,
    })),
    peakParameters: 1000,
    kRequested: null,
    kKept: null,
    stepMs: 10,
    wallS: 1,
    seqLen: 40,
  };
}

function results(): CurveRunResult[] {
  const wlSites = [[Q(0), UP(1), UP(2)], [Q(0), UP(1), UP(2)], [Q(0), UP(1), UP(3)]];
  return [
    {
      ...run("base", 0, 0, [2, 2]),
      lr: null,
      seed: null,
      budgets: [{ ...run("base", 0, 0, [2]).budgets[0], step: 0 }],
    },
    // LoRA: 1e-2 wins at 8 steps, 1e-3 at 16 (seed 0's dev loss)
    run("lora", 1e-3, 0, [0.9, 0.5]),
    run("lora", 1e-2, 0, [0.7, 0.6]),
    ...[1, 2].flatMap((s) => [run("lora", 1e-3, s, [0.9, 0.5 + s / 100]), run("lora", 1e-2, s, [0.7, 0.6])]),
    // WeightLoRA: 1e-2 at both budgets; seed 2 diverged before 16
    run("wl-k3", 1e-3, 0, [1.5, 1.4], wlSites[0]),
    run("wl-k3", 1e-2, 0, [0.9, 0.8], wlSites[0]),
    run("wl-k3", 1e-2, 1, [0.91, 0.81], wlSites[1]),
    run("wl-k3", 1e-2, 2, [0.92], wlSites[2]),
    run("random-k3", 1e-3, 0, [1.2, 1.1], [Q(1), Q(2), Q(3)]),
    run("random-k3", 1e-2, 0, [1.0, 0.95], [Q(1), Q(2), Q(3)]),
    run("random-k3", 1e-2, 1, [1.01, 0.96], [Q(1), Q(2), UP(3)]),
    run("random-k3", 1e-2, 2, [1.02, 0.97], [Q(4), Q(2), Q(3)]),
  ];
}

Deno.test("jaccard, meanPairwiseJaccard and isMlpSite", () => {
  assert.equal(jaccard([], []), 1);
  assert.equal(jaccard(["a"], ["b"]), 0);
  assert.equal(meanPairwiseJaccard([["a", "b"], ["a", "b"], ["a", "c"]]), (1 + 1 / 3 + 1 / 3) / 3);
  assert.equal(meanPairwiseJaccard([["a"]]), null);
  assert.deepEqual(
    ["gate", "up", "down", "q", "o"].map((m) =>
      isMlpSite(`model.layers.0.${m === "q" || m === "o" ? "self_attn" : "mlp"}.${m}_proj`)
    ),
    [true, true, true, false, false],
  );
});

Deno.test("aggregateCurve chooses the rate per budget and reports seeds, stability and divergence", () => {
  const rows = aggregateCurve(config, grids, results());
  const at = (id: string, budget: number) => rows.find((r) => r.methodId === id && r.budget === budget)!;
  assert.equal(rows[0].methodId, "base");
  assert.equal(at("lora", 8).lr, 1e-2);
  assert.equal(at("lora", 16).lr, 1e-3);
  assert.equal(at("lora", 16).evalLoss.n, 3);
  assert.ok(Math.abs(at("lora", 16).evalLoss.mean - 0.51) < 1e-12);
  assert.equal(at("lora", 16).jaccard, null);
  const wl16 = at("wl-k3", 16);
  assert.equal(wl16.evalLoss.n, 2);
  assert.equal(wl16.diverged, 1);
  assert.equal(wl16.jaccard, 1);
  assert.equal(at("wl-k3", 8).jaccard, (1 + 0.5 + 0.5) / 3);
  assert.equal(at("wl-k3", 8).mlpShare, 6 / 9);
  assert.equal(at("random-k3", 8).mlpShare, 1 / 9);
  // a method whose seeds are missing is left out
  const partial = aggregateCurve(
    config,
    grids,
    results().filter((r) => !(r.methodId === "random-k3" && r.seed === 2)),
  );
  assert.equal(partial.some((r) => r.methodId === "random-k3"), false);
});

Deno.test("readCurveClaims compares at every budget; the claims table counts tasks where a claim held", () => {
  const rows = aggregateCurve(config, grids, results());
  const claims = readCurveClaims(rows);
  const lora = claims.find((c) => c.id === "lora")!;
  assert.deepEqual(lora.comparisons.map((c) => [c.budget, c.verdict]), [[8, "worse"], [16, "worse"]]);
  const random = claims.find((c) => c.id === "random")!;
  assert.deepEqual(random.comparisons.map((c) => [c.budget, c.verdict]), [[8, "better"], [16, "better"]]);
  const table = claimsTable(claims, ["qa"], config.budgets);
  assert.match(table, /\| lora \| WeightLoRA \(K=3, freeze after 2\) \| 0\/1 \(−\) \| 0\/1 \(−\) \|/);
  assert.match(table, /\| random \| WeightLoRA \(K=3, freeze after 2\) \| 1\/1 \(\+\) \| 1\/1 \(\+\) \|/);
  const md = curveReportMarkdown(config, rows, { randomMlpShare: 15 / 35 });
  assert.match(md, /### Task `qa`/);
  assert.match(md, /\*\*1e-3: 0\.5100\*\*/);
  assert.match(md, /uniform random choice keeps 43% MLP sites/);
});

Deno.test("curve plots draw one panel per task and budget, and one heatmap column per method and seed", () => {
  const rows = aggregateCurve(config, grids, results());
  const svg = curveLossSvg(rows, { budgets: config.budgets });
  assert.ok(svg.startsWith("<svg"));
  assert.equal((svg.match(/font-weight="bold"/g) ?? []).length, 2);
  const sites = [Q(0), Q(1), Q(2), Q(3), Q(4), UP(1), UP(2), UP(3)].map((name) => ({
    name,
    label: name,
    parameters: 1,
  }));
  const heat = sitesHeatmapSvg(rows, { budget: 8, sites });
  // two methods with sites × three seeds × eight sites, of which 3 + 3 per seed are kept
  assert.equal((heat.match(/<rect x=/g) ?? []).length, 2 * 3 * 8);
  assert.equal((heat.match(/fill="#1f6fd1"/g) ?? []).length, 2 * 3 * 3);
});

Deno.test("sitesTable counts adapter parameters per module as r · (in + out)", () => {
  const sites = [0, 1].flatMap(() => [
    { module: "q_proj", inFeatures: 64, outFeatures: 64 },
    { module: "k_proj", inFeatures: 64, outFeatures: 32 },
    { module: "up_proj", inFeatures: 64, outFeatures: 172 },
  ]);
  const table = sitesTable(sites, 4);
  assert.match(table, /\| q_proj \| 64 → 64 \| 512 \| 2 \| 1,024 \|/);
  assert.match(table, /\| k_proj \| 64 → 32 \| 384 \| 2 \| 768 \|/);
  assert.match(table, /\| up_proj \| 64 → 172 \| 944 \| 2 \| 1,888 \|/);
  assert.match(table, /\| all \| \| \| 6 \| 3,680 \|/);
});

Deno.test("fillMarkedSections replaces marked regions only and names the ones without a table", () => {
  const doc = [
    "# Title",
    "<!-- repro-curve:claims -->",
    "old table",
    "<!-- /repro-curve:claims -->",
    "prose stays",
    "<!-- repro-curve:nothing -->",
    "kept",
    "<!-- /repro-curve:nothing -->",
  ].join("\n");
  const { text, missing } = fillMarkedSections(doc, { claims: "| new |" });
  assert.equal(
    text,
    [
      "# Title",
      "<!-- repro-curve:claims -->",
      "",
      "| new |",
      "",
      "<!-- /repro-curve:claims -->",
      "prose stays",
      "<!-- repro-curve:nothing -->",
      "kept",
      "<!-- /repro-curve:nothing -->",
    ].join("\n"),
  );
  assert.deepEqual(missing, ["nothing"]);
  // filling twice gives the same document
  assert.equal(fillMarkedSections(text, { claims: "| new |" }).text, text);
});

Deno.test("otherRatesTable averages off-plan runs per task, method and rate", () => {
  assert.equal(otherRatesTable([], [8, 16]), "");
  const table = otherRatesTable([run("lora", 3e-3, 0, [0.5, 0.3]), run("lora", 3e-3, 1, [0.7])], [8, 16]);
  assert.match(table, /\| qa \| lora \| 3e-3 \| 2 \| 0\.6000 ± 0\.1414 \| 0\.3000 \|/);
});
