/**
 * Model shapes shared by the bench scripts.
 *
 * @module
 */

import type { LlamaConfig } from "../src/models/config.ts";

/** The shape of llama2.c's stories15M (dim 288, 6 layers, 6 heads, hidden 768, vocab 32000), for random weights. */
export const STORIES15M_SHAPE: LlamaConfig = {
  architecture: "llama",
  vocabSize: 32000,
  hiddenSize: 288,
  intermediateSize: 768,
  numHiddenLayers: 6,
  numAttentionHeads: 6,
  numKeyValueHeads: 6,
  headDim: 48,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  maxPositionEmbeddings: 256,
  tieWordEmbeddings: true,
  attentionBias: false,
  bosTokenId: 1,
  eosTokenIds: [2],
};

/** The stories260K folder beside the project (llama2.c checkpoint and tokenizer). */
export const STORIES260K_DIR = decodeURIComponent(
  new URL("../../shared/models/stories260K/", import.meta.url).pathname,
);
