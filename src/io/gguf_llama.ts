/**
 * A `llama`-architecture GGUF file converted to Hugging Face names and layout: config from `llama.*`
 * metadata, float32 weights (F16/BF16 widened), q/k rows permuted to rotate-half, and the SentencePiece
 * vocabulary from `tokenizer.ggml.*`. Linear layers stored as `Q8_0` or `Q4_0` become MatMulNBits tensors
 * (`X.qweight`, `X.scales`; 8 or 4 bits, block 32, symmetric) with the same codes and scales, and the
 * config gets `quantization`; a `Q8_0`/`Q4_0` token embedding is dequantized (embeddings stay float).
 *
 * llama.cpp keeps q/k of `llama` models in Meta's interleaved-RoPE row order (its converter permutes
 * Hugging Face checkpoints back into it; `llama.tensor_data_layout` says "Meta AI original pth" for files
 * made from llama2.c), so the same permutation as for llama2.c applies.
 *
 * @module
 */

import type { LlamaConfig, RopeScaling } from "../models/config.ts";
import type { TensorData } from "../onnx/types.ts";
import { permuteRowsForRotateHalf } from "./_permute.ts";
import { GGUF_BLOCK_TYPES, type GgufFile, ggufMetadata, type GgufTensor } from "./gguf.ts";
import { GGML_Q8_0, ggufBlocksToNBits } from "./gguf_blocks.ts";
import { dequantizeNBits } from "./quantize.ts";
import { nbitsTensors, quantizableLinears } from "./quantized_weights.ts";
import { toFloat32Tensor } from "./half.ts";
import type { ConvertedCheckpoint } from "./llama2c.ts";
import { llamaWeightShapes } from "./llama_weights.ts";
import type { PieceType, ScoredVocab } from "./sentencepiece_bpe.ts";

/** A converted GGUF model. */
export interface ConvertedGguf extends ConvertedCheckpoint {
  /** The SentencePiece vocabulary. */
  vocab: ScoredVocab;
  /** `tokenizer.chat_template`, when present. */
  chatTemplate?: string;
}

/** Options of {@linkcode ggufToHf}. */
export interface GgufToHfOptions {
  /** File name used in error messages. @default "GGUF file" */
  file?: string;
}

const PIECE_TYPES: Record<number, PieceType> = {
  1: "normal",
  2: "unknown",
  3: "control",
  4: "user_defined",
  5: "unused",
  6: "byte",
};

/** The shortest decimal that rounds to the same float32 (GGUF stores epsilons as f32: 1e-5, not 9.99e-6). */
function shortestFloat32(x: number): number {
  const f = Math.fround(x);
  for (let p = 1; p <= 17; p++) {
    const y = Number(f.toPrecision(p));
    if (Math.fround(y) === f) return y;
  }
  return x;
}

/**
 * Converts a parsed `llama` GGUF file to a Hugging Face checkpoint.
 *
 * @param gguf The parsed file.
 * @param options File name for errors.
 * @returns Config, weights (float32 or, for Q8_0/Q4_0 linear layers, MatMulNBits tensors; Hugging Face
 *   names, {@linkcode llamaWeightShapes} order) and vocabulary.
 * @throws {Error} On another architecture or tokenizer model, missing metadata, a missing tensor, a
 *   tensor of an unsupported type (naming the tensor and the type), linear layers of both Q8_0 and Q4_0,
 *   or a shape that does not match.
 *
 * @example
 * ```ts ignore
 * import { parseGguf } from "./gguf.ts";
 * import { ggufToHf } from "./gguf_llama.ts";
 * const { config, weights } = ggufToHf(parseGguf(await Deno.readFile("model.gguf")));
 * ```
 */
