/**
 * Random weights for a {@linkcode LlamaConfig}, under Hugging Face names: for tests, benchmarks of a
 * model's shape without its checkpoint, and fixtures of other modules.
 *
 * @module
 */

import type { TensorData } from "../onnx/types.ts";
import type { LlamaConfig } from "./config.ts";
import { Prng } from "./sampling.ts";
import { adapterSite, LLAMA_MODULES } from "./sites.ts";

/** Options for {@linkcode randomLlamaWeights}. */
export interface RandomLlamaWeightsOptions {
  /**
   * PRNG seed.
   * @default {0}
   */
  seed?: number;
  /**
   * Scale of the uniform weights (`[-scale, scale]`); norms are `1 ± scale`.
   * @default {0.1}
   */
  scale?: number;
}

function tensor(name: string, dims: number[], fill: (i: number) => number): TensorData {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = fill(i);
  return { name, dtype: "float32", dims, data: new Uint8Array(data.buffer) };
}

/**
 * Makes every weight a config needs, filled from a seeded PRNG.
 *
 * @param config Model shape.
 * @param options Seed and scale.
 * @returns Weights by Hugging Face name (`lm_head.weight` only when embeddings are not tied; q/k/v biases
 *   when `attentionBias`).
 * @example
 * ```ts
 * import { randomLlamaWeights } from "./random_weights.ts";
 * const w = randomLlamaWeights({
 *   architecture: "llama", vocabSize: 16, hiddenSize: 8, intermediateSize: 12, numHiddenLayers: 1,
 *   numAttentionHeads: 2, numKeyValueHeads: 1, headDim: 4, rmsNormEps: 1e-5, ropeTheta: 10000,
 *   maxPositionEmbeddings: 32, tieWordEmbeddings: true, attentionBias: false, eosTokenIds: [2],
 * });
 * console.assert(w.get("model.layers.0.self_attn.k_proj.weight")!.dims.join() === "4,8");
 * ```
 */
export function randomLlamaWeights(
  config: LlamaConfig,
  options: RandomLlamaWeightsOptions = {},
): Map<string, TensorData> {
  const rng = new Prng(options.seed ?? 0);
  const scale = options.scale ?? 0.1;
  const uniform = () => (rng.next() * 2 - 1) * scale;
  const norm = () => 1 + uniform();
  const weights = new Map<string, TensorData>();
  const add = (name: string, dims: number[], fill: () => number) =>
    weights.set(name, tensor(name, dims, fill));
  add("model.embed_tokens.weight", [config.vocabSize, config.hiddenSize], uniform);
  for (let l = 0; l < config.numHiddenLayers; l++) {
    add(`model.layers.${l}.input_layernorm.weight`, [config.hiddenSize], norm);
    add(`model.layers.${l}.post_attention_layernorm.weight`, [config.hiddenSize], norm);
    for (const module of LLAMA_MODULES) {
      const site = adapterSite(config, l, module);
      add(`${site.name}.weight`, [site.outFeatures, site.inFeatures], uniform);
      if (config.attentionBias && (module === "q_proj" || module === "k_proj" || module === "v_proj")) {
        add(`${site.name}.bias`, [site.outFeatures], uniform);
      }
    }
  }
  add("model.norm.weight", [config.hiddenSize], norm);
  if (!config.tieWordEmbeddings) add("lm_head.weight", [config.vocabSize, config.hiddenSize], uniform);
  return weights;
}
