/**
 * GGUF's `Q8_0` and `Q4_0` block-quantized tensors (ggml's reference layout) mapped onto the MatMulNBits
 * form of {@linkcode NBitsWeight}, without requantizing: both are symmetric with 32 values per block.
 *
 * - `Q8_0` block (34 bytes): f16 scale `d`, then 32 int8 `q`; value = `d · q`. MatMulNBits code `q + 128`.
 * - `Q4_0` block (18 bytes): f16 scale `d`, then 16 bytes; byte j holds value j in its low nibble and value
 *   j + 16 in its high nibble; value = `d · (nibble − 8)`. MatMulNBits packs values 2i and 2i + 1 into
 *   byte i, with the default zero point 8.
 *
 * @module
 */

import { f16ToF32 } from "./half.ts";
import type { NBitsWeight } from "./quantize.ts";

/** ggml type codes of the block types read here. */
export const GGML_Q4_0 = 2;
/** ggml type code of `Q8_0`. */
export const GGML_Q8_0 = 8;

const BLOCK = 32;

/**
 * Converts the raw blocks of a `[rows, cols]` `Q8_0` or `Q4_0` tensor (rows of `cols / 32` blocks) to a
 * symmetric MatMulNBits weight with block size 32: the same codes and scales, repacked.
 *
 * @param type `GGML_Q8_0` or `GGML_Q4_0`.
 * @param blocks The tensor's bytes.
 * @param dims Its shape, outermost first (`rows` = output features, `cols` = input features).
 * @returns The weight (8 or 4 bits, block size 32, no zero points).
 * @throws {RangeError} On another type, `cols` not a multiple of 32, or a byte count that does not fit.
 */
export function ggufBlocksToNBits(
  type: number,
  blocks: Uint8Array,
  dims: { rows: number; cols: number },
): NBitsWeight {
  const { rows, cols } = dims;
  if (type !== GGML_Q8_0 && type !== GGML_Q4_0) {
    throw new RangeError(`Cannot read GGUF blocks of ggml type ${type}: only Q8_0 (8) and Q4_0 (2)`);
  }
  const bits = type === GGML_Q8_0 ? 8 : 4;
  const blockBytes = type === GGML_Q8_0 ? 34 : 18;
  if (cols % BLOCK !== 0) {
    throw new RangeError(`Cannot read GGUF blocks: ${cols} columns is not a multiple of 32`);
  }
  const nBlocks = rows * (cols / BLOCK);
  if (blocks.byteLength !== nBlocks * blockBytes) {
    throw new RangeError(
      `Cannot read GGUF blocks: ${blocks.byteLength} bytes for ${nBlocks} blocks of ${blockBytes} bytes ([${rows}, ${cols}])`,
    );
  }
  const blob = (BLOCK * bits) / 8;
  const qweight = new Uint8Array(nBlocks * blob);
  const halves = new Uint8Array(nBlocks * 2);
  for (let b = 0; b < nBlocks; b++) {
    const src = b * blockBytes;
    halves[2 * b] = blocks[src];
    halves[2 * b + 1] = blocks[src + 1];
    const out = b * blob;
    if (bits === 8) {
      for (let i = 0; i < BLOCK; i++) qweight[out + i] = (blocks[src + 2 + i] + 128) & 0xff; // int8 → uint8 + 128
    } else {
      for (let i = 0; i < BLOCK / 2; i++) {
        // MatMulNBits byte i = values 2i (low), 2i + 1 (high); GGUF value v sits in byte v % 16, nibble v / 16
        const nibble = (v: number) => (blocks[src + 2 + (v & 15)] >> (v < 16 ? 0 : 4)) & 0x0f;
        qweight[out + i] = nibble(2 * i) | (nibble(2 * i + 1) << 4);
      }
    }
  }
  return { bits, blockSize: BLOCK, rows, cols, qweight, scales: f16ToF32(halves) };
}
