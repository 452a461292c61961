/**
 * Quantized base weights of a Llama-family model: every linear layer `X` (`model.layers.N.self_attn.q_proj`,
 * …, `lm_head` when untied) stores, instead of the float `X.weight` `[out, in]`, the MatMulNBits tensors of
 * {@linkcode quantizeNBits}:
 *
 * - `X.qweight` uint8 `[out, ⌈in / blockSize⌉, blockSize · bits / 8]`
 * - `X.scales` `[out, ⌈in / blockSize⌉]` (F16 in the folder, float32 in memory)
 * - `X.qzeros` uint8 `[out, ⌈⌈in / blockSize⌉ · bits / 8⌉]`, only when asymmetric
 *
 * Embeddings and norms stay float; so does a tied classifier (it is the embedding). The config records
 * bits, block size and symmetry ({@linkcode QuantizationConfig}, `quantization_config` in `config.json`).
 *
 * {@linkcode quantizeModelWeights} makes such weights from float ones, {@linkcode dequantizeModelWeights}
 * turns them back into float weights (the float graph a quantized one is compared with; training graphs keep
 * the base quantized), {@linkcode readNBitsWeight} reads and validates one layer.
 *
 * @module
 */

import type { LlamaConfig, QuantizationConfig } from "../models/config.ts";
import type { TensorData } from "../onnx/types.ts";
import { float32Values, toFloat32Tensor } from "./half.ts";
import { dequantizeNBits, nbitsLayout, type NBitsWeight, quantizeNBits } from "./quantize.ts";

/** A model as the graph builders take it: config and weights by Hugging Face name. */
export interface ModelWeights {
  /** The architecture (with `quantization` when the weights are quantized). */
  config: LlamaConfig;
  /** Tensors by name. */
  weights: ReadonlyMap<string, TensorData>;
}

/**
 * The linear layers of a model that quantization applies to, with their widths: q/k/v/o/gate/up/down of
 * every block, then `lm_head` when the classifier is not tied to the embedding.
 *
 * @param config The architecture.
 * @returns Module path → `[out, in]`, in forward order.
 */
export function quantizableLinears(config: LlamaConfig): Map<string, [number, number]> {
  const h = config.hiddenSize;
  const q = config.numAttentionHeads * config.headDim;
  const kv = config.numKeyValueHeads * config.headDim;
  const f = config.intermediateSize;
  const out = new Map<string, [number, number]>();
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const a = `model.layers.${i}.self_attn`, m = `model.layers.${i}.mlp`;
    out.set(`${a}.q_proj`, [q, h]);
    out.set(`${a}.k_proj`, [kv, h]);
    out.set(`${a}.v_proj`, [kv, h]);
    out.set(`${a}.o_proj`, [h, q]);
    out.set(`${m}.gate_proj`, [f, h]);
    out.set(`${m}.up_proj`, [f, h]);
    out.set(`${m}.down_proj`, [h, f]);
  }
  if (!config.tieWordEmbeddings) out.set("lm_head", [config.vocabSize, h]);
  return out;
}

/** The tensor names of a quantized linear layer. */
export function nbitsTensorNames(module: string): { qweight: string; scales: string; qzeros: string } {
  return { qweight: `${module}.qweight`, scales: `${module}.scales`, qzeros: `${module}.qzeros` };
}

/** Options of {@linkcode readNBitsWeight}. */
export interface ReadNBitsWeightOptions {
  /** Output features. */
  outFeatures: number;
  /** Input features. */
  inFeatures: number;
  /** The model's quantization. */
  quantization: QuantizationConfig;
  /** What to name in errors (`Cannot load model folder X`). @default "Cannot read quantized weight" */
  context?: string;
}

/**
 * Reads one quantized linear layer, checking every tensor's dtype and shape against the widths, bits and
 * block size.
 *
 * @param weights Tensors by name (scales may be F16, BF16 or F32).
 * @param module The layer's module path (`model.layers.0.self_attn.q_proj`).
 * @param options Widths and quantization.
 * @returns The weight, or `undefined` when the layer has no `qweight` (it is stored as float).
 * @throws {Error} When a tensor is missing, of another dtype or shape (naming it and both shapes), or a
 *   zero-point tensor is present in a symmetric model or absent in an asymmetric one.
 */
export function readNBitsWeight(
  weights: ReadonlyMap<string, TensorData>,
  module: string,
  options: ReadNBitsWeightOptions,
): NBitsWeight | undefined {
  const names = nbitsTensorNames(module);
  const qweight = weights.get(names.qweight);
  if (qweight === undefined) return undefined;
  const { outFeatures: rows, inFeatures: cols, quantization } = options;
  const { bits, blockSize, symmetric } = quantization;
  const context = options.context ?? "Cannot read quantized weight";
  const { kBlocks, blobSize, zeroPointBytes } = nbitsLayout(cols, { bits, blockSize });
  const check = (t: TensorData | undefined, name: string, dims: number[], dtypes: readonly string[]) => {
    if (t === undefined) {
      throw new Error(`${context}: tensor "${name}" is missing (${names.qweight} is present)`);
    }
    if (!dtypes.includes(t.dtype)) {
      throw new Error(`${context}: tensor "${name}" has dtype ${t.dtype}, expected ${dtypes.join(" or ")}`);
    }
    if (t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i])) {
      throw new Error(
        `${context}: tensor "${name}" has shape [${t.dims}], expected [${dims}] (${bits}-bit, block size ${blockSize}, [out ${rows}, in ${cols}])`,
      );
    }
    return t;
  };
  check(qweight, names.qweight, [rows, kBlocks, blobSize], ["uint8"]);
  const scales = check(weights.get(names.scales), names.scales, [rows, kBlocks], [
    "float32",
    "float16",
    "bfloat16",
  ]);
  const zeros = weights.get(names.qzeros);
  if (symmetric && zeros !== undefined) {
    throw new Error(
      `${context}: tensor "${names.qzeros}" is present but the quantization is symmetric (sym: true)`,
    );
  }
  const out: NBitsWeight = {
    bits,
    blockSize,
    rows,
    cols,
    qweight: qweight.data,
    scales: float32Values(toFloat32Tensor(scales)),
  };
  if (!symmetric) out.zeroPoints = check(zeros, names.qzeros, [rows, zeroPointBytes], ["uint8"]).data;
  return out;
}

