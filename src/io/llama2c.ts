/**
 * llama2.c files: model checkpoints (`run.c`'s legacy v0 layout and `export.py`'s v1 "ak42" layout,
 * float32) and `tokenizer.bin` vocabularies, read into Hugging Face names and layout.
 *
 * llama2.c applies RoPE to interleaved pairs `(0,1),(2,3)…` of each head (Meta's layout); Hugging Face
 * rotates halves, so q and k rows are permuted per head as transformers' own converter does (k with
 * `n_kv_heads` heads).
 *
 * @module
 */

import type { LlamaConfig } from "../models/config.ts";
import type { TensorData } from "../onnx/types.ts";
import { permuteRowsForRotateHalf } from "./_permute.ts";
import type { PieceType, ScoredVocab } from "./sentencepiece_bpe.ts";
import { SPACE_MARK } from "./sentencepiece_bpe.ts";

/** A checkpoint converted to Hugging Face names (`[out, in]` float32 weights, rotate-half q/k). */
export interface ConvertedCheckpoint {
  /** The architecture. */
  config: LlamaConfig;
  /** Tensors by Hugging Face name, in {@linkcode llamaWeightShapes} order. */
  weights: Map<string, TensorData>;
}

/** Options of {@linkcode parseLlama2cCheckpoint} and {@linkcode parseLlama2cTokenizer}. */
export interface ParseLlama2cOptions {
  /** File name used in error messages. */
  file?: string;
}

const V1_MAGIC = 0x616b3432;

/**
 * Parses a llama2.c checkpoint (`.bin`): legacy v0 (7 int32 then float32 tensors; a negative vocab size
 * means an unshared classifier) or v1 (magic `ak42`, 256-byte header). v2 (int8) is refused.
 * BOS 1, EOS 2, RMSNorm eps 1e-5 and RoPE theta 10000 are llama2.c's fixed values.
 *
 * @param bytes The whole file.
 * @param options File name for errors.
 * @returns The config and tensors in Hugging Face layout (views into `bytes`, except the permuted q/k).
 * @throws {Error} When the header is invalid or the size does not match it, naming the file.
 *
 * @example
 * ```ts ignore
 * import { parseLlama2cCheckpoint } from "./llama2c.ts";
 * const { config } = parseLlama2cCheckpoint(await Deno.readFile("stories260K.bin"));
 * console.log(config.hiddenSize); // 64
 * ```
 */
