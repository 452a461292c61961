/**
 * Blockwise weight quantization in the layout of onnxruntime's `com.microsoft` MatMulNBits: a linear
 * weight `[N, K]` (PyTorch's `[out, in]`) is cut along K into blocks of `blockSize` values; each block keeps
 * one scale (and, when asymmetric, one zero point) and its values as `bits`-bit codes,
 * `value ≈ (code − zeroPoint) · scale`.
 *
 * - `qweight` uint8 `[N, k_blocks, blockSize · bits / 8]`, k_blocks = ⌈K / blockSize⌉: 8-bit codes one per
 *   byte; 4-bit codes two per byte, the even element in the low nibble. Padding past K holds the zero point.
 * - `scales` float32 `[N, k_blocks]`, rounded to float16 precision (the folder stores them as F16).
 * - `zeroPoints` uint8 `[N, ⌈k_blocks · bits / 8⌉]`, packed like `qweight`, only when asymmetric; when
 *   absent the zero point is 2^(bits−1) (8 for 4-bit, 128 for 8-bit), MatMulNBits' default.
 *
 * Symmetric quantization follows llama.cpp's reference quantizers, so GGUF `Q8_0`/`Q4_0` blocks map onto
 * the same codes: 8-bit `scale = max|x| / 127`, `code = round(x / scale) + 128`; 4-bit
 * `scale = −m / 8` with m the value of largest magnitude (sign kept), `code = min(15, ⌊x / scale + 8.5⌋)`.
 * Asymmetric quantization spans `[min(0, min x), max(0, max x)]` with `2^bits − 1` steps and a rounded zero
 * point, its float16 scale rounded up so the range still fits. A dequantized value is off by at most half a
 * step (`scale / 2`), except in symmetric 4-bit blocks (as in `Q4_0`), where values above `7.5 · scale` on
 * the side opposite the largest magnitude clamp to `7 · scale` (off by at most one step).
 *
 * @example
 * ```ts
 * import { dequantizeNBits, quantizeNBits } from "./quantize.ts";
 * const w = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
 * const q = quantizeNBits(w, { rows: 2, cols: 32 }, { bits: 8, blockSize: 32 });
 * const back = dequantizeNBits(q);
 * console.assert(back.every((v, i) => Math.abs(v - w[i]) <= q.scales[i < 32 ? 0 : 1] / 2 + 1e-7));
 * ```
 *
 * @module
 */

import { f16ToF32, f32ToF16 } from "./half.ts";

/** Bit widths of quantized weights. */
export type QuantBits = 4 | 8;

/** How to quantize. */
export interface NBitsOptions {
  /** Bits per weight: 8 or 4. */
  bits: QuantBits;
  /** Values per block along the input axis: a power of two ≥ 16 (MatMulNBits' rule). */
  blockSize: number;
  /**
   * Symmetric (no zero points, llama.cpp `Q8_0`/`Q4_0` style) or asymmetric (a zero point per block).
   * @default {true}
   */
  symmetric?: boolean;
}

/** A `[rows, cols]` weight quantized blockwise along `cols` (MatMulNBits' N = rows, K = cols). */
export interface NBitsWeight {
  /** Bits per weight. */
  bits: QuantBits;
  /** Values per block. */
  blockSize: number;
  /** Output features (N). */
  rows: number;
  /** Input features (K). */
  cols: number;
  /** Packed codes, `[rows, kBlocks, blockSize · bits / 8]`. */
  qweight: Uint8Array;
  /** Scales `[rows, kBlocks]`, float16-exact. */
  scales: Float32Array;
  /** Packed zero points `[rows, ⌈kBlocks · bits / 8⌉]` (asymmetric only). */
  zeroPoints?: Uint8Array;
}

/**
 * The sizes of a MatMulNBits weight.
 *
 * @param cols Input features (K).
 * @param options Bits and block size.
 * @returns Blocks per row, bytes per block, zero-point bytes per row.
 * @throws {RangeError} When bits is not 4 or 8, or the block size is not a power of two ≥ 16.
 */
export function nbitsLayout(
  cols: number,
  options: { bits: number; blockSize: number },
): { kBlocks: number; blobSize: number; zeroPointBytes: number } {
  const { bits, blockSize } = options;
  if (bits !== 4 && bits !== 8) throw new RangeError(`Cannot quantize to ${bits} bits: use 4 or 8`);
  if (!Number.isInteger(blockSize) || blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) {
    throw new RangeError(`Cannot quantize with block size ${blockSize}: use a power of two ≥ 16`);
  }
  const kBlocks = Math.ceil(cols / blockSize);
  return { kBlocks, blobSize: (blockSize * bits) / 8, zeroPointBytes: Math.ceil((kBlocks * bits) / 8) };
}

/**
 * Rounds non-negative scales to float16 precision (and back to float32); with `up`, to the nearest float16
 * at least as large, so that a block's range still fits in its codes.
 */
function toF16Precision(values: Float32Array, up: boolean): Float32Array {
  const half = f32ToF16(values);
  const rounded = f16ToF32(half);
  if (!up) return rounded;
  const codes = new Uint16Array(half.buffer, half.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) {
    if (rounded[i] < values[i]) codes[i]++;
  }
  return f16ToF32(half);
}

/** Writes code `code` of element `i` into a packed row of `bits`-bit codes. */
function putCode(row: Uint8Array, i: number, code: number, bits: QuantBits): void {
  if (bits === 8) row[i] = code;
  else row[i >> 1] |= (i & 1) === 0 ? code : code << 4;
}

