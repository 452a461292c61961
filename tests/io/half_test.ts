import assert from "node:assert/strict";
import {
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  float32Values,
  toFloat32Tensor,
} from "../../src/io/half.ts";

function bits16(bytes: Uint8Array): number[] {
  return Array.from(new Uint16Array(bytes.slice().buffer));
}

Deno.test("f16ToF32 decodes normals, subnormals, zeros, infinities and NaN", () => {
  const bits = [
    0x3c00,
    0xc000,
    0x7bff,
    0x0001,
    0x03ff,
    0x0400,
    0x0000,
    0x8000,
    0x7c00,
    0xfc00,
    0x7e00,
    0x3555,
  ];
  const out = f16ToF32(new Uint8Array(new Uint16Array(bits).buffer));
  assert.deepEqual(Array.from(out.slice(0, 6)), [1, -2, 65504, 2 ** -24, 1023 * 2 ** -24, 2 ** -14]);
  assert.ok(Object.is(out[6], 0) && Object.is(out[7], -0));
  assert.equal(out[8], Infinity);
  assert.equal(out[9], -Infinity);
  assert.ok(Number.isNaN(out[10]));
  assert.equal(out[11], Math.fround(0.333251953125));
});

Deno.test("f32ToF16 rounds to nearest even and round-trips every float16", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const widened = f16ToF32(new Uint8Array(all.buffer));
  const back = bits16(f32ToF16(widened));
  for (let h = 0; h < 65536; h++) {
    const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (isNaN) assert.ok(Number.isNaN(f16ToF32(f32ToF16(new Float32Array([widened[h]])))[0]));
    else assert.equal(back[h], h, `float16 0x${h.toString(16)}`);
  }
  // Halfway cases: 1 + 2^-11 is between 1 and 1 + 2^-10 → rounds to even (1); 1 + 3*2^-11 → 1 + 2^-9.
  assert.deepEqual(bits16(f32ToF16(new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11]))), [0x3c00, 0x3c02]);
  // Overflow, underflow, and a subnormal halfway case (2^-25 → 0, 3*2^-25 → 2*2^-24).
  assert.deepEqual(bits16(f32ToF16(new Float32Array([70000, -70000, 2 ** -26, 2 ** -25, 3 * 2 ** -25]))), [
    0x7c00,
    0xfc00,
    0,
    0,
    2,
  ]);
});

Deno.test("bf16 conversions: widening is exact, narrowing rounds to nearest even", () => {
  assert.deepEqual(Array.from(bf16ToF32(new Uint8Array([0x80, 0x3f, 0x00, 0xc0, 0x80, 0x7f]))), [
    1,
    -2,
    Infinity,
  ]);
  const values = new Float32Array([1, -2.5, 3.140625, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20]);
  assert.deepEqual(Array.from(bf16ToF32(f32ToBf16(values))), [
    1,
    -2.5,
    3.140625,
    1,
    1 + 2 ** -6,
    1 + 2 ** -7,
  ]);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(new Float32Array([NaN])))[0]));
});

Deno.test("toFloat32Tensor widens f16/bf16, keeps f32, refuses integers", () => {
  const f32 = {
    name: "a",
    dtype: "float32" as const,
    dims: [2],
    data: new Uint8Array(new Float32Array([1, 2]).buffer),
  };
  assert.equal(toFloat32Tensor(f32), f32);
  const h = toFloat32Tensor({
    name: "b",
    dtype: "float16",
    dims: [2],
    data: f32ToF16(new Float32Array([0.5, -4])),
  });
  assert.deepEqual([h.dtype, Array.from(float32Values(h))], ["float32", [0.5, -4]]);
  assert.throws(
    () => toFloat32Tensor({ name: "ids", dtype: "int64", dims: [1], data: new Uint8Array(8) }),
    /Cannot convert tensor "ids" to float32: dtype int64/,
  );
});

Deno.test("float32Values copies unaligned views and rejects other dtypes", () => {
  const buf = new Uint8Array(9);
  buf.set(new Uint8Array(new Float32Array([7, 8]).buffer), 1);
  const t = { name: "u", dtype: "float32" as const, dims: [2], data: buf.subarray(1) };
  assert.deepEqual(Array.from(float32Values(t)), [7, 8]);
  assert.throws(
    () => float32Values({ ...t, dtype: "float16" }),
    /Cannot read tensor "u" as float32: its dtype is float16/,
  );
});
