// Tiny model shapes shared by the model tests, and helpers to feed the inference graphs.

import type { LlamaConfig } from "../../src/models/config.ts";
import { hostTensor, type OnnxSession, type OrtTensor } from "../../src/runtime/mod.ts";

/** Llama with grouped-query attention (8 query heads over 2 key/value heads), untied lm_head. */
export const GQA_CONFIG: LlamaConfig = {
  architecture: "llama",
  vocabSize: 48,
  hiddenSize: 32,
  intermediateSize: 40,
  numHiddenLayers: 2,
  numAttentionHeads: 8,
  numKeyValueHeads: 2,
  headDim: 4,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  maxPositionEmbeddings: 128,
  tieWordEmbeddings: false,
  attentionBias: false,
  bosTokenId: 1,
  eosTokenIds: [2],
};

/** Qwen2-style: q/k/v biases, tied embeddings, head_dim wider than hidden / heads, large theta. */
export const QWEN2_CONFIG: LlamaConfig = {
  architecture: "qwen2",
  vocabSize: 40,
  hiddenSize: 24,
  intermediateSize: 36,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 8,
  rmsNormEps: 1e-6,
  ropeTheta: 1000000,
  maxPositionEmbeddings: 128,
  tieWordEmbeddings: true,
  attentionBias: true,
  bosTokenId: 1,
  eosTokenIds: [2, 3],
};

/** Multi-head attention with llama3 RoPE scaling. */
export const LLAMA3_CONFIG: LlamaConfig = {
  architecture: "llama",
  vocabSize: 36,
  hiddenSize: 16,
  intermediateSize: 28,
  numHiddenLayers: 1,
  numAttentionHeads: 2,
  numKeyValueHeads: 2,
  headDim: 8,
  rmsNormEps: 1e-5,
  ropeTheta: 500000,
  ropeScaling: {
    type: "llama3",
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 16,
  },
  maxPositionEmbeddings: 128,
  tieWordEmbeddings: true,
  attentionBias: false,
  bosTokenId: 1,
  eosTokenIds: [2],
};

/** An int64 tensor of rows (all the same length). */
export function int64Rows(rows: number[][]): OrtTensor {
  const width = rows[0]?.length ?? 0;
  return hostTensor(BigInt64Array.from(rows.flat(), (v) => BigInt(v)), [rows.length, width]);
}

/** Runs a prefill graph on unpadded rows of equal length; returns all outputs. */
export function runPrefill(session: OnnxSession, rows: number[][]): Promise<Record<string, OrtTensor>> {
  const positions = rows.map((r) => r.map((_, i) => i));
  return session.run({
    input_ids: int64Rows(rows),
    position_ids: int64Rows(positions),
    attention_mask: int64Rows(rows.map((r) => r.map(() => 1))),
  });
}

/** The largest absolute difference between two arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
