// Helpers shared by the io tests: temporary folders, a tiny Llama config with random weights, the
// stories260K paths, and a minimal GGUF writer for synthetic files.

import type { LlamaConfig } from "../../src/models/config.ts";
import type { TensorData } from "../../src/onnx/types.ts";
import { llamaWeightShapes } from "../../src/io/llama_weights.ts";
import { stories260kDir } from "../_util/fixtures.ts";

export { requireStories260k } from "../_util/fixtures.ts";

/** Paths of the stories260K files. */
export function stories(): { bin: string; tok: string; gguf: string } {
  const dir = stories260kDir();
  return { bin: `${dir}/stories260K.bin`, tok: `${dir}/tok512.bin`, gguf: `${dir}/stories260K-f32.gguf` };
}

/** Runs `fn` with a fresh temporary folder, removed afterwards. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "weightlora-io-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A small GQA Llama config. */
export const TINY_CONFIG: LlamaConfig = {
  architecture: "llama",
  vocabSize: 32,
  hiddenSize: 16,
  intermediateSize: 24,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 4,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  maxPositionEmbeddings: 64,
  tieWordEmbeddings: false,
  attentionBias: false,
  bosTokenId: 1,
  eosTokenIds: [2],
};

/** A deterministic pseudo-random generator (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random float32 values in [-1, 1). */
export function randomFloats(n: number, next: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = next() * 2 - 1;
  return out;
}

/** Random float32 weights for every tensor of `config`. */
export function randomWeights(config: LlamaConfig, seed = 1): TensorData[] {
  const next = rng(seed);
  return [...llamaWeightShapes(config)].map(([name, dims]) => {
    const values = randomFloats(dims.reduce((a, b) => a * b, 1), next);
    return { name, dtype: "float32", dims, data: new Uint8Array(values.buffer) };
  });
}

/** A minimal Llama-style tokenizer.json (byte-fallback BPE over a few pieces) for tiny test folders. */
export function tinyTokenizerJson(vocabSize: number): Record<string, unknown> {
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  const pieces = ["\u2581", "a", "b", "c", "\u2581a", "ab"];
  pieces.forEach((p, i) => (vocab[p] = 3 + i));
  for (let id = 3 + pieces.length; id < vocabSize; id++) vocab[`x${id}`] = id;
  return {
    version: "1.0",
    added_tokens: [0, 1, 2].map((id) => ({
      id,
      content: ["<unk>", "<s>", "</s>"][id],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: "Sequence",
      normalizers: [{ type: "Prepend", prepend: "\u2581" }, {
        type: "Replace",
        pattern: { String: " " },
        content: "\u2581",
      }],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "\u2581" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      unk_token: "<unk>",
      byte_fallback: true,
      vocab,
      merges: [["\u2581", "a"], ["a", "b"]],
    },
  };
}

/** Writes JSON with a newline. */
export async function writeJson(path: string, value: unknown): Promise<void> {
  await Deno.writeTextFile(path, JSON.stringify(value, null, 2) + "\n");
}

/** A GGUF metadata value with its GGUF type code (8 string, 9 array, 4 u32, 6 f32, …). */
export type GgufTestValue =
  | { type: 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 10 | 11 | 12; value: number | bigint | boolean }
  | { type: 8; value: string }
  | { type: 9; elementType: number; value: (number | string | boolean)[] };

/** A GGUF tensor for the writer: ggml type code, row-major dims, bytes. */
export interface GgufTestTensor {
  name: string;
  type: number;
  dims: number[];
  data: Uint8Array;
}

/** Writes a little-endian GGUF file (version 1, 2 or 3) with 32-byte alignment. */
export function writeGguf(
  version: 1 | 2 | 3,
  metadata: [string, GgufTestValue][],
  tensors: GgufTestTensor[],
): Uint8Array {
  const chunks: Uint8Array[] = [];
  let length = 0;
  const push = (b: Uint8Array) => {
    chunks.push(b);
    length += b.byteLength;
  };
  const num = (bytes: number, set: (v: DataView) => void) => {
    const b = new Uint8Array(bytes);
    set(new DataView(b.buffer));
    push(b);
  };
  const u32 = (v: number) => num(4, (d) => d.setUint32(0, v, true));
  const u64 = (v: number | bigint) => num(8, (d) => d.setBigUint64(0, BigInt(v), true));
  const size = (v: number) => (version === 1 ? u32(v) : u64(v));
  const str = (s: string) => {
    const b = new TextEncoder().encode(s);
    size(b.byteLength);
    push(b);
  };
  const scalar = (type: number, v: number | bigint | boolean | string) => {
    switch (type) {
      case 0:
        return num(1, (d) => d.setUint8(0, Number(v)));
      case 1:
        return num(1, (d) => d.setInt8(0, Number(v)));
      case 2:
        return num(2, (d) => d.setUint16(0, Number(v), true));
      case 3:
        return num(2, (d) => d.setInt16(0, Number(v), true));
      case 4:
        return u32(Number(v));
      case 5:
        return num(4, (d) => d.setInt32(0, Number(v), true));
      case 6:
        return num(4, (d) => d.setFloat32(0, Number(v), true));
      case 7:
        return num(1, (d) => d.setUint8(0, v ? 1 : 0));
      case 8:
        return str(String(v));
      case 10:
        return u64(BigInt(v as number));
      case 11:
        return num(8, (d) => d.setBigInt64(0, BigInt(v as number), true));
      case 12:
        return num(8, (d) => d.setFloat64(0, Number(v), true));
      default:
        throw new Error(`writeGguf: type ${type}`);
    }
  };
  push(new TextEncoder().encode("GGUF"));
  u32(version);
  size(tensors.length);
  size(metadata.length);
  for (const [key, v] of metadata) {
    str(key);
    u32(v.type);
    if (v.type === 9) {
      u32(v.elementType);
      size(v.value.length);
      for (const e of v.value) scalar(v.elementType, e);
    } else {
      scalar(v.type, v.value);
    }
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    str(t.name);
    u32(t.dims.length);
    for (const d of [...t.dims].reverse()) (version === 1 ? u32 : u64)(d);
    u32(t.type);
    u64(offset);
    offsets.push(offset);
    offset = Math.ceil((offset + t.data.byteLength) / 32) * 32;
  }
  const dataStart = Math.ceil(length / 32) * 32;
  const out = new Uint8Array(dataStart + offset);
  let p = 0;
  for (const c of chunks) {
    out.set(c, p);
    p += c.byteLength;
  }
  tensors.forEach((t, i) => out.set(t.data, dataStart + offsets[i]));
  return out;
}
