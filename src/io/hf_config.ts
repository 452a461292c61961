/**
 * Hugging Face `config.json` ↔ {@linkcode LlamaConfig} for `LlamaForCausalLM`, `MistralForCausalLM` and
 * `Qwen2ForCausalLM`. Unsupported architectures and options fail with an error naming the field and value.
 *
 * @module
 */

import type { LlamaConfig, QuantizationConfig, RopeScaling } from "../models/config.ts";

const ARCHITECTURES: Record<string, LlamaConfig["architecture"]> = {
  LlamaForCausalLM: "llama",
  MistralForCausalLM: "mistral",
  Qwen2ForCausalLM: "qwen2",
};

const HF_ARCHITECTURE_NAMES: Record<LlamaConfig["architecture"], string> = {
  llama: "LlamaForCausalLM",
  mistral: "MistralForCausalLM",
  qwen2: "Qwen2ForCausalLM",
};

/** Defaults of transformers' config classes, per family. */
const DEFAULTS: Record<LlamaConfig["architecture"], { rmsNormEps: number; maxPositionEmbeddings: number }> = {
  llama: { rmsNormEps: 1e-6, maxPositionEmbeddings: 2048 },
  mistral: { rmsNormEps: 1e-6, maxPositionEmbeddings: 4096 * 32 },
  qwen2: { rmsNormEps: 1e-6, maxPositionEmbeddings: 32768 },
};

/** Options of {@linkcode parseHfConfig}. */
export interface ParseHfConfigOptions {
  /** File name used in error messages. @default "config.json" */
  file?: string;
  /**
   * The parsed `generation_config.json`, when there is one: its `bos_token_id` / `eos_token_id`
   * (number or list) take precedence over `config.json`'s, as in transformers' `generate`.
   */
  generationConfig?: Record<string, unknown>;
}

/** The `quant_method` of folders written by `deno task convert --quantize` (onnxruntime MatMulNBits layout). */
export const MATMUL_NBITS_QUANT_METHOD = "matmul_nbits";

/** `quantization_config`: only this toolkit's MatMulNBits layout (`quant_method: "matmul_nbits"`). */
function readQuantization(
  value: unknown,
  fail: (field: string, value: unknown, why: string) => never,
): QuantizationConfig | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) {
    return fail("quantization_config", value, "expected an object or null");
  }
  const q = value as Record<string, unknown>;
  if (q.quant_method !== MATMUL_NBITS_QUANT_METHOD) {
    return fail(
      "quantization_config.quant_method",
      q.quant_method,
      `only "${MATMUL_NBITS_QUANT_METHOD}" (deno task convert --quantize) is supported; other quantized checkpoints (GPTQ, AWQ, bitsandbytes) are not`,
    );
  }
  if (q.bits !== 4 && q.bits !== 8) return fail("quantization_config.bits", q.bits, "expected 4 or 8");
  const blockSize = q.group_size;
  if (
    typeof blockSize !== "number" || !Number.isInteger(blockSize) || blockSize < 16 ||
    (blockSize & (blockSize - 1)) !== 0
  ) {
    return fail("quantization_config.group_size", blockSize, "expected a power of two ≥ 16");
  }
  if (typeof q.sym !== "boolean") return fail("quantization_config.sym", q.sym, "expected true or false");
  return { bits: q.bits, blockSize, symmetric: q.sym };
}