/** Reads code `i` of a packed row of `bits`-bit codes. */
function getCode(row: Uint8Array, i: number, bits: QuantBits): number {
  if (bits === 8) return row[i];
  return (i & 1) === 0 ? row[i >> 1] & 0x0f : row[i >> 1] >> 4;
}

/**
 * Quantizes a row-major `[rows, cols]` float32 weight blockwise along `cols`.
 *
 * @param values The weight, `rows · cols` values (PyTorch `[out, in]` layout).
 * @param dims Its shape.
 * @param options Bits, block size, symmetric or not.
 * @returns Codes, float16-exact scales and (asymmetric) zero points in MatMulNBits layout.
 * @throws {RangeError} When the sizes disagree, the options are invalid, or a value is not finite or too
 *   large for a float16 scale.
 */
export function quantizeNBits(
  values: Float32Array,
  dims: { rows: number; cols: number },
  options: NBitsOptions,
): NBitsWeight {
  const { rows, cols } = dims;
  const bits = options.bits;
  const { kBlocks, blobSize, zeroPointBytes } = nbitsLayout(cols, options);
  const blockSize = options.blockSize;
  const symmetric = options.symmetric ?? true;
  if (values.length !== rows * cols) {
    throw new RangeError(`Cannot quantize: ${values.length} values for [${rows}, ${cols}]`);
  }
  const levels = (1 << bits) - 1;
  const mid = 1 << (bits - 1);
  // pass 1: one scale (and range) per block
  const raw = new Float32Array(rows * kBlocks);
  const lows = symmetric ? undefined : new Float32Array(rows * kBlocks);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < kBlocks; k++) {
      const start = r * cols + k * blockSize, end = r * cols + Math.min(cols, (k + 1) * blockSize);
      let lo = 0, hi = 0, amax = 0, m = 0;
      for (let i = start; i < end; i++) {
        const x = values[i];
        if (!Number.isFinite(x)) {
          throw new RangeError(`Cannot quantize: value ${x} at row ${r}, column ${i - r * cols}`);
        }
        if (x < lo) lo = x;
        if (x > hi) hi = x;
        if (Math.abs(x) > amax) {
          amax = Math.abs(x);
          m = x;
        }
      }
      const b = r * kBlocks + k;
      if (!symmetric) {
        raw[b] = (hi - lo) / levels;
        lows![b] = lo;
      } else raw[b] = amax === 0 ? 0 : bits === 8 ? amax / 127 : m / -8;
    }
  }
  const scales = toF16Precision(raw, !symmetric);
  for (let b = 0; b < scales.length; b++) {
    if (!Number.isFinite(scales[b])) {
      throw new RangeError(`Cannot quantize: block ${b} needs scale ${raw[b]}, beyond float16's range`);
    }
  }
  // pass 2: codes against the rounded scales
  const qweight = new Uint8Array(rows * kBlocks * blobSize);
  const zeroPoints = symmetric ? undefined : new Uint8Array(rows * zeroPointBytes);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < kBlocks; k++) {
      const b = r * kBlocks + k;
      const d = scales[b];
      const inv = d === 0 ? 0 : 1 / d;
      let zp = mid;
      if (!symmetric) {
        zp = d === 0 ? 0 : Math.min(levels, Math.max(0, Math.round(-lows![b] * inv)));
        putCode(zeroPoints!.subarray(r * zeroPointBytes, (r + 1) * zeroPointBytes), k, zp, bits);
      }
      const blob = qweight.subarray(b * blobSize, (b + 1) * blobSize);
      for (let i = 0; i < blockSize; i++) {
        const c = k * blockSize + i;
        let code = zp;
        if (c < cols) {
          const x = values[r * cols + c] * inv;
          if (!symmetric) code = Math.min(levels, Math.max(0, Math.round(x) + zp));
          else if (bits === 8) code = Math.min(255, Math.max(0, roundHalfAway(x) + 128));
          else code = Math.min(15, Math.max(0, Math.trunc(x + 8.5)));
        }
        putCode(blob, i, code, bits);
      }
    }
  }
  const out: NBitsWeight = { bits, blockSize, rows, cols, qweight, scales };
  if (zeroPoints) out.zeroPoints = zeroPoints;
  return out;
}

/** C's `roundf`: halves away from zero. */
function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/**
 * Dequantizes a MatMulNBits weight back to row-major `[rows, cols]` float32: `(code − zeroPoint) · scale`.
 *
 * @param weight The quantized weight.
 * @returns `rows · cols` values.
 */
export function dequantizeNBits(weight: NBitsWeight): Float32Array {
  const { bits, blockSize, rows, cols, qweight, scales, zeroPoints } = weight;
  const { kBlocks, blobSize, zeroPointBytes } = nbitsLayout(cols, weight);
  const out = new Float32Array(rows * cols);
  const mid = 1 << (bits - 1);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < kBlocks; k++) {
      const b = r * kBlocks + k;
      const d = scales[b];
      const zp = zeroPoints
        ? getCode(zeroPoints.subarray(r * zeroPointBytes, (r + 1) * zeroPointBytes), k, bits)
        : mid;
      const blob = qweight.subarray(b * blobSize, (b + 1) * blobSize);
      const n = Math.min(blockSize, cols - k * blockSize);
      for (let i = 0; i < n; i++) out[r * cols + k * blockSize + i] = (getCode(blob, i, bits) - zp) * d;
    }
  }
  return out;
}
