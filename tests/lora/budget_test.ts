import assert from "node:assert/strict";
import { selectWithinBudget } from "../../src/lora/budget.ts";

Deno.test("selectWithinBudget takes the best gate per parameter while it fits", () => {
  const gates = Float32Array.from([1, 1.2, 0.9, 1, -0.5]);
  const params = [944, 944, 384, 512, 384];
  // per parameter: 0.00106, 0.00127, 0.00234, 0.00195, < 0 → 2, 3, 1 (944 fits: 1840 ≤ 2000), then 0 does not
  assert.deepEqual(selectWithinBudget(gates, params, 2000), [1, 2, 3]);
  // a site that does not fit is skipped, a later smaller one still taken
  assert.deepEqual(selectWithinBudget(gates, params, 1000), [2, 3]);
  // never a non-positive gate, unless nothing else fits
  assert.deepEqual(selectWithinBudget(gates, params, 10_000), [0, 1, 2, 3]);
  assert.deepEqual(selectWithinBudget(Float32Array.from([-1, -0.5]), [10, 10], 10), [1]);
  // ties: the earlier site
  assert.deepEqual(selectWithinBudget(Float32Array.from([1, 1, 1]), [10, 10, 10], 20), [0, 1]);
});

Deno.test("selectWithinBudget rejects a budget below the smallest site and mismatched lengths", () => {
  assert.throws(() => selectWithinBudget(Float32Array.from([1]), [384], 100), /smallest adapter has 384/);
  assert.throws(() => selectWithinBudget(Float32Array.from([1, 2]), [384], 1000), /2 gates but 1 sizes/);
});
