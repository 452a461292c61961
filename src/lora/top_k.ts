/**
 * The hard-threshold projection H_K of WeightLoRA: keep the K largest gates by signed value, set the rest
 * to 0. Ties are broken deterministically by site order (the earlier site wins).
 *
 * With a previous kept set and a swap margin the projection has hysteresis: a site outside the kept set
 * replaces a kept one only when its gate beats the weakest kept gate by the margin (relative to the kept
 * gates' mean size). Under the authors' schedule (`--select-steps all`) a gated-off site's gate is reset to 0
 * by every projection, so one SGD step from 0 is all it ever shows; without a margin it enters whenever a kept
 * gate is pushed just under that step, and the kept set churns.
 *
 * @module
 */

/** Options for {@linkcode projectTopK}. */
export interface ProjectTopKOptions {
  /** The kept set of the previous projection (indices); none: a plain top K. */
  previous?: readonly number[];
  /**
   * How much a gate outside `previous` must beat the weakest kept gate by to replace it, as a fraction of the
   * mean |gate| of the previous kept sites (0: a plain top K, whatever `previous`).
   * @default {0}
   */
  margin?: number;
}

/**
 * Projects gates onto {w : ‖w‖₀ ≤ K}.
 *
 * @param gates Gate values, one per site.
 * @param k How many to keep (1 ≤ K ≤ n).
 * @param options A previous kept set and a swap margin (hysteresis).
 * @returns A new array with exactly K entries kept (those may themselves be 0) and the rest 0, and the
 *   kept indices in ascending order.
 * @throws {RangeError} When K is outside 1..n, or the margin is negative or not finite.
 * @example
 * ```ts
 * import { projectTopK } from "./top_k.ts";
 * const { gates, kept } = projectTopK(Float32Array.from([0.5, 2, -1, 2]), 2);
 * console.assert(kept.join() === "1,3" && gates[0] === 0);
 * // site 0 (0.55) does not beat the weakest kept gate (0.5) by 10 % of the kept mean (1.25)
 * const sticky = projectTopK(Float32Array.from([0.55, 2, 0.5]), 2, { previous: [1, 2], margin: 0.1 });
 * console.assert(sticky.kept.join() === "1,2");
 * ```
 */
export function projectTopK(
  gates: Float32Array,
  k: number,
  options: ProjectTopKOptions = {},
): { gates: Float32Array; kept: number[] } {
  const n = gates.length;
  if (!Number.isInteger(k) || k < 1 || k > n) {
    throw new RangeError(`Cannot keep K = ${k} gates: K must be an integer in 1..${n}`);
  }
  const margin = options.margin ?? 0;
  if (!Number.isFinite(margin) || margin < 0) {
    throw new RangeError(`Cannot project gates with swap margin ${margin}: expected a number ≥ 0`);
  }
  const previous = options.previous;
  const sticky = margin > 0 && previous !== undefined && previous.length === k &&
    new Set(previous).size === k && previous.every((i) => Number.isInteger(i) && i >= 0 && i < n);
  const kept = sticky ? swapWithMargin(gates, previous, margin) : topK(gates, k);
  const out = new Float32Array(n);
  for (const i of kept) out[i] = gates[i];
  return { gates: out, kept };
}

/** The K largest gates, ties to the earlier site, ascending. */
function topK(gates: Float32Array, k: number): number[] {
  const order = Array.from({ length: gates.length }, (_, i) => i).sort((i, j) =>
    gates[j] - gates[i] || i - j
  );
  return order.slice(0, k).sort((i, j) => i - j);
}

/**
 * Starts from the previous kept set and swaps the strongest outsider for the weakest insider while the
 * outsider's gate exceeds the insider's by `margin` × the previous kept gates' mean |gate|. Outsiders are
 * tried strongest first (ties: earlier site), the weakest insider is the smallest gate (ties: later site).
 */
function swapWithMargin(gates: Float32Array, previous: readonly number[], margin: number): number[] {
  const scale = previous.reduce((s, i) => s + Math.abs(gates[i]), 0) / previous.length;
  const threshold = margin * scale;
  const inside = new Set(previous);
  const outsiders = Array.from({ length: gates.length }, (_, i) => i)
    .filter((i) => !inside.has(i))
    .sort((i, j) => gates[j] - gates[i] || i - j);
  for (const o of outsiders) {
    let weakest = -1;
    for (const i of inside) {
      if (weakest < 0 || gates[i] < gates[weakest] || (gates[i] === gates[weakest] && i > weakest)) {
        weakest = i;
      }
    }
    if (!(gates[o] - gates[weakest] > threshold)) break;
    inside.delete(weakest);
    inside.add(o);
  }
  return [...inside].sort((i, j) => i - j);
}
