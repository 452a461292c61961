import assert from "node:assert/strict";
import { lossVsParamsSvg } from "../../../bench/repro/plot.ts";
import type { MethodRow } from "../../../bench/repro/summary.ts";

function row(
  task: "qa" | "world",
  family: MethodRow["family"],
  k: number | null,
  params: number,
  loss: number,
): MethodRow {
  return {
    task,
    methodId: `${family}-${k}`,
    label: `${family} ${k}`,
    family,
    k,
    lr: 1e-3,
    sweep: [],
    evalLoss: { mean: loss, std: 0.01, n: 3 },
    accuracy: null,
    parameters: { final: params, peak: params },
    optimizerStateBytes: { final: 0, peak: 0 },
    stepMs: 1,
    tokensPerS: 1,
    sites: {},
    diverged: 0,
  };
}

Deno.test("lossVsParamsSvg draws one panel per task and one marker per method", () => {
  const rows = [
    row("qa", "base", null, 0, 3),
    row("qa", "lora", null, 23120, 0.5),
    row("qa", "weightlora", 3, 1700, 0.6),
    row("qa", "weightlora", 5, 2900, 0.55),
    row("qa", "randlora", 3, 1800, 0.7),
    row("qa", "weightlora-plus", null, 26000, 0.52),
    row("world", "lora", null, 23120, 0.4),
  ];
  const svg = lossVsParamsSvg(rows, { titles: { qa: "qa & co" } });
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg" width="660"'));
  assert.ok(svg.trimEnd().endsWith("</svg>"));
  assert.equal(svg.match(/<g transform=/g)!.length, 2);
  // two WeightLoRA circles plus the legend's
  assert.equal(svg.match(/<circle /g)!.length, 3);
  // LoRA squares in both panels plus the legend's (the white background is the other rect)
  assert.equal(svg.match(/<rect x="[\d.]+" y="[\d.]+" width="10"/g)!.length, 3);
  assert.ok(svg.includes("qa &amp; co"));
  assert.ok(svg.includes(">K=5<"));
  // the base row is not plotted: every y coordinate stays inside the panels
  assert.ok(!svg.includes("NaN"));
});

Deno.test("lossVsParamsSvg draws an empty frame when nothing is trained", () => {
  const svg = lossVsParamsSvg([row("qa", "base", null, 0, 3)]);
  assert.ok(!svg.includes('<circle cx="NaN'));
  assert.equal(svg.match(/<g transform=/g)!.length, 1);
});
