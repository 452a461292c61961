/**
 * The tensors a {@linkcode LlamaConfig} implies, by Hugging Face name, with their shapes
 * (`[out, in]` for linear weights, as PyTorch stores them).
 *
 * @module
 */

import type { LlamaConfig } from "../models/config.ts";

/**
 * Lists every tensor of a Llama-family checkpoint in Hugging Face layout, in a stable order: the token
 * embedding, then per layer the attention norm, q/k/v/o (and q/k/v biases for Qwen2), the MLP norm,
 * gate/up/down, then the final norm and `lm_head.weight` (absent when embeddings are tied).
 *
 * @param config The architecture.
 * @returns Name → dims.
 *
 * @example
 * ```ts
 * import { llamaWeightShapes } from "./llama_weights.ts";
 * const shapes = llamaWeightShapes({
 *   architecture: "llama", vocabSize: 512, hiddenSize: 64, intermediateSize: 172, numHiddenLayers: 5,
 *   numAttentionHeads: 8, numKeyValueHeads: 4, headDim: 8, rmsNormEps: 1e-5, ropeTheta: 10000,
 *   maxPositionEmbeddings: 512, tieWordEmbeddings: true, attentionBias: false, eosTokenIds: [2],
 * });
 * console.assert(shapes.get("model.layers.0.self_attn.k_proj.weight")!.join() === "32,64");
 * ```
 */
export function llamaWeightShapes(config: LlamaConfig): Map<string, number[]> {
  const h = config.hiddenSize;
  const q = config.numAttentionHeads * config.headDim;
  const kv = config.numKeyValueHeads * config.headDim;
  const f = config.intermediateSize;
  const shapes = new Map<string, number[]>();
  shapes.set("model.embed_tokens.weight", [config.vocabSize, h]);
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    shapes.set(`${p}.input_layernorm.weight`, [h]);
    shapes.set(`${p}.self_attn.q_proj.weight`, [q, h]);
    shapes.set(`${p}.self_attn.k_proj.weight`, [kv, h]);
    shapes.set(`${p}.self_attn.v_proj.weight`, [kv, h]);
    if (config.attentionBias) {
      shapes.set(`${p}.self_attn.q_proj.bias`, [q]);
      shapes.set(`${p}.self_attn.k_proj.bias`, [kv]);
      shapes.set(`${p}.self_attn.v_proj.bias`, [kv]);
    }
    shapes.set(`${p}.self_attn.o_proj.weight`, [h, q]);
    shapes.set(`${p}.post_attention_layernorm.weight`, [h]);
    shapes.set(`${p}.mlp.gate_proj.weight`, [f, h]);
    shapes.set(`${p}.mlp.up_proj.weight`, [f, h]);
    shapes.set(`${p}.mlp.down_proj.weight`, [h, f]);
  }
  shapes.set("model.norm.weight", [h]);
  if (!config.tieWordEmbeddings) shapes.set("lm_head.weight", [config.vocabSize, h]);
  return shapes;
}