/**
 * Parses a Hugging Face `config.json` object into a {@linkcode LlamaConfig}.
 *
 * Reads `num_key_value_heads` (GQA; default: `num_attention_heads`), `head_dim` (default
 * hidden / heads), `rope_theta` (or `rope_parameters.rope_theta`), `rope_scaling` (`llama3`, `linear`;
 * `default` or null mean none), `rms_norm_eps`, `tie_word_embeddings`, `max_position_embeddings`,
 * `bos_token_id` and `eos_token_id` (a number or a list), and `quantization_config` of the
 * `"matmul_nbits"` method (bits, `group_size`, `sym`). Qwen2 gets q/k/v biases. A Mistral
 * `sliding_window` shorter than `max_position_embeddings` lowers `maxPositionEmbeddings` to the window,
 * so that full attention is exact for every accepted length.
 *
 * @param json The parsed `config.json`.
 * @param options File name for errors and the optional generation config.
 * @returns The normalised config.
 * @throws {Error} On an unsupported architecture, activation, RoPE scaling, quantization or sliding
 *   window, or a missing/invalid field — naming the file, the field and its value.
 *
 * @example
 * ```ts
 * import { parseHfConfig } from "./hf_config.ts";
 * const c = parseHfConfig({
 *   architectures: ["LlamaForCausalLM"], vocab_size: 512, hidden_size: 64, intermediate_size: 172,
 *   num_hidden_layers: 5, num_attention_heads: 8, num_key_value_heads: 4, eos_token_id: 2,
 * });
 * console.assert(c.headDim === 8 && c.eosTokenIds[0] === 2);
 * ```
 */
export function parseHfConfig(json: unknown, options: ParseHfConfigOptions = {}): LlamaConfig {
  const file = options.file ?? "config.json";
  const fail = (field: string, value: unknown, why: string): never => {
    throw new Error(`Cannot load ${file}: field "${field}" is ${JSON.stringify(value)}: ${why}`);
  };
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new Error(`Cannot load ${file}: it is not a JSON object`);
  }
  const c = json as Record<string, unknown>;
  const architecture = readArchitecture(c, fail);

  const int = (field: string, fallback?: number): number => {
    const v = c[field] ?? fallback;
    if (v === undefined) return fail(field, c[field], "the field is required");
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      return fail(field, v, "expected a positive integer");
    }
    return v;
  };
  const num = (field: string, value: unknown, fallback: number): number => {
    const v = value ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      return fail(field, v, "expected a positive number");
    }
    return v;
  };

  const hiddenAct = c.hidden_act ?? c.hidden_activation ?? "silu";
  if (hiddenAct !== "silu") fail("hidden_act", hiddenAct, 'only "silu" (SwiGLU) is supported');
  const quantization = readQuantization(c.quantization_config, fail);
  if (c.mlp_bias === true) fail("mlp_bias", c.mlp_bias, "MLP biases are not supported");
  if (architecture !== "qwen2" && c.attention_bias === true) {
    fail(
      "attention_bias",
      c.attention_bias,
      `attention biases are not supported for ${HF_ARCHITECTURE_NAMES[architecture]}`,
    );
  }

  const hiddenSize = int("hidden_size");
  const numAttentionHeads = int("num_attention_heads");
  const numKeyValueHeads = int("num_key_value_heads", numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    fail(
      "num_key_value_heads",
      numKeyValueHeads,
      `it must divide num_attention_heads (${numAttentionHeads})`,
    );
  }
  let headDim: number;
  if (c.head_dim === undefined || c.head_dim === null) {
    if (hiddenSize % numAttentionHeads !== 0) {
      fail(
        "hidden_size",
        hiddenSize,
        `it is not divisible by num_attention_heads (${numAttentionHeads}) and head_dim is absent`,
      );
    }
    headDim = hiddenSize / numAttentionHeads;
  } else {
    headDim = int("head_dim");
  }
  if (headDim % 2 !== 0) fail("head_dim", headDim, "RoPE needs an even head dimension");
  const partialRotary = c.partial_rotary_factor;
  if (partialRotary !== undefined && partialRotary !== null && partialRotary !== 1) {
    fail("partial_rotary_factor", partialRotary, "partial rotary embeddings are not supported");
  }

  const ropeParameters = c.rope_parameters !== null && typeof c.rope_parameters === "object"
    ? c.rope_parameters as Record<string, unknown>
    : undefined;
  const ropeTheta = num(
    c.rope_theta !== undefined ? "rope_theta" : "rope_parameters.rope_theta",
    c.rope_theta ?? ropeParameters?.rope_theta,
    10000,
  );
  const ropeScaling = readRopeScaling(
    c.rope_scaling ?? ropeParameters,
    c.rope_scaling !== undefined ? "rope_scaling" : "rope_parameters",
    fail,
  );

  const defaults = DEFAULTS[architecture];
  let maxPositionEmbeddings = int("max_position_embeddings", defaults.maxPositionEmbeddings);
  const slidingWindow = readSlidingWindow(c, architecture, fail);
  if (slidingWindow !== undefined && slidingWindow < maxPositionEmbeddings) {
    maxPositionEmbeddings = slidingWindow;
  }

  const tie = c.tie_word_embeddings ?? false;
  if (typeof tie !== "boolean") fail("tie_word_embeddings", tie, "expected true or false");

  const generation = options.generationConfig ?? {};
  const bos = generation.bos_token_id ?? c.bos_token_id;
  const eos = generation.eos_token_id ?? c.eos_token_id;
  const bosField = generation.bos_token_id !== undefined ? "generation_config.bos_token_id" : "bos_token_id";
  const eosField = generation.eos_token_id !== undefined ? "generation_config.eos_token_id" : "eos_token_id";
  const vocabSize = int("vocab_size");
  const tokenId = (field: string, v: unknown): number => {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v >= vocabSize) {
      return fail(field, v, `expected a token id in [0, ${vocabSize})`);
    }
    return v;
  };
  const bosTokenId = bos === undefined || bos === null ? undefined : tokenId(bosField, bos);
  const eosTokenIds = eos === undefined || eos === null
    ? []
    : Array.isArray(eos)
    ? [...new Set(eos.map((v) => tokenId(eosField, v)))]
    : [tokenId(eosField, eos)];

  const config: LlamaConfig = {
    architecture,
    vocabSize,
    hiddenSize,
    intermediateSize: int("intermediate_size"),
    numHiddenLayers: int("num_hidden_layers"),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps: num("rms_norm_eps", c.rms_norm_eps, defaults.rmsNormEps),
    ropeTheta,
    maxPositionEmbeddings,
    tieWordEmbeddings: tie as boolean,
    attentionBias: architecture === "qwen2",
    eosTokenIds,
  };
  if (ropeScaling !== undefined) config.ropeScaling = ropeScaling;
  if (bosTokenId !== undefined) config.bosTokenId = bosTokenId;
  if (quantization !== undefined) config.quantization = quantization;
  return config;
}

