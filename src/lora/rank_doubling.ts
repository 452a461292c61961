/**
 * WeightLoRA+'s function-preserving rank doubling. With Aᵀ = Q R (thin QR, Q `[in, r]`, R `[r, r]`):
 *
 *     A' = [ Qᵀ ; ((I − Q Qᵀ) N)ᵀ ]   `[2r, in]`        B' = [ B Rᵀ , 0 ]   `[out, 2r]`
 *
 * so B'A' = B Rᵀ Qᵀ = B A and the model's function (and loss) does not change; the new directions of A'
 * are orthogonal to the old ones and start with zero B columns.
 *
 * @module
 */

/** Thin QR of an `[m, n]` row-major matrix (m ≥ n) by Householder reflections, in float64. */
export function thinQr(matrix: Float64Array, m: number, n: number): { q: Float64Array; r: Float64Array } {
  if (m < n) throw new RangeError(`Cannot take a thin QR of a ${m}×${n} matrix: it needs rows ≥ columns`);
  const a = Float64Array.from(matrix);
  const vs: Float64Array[] = [];
  for (let k = 0; k < n; k++) {
    let norm = 0;
    for (let i = k; i < m; i++) norm += a[i * n + k] ** 2;
    norm = Math.sqrt(norm);
    const v = new Float64Array(m);
    if (norm === 0) {
      vs.push(v);
      continue;
    }
    const alpha = a[k * n + k] > 0 ? -norm : norm;
    for (let i = k; i < m; i++) v[i] = a[i * n + k];
    v[k] -= alpha;
    let vNorm = 0;
    for (let i = k; i < m; i++) vNorm += v[i] ** 2;
    vNorm = Math.sqrt(vNorm);
    if (vNorm > 0) { for (let i = k; i < m; i++) v[i] /= vNorm; }
    // a ← (I − 2 v vᵀ) a
    for (let j = 0; j < n; j++) {
      let dot = 0;
      for (let i = k; i < m; i++) dot += v[i] * a[i * n + j];
      for (let i = k; i < m; i++) a[i * n + j] -= 2 * v[i] * dot;
    }
    vs.push(v);
  }
  const r = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) r[i * n + j] = a[i * n + j];
  // Q = H₀ H₁ … H_{n−1} applied to the first n columns of I.
  const q = new Float64Array(m * n);
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  for (let k = n - 1; k >= 0; k--) {
    const v = vs[k];
    for (let j = 0; j < n; j++) {
      let dot = 0;
      for (let i = k; i < m; i++) dot += v[i] * q[i * n + j];
      for (let i = k; i < m; i++) q[i * n + j] -= 2 * v[i] * dot;
    }
  }
  return { q, r };
}

/** One site's LoRA factors. */
export interface LoraFactors {
  /** A, `[rank, inFeatures]` row-major. */
  a: Float32Array;
  /** B, `[outFeatures, rank]` row-major. */
  b: Float32Array;
  /** Rank r. */
  rank: number;
  /** Input width. */
  inFeatures: number;
  /** Output width. */
  outFeatures: number;
}

/**
 * Doubles a LoRA adapter's rank without changing B A.
 *
 * @param factors The current A and B.
 * @param noise Draws one element of N (e.g. Kaiming-uniform); called `inFeatures × rank` times.
 * @returns Factors of rank 2r with B'A' = BA.
 * @throws {RangeError} When 2r would exceed the input width (Q Qᵀ would leave no room).
 * @example
 * ```ts
 * import { doubleRank } from "./rank_doubling.ts";
 * const d = doubleRank({ a: Float32Array.from([1, 0, 0, 0]), b: Float32Array.from([2, 3]), rank: 1, inFeatures: 4, outFeatures: 2 }, Math.random);
 * console.assert(d.rank === 2 && d.a.length === 8 && d.b.length === 4);
 * ```
 */
export function doubleRank(factors: LoraFactors, noise: () => number): LoraFactors {
  const { rank: r, inFeatures: n, outFeatures: out } = factors;
  if (2 * r > n) {
    throw new RangeError(`Cannot double LoRA rank ${r}: the new rank ${2 * r} exceeds the input width ${n}`);
  }
  // Aᵀ [n, r] = Q R
  const aT = new Float64Array(n * r);
  for (let i = 0; i < r; i++) for (let j = 0; j < n; j++) aT[j * r + i] = factors.a[i * n + j];
  const { q, r: rMatrix } = thinQr(aT, n, r);
  // P = (I − Q Qᵀ) N, N [n, r]
  const noiseMatrix = Float64Array.from({ length: n * r }, noise);
  const qtN = new Float64Array(r * r); // Qᵀ N
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < r; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += q[k * r + i] * noiseMatrix[k * r + j];
      qtN[i * r + j] = s;
    }
  }
  const a = new Float32Array(2 * r * n);
  for (let k = 0; k < n; k++) {
    for (let i = 0; i < r; i++) {
      a[i * n + k] = q[k * r + i]; // Qᵀ
      let projected = noiseMatrix[k * r + i];
      for (let l = 0; l < r; l++) projected -= q[k * r + l] * qtN[l * r + i];
      a[(r + i) * n + k] = projected; // ((I − QQᵀ)N)ᵀ
    }
  }
  // B' = [B Rᵀ, 0]
  const b = new Float32Array(out * 2 * r);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < r; i++) {
      let s = 0;
      for (let l = 0; l < r; l++) s += factors.b[o * r + l] * rMatrix[i * r + l];
      b[o * 2 * r + i] = s;
    }
  }
  return { a, b, rank: 2 * r, inFeatures: n, outFeatures: out };
}
