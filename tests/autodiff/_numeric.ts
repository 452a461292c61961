// Deterministic random numbers and tolerance assertions shared by the autodiff tests.

import assert from "node:assert/strict";

/** Deterministic uniform numbers in [-1, 1) (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

/** Asserts |actual − expected| ≤ atol + rtol·|expected| elementwise, naming the first offender. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: { atol: number; rtol: number },
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    if (!(diff <= tolerance.atol + tolerance.rtol * Math.abs(expected[i]))) {
      assert.fail(
        `${what}[${i}]: got ${actual[i]}, expected ${expected[i]} (|diff| ${diff.toExponential(2)})`,
      );
    }
  }
}
