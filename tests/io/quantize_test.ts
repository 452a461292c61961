import assert from "node:assert/strict";
import { f16ToF32, f32ToF16 } from "../../src/io/half.ts";
import { dequantizeNBits, nbitsLayout, type NBitsOptions, quantizeNBits } from "../../src/io/quantize.ts";
import { randomFloats, rng } from "./_helpers.ts";

const VARIANTS: NBitsOptions[] = [
  { bits: 8, blockSize: 32, symmetric: true },
  { bits: 8, blockSize: 16, symmetric: false },
  { bits: 4, blockSize: 32, symmetric: false },
  { bits: 4, blockSize: 64, symmetric: false },
  { bits: 4, blockSize: 32, symmetric: true },
];

Deno.test("dequantize ∘ quantize is within half a step (scale / 2) of every value", () => {
  // 172 columns: the last block of each row is partial (padding must not leak into the values)
  const [rows, cols] = [7, 172];
  const values = randomFloats(rows * cols, rng(3));
  for (let i = 0; i < values.length; i += 37) values[i] *= 20; // outliers widen some blocks
  for (const options of VARIANTS) {
    const q = quantizeNBits(values, { rows, cols }, options);
    const { kBlocks, blobSize, zeroPointBytes } = nbitsLayout(cols, options);
    assert.equal(q.qweight.byteLength, rows * kBlocks * blobSize);
    assert.equal(q.scales.length, rows * kBlocks);
    assert.equal(q.zeroPoints?.byteLength, options.symmetric ? undefined : rows * zeroPointBytes);
    assert.deepEqual(f16ToF32(f32ToF16(q.scales)), q.scales, "scales are float16-exact");
    const back = dequantizeNBits(q);
    let worst = 0;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const i = r * cols + c;
        const scale = Math.abs(q.scales[r * kBlocks + Math.floor(c / options.blockSize)]);
        let bound = scale / 2;
        if (options.bits === 4 && options.symmetric) {
          // Q4_0: codes span [-8, 7] steps; values beyond 7.5 steps on the side opposite the largest
          // magnitude clamp to 7 steps
          const signed = values[i] / q.scales[r * kBlocks + Math.floor(c / options.blockSize)];
          if (signed > 7.5) bound = scale;
        }
        const err = Math.abs(back[i] - values[i]);
        assert.ok(
          err <= bound * (1 + 1e-6) + 1e-9,
          `${JSON.stringify(options)} [${r}, ${c}]: ${err} > ${bound}`,
        );
        worst = Math.max(worst, err / scale);
      }
    }
    assert.ok(worst > 0.3, `${JSON.stringify(options)}: the bound is nearly reached (${worst}), not vacuous`);
  }
});

Deno.test("packing: 4-bit codes two per byte (even element low), zero points packed per row", () => {
  // one row of 32 values, asymmetric 4-bit: range [0, 15] → scale 1, zero point 0, code = value
  const values = Float32Array.from({ length: 32 }, (_, i) => i % 16);
  const q = quantizeNBits(values, { rows: 1, cols: 32 }, { bits: 4, blockSize: 32, symmetric: false });
  assert.deepEqual(Array.from(q.scales), [1]);
  assert.deepEqual(Array.from(q.zeroPoints!), [0]);
  assert.deepEqual(Array.from(q.qweight.subarray(0, 3)), [0x10, 0x32, 0x54]);
  // 8-bit symmetric: scale = max|x| / 127, code = round(x / scale) + 128
  const q8 = quantizeNBits(Float32Array.from([127, -127, 0.4, -0.6, ...new Array(12).fill(0)]), {
    rows: 1,
    cols: 16,
  }, { bits: 8, blockSize: 16 });
  assert.deepEqual(Array.from(q8.scales), [1]);
  assert.deepEqual(Array.from(q8.qweight.subarray(0, 4)), [255, 1, 128, 127]);
  assert.equal(q8.zeroPoints, undefined);
  // three blocks of 4-bit zero points: two in the first byte, one in the low nibble of the second
  const three = Float32Array.from({ length: 48 }, (_, i) => (i < 16 ? i - 15 : i < 32 ? i - 16 : i - 32 - 5));
  const z = quantizeNBits(three, { rows: 1, cols: 48 }, { bits: 4, blockSize: 16, symmetric: false });
  assert.deepEqual(Array.from(z.scales), [1, 1, 1]);
  assert.deepEqual(Array.from(z.zeroPoints!), [15 | (0 << 4), 5]);
  assert.deepEqual(dequantizeNBits(z), three);
});

Deno.test("an all-zero block and bad options or values", () => {
  const zeros = quantizeNBits(new Float32Array(32), { rows: 1, cols: 32 }, { bits: 4, blockSize: 32 });
  assert.deepEqual(Array.from(dequantizeNBits(zeros)), new Array(32).fill(0));
  const x = new Float32Array(32);
  assert.throws(
    () => quantizeNBits(x, { rows: 1, cols: 32 }, { bits: 3 as 4, blockSize: 32 }),
    /Cannot quantize to 3 bits: use 4 or 8/,
  );
  assert.throws(
    () => quantizeNBits(x, { rows: 1, cols: 32 }, { bits: 8, blockSize: 24 }),
    /Cannot quantize with block size 24: use a power of two ≥ 16/,
  );
  assert.throws(
    () => quantizeNBits(x, { rows: 2, cols: 32 }, { bits: 8, blockSize: 32 }),
    /Cannot quantize: 32 values for \[2, 32\]/,
  );
  x[5] = NaN;
  assert.throws(
    () => quantizeNBits(x, { rows: 1, cols: 32 }, { bits: 8, blockSize: 32 }),
    /Cannot quantize: value NaN at row 0, column 5/,
  );
  x[5] = 1e9;
  assert.throws(
    () => quantizeNBits(x, { rows: 1, cols: 32 }, { bits: 8, blockSize: 32 }),
    /beyond float16's range/,
  );
});