export function ggufToHf(gguf: GgufFile, options: GgufToHfOptions = {}): ConvertedGguf {
  const file = options.file ?? "GGUF file";
  const arch = ggufMetadata(gguf, "general.architecture", { kind: "string", file });
  if (arch !== "llama") {
    throw new Error(
      `Cannot convert GGUF file ${file}: metadata "general.architecture" is "${arch}", only "llama" is supported`,
    );
  }
  const num = (key: string, fallback?: number) => ggufMetadata(gguf, key, { kind: "number", fallback, file });
  const hiddenSize = num("llama.embedding_length");
  const numAttentionHeads = num("llama.attention.head_count");
  const numKeyValueHeads = num("llama.attention.head_count_kv", numAttentionHeads);
  const headDim = num("llama.attention.key_length", hiddenSize / numAttentionHeads);
  const ropeDim = num("llama.rope.dimension_count", headDim);
  if (ropeDim !== headDim) {
    throw new Error(
      `Cannot convert GGUF file ${file}: metadata "llama.rope.dimension_count" is ${ropeDim} but the head dimension is ${headDim} (partial RoPE is not supported)`,
    );
  }
  const ffn = gguf.metadata.get("llama.feed_forward_length");
  const intermediateSize = Array.isArray(ffn) && ffn.length > 0 && ffn.every((v) => v === ffn[0])
    ? ffn[0] as number
    : num("llama.feed_forward_length");
  const tokens = ggufMetadata(gguf, "tokenizer.ggml.tokens", { kind: "array", file });
  const vocabSize = num("llama.vocab_size", tokens.length);
  const bos = gguf.metadata.get("tokenizer.ggml.bos_token_id");
  const eos = gguf.metadata.get("tokenizer.ggml.eos_token_id");

  if (gguf.tensors.has("rope_freqs.weight")) {
    throw new Error(
      `Cannot convert GGUF file ${file}: tensor "rope_freqs.weight" (Llama 3.1 RoPE factors) is not supported`,
    );
  }
  const config: LlamaConfig = {
    architecture: "llama",
    vocabSize,
    hiddenSize,
    intermediateSize,
    numHiddenLayers: num("llama.block_count"),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps: shortestFloat32(num("llama.attention.layer_norm_rms_epsilon")),
    ropeTheta: shortestFloat32(num("llama.rope.freq_base", 10000)),
    maxPositionEmbeddings: num("llama.context_length"),
    tieWordEmbeddings: false,
    attentionBias: false,
    eosTokenIds: typeof eos === "number" ? [eos] : [],
  };
  if (typeof bos === "number") config.bosTokenId = bos;
  const scaling = readRopeScaling(gguf, file);
  if (scaling !== undefined) config.ropeScaling = scaling;

  const tensorInfo = (name: string): GgufTensor => {
    const t = gguf.tensors.get(name);
    if (t === undefined) throw new Error(`Cannot convert GGUF file ${file}: tensor "${name}" is missing`);
    return t;
  };
  const tensor = (name: string, dims: number[]): Uint8Array => float32Bytes(tensorInfo(name), dims, file);
  const embed = tensor("token_embd.weight", [vocabSize, hiddenSize]);
  const output = gguf.tensors.has("output.weight")
    ? tensor("output.weight", [vocabSize, hiddenSize])
    : undefined;
  config.tieWordEmbeddings = output === undefined || equalBytes(output, embed);

  const shapes = llamaWeightShapes(config);
  const sources: Record<string, string> = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
  };
  const linears = quantizableLinears(config);
  const weights = new Map<string, TensorData>();
  let quantizedBy: GgufTensor | undefined; // the first Q8_0/Q4_0 linear: every other one must match its type
  for (const [name, dims] of shapes) {
    let data: Uint8Array;
    const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
    const source = name === "lm_head.weight"
      ? "output.weight"
      : m
      ? `blk.${m[1]}.${sources[m[2]]}`
      : undefined;
    const module = name.slice(0, -".weight".length);
    const info = source === undefined ? undefined : tensorInfo(source);
    const rotary = m?.[2] === "self_attn.q_proj.weight"
      ? numAttentionHeads
      : m?.[2] === "self_attn.k_proj.weight"
      ? numKeyValueHeads
      : undefined;
    if (info !== undefined && linears.has(module) && GGUF_BLOCK_TYPES[info.type] !== undefined) {
      checkDims(info, dims, file);
      if (quantizedBy !== undefined && quantizedBy.type !== info.type) {
        throw new Error(
          `Cannot convert GGUF file ${file}: tensor "${info.name}" is ${info.typeName} but "${quantizedBy.name}" is ${quantizedBy.typeName}; one quantized type per model is supported`,
        );
      }
      quantizedBy ??= info;
      const q = ggufBlocksToNBits(info.type, info.data!, { rows: dims[0], cols: dims[1] });
      if (rotary !== undefined) {
        const rows = { heads: rotary, headDim, cols: hiddenSize };
        q.qweight = permuteRowsForRotateHalf(q.qweight, {
          ...rows,
          rowBytes: q.qweight.byteLength / dims[0],
        });
        const scales = permuteRowsForRotateHalf(new Uint8Array(q.scales.buffer), {
          ...rows,
          rowBytes: q.scales.byteLength / dims[0],
        });
        q.scales = new Float32Array(scales.buffer);
      }
      for (const t of nbitsTensors(module, q)) weights.set(t.name, t);
      continue;
    }
    if (name === "model.embed_tokens.weight") data = embed;
    else if (name === "model.norm.weight") data = tensor("output_norm.weight", dims);
    else if (name === "lm_head.weight") data = output!;
    else {
      data = float32Bytes(info!, dims, file);
      if (rotary !== undefined) {
        data = permuteRowsForRotateHalf(data, { heads: rotary, headDim, cols: hiddenSize });
      }
    }
    weights.set(name, { name, dtype: "float32", dims, data });
  }
  if (quantizedBy !== undefined) {
    config.quantization = { bits: quantizedBy.type === GGML_Q8_0 ? 8 : 4, blockSize: 32, symmetric: true };
  }
  const chat = gguf.metadata.get("tokenizer.chat_template");
  const result: ConvertedGguf = { config, weights, vocab: readVocab(gguf, file) };
  if (typeof chat === "string") result.chatTemplate = chat;
  return result;
}

