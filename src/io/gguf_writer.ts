/**
 * A GGUF writer (version 3, little-endian, F32 tensors): {@linkcode encodeGguf} lays out typed metadata
 * and tensors, and {@linkcode llamaToGguf} writes a Hugging Face-layout Llama checkpoint (float32) with
 * its SentencePiece vocabulary the way llama.cpp's converter does — the inverse of
 * {@linkcode ggufToHf}: llama.cpp names (`blk.N.attn_q.weight`, …), q/k rows back in Meta's interleaved
 * RoPE order, `llama.*` and `tokenizer.ggml.*` metadata, the output matrix left out when tied.
 *
 * Layout: magic `GGUF`, version 3, tensor count and KV count (u64), the KVs (u64-length string key, u32
 * value type, value), the tensor infos (name, u32 rank, u64 dims innermost first, u32 ggml type, u64
 * offset into the data), padding to `general.alignment` (32), then each tensor's data padded to it.
 *
 * @module
 */

import type { LlamaConfig } from "../models/config.ts";
import type { TensorData } from "../onnx/types.ts";
import { llamaWeightShapes } from "./llama_weights.ts";
import type { PieceType, ScoredVocab } from "./sentencepiece_bpe.ts";

/** A typed metadata value (GGUF keeps the type of every value). */
export type GgufWriteValue =
  | { type: "uint32"; value: number }
  | { type: "int32"; value: number }
  | { type: "float32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "string[]"; value: readonly string[] }
  | { type: "float32[]"; value: readonly number[] }
  | { type: "int32[]"; value: readonly number[] };

/** An F32 tensor to write. */
export interface GgufWriteTensor {
  /** Tensor name. */
  name: string;
  /** Dimensions outermost first (row-major, as ONNX and PyTorch list them); GGUF stores them reversed. */
  dims: readonly number[];
  /** float32 data, row-major. */
  data: Float32Array | Uint8Array;
}

/** What {@linkcode encodeGguf} writes. */
export interface GgufContents {
  /** Metadata in file order (`general.alignment`, when given, must be a `uint32`). */
  metadata: ReadonlyMap<string, GgufWriteValue>;
  /** Tensors in file order. */
  tensors: readonly GgufWriteTensor[];
}

const VALUE_TYPES = { uint32: 4, int32: 5, float32: 6, bool: 7, string: 8, array: 9 } as const;
const ELEMENT_TYPES = { "string[]": VALUE_TYPES.string, "float32[]": VALUE_TYPES.float32, "int32[]": 5 };
const GGML_F32 = 0;

/** A growable little-endian byte sink. */
class Sink {
  #bytes = new Uint8Array(1 << 16);
  #view = new DataView(this.#bytes.buffer);
  length = 0;
  readonly #encoder = new TextEncoder();

  #reserve(n: number): void {
    if (this.length + n <= this.#bytes.length) return;
    let size = this.#bytes.length * 2;
    while (size < this.length + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.#bytes.subarray(0, this.length));
    this.#bytes = grown;
    this.#view = new DataView(grown.buffer);
  }
  u32(v: number): void {
    this.#reserve(4);
    this.#view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number): void {
    this.#reserve(4);
    this.#view.setInt32(this.length, v, true);
    this.length += 4;
  }
  f32(v: number): void {
    this.#reserve(4);
    this.#view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number): void {
    this.#reserve(8);
    this.#view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  bytes(b: Uint8Array): void {
    this.#reserve(b.byteLength);
    this.#bytes.set(b, this.length);
    this.length += b.byteLength;
  }
  string(s: string): void {
    const b = this.#encoder.encode(s);
    this.u64(b.byteLength);
    this.bytes(b);
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.#reserve(n);
    this.#bytes.fill(0, this.length, this.length + n);
    this.length += n;
  }
  finish(): Uint8Array {
    return this.#bytes.slice(0, this.length);
  }
}

function writeValue(sink: Sink, key: string, v: GgufWriteValue): void {
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new RangeError(`Cannot write GGUF metadata "${key}": ${what}`);
  };
  switch (v.type) {
    case "uint32":
      check(Number.isInteger(v.value) && v.value >= 0 && v.value < 2 ** 32, `${v.value} is not a uint32`);
      sink.u32(VALUE_TYPES.uint32);
      sink.u32(v.value);
      return;
    case "int32":
      check(Number.isInteger(v.value) && Math.abs(v.value) < 2 ** 31, `${v.value} is not an int32`);
      sink.u32(VALUE_TYPES.int32);
      sink.i32(v.value);
      return;
    case "float32":
      sink.u32(VALUE_TYPES.float32);
      sink.f32(v.value);
      return;
    case "bool":
      sink.u32(VALUE_TYPES.bool);
      sink.bytes(new Uint8Array([v.value ? 1 : 0]));
      return;
    case "string":
      sink.u32(VALUE_TYPES.string);
      sink.string(v.value);
      return;
    default: {
      sink.u32(VALUE_TYPES.array);
      sink.u32(ELEMENT_TYPES[v.type]);
      sink.u64(v.value.length);
      if (v.type === "string[]") { for (const s of v.value) sink.string(s); }
      else if (v.type === "float32[]") { for (const x of v.value) sink.f32(x); }
      else {
        for (const x of v.value) {
          check(Number.isInteger(x) && Math.abs(x) < 2 ** 31, `item ${x} is not an int32`);
          sink.i32(x);
        }
      }
    }
  }
}

/**
 * Encodes a GGUF version 3 file with F32 tensors.
 *
 * @param contents Metadata and tensors, in file order.
 * @returns The file's bytes.
 * @throws {RangeError} When a tensor's data does not match its dims, two tensors share a name, or a
 *   metadata value does not fit its type (naming the key or tensor).
 * @example
 * ```ts
 * import { encodeGguf } from "./gguf_writer.ts";
 * import { parseGguf } from "./gguf.ts";
 * const bytes = encodeGguf({
 *   metadata: new Map([["general.architecture", { type: "string", value: "llama" }]]),
 *   tensors: [{ name: "w", dims: [2, 3], data: new Float32Array(6).fill(1) }],
 * });
 * const gguf = parseGguf(bytes);
 * console.assert(gguf.version === 3 && gguf.tensors.get("w")!.ne.join() === "3,2");
 * ```
 */
export function encodeGguf(contents: GgufContents): Uint8Array {
  const alignmentValue = contents.metadata.get("general.alignment");
  let alignment = 32;
  if (alignmentValue !== undefined) {
    if (alignmentValue.type !== "uint32" || alignmentValue.value <= 0 || alignmentValue.value % 8 !== 0) {
      throw new RangeError(`Cannot write GGUF metadata "general.alignment": expected a uint32 multiple of 8`);
    }
    alignment = alignmentValue.value;
  }
  const sink = new Sink();
  sink.bytes(new TextEncoder().encode("GGUF"));
  sink.u32(3);
  sink.u64(contents.tensors.length);
  sink.u64(contents.metadata.size);
  for (const [key, value] of contents.metadata) {
    sink.string(key);
    writeValue(sink, key, value);
  }
  const names = new Set<string>();
  const datas: Uint8Array[] = [];
  let offset = 0;
  for (const t of contents.tensors) {
    if (names.has(t.name)) {
      throw new RangeError(`Cannot write GGUF tensor "${t.name}": the name is used twice`);
    }
    names.add(t.name);
    const count = t.dims.reduce((a, b) => a * b, 1);
    const data = t.data instanceof Float32Array
      ? new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)
      : t.data;
    if (data.byteLength !== count * 4) {
      throw new RangeError(
        `Cannot write GGUF tensor "${t.name}": ${data.byteLength} bytes do not hold float32 [${t.dims}]`,
      );
    }
    sink.string(t.name);
    sink.u32(t.dims.length);
    for (const d of [...t.dims].reverse()) sink.u64(d);
    sink.u32(GGML_F32);
    sink.u64(offset);
    datas.push(data);
    offset += Math.ceil(data.byteLength / alignment) * alignment;
  }
  sink.pad(alignment);
  for (const data of datas) {
    sink.bytes(data);
    sink.pad(alignment);
  }
  return sink.finish();
}

