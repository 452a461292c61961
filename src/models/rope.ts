/**
 * Rotary position embedding (RoPE) frequencies with Hugging Face's `linear` and `llama3` scaling, and the
 * rotate-half application used by Hugging Face's Llama, Mistral and Qwen2.
 *
 * @module
 */

import type { GraphBuilder, Value } from "../onnx/builder.ts";
import type { LlamaConfig } from "./config.ts";

/**
 * The inverse frequencies `1 / theta^(2i / headDim)` for i < headDim/2, scaled as the config asks, rounded
 * to float32 as Hugging Face computes them.
 *
 * @param config Model shape (`headDim`, `ropeTheta`, `ropeScaling`).
 * @returns `headDim / 2` inverse frequencies.
 * @throws {RangeError} When `headDim` is odd or a scaling factor is not positive.
 * @example
 * ```ts
 * import { ropeInverseFrequencies } from "./rope.ts";
 * const f = ropeInverseFrequencies({ headDim: 4, ropeTheta: 10000 });
 * console.assert(f[0] === 1 && Math.abs(f[1] - 0.01) < 1e-9);
 * ```
 */
export function ropeInverseFrequencies(
  config: Pick<LlamaConfig, "headDim" | "ropeTheta" | "ropeScaling">,
): Float32Array {
  const dim = config.headDim;
  if (!Number.isInteger(dim) || dim <= 0 || dim % 2 !== 0) {
    throw new RangeError(
      `Cannot compute RoPE frequencies: head_dim must be a positive even number, got ${dim}`,
    );
  }
  const half = dim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / config.ropeTheta ** (Math.fround((2 * i) / dim));
  const scaling = config.ropeScaling;
  if (!scaling) return inv;
  if (!(scaling.factor > 0)) {
    throw new RangeError(
      `Cannot compute RoPE frequencies: rope_scaling.factor must be > 0, got ${scaling.factor}`,
    );
  }
  if (scaling.type === "linear") return inv.map((f) => f / scaling.factor);
  // llama3: long wavelengths are divided by `factor`, short ones kept, the band between interpolated.
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: oldContext } = scaling;
  if (!(highFreqFactor > lowFreqFactor)) {
    throw new RangeError(
      `Cannot compute llama3 RoPE frequencies: high_freq_factor (${highFreqFactor}) must exceed ` +
        `low_freq_factor (${lowFreqFactor})`,
    );
  }
  const lowFreqWavelen = oldContext / lowFreqFactor;
  const highFreqWavelen = oldContext / highFreqFactor;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) return f;
    if (wavelen > lowFreqWavelen) return f / factor;
    const smooth = (oldContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

/** The cosine and sine tables of a batch of positions, shaped to broadcast over heads. */
export interface RopeTables {
  /** `cos(position · invFreq)` with the frequencies repeated for both halves, `[batch, seq, 1, headDim]`. */
  cos: Value;
  /** `sin(position · invFreq)`, likewise `[batch, seq, 1, headDim]`. */
  sin: Value;
  /** The signed half-swap `[headDim, headDim]`: `x · rotateHalf = [−x2, x1]`. */
  rotateHalf: Value;
}

/**
 * Builds the RoPE tables for `positionIds` (computed in float32 in the graph, as Hugging Face does).
 *
 * @param b The graph builder.
 * @param positionIds int64 positions `[batch, seq]`.
 * @param invFreq The inverse frequencies from {@linkcode ropeInverseFrequencies}.
 * @returns cos and sin tables and the rotate-half matrix.
 */
export function ropeTables(b: GraphBuilder, positionIds: Value, invFreq: Float32Array): RopeTables {
  return b.withScope("rotary_emb", () => {
    const half = invFreq.length;
    const dim = 2 * half;
    const repeated = new Float32Array(dim);
    repeated.set(invFreq, 0);
    repeated.set(invFreq, half);
    const inv = b.initializer(b.freshName("inv_freq"), repeated, [dim]);
    const swap = new Float32Array(dim * dim);
    for (let i = 0; i < half; i++) {
      swap[(half + i) * dim + i] = -1; // output i takes −x2[i]
      swap[i * dim + half + i] = 1; // output half + i takes x1[i]
    }
    const rotateHalf = b.initializer(b.freshName("rotate_half"), swap, [dim, dim]);
    const pos = b.unsqueeze(b.cast(positionIds, "float32"), [2, 3]); // [batch, seq, 1, 1]
    const freqs = b.mul(pos, inv); // [batch, seq, 1, headDim]
    return { cos: b.cos(freqs), sin: b.sin(freqs), rotateHalf };
  });
}

/**
 * Applies rotate-half RoPE to `x` `[batch, seq, heads, headDim]`: `x·cos + rotateHalf(x)·sin`, where
 * `rotateHalf([x1, x2]) = [−x2, x1]` is a MatMul by a signed permutation (exact in float32; four nodes).
 *
 * @param b The graph builder.
 * @param x Queries or keys, `[batch, seq, heads, headDim]`.
 * @param tables The tables from {@linkcode ropeTables}.
 * @returns The rotated tensor, same shape.
 */
export function applyRope(b: GraphBuilder, x: Value, tables: RopeTables): Value {
  return b.add(b.mul(x, tables.cos), b.mul(b.matmul(x, tables.rotateHalf), tables.sin));
}
