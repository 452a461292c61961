/**
 * Adapter sites: the linear layers of a Llama-family decoder where LoRA adapters attach, named by their
 * PEFT module paths (`model.layers.0.self_attn.q_proj`), and {@linkcode linear}, the one function every
 * linear layer of the model builders goes through so that an {@linkcode AdapterHook} sees every site.
 *
 * @module
 */

import { attr, type GraphBuilder, type Value } from "../onnx/builder.ts";
import type { LlamaConfig } from "./config.ts";
import type { ProjectionWeight } from "./_weights.ts";

/** The linear modules of a Llama block, in forward order (Hugging Face / PEFT names). */
export const LLAMA_MODULES = [
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "gate_proj",
  "up_proj",
  "down_proj",
] as const;

/** One of {@linkcode LLAMA_MODULES}. */
export type LlamaModule = typeof LLAMA_MODULES[number];

/** A linear layer where an adapter may attach. */
export interface AdapterSite {
  /** Decoder block index. */
  layer: number;
  /** Module kind. */
  module: LlamaModule;
  /** PEFT module path, e.g. `model.layers.0.self_attn.q_proj`. */
  name: string;
  /** Input width. */
  inFeatures: number;
  /** Output width. */
  outFeatures: number;
}

/**
 * Returns a site's output given its input and the base layer's output; adapters are built here (LoRA:
 * `baseOut + scale · (x Aᵀ) Bᵀ`, with A and B as graph inputs).
 *
 * @param b The builder of the graph under construction.
 * @param site The linear layer.
 * @param x The layer input, `[..., inFeatures]`.
 * @param baseOut The base layer's output `x Wᵀ (+ bias)`, `[..., outFeatures]`.
 * @returns The layer's output, `[..., outFeatures]` (return `baseOut` to leave a site unchanged).
 */
export type AdapterHook = ((b: GraphBuilder, site: AdapterSite, x: Value, baseOut: Value) => Value) & {
  /**
   * Whether the hook changes site `name`'s output; fused graphs split a fused projection only where it does.
   * Absent: every site may be changed.
   */
  covers?: (name: string) => boolean;
};

/**
 * The PEFT module path of a site.
 *
 * @param layer Decoder block index.
 * @param module Module kind.
 * @returns e.g. `model.layers.3.mlp.down_proj`.
 */
export function siteName(layer: number, module: LlamaModule): string {
  const block = module === "gate_proj" || module === "up_proj" || module === "down_proj"
    ? "mlp"
    : "self_attn";
  return `model.layers.${layer}.${block}.${module}`;
}

/**
 * The site of one module of one layer.
 *
 * @param config Model shape.
 * @param layer Decoder block index.
 * @param module Module kind.
 * @returns The site with its widths.
 * @throws {RangeError} When the layer is out of range.
 */
export function adapterSite(config: LlamaConfig, layer: number, module: LlamaModule): AdapterSite {
  if (!Number.isInteger(layer) || layer < 0 || layer >= config.numHiddenLayers) {
    throw new RangeError(
      `Cannot name adapter site ${module} of layer ${layer}: the model has ${config.numHiddenLayers} layers`,
    );
  }
  const d = config.hiddenSize;
  const q = config.numAttentionHeads * config.headDim;
  const kv = config.numKeyValueHeads * config.headDim;
  const ff = config.intermediateSize;
  const [inFeatures, outFeatures] = {
    q_proj: [d, q],
    k_proj: [d, kv],
    v_proj: [d, kv],
    o_proj: [q, d],
    gate_proj: [d, ff],
    up_proj: [d, ff],
    down_proj: [ff, d],
  }[module];
  return { layer, module, name: siteName(layer, module), inFeatures, outFeatures };
}

/**
 * Every adapter site of a model, layer by layer in forward order.
 *
 * @param config Model shape.
 * @returns `numHiddenLayers × 7` sites.
 * @example
 * ```ts
 * import { listAdapterSites } from "./sites.ts";
 * const sites = listAdapterSites({
 *   architecture: "llama", vocabSize: 512, hiddenSize: 64, intermediateSize: 172, numHiddenLayers: 5,
 *   numAttentionHeads: 8, numKeyValueHeads: 4, headDim: 8, rmsNormEps: 1e-5, ropeTheta: 10000,
 *   maxPositionEmbeddings: 512, tieWordEmbeddings: true, attentionBias: false, eosTokenIds: [2],
 * });
 * console.assert(sites.length === 35 && sites[1].name === "model.layers.0.self_attn.k_proj");
 * console.assert(sites[1].outFeatures === 32);
 * ```
 */
export function listAdapterSites(config: LlamaConfig): AdapterSite[] {
  const sites: AdapterSite[] = [];
  for (let layer = 0; layer < config.numHiddenLayers; layer++) {
    for (const module of LLAMA_MODULES) sites.push(adapterSite(config, layer, module));
  }
  return sites;
}

/** Options of {@linkcode projectionMatMul}. */
export interface ProjectionMatMulOptions {
  /** The output value's graph name (fresh when omitted). */
  outputName?: string;
}

/**
 * `x Wᵀ` for a base weight from `WeightLoader.projection`: a MatMul for a float weight, onnxruntime's
 * `com.microsoft` MatMulNBits for a quantized one (it dequantizes blockwise inside the kernel).
 *
 * @param b The graph builder.
 * @param x Input `[..., inFeatures]`.
 * @param weight The projection's weight.
 * @param options The output's name.
 * @returns `[..., outFeatures]`.
 */
export function projectionMatMul(
  b: GraphBuilder,
  x: Value,
  weight: ProjectionWeight,
  options: ProjectionMatMulOptions = {},
): Value {
  const outputNames = options.outputName ? [options.outputName] : undefined;
  if (weight.kind === "float") return b.node("MatMul", [x, weight.value], {}, { outputNames })[0];
  return b.node("MatMulNBits", [x, weight.b, weight.scales, weight.zeroPoints], {
    K: attr.int(weight.inFeatures),
    N: attr.int(weight.outFeatures),
    bits: attr.int(weight.bits),
    block_size: attr.int(weight.blockSize),
  }, { domain: "com.microsoft", outputNames })[0];
}

/**
 * A linear layer: `x Wᵀ + bias`, then the adapter hook (when one is given) decides the output.
 *
 * @param b The graph builder.
 * @param site The layer (its name is used for node scoping).
 * @param x Input `[..., inFeatures]`.
 * @param weight The base weight: a MatMul right operand `[inFeatures, outFeatures]` (pre-transposed), or a
 *   {@linkcode ProjectionWeight} (float or quantized; quantized layers run as MatMulNBits).
 * @param options Optional bias `[outFeatures]` and adapter hook.
 * @returns The output `[..., outFeatures]`.
 */
export function linear(
  b: GraphBuilder,
  site: AdapterSite,
  x: Value,
  weight: Value | ProjectionWeight,
  options: LinearOptions = {},
): Value {
  return b.withScope(site.name, () => {
    let out = "kind" in weight ? projectionMatMul(b, x, weight) : b.matmul(x, weight);
    if (options.bias) out = b.add(out, options.bias);
    return options.adapter ? options.adapter(b, site, x, out) : out;
  });
}

/** Options for {@linkcode linear}. */
export interface LinearOptions {
  /** Bias `[outFeatures]` (Qwen2's q/k/v). */
  bias?: Value;
  /** Adapter hook called with the base output. */
  adapter?: AdapterHook;
}
