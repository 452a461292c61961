/**
 * The hard-threshold projection H_K of WeightLoRA: keep the K largest gates by signed value, set the rest
 * to 0. Ties are broken deterministically by site order (the earlier site wins).
 *
 * @module
 */

/**
 * Projects gates onto {w : ‖w‖₀ ≤ K}.
 *
 * @param gates Gate values, one per site.
 * @param k How many to keep (1 ≤ K ≤ n).
 * @returns A new array with exactly K entries kept (those may themselves be 0) and the rest 0, and the
 *   kept indices in ascending order.
 * @throws {RangeError} When K is outside 1..n.
 * @example
 * ```ts
 * import { projectTopK } from "./top_k.ts";
 * const { gates, kept } = projectTopK(Float32Array.from([0.5, 2, -1, 2]), 2);
 * console.assert(kept.join() === "1,3" && gates[0] === 0);
 * ```
 */
export function projectTopK(gates: Float32Array, k: number): { gates: Float32Array; kept: number[] } {
  const n = gates.length;
  if (!Number.isInteger(k) || k < 1 || k > n) {
    throw new RangeError(`Cannot keep K = ${k} gates: K must be an integer in 1..${n}`);
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => gates[j] - gates[i] || i - j);
  const kept = order.slice(0, k).sort((i, j) => i - j);
  const out = new Float32Array(n);
  for (const i of kept) out[i] = gates[i];
  return { gates: out, kept };
}
