// A "scripted" Llama: one block whose projections are all zero, so the residual stream is the token
// embedding, and an untied lm_head that makes greedy decoding follow a chain of tokens chosen by the
// test. Plus a tiny byte tokenizer over the same ids, whose stream decoder is TextDecoder's streaming mode.

import type { LlamaConfig } from "../../src/models/config.ts";
import type { GenerationTokenizer } from "../../src/models/generate.ts";
import { listAdapterSites } from "../../src/models/sites.ts";
import type { TensorData } from "../../src/onnx/types.ts";

export const VOCAB = 24;

/** Token id → bytes: 0 unk, 1 BOS, 2 EOS, 3/4 the two bytes of "é", then ASCII letters. */
export const TOKEN_BYTES: Record<number, number[]> = {
  3: [0xc3],
  4: [0xa9],
  5: [..."a"].map((c) => c.charCodeAt(0)),
  6: [..."b"].map((c) => c.charCodeAt(0)),
  7: [..." "].map((c) => c.charCodeAt(0)),
  8: [..."S"].map((c) => c.charCodeAt(0)),
  9: [..."T"].map((c) => c.charCodeAt(0)),
  10: [..."O"].map((c) => c.charCodeAt(0)),
  11: [..."P"].map((c) => c.charCodeAt(0)),
  12: [..."x"].map((c) => c.charCodeAt(0)),
  13: [..."!"].map((c) => c.charCodeAt(0)),
};

export const SCRIPTED_CONFIG: LlamaConfig = {
  architecture: "llama",
  vocabSize: VOCAB,
  hiddenSize: VOCAB,
  intermediateSize: 8,
  numHiddenLayers: 1,
  numAttentionHeads: 2,
  numKeyValueHeads: 1,
  headDim: 12,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  maxPositionEmbeddings: 64,
  tieWordEmbeddings: false,
  attentionBias: false,
  bosTokenId: 1,
  eosTokenIds: [2],
};

function tensor(name: string, dims: number[], values: Float32Array): TensorData {
  return { name, dtype: "float32", dims, data: new Uint8Array(values.buffer) };
}

/**
 * Weights whose greedy continuation of token t is `next[t]` (tokens without a successor go to 0).
 * Embeddings are one-hot; lm_head row j is one-hot at the token that precedes j.
 */
export function scriptedWeights(
  next: Record<number, number>,
  config = SCRIPTED_CONFIG,
): Map<string, TensorData> {
  const d = config.hiddenSize, v = config.vocabSize;
  const weights = new Map<string, TensorData>();
  const embed = new Float32Array(v * d);
  for (let t = 0; t < v; t++) embed[t * d + t] = 1;
  weights.set("model.embed_tokens.weight", tensor("model.embed_tokens.weight", [v, d], embed));
  const head = new Float32Array(v * d);
  for (const [from, to] of Object.entries(next)) head[to * d + Number(from)] = 1;
  weights.set("lm_head.weight", tensor("lm_head.weight", [v, d], head));
  const ones = new Float32Array(d).fill(1);
  weights.set("model.norm.weight", tensor("model.norm.weight", [d], ones));
  for (let l = 0; l < config.numHiddenLayers; l++) {
    weights.set(`model.layers.${l}.input_layernorm.weight`, tensor("n", [d], ones));
    weights.set(`model.layers.${l}.post_attention_layernorm.weight`, tensor("n", [d], ones));
  }
  for (const site of listAdapterSites(config)) {
    const name = `${site.name}.weight`;
    weights.set(
      name,
      tensor(name, [site.outFeatures, site.inFeatures], new Float32Array(site.outFeatures * site.inFeatures)),
    );
  }
  return weights;
}

/** A chain as a successor map: chain[0] → chain[1] → … */
export function chain(...tokens: number[]): Record<number, number> {
  const next: Record<number, number> = {};
  for (let i = 0; i + 1 < tokens.length; i++) next[tokens[i]] = tokens[i + 1];
  return next;
}

/** The byte tokenizer of {@linkcode TOKEN_BYTES}. */
export const BYTE_TOKENIZER: GenerationTokenizer = {
  bosId: 1,
  eosIds: [2],
  encode(text: string, options?: { addBos?: boolean }): number[] {
    const ids: number[] = options?.addBos === false ? [] : [1];
    for (const byte of new TextEncoder().encode(text)) {
      const id = Object.entries(TOKEN_BYTES).find(([, b]) => b.length === 1 && b[0] === byte)?.[0];
      if (id === undefined) throw new Error(`byte ${byte} has no token`);
      ids.push(Number(id));
    }
    return ids;
  },
  createStreamDecoder(options?: { skipSpecialTokens?: boolean }) {
    const decoder = new TextDecoder();
    return {
      push(id: number): string {
        const bytes = TOKEN_BYTES[id] ??
          (options?.skipSpecialTokens ? [] : [...new TextEncoder().encode(`<${id}>`)]);
        return decoder.decode(new Uint8Array(bytes), { stream: true });
      },
      flush(): string {
        return decoder.decode();
      },
    };
  },
};
