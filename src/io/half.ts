/**
 * Half-precision conversions: IEEE float16 and bfloat16 to and from float32, and
 * {@linkcode toFloat32Tensor} that widens a {@linkcode TensorData} to float32.
 *
 * All byte buffers are little-endian, as in safetensors, GGUF and ONNX `raw_data`.
 *
 * @module
 */

import type { TensorData } from "../onnx/types.ts";

const F32_SCRATCH = new Float32Array(1);
const U32_SCRATCH = new Uint32Array(F32_SCRATCH.buffer);

/** Reads `count` little-endian uint16 values from `bytes` (copying when the view is unaligned). */
function uint16View(bytes: Uint8Array): Uint16Array {
  if (bytes.byteLength % 2 !== 0) {
    throw new RangeError(`Cannot read 16-bit values: byte length ${bytes.byteLength} is odd`);
  }
  if (bytes.byteOffset % 2 === 0) {
    return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  }
  return new Uint16Array(bytes.slice().buffer);
}

/** Converts one float16 bit pattern to a number. */
function halfBitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/**
 * Widens little-endian IEEE float16 values to float32 (exact: every float16 is a float32).
 *
 * @param bytes The float16 values, two bytes each.
 * @returns A new `Float32Array` with one element per float16.
 * @throws {RangeError} When the byte length is odd.
 *
 * @example
 * ```ts
 * import { f16ToF32 } from "./half.ts";
 * console.assert(f16ToF32(new Uint8Array([0x00, 0x3c]))[0] === 1);
 * ```
 */
export function f16ToF32(bytes: Uint8Array): Float32Array {
  const src = uint16View(bytes);
  const table = halfTable();
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]];
  return out;
}

let HALF_TABLE: Float32Array | undefined;

/** All 65,536 float16 values as float32, built on first use. */
function halfTable(): Float32Array {
  if (HALF_TABLE === undefined) {
    HALF_TABLE = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) HALF_TABLE[h] = halfBitsToNumber(h);
  }
  return HALF_TABLE;
}

/**
 * Widens little-endian bfloat16 values to float32 (exact: bfloat16 is the top half of a float32).
 *
 * @param bytes The bfloat16 values, two bytes each.
 * @returns A new `Float32Array` with one element per bfloat16.
 * @throws {RangeError} When the byte length is odd.
 *
 * @example
 * ```ts
 * import { bf16ToF32 } from "./half.ts";
 * console.assert(bf16ToF32(new Uint8Array([0x80, 0x3f]))[0] === 1);
 * ```
 */
export function bf16ToF32(bytes: Uint8Array): Float32Array {
  const src = uint16View(bytes);
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}

/**
 * Narrows float32 values to IEEE float16 with round-to-nearest-even (overflow gives ±Infinity,
 * NaN stays NaN), as `numpy.float16` and `torch.half` do.
 *
 * @param values The float32 values.
 * @returns Little-endian float16 bytes, two per value.
 *
 * @example
 * ```ts
 * import { f16ToF32, f32ToF16 } from "./half.ts";
 * console.assert(f16ToF32(f32ToF16(new Float32Array([0.5])))[0] === 0.5);
 * ```
 */
export function f32ToF16(values: Float32Array): Uint8Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    F32_SCRATCH[0] = values[i];
    const x = U32_SCRATCH[0];
    const sign = (x >>> 16) & 0x8000;
    const exponent = (x >>> 23) & 0xff;
    let mantissa = x & 0x7fffff;
    if (exponent === 0xff) {
      out[i] = sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
      continue;
    }
    const e = exponent - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mantissa |= 0x800000;
      const shift = 14 - e;
      let half = mantissa >>> shift;
      const rest = mantissa & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
      out[i] = sign | half;
      continue;
    }
    let half = (e << 10) | (mantissa >>> 13);
    const rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
    out[i] = sign | half;
  }
  return new Uint8Array(out.buffer);
}

/**
 * Narrows float32 values to bfloat16 with round-to-nearest-even (NaN stays a quiet NaN), as
 * `torch.bfloat16` does.
 *
 * @param values The float32 values.
 * @returns Little-endian bfloat16 bytes, two per value.
 *
 * @example
 * ```ts
 * import { bf16ToF32, f32ToBf16 } from "./half.ts";
 * console.assert(bf16ToF32(f32ToBf16(new Float32Array([-2])))[0] === -2);
 * ```
 */
export function f32ToBf16(values: Float32Array): Uint8Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    F32_SCRATCH[0] = values[i];
    const x = U32_SCRATCH[0];
    if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) {
      out[i] = (x >>> 16) | 0x40;
      continue;
    }
    out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return new Uint8Array(out.buffer);
}

/**
 * The float32 values of a float32 tensor, as a zero-copy view when its bytes are 4-byte aligned (a copy
 * otherwise).
 *
 * @param tensor A tensor whose `dtype` is `float32`.
 * @returns Its values.
 * @throws {TypeError} When the tensor is not float32.
 *
 * @example
 * ```ts
 * import { float32Values } from "./half.ts";
 * const t = { name: "w", dtype: "float32" as const, dims: [1], data: new Uint8Array(new Float32Array([3]).buffer) };
 * console.assert(float32Values(t)[0] === 3);
 * ```
 */
export function float32Values(tensor: TensorData): Float32Array {
  if (tensor.dtype !== "float32") {
    throw new TypeError(`Cannot read tensor "${tensor.name}" as float32: its dtype is ${tensor.dtype}`);
  }
  const bytes = tensor.data;
  if (bytes.byteLength % 4 !== 0) {
    throw new RangeError(
      `Cannot read tensor "${tensor.name}" as float32: byte length ${bytes.byteLength} is not a multiple of 4`,
    );
  }
  if (bytes.byteOffset % 4 === 0) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  }
  return new Float32Array(bytes.slice().buffer);
}

/**
 * Widens a float16 or bfloat16 tensor to float32; a float32 tensor is returned unchanged (same bytes).
 *
 * @param tensor The tensor.
 * @returns A float32 tensor with the same name and dims.
 * @throws {TypeError} When the dtype is not float32, float16 or bfloat16.
 *
 * @example
 * ```ts
 * import { toFloat32Tensor } from "./half.ts";
 * const t = toFloat32Tensor({ name: "w", dtype: "bfloat16", dims: [1], data: new Uint8Array([0x80, 0x3f]) });
 * console.assert(t.dtype === "float32" && t.data.byteLength === 4);
 * ```
 */
export function toFloat32Tensor(tensor: TensorData): TensorData {
  switch (tensor.dtype) {
    case "float32":
      return tensor;
    case "float16":
      return { name: tensor.name, dtype: "float32", dims: tensor.dims, data: asBytes(f16ToF32(tensor.data)) };
    case "bfloat16":
      return {
        name: tensor.name,
        dtype: "float32",
        dims: tensor.dims,
        data: asBytes(bf16ToF32(tensor.data)),
      };
    default:
      throw new TypeError(
        `Cannot convert tensor "${tensor.name}" to float32: dtype ${tensor.dtype} is not a floating-point type`,
      );
  }
}

/** The bytes of a typed array, as a view. */
function asBytes(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}
