import assert from "node:assert/strict";
import { ropeInverseFrequencies } from "../../src/models/rope.ts";

Deno.test("RoPE inverse frequencies: 1 / theta^(2i/d)", () => {
  const f = ropeInverseFrequencies({ headDim: 8, ropeTheta: 10000 });
  assert.deepEqual([...f], [1, 0.1, 0.01, 0.001].map(Math.fround));
});

Deno.test("linear RoPE scaling divides every frequency by the factor", () => {
  const f = ropeInverseFrequencies({
    headDim: 4,
    ropeTheta: 10000,
    ropeScaling: { type: "linear", factor: 4 },
  });
  assert.deepEqual([...f], [0.25, Math.fround(0.01) / 4].map(Math.fround));
});

Deno.test("llama3 RoPE scaling: long wavelengths divided, short kept, the band between interpolated", () => {
  // Llama 3.1's settings on a small head: theta 500000, factor 8, low 1, high 4, original context 8192
  const config = {
    headDim: 16,
    ropeTheta: 500000,
    ropeScaling: {
      type: "llama3" as const,
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    },
  };
  const scaled = ropeInverseFrequencies(config);
  const plain = ropeInverseFrequencies({ headDim: 16, ropeTheta: 500000 });
  for (let i = 0; i < 8; i++) {
    const wavelen = (2 * Math.PI) / plain[i];
    let expected: number;
    if (wavelen < 8192 / 4) expected = plain[i]; // high frequency: kept
    else if (wavelen > 8192 / 1) expected = plain[i] / 8; // low frequency: divided
    else {
      const smooth = (8192 / wavelen - 1) / (4 - 1);
      expected = (1 - smooth) * (plain[i] / 8) + smooth * plain[i];
    }
    assert.ok(Math.abs(scaled[i] - expected) <= 1e-7 * expected, `i=${i}: ${scaled[i]} vs ${expected}`);
  }
  // this head dim exercises all three regimes
  const kinds = [...plain].map((f) => {
    const w = (2 * Math.PI) / f;
    return w < 2048 ? "high" : w > 8192 ? "low" : "mid";
  });
  assert.ok(kinds.includes("high") && kinds.includes("mid") && kinds.includes("low"), kinds.join());
});

Deno.test("invalid RoPE settings fail with the value", () => {
  assert.throws(
    () => ropeInverseFrequencies({ headDim: 7, ropeTheta: 10000 }),
    /head_dim must be a positive even number, got 7/,
  );
  assert.throws(
    () =>
      ropeInverseFrequencies({ headDim: 8, ropeTheta: 10000, ropeScaling: { type: "linear", factor: 0 } }),
    /rope_scaling\.factor must be > 0, got 0/,
  );
});
