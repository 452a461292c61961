/**
 * Tolerance comparison of numeric arrays for tests: `|actual − expected| <= atol + rtol·|expected|`
 * element by element (numpy's `allclose`), with a message that names the first offending element.
 *
 * @module
 */

/** Options for {@linkcode assertAllClose}. */
export interface AllCloseOptions {
  /**
   * Relative tolerance.
   * @default {1e-5}
   */
  rtol?: number;
  /**
   * Absolute tolerance.
   * @default {1e-6}
   */
  atol?: number;
  /**
   * What is compared, for the message (e.g. `output "y" on webgpu`).
   * @default {"value"}
   */
  what?: string;
}

/**
 * Asserts two arrays have the same length and agree within tolerance. NaN matches only NaN; infinities
 * must be equal.
 *
 * @param actual Values under test.
 * @param expected Reference values.
 * @param options Tolerances and a label for the message.
 * @returns The largest absolute difference seen.
 * @throws {Error} When lengths differ or an element is out of tolerance (index, both values, tolerance named).
 * @example
 * ```ts
 * import { assertAllClose } from "./assert_close.ts";
 * assertAllClose([1.000001, 2], [1, 2], { rtol: 1e-5 });
 * ```
 */
export function assertAllClose(
  actual: ArrayLike<number | bigint>,
  expected: ArrayLike<number | bigint>,
  options: AllCloseOptions = {},
): number {
  const rtol = options.rtol ?? 1e-5, atol = options.atol ?? 1e-6, what = options.what ?? "value";
  if (actual.length !== expected.length) {
    throw new Error(`${what}: ${actual.length} elements, expected ${expected.length}`);
  }
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = Number(actual[i]), e = Number(expected[i]);
    if (Number.isNaN(e) || Number.isNaN(a)) {
      if (Number.isNaN(e) && Number.isNaN(a)) continue;
      throw new Error(`${what}: element ${i} is ${a}, expected ${e}`);
    }
    if (!Number.isFinite(e) || !Number.isFinite(a)) {
      if (a === e) continue;
      throw new Error(`${what}: element ${i} is ${a}, expected ${e}`);
    }
    const diff = Math.abs(a - e);
    worst = Math.max(worst, diff);
    if (diff > atol + rtol * Math.abs(e)) {
      throw new Error(
        `${what}: element ${i} is ${a}, expected ${e} (difference ${diff.toExponential(3)} exceeds ` +
          `atol ${atol} + rtol ${rtol} × |expected|)`,
      );
    }
  }
  return worst;
}