type Fail = (field: string, value: unknown, why: string) => never;

/** Reads `architectures[0]`, falling back on `model_type`. */
function readArchitecture(c: Record<string, unknown>, fail: Fail): LlamaConfig["architecture"] {
  const supported = Object.keys(ARCHITECTURES).join(", ");
  if (Array.isArray(c.architectures) && c.architectures.length > 0) {
    if (c.architectures.length !== 1) {
      fail("architectures", c.architectures, "expected exactly one architecture");
    }
    const name = c.architectures[0];
    const arch = typeof name === "string" ? ARCHITECTURES[name] : undefined;
    if (arch === undefined) return fail("architectures", c.architectures, `supported: ${supported}`);
    return arch;
  }
  const modelType = c.model_type;
  if (modelType === "llama" || modelType === "mistral" || modelType === "qwen2") return modelType;
  if (c.architectures !== undefined && c.architectures !== null) {
    return fail("architectures", c.architectures, `supported: ${supported}`);
  }
  return fail("model_type", modelType, 'supported: "llama", "mistral", "qwen2" (or set "architectures")');
}

/** Reads `rope_scaling` (or transformers 5's `rope_parameters`). */
function readRopeScaling(value: unknown, field: string, fail: Fail): RopeScaling | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) {
    return fail(field, value, "expected an object or null");
  }
  const s = value as Record<string, unknown>;
  const type = s.rope_type ?? s.type ?? "default";
  const typeField = s.rope_type !== undefined ? `${field}.rope_type` : `${field}.type`;
  const positive = (key: string): number => {
    const v = s[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      return fail(`${field}.${key}`, v, "expected a positive number");
    }
    return v;
  };
  switch (type) {
    case "default":
      return undefined;
    case "linear":
      return { type: "linear", factor: positive("factor") };
    case "llama3":
      return {
        type: "llama3",
        factor: positive("factor"),
        lowFreqFactor: positive("low_freq_factor"),
        highFreqFactor: positive("high_freq_factor"),
        originalMaxPositionEmbeddings: positive("original_max_position_embeddings"),
      };
    default:
      return fail(typeField, type, 'supported RoPE scaling types: "llama3", "linear"');
  }
}