/** A converted Llama checkpoint and its vocabulary, as {@linkcode llamaToGguf} takes it. */
export interface LlamaGgufSource {
  /** Model shape (`llama` architecture, no biases, RoPE on the whole head). */
  config: LlamaConfig;
  /** float32 weights by Hugging Face name (rotate-half q/k rows). */
  weights: ReadonlyMap<string, TensorData>;
  /** SentencePiece vocabulary (as many pieces as `config.vocabSize`). */
  vocab: ScoredVocab;
}

/** Options of {@linkcode llamaToGguf}. */
export interface LlamaToGgufOptions {
  /** `general.name`. @default {"llama"} */
  name?: string;
}

const TOKEN_TYPES: Record<PieceType, number> = {
  normal: 1,
  unknown: 2,
  control: 3,
  user_defined: 4,
  unused: 5,
  byte: 6,
};

const LAYER_TENSORS: readonly [string, string][] = [
  ["input_layernorm.weight", "attn_norm.weight"],
  ["self_attn.q_proj.weight", "attn_q.weight"],
  ["self_attn.k_proj.weight", "attn_k.weight"],
  ["self_attn.v_proj.weight", "attn_v.weight"],
  ["self_attn.o_proj.weight", "attn_output.weight"],
  ["post_attention_layernorm.weight", "ffn_norm.weight"],
  ["mlp.gate_proj.weight", "ffn_gate.weight"],
  ["mlp.down_proj.weight", "ffn_down.weight"],
  ["mlp.up_proj.weight", "ffn_up.weight"],
];

