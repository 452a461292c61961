// The gates' bounds under the authors' schedule: the projection onto {w ≥ 0, Σw ≤ K} over the kept sites, and
// the soft cap on each gate's step.

import assert from "node:assert/strict";
import { boundGates, capGateStep } from "../../src/lora/gate_bound.ts";
import { projectTopK } from "../../src/lora/top_k.ts";

const close = (a: ArrayLike<number>, b: number[]) =>
  assert.ok(Array.from(a).every((x, i) => Math.abs(x - b[i]) < 1e-6), `${Array.from(a)} vs ${b}`);

Deno.test("gates within the bound are kept; negative ones become 0", () => {
  close(boundGates(Float32Array.from([1, 0, 0.5, -0.2]), [0, 2, 3]), [1, 0, 0.5, 0]);
});

Deno.test("kept gates over a total of K drop by one τ to sum to K; sites outside the kept set are untouched", () => {
  // K = 3: 10, 4, 1 → τ = 7, Σ max(0, v − τ) = 3 with only the first gate left
  close(boundGates(Float32Array.from([10, 4, 1, 0]), [0, 1, 2]), [3, 0, 0, 0]);
  // two stay positive: 3, 2.5, 0.1 with K = 3 → τ = 1.25: 1.75, 1.25, 0
  const g = boundGates(Float32Array.from([3, 2.5, 0.1, 7]), [0, 1, 2]);
  close(g, [1.75, 1.25, 0, 7]);
  assert.ok(Math.abs(g[0] + g[1] + g[2] - 3) < 1e-6);
});

Deno.test("the projection is the nearest point of the set (checked against a grid)", () => {
  const v = [2.2, 1.7, 0.4];
  const p = Array.from(boundGates(Float32Array.from(v), [0, 1, 2]));
  const d = (w: number[]) => w.reduce((s, x, i) => s + (x - v[i]) ** 2, 0);
  let best = Infinity;
  const step = 0.05;
  for (let a = 0; a <= 3; a += step) {
    for (let b = 0; a + b <= 3 + 1e-9; b += step) {
      for (let c = 0; a + b + c <= 3 + 1e-9; c += step) best = Math.min(best, d([a, b, c]));
    }
  }
  assert.ok(d(p) <= best + 1e-9, `projection ${p} at ${d(p)}, grid best ${best}`);
  assert.ok(p.every((x) => x >= 0) && p.reduce((s, x) => s + x, 0) <= 3 + 1e-6);
});

Deno.test("a capped gate step is about the step while small, under the cap however large, in the same order", () => {
  assert.equal(capGateStep(-3.4, 0), -3.4, "0 is no cap");
  assert.ok(Math.abs(capGateStep(1e-4, 0.05) - 1e-4) < 1e-6);
  const steps = [-100, -3.4, -0.5, -0.05, 0, 0.01, 0.2, 7, 1e6];
  const capped = steps.map((s) => capGateStep(s, 0.05));
  assert.ok(capped.every((c) => Math.abs(c) < 0.05), `${capped}`);
  for (let i = 1; i < capped.length; i++) assert.ok(capped[i] > capped[i - 1], `order at ${steps[i]}`);
  assert.equal(capGateStep(0, 0.05), 0);
  // odd: a fall is capped as a rise is
  assert.equal(capGateStep(-0.3, 0.05), -capGateStep(0.3, 0.05));
  assert.throws(() => capGateStep(1, -0.1), /Cannot cap a gate step at -0\.1: expected a number ≥ 0/);
  assert.throws(() => capGateStep(1, NaN), /at NaN/);
});

Deno.test("capped, a kept gate that overshoots through 0 stays kept; uncapped it leaves the kept set", () => {
  // measured on stories260K at gate lr 5: a kept gate at 1.9 took a step of −3.4; the gated-off sites' steps
  // from 0 were about +0.1
  const before = [1.9, 1.2, 0.8, 0, 0];
  const steps = [-3.4, 0.02, -0.01, 0.11, 0.09];
  const after = (cap: number) => Float32Array.from(before, (g, i) => g + capGateStep(steps[i], cap));
  assert.deepEqual(projectTopK(after(0), 3).kept, [1, 2, 3], "uncapped: site 0 leaves, site 3 enters");
  assert.deepEqual(projectTopK(after(0.05), 3).kept, [0, 1, 2], "capped: the kept set holds");
});
