/**
 * {@linkcode LlamaConfig}: the architecture hyper-parameters of a Llama-family decoder (Llama, Mistral,
 * Qwen2), normalised from Hugging Face's `config.json` field names.
 *
 * @module
 */

/** RoPE frequency scaling (Hugging Face `rope_scaling`). */
export type RopeScaling =
  | { type: "linear"; factor: number }
  | {
    type: "llama3";
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositionEmbeddings: number;
  };

/**
 * Blockwise-quantized linear weights (`config.json` `quantization_config` with `quant_method`
 * `"matmul_nbits"`): each quantized layer `X` stores `X.qweight`, `X.scales` and, when asymmetric,
 * `X.qzeros` in onnxruntime's MatMulNBits layout instead of `X.weight`.
 */
export interface QuantizationConfig {
  /** Bits per weight. */
  bits: 4 | 8;
  /** Weights per block along the input axis (`group_size`): a power of two ≥ 16. */
  blockSize: number;
  /** No zero points (the implicit zero point is 2^(bits−1)). */
  symmetric: boolean;
}

/** A Llama-family decoder's shape. Weights use Hugging Face names (`model.layers.0.self_attn.q_proj.weight`). */
export interface LlamaConfig {
  /** Hugging Face architecture family. */
  architecture: "llama" | "mistral" | "qwen2";
  /** Vocabulary size. */
  vocabSize: number;
  /** Model width (`hidden_size`). */
  hiddenSize: number;
  /** MLP width (`intermediate_size`). */
  intermediateSize: number;
  /** Number of decoder blocks. */
  numHiddenLayers: number;
  /** Query heads. */
  numAttentionHeads: number;
  /** Key/value heads (GQA when fewer than query heads). */
  numKeyValueHeads: number;
  /** Per-head width (`head_dim`, default hidden / heads). */
  headDim: number;
  /** RMSNorm epsilon. */
  rmsNormEps: number;
  /** RoPE base. */
  ropeTheta: number;
  /** Optional RoPE scaling. */
  ropeScaling?: RopeScaling;
  /** Longest supported sequence. */
  maxPositionEmbeddings: number;
  /** The output projection reuses the token embedding. */
  tieWordEmbeddings: boolean;
  /** q/k/v projections have biases (Qwen2). */
  attentionBias: boolean;
  /** Beginning-of-sequence token id. */
  bosTokenId?: number;
  /** End-of-sequence token ids. */
  eosTokenIds: number[];
  /** Set when linear weights are stored blockwise-quantized (see {@linkcode QuantizationConfig}). */
  quantization?: QuantizationConfig;
}