/** Rotate-half q/k rows back to Meta's interleaved pairs: Meta row `h*d + 2j + i` is HF row `h*d + i*d/2 + j`. */
function permuteRowsToInterleaved(bytes: Uint8Array, heads: number, headDim: number): Uint8Array {
  const rowBytes = bytes.byteLength / (heads * headDim);
  const out = new Uint8Array(bytes.byteLength);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < half; j++) {
        const src = (h * headDim + i * half + j) * rowBytes;
        out.set(bytes.subarray(src, src + rowBytes), (h * headDim + 2 * j + i) * rowBytes);
      }
    }
  }
  return out;
}

/**
 * Writes a Llama checkpoint (Hugging Face names, float32) and its SentencePiece vocabulary as a GGUF file
 * that llama.cpp loads (`tokenizer.ggml.model` "llama", F32 tensors).
 *
 * @param source Config, weights and vocabulary.
 * @param options `general.name`.
 * @returns The GGUF file's bytes.
 * @throws {RangeError} When the config is not a plain Llama (biases, RoPE scaling, another architecture),
 *   a weight is missing or misshapen, or the vocabulary size differs from the config's.
 * @example
 * ```ts ignore
 * import { parseLlama2cCheckpoint, parseLlama2cTokenizer } from "./llama2c.ts";
 * import { llamaToGguf } from "./gguf_writer.ts";
 * const { config, weights } = parseLlama2cCheckpoint(await Deno.readFile("stories260K.bin"));
 * const vocab = parseLlama2cTokenizer(await Deno.readFile("tok512.bin"), { vocabSize: config.vocabSize });
 * await Deno.writeFile("stories260K.gguf", llamaToGguf({ config, weights, vocab }));
 * ```
 */