/**
 * The tensors that store a quantized layer (scales float32).
 *
 * @param module The layer's module path.
 * @param weight The quantized weight.
 * @returns `qweight`, `scales` and (asymmetric) `qzeros`.
 */
export function nbitsTensors(module: string, weight: NBitsWeight): TensorData[] {
  const names = nbitsTensorNames(module);
  const { kBlocks, blobSize, zeroPointBytes } = nbitsLayout(weight.cols, weight);
  const out: TensorData[] = [
    { name: names.qweight, dtype: "uint8", dims: [weight.rows, kBlocks, blobSize], data: weight.qweight },
    {
      name: names.scales,
      dtype: "float32",
      dims: [weight.rows, kBlocks],
      data: new Uint8Array(weight.scales.buffer, weight.scales.byteOffset, weight.scales.byteLength),
    },
  ];
  if (weight.zeroPoints) {
    out.push({
      name: names.qzeros,
      dtype: "uint8",
      dims: [weight.rows, zeroPointBytes],
      data: weight.zeroPoints,
    });
  }
  return out;
}

/**
 * Quantizes the linear layers of a float model ({@linkcode quantizableLinears}); other tensors are kept.
 *
 * @param model Config and float32 weights (not already quantized).
 * @param quantization Bits, block size, symmetry.
 * @returns The config with `quantization` set and the weights with each `X.weight` replaced by `X.qweight`,
 *   `X.scales` (and `X.qzeros`), in the original order.
 * @throws {Error} When the model is already quantized or a linear weight is missing or misshapen.
 *
 * @example
 * ```ts ignore
 * const int4 = quantizeModelWeights({ config, weights }, { bits: 4, blockSize: 32, symmetric: false });
 * ```
 */
export function quantizeModelWeights(
  model: ModelWeights,
  quantization: QuantizationConfig,
): { config: LlamaConfig; weights: Map<string, TensorData> } {
  if (model.config.quantization) {
    throw new Error("Cannot quantize the model: its weights are already quantized");
  }
  nbitsLayout(16, quantization);
  const linears = quantizableLinears(model.config);
  const weights = new Map<string, TensorData>();
  for (const [name, tensor] of model.weights) {
    const module = name.endsWith(".weight") ? name.slice(0, -".weight".length) : undefined;
    const dims = module === undefined ? undefined : linears.get(module);
    if (dims === undefined) {
      weights.set(name, tensor);
      continue;
    }
    if (tensor.dims.length !== 2 || tensor.dims[0] !== dims[0] || tensor.dims[1] !== dims[1]) {
      throw new Error(
        `Cannot quantize the model: tensor "${name}" has shape [${tensor.dims}], expected [${dims}]`,
      );
    }
    const q = quantizeNBits(float32Values(tensor), { rows: dims[0], cols: dims[1] }, quantization);
    for (const t of nbitsTensors(module!, q)) weights.set(t.name, t);
  }
  for (const module of linears.keys()) {
    if (!model.weights.has(`${module}.weight`)) {
      throw new Error(`Cannot quantize the model: tensor "${module}.weight" is missing`);
    }
  }
  return { config: { ...model.config, quantization: { ...quantization } }, weights };
}

/**
 * Turns a quantized model back into float32 weights (`X.weight = (code − zeroPoint) · scale`), for graphs
 * that should hold a float base (references, measurements). A float model is returned as it is.
 *
 * @param model Config and weights.
 * @returns Config without `quantization`, and float weights in the original order.
 * @throws {Error} When a quantized tensor is missing or misshapen (naming it).
 *
 * @example
 * ```ts ignore
 * const { config, weights } = dequantizeModelWeights(await loadModelFolder("stories260K-int8"));
 * ```
 */
export function dequantizeModelWeights(model: ModelWeights): ModelWeights {
  const quantization = model.config.quantization;
  if (quantization === undefined) return model;
  const { quantization: _, ...config } = model.config;
  const linears = quantizableLinears(model.config);
  const weights = new Map<string, TensorData>();
  for (const [name, tensor] of model.weights) {
    const m = /^(.*)\.(qweight|scales|qzeros)$/.exec(name);
    const dims = m === null ? undefined : linears.get(m[1]);
    if (dims === undefined) {
      weights.set(name, tensor);
      continue;
    }
    if (m![2] !== "qweight") continue;
    const q = readNBitsWeight(model.weights, m![1], {
      outFeatures: dims[0],
      inFeatures: dims[1],
      quantization,
      context: "Cannot dequantize the model",
    })!;
    const values = dequantizeNBits(q);
    weights.set(`${m![1]}.weight`, {
      name: `${m![1]}.weight`,
      dtype: "float32",
      dims: [...dims],
      data: new Uint8Array(values.buffer),
    });
  }
  return { config, weights };
}
