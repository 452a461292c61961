/**
 * The bounds of WeightLoRA's gates under the authors' schedule. After the top-K projection, the kept gates are
 * projected onto {w ≥ 0, Σw ≤ K} — no gate negative, on average at most 1. The authors' set, {w : ‖w‖₀ ≤ K},
 * bounds nothing: trained for a whole run by SGD at lr 5, the kept gates grew to 10–31 on stories260K and scaled
 * every later A/B step by as much, and the loss diverged. Folding the gates' scale into B instead (mean 1, the
 * function unchanged) made it worse: the gate gradient grows with B, so each fold sped up the next growth.
 *
 * And each gate's SGD step is capped ({@linkcode capGateStep}): the gate gradient, (α/r)·⟨∇W L, B·A⟩, grows with
 * the adapter, so a fixed gate learning rate that is stable early overshoots later — on stories260K a kept gate
 * fell from 1.9 to −1.5 in one step at lr 5, left the kept set, and came back at 4.9 the next step; the kept
 * set changed dozens of times per run and the training loss jumped with it.
 *
 * @module
 */

/**
 * Euclidean projection of the kept gates onto {w ≥ 0, Σw ≤ K} (K: how many are kept); the others are left as
 * they are (0 after a projection). Below the cap this only clips negative gates to 0; above it every kept gate
 * drops by the same τ (and those below τ to 0), so the gates compete for a fixed total.
 *
 * @param gates Gate values, one per site.
 * @param kept Indices of the kept sites.
 * @returns A new array with the kept gates bounded.
 * @example
 * ```ts
 * import { boundGates } from "./gate_bound.ts";
 * // K = 2, total 6: both drop by τ = 2
 * console.assert(boundGates(Float32Array.from([5, 0, 1.5]), [0, 2]).join() === "2,0,0");
 * console.assert(boundGates(Float32Array.from([0.5, -1]), [0, 1]).join() === "0.5,0");
 * ```
 */
export function boundGates(gates: Float32Array, kept: readonly number[]): Float32Array {
  const out = Float32Array.from(gates);
  const values = kept.map((i) => Math.max(0, gates[i]));
  const cap = kept.length;
  const sum = values.reduce((s, v) => s + v, 0);
  let tau = 0;
  if (sum > cap) {
    // the simplex projection: the largest τ with Σ max(0, v − τ) = cap (sorted descending, prefix sums)
    const sorted = [...values].sort((a, b) => b - a);
    let prefix = 0;
    for (let j = 0; j < sorted.length; j++) {
      prefix += sorted[j];
      const t = (prefix - cap) / (j + 1);
      if (j === sorted.length - 1 || sorted[j + 1] <= t) {
        tau = t;
        break;
      }
    }
  }
  kept.forEach((i, j) => (out[i] = Math.max(0, values[j] - tau)));
  return out;
}

/**
 * A soft cap on a gate's SGD step: Δ / (1 + |Δ| / cap). About Δ while |Δ| ≪ cap, below cap however large, and
 * strictly increasing in Δ, so gates that a plain step would order keep that order (a hard clip would tie every
 * large step at ±cap and leave the top-K projection to break the ties by site order).
 *
 * @param step The SGD step, −lr·∂L/∂g.
 * @param cap The most a gate may move (0: no cap).
 * @returns The step taken.
 * @throws {RangeError} When the cap is negative or not finite.
 * @example
 * ```ts
 * import { capGateStep } from "./gate_bound.ts";
 * console.assert(capGateStep(-3.4, 0.05) > -0.05 && capGateStep(0.001, 0.05) > 0.00098);
 * console.assert(capGateStep(-3.4, 0) === -3.4);
 * ```
 */
export function capGateStep(step: number, cap: number): number {
  if (!(cap >= 0) || !Number.isFinite(cap)) {
    throw new RangeError(`Cannot cap a gate step at ${cap}: expected a number ≥ 0 (0: no cap)`);
  }
  return cap === 0 ? step : step / (1 + Math.abs(step) / cap);
}
