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