/** Reads the sliding-window options; `undefined` when attention is full. */
function readSlidingWindow(
  c: Record<string, unknown>,
  architecture: LlamaConfig["architecture"],
  fail: Fail,
): number | undefined {
  if (architecture === "qwen2") {
    if (c.use_sliding_window === true) {
      fail("use_sliding_window", true, "sliding-window attention is not supported");
    }
    return undefined;
  }
  if (architecture !== "mistral") return undefined;
  const w = c.sliding_window;
  if (w === undefined || w === null) return undefined;
  if (typeof w !== "number" || !Number.isSafeInteger(w) || w <= 0) {
    return fail("sliding_window", w, "expected a positive integer or null");
  }
  return w;
}

/**
 * Writes a {@linkcode LlamaConfig} as a Hugging Face `config.json` object (the fields transformers'
 * config class writes, float32 weights).
 *
 * @param config The config.
 * @returns A JSON-ready object; `parseHfConfig(llamaConfigToHf(c))` gives back `c`.
 *
 * @example
 * ```ts
 * import { llamaConfigToHf, parseHfConfig } from "./hf_config.ts";
 * const c = parseHfConfig({ model_type: "llama", vocab_size: 8, hidden_size: 4, intermediate_size: 8,
 *   num_hidden_layers: 1, num_attention_heads: 2 });
 * console.assert(parseHfConfig(llamaConfigToHf(c)).hiddenSize === 4);
 * ```
 */
export function llamaConfigToHf(config: LlamaConfig): Record<string, unknown> {
  const eos = config.eosTokenIds.length === 0
    ? null
    : config.eosTokenIds.length === 1
    ? config.eosTokenIds[0]
    : config.eosTokenIds;
  let ropeScaling: Record<string, unknown> | null = null;
  if (config.ropeScaling?.type === "linear") {
    ropeScaling = { rope_type: "linear", factor: config.ropeScaling.factor };
  } else if (config.ropeScaling?.type === "llama3") {
    ropeScaling = {
      rope_type: "llama3",
      factor: config.ropeScaling.factor,
      low_freq_factor: config.ropeScaling.lowFreqFactor,
      high_freq_factor: config.ropeScaling.highFreqFactor,
      original_max_position_embeddings: config.ropeScaling.originalMaxPositionEmbeddings,
    };
  }
  const out: Record<string, unknown> = {
    architectures: [HF_ARCHITECTURE_NAMES[config.architecture]],
    attention_dropout: 0,
    bos_token_id: config.bosTokenId ?? null,
    eos_token_id: eos,
    head_dim: config.headDim,
    hidden_act: "silu",
    hidden_size: config.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: config.intermediateSize,
    max_position_embeddings: config.maxPositionEmbeddings,
    model_type: config.architecture,
    num_attention_heads: config.numAttentionHeads,
    num_hidden_layers: config.numHiddenLayers,
    num_key_value_heads: config.numKeyValueHeads,
    rms_norm_eps: config.rmsNormEps,
    rope_scaling: ropeScaling,
    rope_theta: config.ropeTheta,
    tie_word_embeddings: config.tieWordEmbeddings,
    torch_dtype: "float32",
    use_cache: true,
    vocab_size: config.vocabSize,
  };
  if (config.architecture === "llama") {
    out.attention_bias = false;
    out.mlp_bias = false;
  }
  if (config.quantization !== undefined) {
    out.quantization_config = {
      quant_method: MATMUL_NBITS_QUANT_METHOD,
      bits: config.quantization.bits,
      group_size: config.quantization.blockSize,
      sym: config.quantization.symmetric,
      format: "onnxruntime MatMulNBits: X.qweight uint8 [out, in / group_size, group_size * bits / 8], " +
        "X.scales [out, in / group_size], X.qzeros uint8 (asymmetric only)",
    };
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