export function llamaToGguf(source: LlamaGgufSource, options: LlamaToGgufOptions = {}): Uint8Array {
  const { config, weights, vocab } = source;
  const fail = (what: string): never => {
    throw new RangeError(`Cannot write a llama GGUF file: ${what}`);
  };
  if (config.architecture !== "llama") fail(`architecture "${config.architecture}" is not "llama"`);
  if (config.attentionBias) fail("attention biases are not supported");
  if (config.ropeScaling !== undefined) fail(`RoPE scaling "${config.ropeScaling.type}" is not supported`);
  if (vocab.pieces.length !== config.vocabSize) {
    fail(`the vocabulary has ${vocab.pieces.length} pieces, the config ${config.vocabSize}`);
  }
  const tensor = (name: string): Uint8Array => {
    const t = weights.get(name) ?? fail(`weight "${name}" is missing`);
    const expected = llamaWeightShapes(config).get(name)!;
    if (t.dtype !== "float32" || t.dims.join() !== expected.join()) {
      fail(`weight "${name}" is ${t.dtype} [${t.dims}], expected float32 [${expected}]`);
    }
    return t.data;
  };
  const u32 = (value: number): GgufWriteValue => ({ type: "uint32", value });
  const metadata = new Map<string, GgufWriteValue>([
    ["general.architecture", { type: "string", value: "llama" }],
    ["general.name", { type: "string", value: options.name ?? "llama" }],
    ["general.file_type", u32(0)],
    ["general.alignment", u32(32)],
    ["llama.context_length", u32(config.maxPositionEmbeddings)],
    ["llama.embedding_length", u32(config.hiddenSize)],
    ["llama.block_count", u32(config.numHiddenLayers)],
    ["llama.feed_forward_length", u32(config.intermediateSize)],
    ["llama.rope.dimension_count", u32(config.headDim)],
    ["llama.attention.head_count", u32(config.numAttentionHeads)],
    ["llama.attention.head_count_kv", u32(config.numKeyValueHeads)],
    ["llama.attention.key_length", u32(config.headDim)],
    ["llama.attention.value_length", u32(config.headDim)],
    ["llama.attention.layer_norm_rms_epsilon", { type: "float32", value: config.rmsNormEps }],
    ["llama.rope.freq_base", { type: "float32", value: config.ropeTheta }],
    ["llama.vocab_size", u32(config.vocabSize)],
    ["tokenizer.ggml.model", { type: "string", value: "llama" }],
    ["tokenizer.ggml.tokens", { type: "string[]", value: vocab.pieces }],
    ["tokenizer.ggml.scores", { type: "float32[]", value: vocab.scores }],
    ["tokenizer.ggml.token_type", { type: "int32[]", value: vocab.types.map((t) => TOKEN_TYPES[t]) }],
    ["tokenizer.ggml.unknown_token_id", u32(vocab.unkId)],
  ]);
  const bos = vocab.bosId ?? config.bosTokenId;
  const eos = vocab.eosId ?? config.eosTokenIds[0];
  if (bos !== undefined) metadata.set("tokenizer.ggml.bos_token_id", u32(bos));
  if (eos !== undefined) metadata.set("tokenizer.ggml.eos_token_id", u32(eos));
  metadata.set("tokenizer.ggml.add_bos_token", { type: "bool", value: bos !== undefined });
  metadata.set("tokenizer.ggml.add_eos_token", { type: "bool", value: false });

  const tensors: GgufWriteTensor[] = [
    {
      name: "token_embd.weight",
      dims: [config.vocabSize, config.hiddenSize],
      data: tensor("model.embed_tokens.weight"),
    },
  ];
  for (let l = 0; l < config.numHiddenLayers; l++) {
    for (const [hf, gguf] of LAYER_TENSORS) {
      const name = `model.layers.${l}.${hf}`;
      let data = tensor(name);
      if (hf === "self_attn.q_proj.weight") {
        data = permuteRowsToInterleaved(data, config.numAttentionHeads, config.headDim);
      }
      if (hf === "self_attn.k_proj.weight") {
        data = permuteRowsToInterleaved(data, config.numKeyValueHeads, config.headDim);
      }
      tensors.push({ name: `blk.${l}.${gguf}`, dims: weights.get(name)!.dims, data });
    }
  }
  tensors.push({ name: "output_norm.weight", dims: [config.hiddenSize], data: tensor("model.norm.weight") });
  if (!config.tieWordEmbeddings) {
    tensors.push({
      name: "output.weight",
      dims: [config.vocabSize, config.hiddenSize],
      data: tensor("lm_head.weight"),
    });
  }
  return encodeGguf({ metadata, tensors });
}
