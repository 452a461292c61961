/**
 * The parameter-budget projection of budgeted WeightLoRA: instead of a count K, keep the sites whose gate per
 * adapter parameter is highest while their adapters fit in a budget of trainable parameters (the greedy rule
 * for a knapsack: what an operator pays for is parameters, not sites).
 *
 * @module
 */

/**
 * Chooses the sites to keep under a parameter budget: sites in decreasing order of gate / parameters (ties:
 * the earlier site), each taken when its gate is positive and it still fits. When no positive gate fits, the
 * site with the largest gate among those that fit is kept, so a selection always keeps at least one site.
 *
 * @param gates Gate values, one per site.
 * @param parameters Each site's adapter parameter count (r · (in + out)).
 * @param budget The most trainable parameters the kept adapters may total.
 * @returns The kept indices, ascending.
 * @throws {RangeError} When the lengths differ, or no site fits in the budget.
 * @example
 * ```ts
 * import { selectWithinBudget } from "./budget.ts";
 * // site 1 has the best gate per parameter; site 0 does not fit beside it
 * console.assert(selectWithinBudget(Float32Array.from([1, 1, 0.5]), [100, 10, 10], 30).join() === "1,2");
 * ```
 */
export function selectWithinBudget(
  gates: Float32Array,
  parameters: readonly number[],
  budget: number,
): number[] {
  if (gates.length !== parameters.length) {
    throw new RangeError(
      `Cannot select within a budget: ${gates.length} gates but ${parameters.length} sizes`,
    );
  }
  const smallest = Math.min(...parameters);
  if (!(budget >= smallest)) {
    throw new RangeError(
      `Cannot select within a budget of ${budget} parameters: the smallest adapter has ${smallest}`,
    );
  }
  const order = Array.from({ length: gates.length }, (_, i) => i).sort((i, j) =>
    gates[j] / parameters[j] - gates[i] / parameters[i] || i - j
  );
  const kept: number[] = [];
  let used = 0;
  for (const i of order) {
    if (gates[i] > 0 && used + parameters[i] <= budget) {
      kept.push(i);
      used += parameters[i];
    }
  }
  if (kept.length === 0) {
    let best = -1;
    for (let i = 0; i < gates.length; i++) {
      if (parameters[i] <= budget && (best < 0 || gates[i] > gates[best])) best = i;
    }
    kept.push(best);
  }
  return kept.sort((i, j) => i - j);
}
