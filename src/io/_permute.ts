/**
 * The q/k row permutation between Meta's interleaved RoPE layout (llama2.c, GGUF) and Hugging Face's
 * rotate-half layout.
 *
 * @module
 */

/**
 * Permutes the rows of a `[heads * headDim, cols]` float32 matrix from interleaved RoPE pairs
 * `(0,1),(2,3)…` to Hugging Face's rotate-half halves, as transformers' `convert_llama_weights_to_hf.py`
 * does with `w.view(heads, headDim/2, 2, cols).transpose(1, 2).reshape(heads * headDim, cols)`:
 * HF row `h*headDim + i*headDim/2 + j` is Meta row `h*headDim + 2j + i`.
 *
 * Works on bytes, so any 4-byte element type is permuted exactly; `rowBytes` (default `cols · 4`) permutes
 * rows of any other layout (a quantized weight's packed rows, its per-row scales).
 */
export function permuteRowsForRotateHalf(
  bytes: Uint8Array,
  shape: { heads: number; headDim: number; cols: number; rowBytes?: number },
): Uint8Array {
  const { heads, headDim, cols } = shape;
  const rowBytes = shape.rowBytes ?? cols * 4;
  if (bytes.byteLength !== heads * headDim * rowBytes) {
    throw new RangeError(
      `Cannot permute q/k rows: ${bytes.byteLength} bytes do not hold ${
        heads * headDim
      } rows of ${rowBytes} bytes`,
    );
  }
  const out = new Uint8Array(bytes.byteLength);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < half; j++) {
        const dst = (h * headDim + i * half + j) * rowBytes;
        const src = (h * headDim + 2 * j + i) * rowBytes;
        out.set(bytes.subarray(src, src + rowBytes), dst);
      }
    }
  }
  return out;
}