export function parseLlama2cCheckpoint(
  bytes: Uint8Array,
  options: ParseLlama2cOptions = {},
): ConvertedCheckpoint {
  const file = options.file ?? "llama2.c checkpoint";
  if (bytes.byteLength < 28) {
    throw new Error(
      `Cannot read llama2.c checkpoint ${file}: ${bytes.byteLength} bytes is shorter than the 28-byte header`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerBytes = 28;
  let fieldsAt = 0;
  let version = 0;
  let shared: boolean;
  if (view.getUint32(0, true) === V1_MAGIC) {
    version = view.getInt32(4, true);
    if (version !== 1) {
      throw new Error(
        `Cannot read llama2.c checkpoint ${file}: version ${version} is not supported (only v0 and v1 float32 files)`,
      );
    }
    if (bytes.byteLength < 256) {
      throw new Error(`Cannot read llama2.c checkpoint ${file}: the v1 header is truncated`);
    }
    headerBytes = 256;
    fieldsAt = 8;
    shared = view.getUint8(36) !== 0;
  } else {
    shared = view.getInt32(20, true) > 0;
  }
  const names = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"] as const;
  const h: Record<(typeof names)[number], number> = {} as Record<(typeof names)[number], number>;
  names.forEach((n, i) => {
    h[n] = view.getInt32(fieldsAt + 4 * i, true);
  });
  if (version === 0) h.vocab_size = Math.abs(h.vocab_size);
  for (const n of names) {
    if (!(h[n] > 0)) {
      throw new Error(
        `Cannot read llama2.c checkpoint ${file}: header field ${n} is ${h[n]}, expected a positive integer`,
      );
    }
  }
  if (h.dim % h.n_heads !== 0 || h.n_heads % h.n_kv_heads !== 0 || (h.dim / h.n_heads) % 2 !== 0) {
    throw new Error(
      `Cannot read llama2.c checkpoint ${file}: dim ${h.dim}, n_heads ${h.n_heads}, n_kv_heads ${h.n_kv_heads} are inconsistent`,
    );
  }
  const headDim = h.dim / h.n_heads;
  const kvDim = h.n_kv_heads * headDim;
  const L = h.n_layers;
  const config: LlamaConfig = {
    architecture: "llama",
    vocabSize: h.vocab_size,
    hiddenSize: h.dim,
    intermediateSize: h.hidden_dim,
    numHiddenLayers: L,
    numAttentionHeads: h.n_heads,
    numKeyValueHeads: h.n_kv_heads,
    headDim,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    maxPositionEmbeddings: h.seq_len,
    tieWordEmbeddings: shared,
    attentionBias: false,
    bosTokenId: 1,
    eosTokenIds: [2],
  };

  // Tensor layout, in file order: [kind, per-layer?, dims].
  type Kind =
    | "embed"
    | "attn_norm"
    | "wq"
    | "wk"
    | "wv"
    | "wo"
    | "ffn_norm"
    | "w1"
    | "w2"
    | "w3"
    | "norm"
    | "freqs"
    | "output";
  const dims: Record<Kind, number[]> = {
    embed: [h.vocab_size, h.dim],
    attn_norm: [h.dim],
    wq: [h.dim, h.dim],
    wk: [kvDim, h.dim],
    wv: [kvDim, h.dim],
    wo: [h.dim, h.dim],
    ffn_norm: [h.dim],
    w1: [h.hidden_dim, h.dim],
    w2: [h.dim, h.hidden_dim],
    w3: [h.hidden_dim, h.dim],
    norm: [h.dim],
    freqs: [2, h.seq_len, headDim / 2],
    output: [h.vocab_size, h.dim],
  };
  const perLayer = new Set<Kind>(["attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3"]);
  const order: Kind[] = version === 0
    ? ["embed", "attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3", "norm", "freqs"]
    : ["attn_norm", "ffn_norm", "norm", "embed", "wq", "wk", "wv", "wo", "w1", "w2", "w3"];
  if (!shared) order.push("output");
  const count = (k: Kind) => dims[k].reduce((a, b) => a * b, 1) * (perLayer.has(k) ? L : 1);
  const expected = headerBytes + order.reduce((a, k) => a + count(k) * 4, 0);
  if (bytes.byteLength !== expected) {
    throw new Error(
      `Cannot read llama2.c checkpoint ${file}: it has ${bytes.byteLength} bytes but its header (dim ${h.dim}, hidden_dim ${h.hidden_dim}, n_layers ${L}, n_heads ${h.n_heads}, n_kv_heads ${h.n_kv_heads}, vocab_size ${h.vocab_size}, seq_len ${h.seq_len}, ${
        shared ? "shared" : "separate"
      } classifier) needs ${expected}`,
    );
  }
  const raw = new Map<string, Uint8Array>();
  let offset = headerBytes;
  for (const k of order) {
    const n = dims[k].reduce((a, b) => a * b, 1) * 4;
    for (let l = 0; l < (perLayer.has(k) ? L : 1); l++) {
      raw.set(perLayer.has(k) ? `${k}.${l}` : k, bytes.subarray(offset, offset + n));
      offset += n;
    }
  }
  const weights = new Map<string, TensorData>();
  const put = (name: string, data: Uint8Array, d: number[]) => {
    weights.set(name, { name, dtype: "float32", dims: d, data });
  };
  put("model.embed_tokens.weight", raw.get("embed")!, dims.embed);
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    put(`${p}.input_layernorm.weight`, raw.get(`attn_norm.${l}`)!, dims.attn_norm);
    weights.set(`${p}.self_attn.q_proj.weight`, {
      name: `${p}.self_attn.q_proj.weight`,
      dtype: "float32",
      dims: dims.wq,
      data: permuteRowsForRotateHalf(raw.get(`wq.${l}`)!, { heads: h.n_heads, headDim, cols: h.dim }),
    });
    weights.set(`${p}.self_attn.k_proj.weight`, {
      name: `${p}.self_attn.k_proj.weight`,
      dtype: "float32",
      dims: dims.wk,
      data: permuteRowsForRotateHalf(raw.get(`wk.${l}`)!, { heads: h.n_kv_heads, headDim, cols: h.dim }),
    });
    put(`${p}.self_attn.v_proj.weight`, raw.get(`wv.${l}`)!, dims.wv);
    put(`${p}.self_attn.o_proj.weight`, raw.get(`wo.${l}`)!, dims.wo);
    put(`${p}.post_attention_layernorm.weight`, raw.get(`ffn_norm.${l}`)!, dims.ffn_norm);
    put(`${p}.mlp.gate_proj.weight`, raw.get(`w1.${l}`)!, dims.w1);
    put(`${p}.mlp.up_proj.weight`, raw.get(`w3.${l}`)!, dims.w3);
    put(`${p}.mlp.down_proj.weight`, raw.get(`w2.${l}`)!, dims.w2);
  }
  put("model.norm.weight", raw.get("norm")!, dims.norm);
  if (!shared) put("lm_head.weight", raw.get("output")!, dims.output);
  return { config, weights };
}

const BYTE_PIECE = /^<0x[0-9A-F]{2}>$/;

/**
 * Parses a llama2.c `tokenizer.bin` (int32 max token length, then per token: float32 score, int32 byte
 * length, UTF-8 bytes) into a SentencePiece vocabulary: spaces become `▁` again, llama2.c's `"\n<s>\n"`
 * and `"\n</s>\n"` become `<s>` and `</s>` (ids 1 and 2), `<unk>` is id 0, `<0xNN>` are byte pieces.
 *
 * @param bytes The whole file.
 * @param options The vocabulary size (from the checkpoint) and a file name for errors.
 * @returns The vocabulary.
 * @throws {Error} When the file is truncated, longer than the vocabulary, or not UTF-8.
 *
 * @example
 * ```ts ignore
 * import { parseLlama2cTokenizer } from "./llama2c.ts";
 * const vocab = parseLlama2cTokenizer(await Deno.readFile("tok512.bin"), { vocabSize: 512 });
 * console.log(vocab.pieces[259]); // "▁t"
 * ```
 */
export function parseLlama2cTokenizer(
  bytes: Uint8Array,
  options: ParseLlama2cOptions & { vocabSize: number },
): ScoredVocab {
  const file = options.file ?? "llama2.c tokenizer";
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const pieces: string[] = [];
  const scores: number[] = [];
  const types: PieceType[] = [];
  let offset = 4;
  for (let id = 0; id < options.vocabSize; id++) {
    if (offset + 8 > bytes.byteLength) {
      throw new Error(
        `Cannot read llama2.c tokenizer ${file}: it ends at token ${id} of ${options.vocabSize} (byte ${offset} of ${bytes.byteLength})`,
      );
    }
    const score = view.getFloat32(offset, true);
    const length = view.getInt32(offset + 4, true);
    offset += 8;
    if (length < 0 || offset + length > bytes.byteLength) {
      throw new Error(
        `Cannot read llama2.c tokenizer ${file}: token ${id} has invalid byte length ${length}`,
      );
    }
    let text: string;
    try {
      text = decoder.decode(bytes.subarray(offset, offset + length));
    } catch {
      throw new Error(`Cannot read llama2.c tokenizer ${file}: token ${id} is not valid UTF-8`);
    }
    offset += length;
    let type: PieceType = "normal";
    if (text === "\n<s>\n") {
      text = "<s>";
      type = "control";
    } else if (text === "\n</s>\n") {
      text = "</s>";
      type = "control";
    } else if (text === "<unk>" && id === 0) {
      type = "unknown";
    } else if (BYTE_PIECE.test(text)) {
      type = "byte";
    } else {
      text = text.replaceAll(" ", SPACE_MARK);
    }
    pieces.push(text);
    scores.push(score);
    types.push(type);
  }
  if (offset !== bytes.byteLength) {
    throw new Error(
      `Cannot read llama2.c tokenizer ${file}: ${
        bytes.byteLength - offset
      } bytes remain after ${options.vocabSize} tokens (is the vocabulary size right?)`,
    );
  }
  if (pieces[1] !== "<s>" || pieces[2] !== "</s>") {
    throw new Error(
      `Cannot read llama2.c tokenizer ${file}: tokens 1 and 2 are ${JSON.stringify(pieces[1])} and ${
        JSON.stringify(pieces[2])
      }, expected llama2.c's BOS "\\n<s>\\n" and EOS "\\n</s>\\n"`,
    );
  }
  return { pieces, scores, types, unkId: 0, bosId: 1, eosId: 2 };
}
