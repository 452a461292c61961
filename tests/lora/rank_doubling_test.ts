// Rank doubling keeps B·A exactly (up to float32 rounding) and gives A' orthonormal old directions.

import assert from "node:assert/strict";
import { doubleRank, thinQr } from "../../src/lora/rank_doubling.ts";
import { seededRandom } from "../autodiff/_numeric.ts";

function product(b: Float32Array, a: Float32Array, out: number, r: number, n: number): Float64Array {
  const p = new Float64Array(out * n);
  for (let o = 0; o < out; o++) {
    for (let j = 0; j < n; j++) for (let k = 0; k < r; k++) p[o * n + j] += b[o * r + k] * a[k * n + j];
  }
  return p;
}

Deno.test("thin QR reproduces the matrix with orthonormal Q", () => {
  const rand = seededRandom(2);
  const m = 7, n = 3;
  const x = Float64Array.from({ length: m * n }, rand);
  const { q, r } = thinQr(x, m, n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += q[i * n + k] * r[k * n + j];
      assert.ok(Math.abs(s - x[i * n + j]) < 1e-12);
    }
  }
  for (let a = 0; a < n; a++) {
    for (let c = 0; c < n; c++) {
      let s = 0;
      for (let i = 0; i < m; i++) s += q[i * n + a] * q[i * n + c];
      assert.ok(Math.abs(s - (a === c ? 1 : 0)) < 1e-12);
    }
  }
});

Deno.test("doubling the rank preserves B·A and adds directions orthogonal to the old ones", () => {
  const rand = seededRandom(9);
  const r = 3, n = 10, out = 6;
  const factors = {
    a: Float32Array.from({ length: r * n }, rand),
    b: Float32Array.from({ length: out * r }, rand),
    rank: r,
    inFeatures: n,
    outFeatures: out,
  };
  const grown = doubleRank(factors, rand);
  assert.equal(grown.rank, 2 * r);
  const before = product(factors.b, factors.a, out, r, n);
  const after = product(grown.b, grown.a, out, 2 * r, n);
  for (let i = 0; i < before.length; i++) assert.ok(Math.abs(before[i] - after[i]) < 1e-5, `element ${i}`);
  // new rows of A' are orthogonal to the old row space; new columns of B' are zero
  for (let i = r; i < 2 * r; i++) {
    for (let k = 0; k < r; k++) {
      let dot = 0;
      for (let j = 0; j < n; j++) dot += grown.a[i * n + j] * grown.a[k * n + j];
      assert.ok(Math.abs(dot) < 1e-5);
    }
  }
  for (let o = 0; o < out; o++) for (let i = r; i < 2 * r; i++) assert.equal(grown.b[o * 2 * r + i], 0);
});

Deno.test("doubling past the input width is refused", () => {
  assert.throws(
    () =>
      doubleRank({
        a: new Float32Array(3 * 4),
        b: new Float32Array(3 * 2),
        rank: 3,
        inFeatures: 4,
        outFeatures: 2,
      }, Math.random),
    /new rank 6 exceeds the input width 4/,
  );
});
