/**
 * Model builders and generation: the Llama family (Llama, Mistral, Qwen2) as ONNX graphs — prefill and
 * decode graphs with a KV cache, and the training forward with its loss — adapter sites where LoRA
 * attaches, LoRA tensors as graph inputs, sampling, and {@linkcode LlamaGenerator} for streaming
 * generation on onnxruntime-web.
 *
 * @example
 * ```ts
 * import { buildLlamaInferenceGraph, listAdapterSites, randomLlamaWeights } from "./mod.ts";
 * import type { LlamaConfig } from "./mod.ts";
 * const config: LlamaConfig = {
 *   architecture: "llama", vocabSize: 32, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 1,
 *   numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 4, rmsNormEps: 1e-5, ropeTheta: 10000,
 *   maxPositionEmbeddings: 64, tieWordEmbeddings: true, attentionBias: false, eosTokenIds: [2],
 * };
 * const model = buildLlamaInferenceGraph({ config, weights: randomLlamaWeights(config) }, { kind: "decode" });
 * console.assert(model.graph.inputs.some((i) => i.name === "past.0.key"));
 * console.assert(listAdapterSites(config).length === 7);
 * ```
 *
 * @module
 */

export * from "./config.ts";
export * from "./sites.ts";
export * from "./rope.ts";
export * from "./family.ts";
export * from "./families.ts";
export * from "./llama/mod.ts";
export * from "./batch_decoder.ts";
export * from "./decode_row.ts";
export * from "./lora_inputs.ts";
export * from "./sampling.ts";
export * from "./random_weights.ts";
export * from "./generate.ts";
export * from "./stop_matcher.ts";
