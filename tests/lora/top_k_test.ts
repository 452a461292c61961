import assert from "node:assert/strict";
import { projectTopK } from "../../src/lora/top_k.ts";

Deno.test("top-K keeps exactly K gates by signed value and zeroes the rest", () => {
  const { gates, kept } = projectTopK(Float32Array.from([0.1, -3, 2, 0.5, 1.5]), 3);
  assert.deepEqual(kept, [2, 3, 4]);
  assert.deepEqual([...gates], [0, 0, 2, 0.5, 1.5]);
});

Deno.test("ties are broken by site order, the same way every time", () => {
  const input = Float32Array.from([1, 1, 1, 1, 1]);
  for (let i = 0; i < 3; i++) assert.deepEqual(projectTopK(input, 2).kept, [0, 1]);
  // K counts entries even when kept values are themselves 0
  assert.deepEqual(projectTopK(Float32Array.from([0, 0, -1]), 2).kept, [0, 1]);
});

Deno.test("K outside 1..n is refused", () => {
  assert.throws(() => projectTopK(new Float32Array(4), 0), /K must be an integer in 1\.\.4/);
  assert.throws(() => projectTopK(new Float32Array(4), 5), /K = 5/);
  assert.throws(() => projectTopK(new Float32Array(4), 1.5), /K = 1.5/);
});

Deno.test("with a swap margin, a gated-off site replaces a kept one only when it beats it by the margin", () => {
  // the kept set was {0, 1, 2}; site 3 (0.12) is one SGD step from 0 and edges past the squeezed site 2 (0.1)
  const gates = Float32Array.from([1.6, 1.3, 0.1, 0.12, 0.05]);
  const previous = [0, 1, 2];
  assert.deepEqual(projectTopK(gates, 3).kept, [0, 1, 3], "without the margin the set churns");
  assert.deepEqual(
    projectTopK(gates, 3, { previous, margin: 0 }).kept,
    [0, 1, 3],
    "margin 0 is a plain top K",
  );
  // the margin is relative to the kept gates' mean |gate|: 0.1 × 1.0 = 0.1; 0.12 − 0.1 is below it
  const sticky = projectTopK(gates, 3, { previous, margin: 0.1 });
  assert.deepEqual(sticky.kept, [0, 1, 2]);
  assert.deepEqual([...sticky.gates], [1.6, 1.3, 0.1, 0, 0].map(Math.fround));
  // beaten by more than the margin, the weakest kept site does leave
  const clear = Float32Array.from([1.6, 1.3, 0.1, 0.25, 0.05]);
  assert.deepEqual(projectTopK(clear, 3, { previous, margin: 0.1 }).kept, [0, 1, 3]);
});

Deno.test("swaps with a margin go strongest outsider for weakest insider, ties by site order", () => {
  // two outsiders beat two weak insiders by the margin; a third does not beat what is left
  const gates = Float32Array.from([0, 0.9, 0, 2, 0.8, 0.7, 0.3]);
  // mean |gate| of {0, 2, 3} = 2/3; margin 0.3 → 0.2: 0.9 replaces site 2 (the later of the two zeros), 0.8
  // replaces site 0, and 0.7 does not beat the weakest kept gate left (0.8)
  assert.deepEqual(projectTopK(gates, 3, { previous: [0, 2, 3], margin: 0.3 }).kept, [1, 3, 4]);
  // equal weakest insiders: the later site leaves first (the earlier wins, as in a plain top K)
  const ties = Float32Array.from([0.5, 0.5, 2, 1]);
  assert.deepEqual(projectTopK(ties, 3, { previous: [0, 1, 2], margin: 0.1 }).kept, [0, 2, 3]);
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(projectTopK(ties, 3, { previous: [2, 1, 0], margin: 0.1 }).kept, [0, 2, 3]);
  }
});

Deno.test("a previous set of another size is ignored; a negative margin is refused", () => {
  const gates = Float32Array.from([0.1, 0.2, 0.3]);
  // WeightLoRA+ halves K: the previous set has 2 sites, K is 1 — a plain top K
  assert.deepEqual(projectTopK(gates, 1, { previous: [0, 1], margin: 0.5 }).kept, [2]);
  assert.throws(() => projectTopK(gates, 1, { margin: -0.1 }), /swap margin -0.1: expected a number ≥ 0/);
  assert.throws(() => projectTopK(gates, 1, { margin: NaN }), /swap margin NaN/);
});