/** `llama.rope.scaling.*` (or the older `llama.rope.scale_linear`). */
function readRopeScaling(gguf: GgufFile, file: string): RopeScaling | undefined {
  const type = gguf.metadata.get("llama.rope.scaling.type");
  const legacy = gguf.metadata.get("llama.rope.scale_linear");
  if (type === undefined || type === "none") {
    if (typeof legacy === "number" && legacy !== 1) return { type: "linear", factor: legacy };
    return undefined;
  }
  if (type === "linear") {
    return {
      type: "linear",
      factor: ggufMetadata(gguf, "llama.rope.scaling.factor", { kind: "number", file }),
    };
  }
  throw new Error(
    `Cannot convert GGUF file ${file}: metadata "llama.rope.scaling.type" is ${
      JSON.stringify(type)
    }, only "linear" is supported`,
  );
}

/** Checks a tensor's row-major dims. */
function checkDims(t: GgufTensor, dims: number[], file: string): void {
  if (t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i])) {
    throw new Error(
      `Cannot convert GGUF file ${file}: tensor "${t.name}" has shape [${t.dims}], expected [${dims}]`,
    );
  }
}

/** A tensor's bytes as float32 (Q8_0/Q4_0 blocks dequantized), checked against the expected row-major dims. */
function float32Bytes(t: GgufTensor, dims: number[], file: string): Uint8Array {
  if (t.data === undefined) {
    throw new Error(
      `Cannot convert GGUF file ${file}: tensor "${t.name}" has type ${t.typeName}; only F32, F16, BF16, Q8_0 and Q4_0 tensors are supported`,
    );
  }
  checkDims(t, dims, file);
  if (t.dtype === undefined) {
    const values = dequantizeNBits(ggufBlocksToNBits(t.type, t.data, { rows: dims[0], cols: dims[1] }));
    return new Uint8Array(values.buffer);
  }
  const f32 = toFloat32Tensor({ name: t.name, dtype: t.dtype, dims: t.dims, data: t.data });
  return f32.data;
}

/** Byte equality. */
function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The SentencePiece vocabulary of `tokenizer.ggml.*`. */
function readVocab(gguf: GgufFile, file: string): ScoredVocab {
  const model = ggufMetadata(gguf, "tokenizer.ggml.model", { kind: "string", file });
  if (model !== "llama") {
    throw new Error(
      `Cannot convert GGUF file ${file}: metadata "tokenizer.ggml.model" is "${model}", only "llama" (SentencePiece BPE) is supported`,
    );
  }
  const tokens = ggufMetadata(gguf, "tokenizer.ggml.tokens", { kind: "array", file });
  const scores = ggufMetadata(gguf, "tokenizer.ggml.scores", { kind: "array", fallback: [], file });
  const types = ggufMetadata(gguf, "tokenizer.ggml.token_type", { kind: "array", fallback: [], file });
  const pieces = tokens.map((t, i) => {
    if (typeof t !== "string") {
      throw new Error(`Cannot convert GGUF file ${file}: tokenizer.ggml.tokens[${i}] is not a string`);
    }
    return t;
  });
  const unkId = gguf.metadata.get("tokenizer.ggml.unknown_token_id") ?? 0;
  const bosId = gguf.metadata.get("tokenizer.ggml.bos_token_id");
  const eosId = gguf.metadata.get("tokenizer.ggml.eos_token_id");
  const vocab: ScoredVocab = {
    pieces,
    scores: pieces.map((_, i) => typeof scores[i] === "number" ? scores[i] as number : 0),
    types: pieces.map((p, i) => {
      const t = PIECE_TYPES[types[i] as number];
      if (t !== undefined) return t;
      if (i === unkId) return "unknown";
      if (i === bosId || i === eosId) return "control";
      return /^<0x[0-9A-F]{2}>$/.test(p) ? "byte" : "normal";
    }),
    unkId: typeof unkId === "number" ? unkId : 0,
  };
  if (typeof bosId === "number") vocab.bosId = bosId;
  if (typeof eosId === "number") vocab.eosId = eosId;
  return vocab;
}
