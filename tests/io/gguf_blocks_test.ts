// GGUF Q8_0/Q4_0 import: blocks written here per ggml's reference layout (quantize_row_q8_0_ref,
// quantize_row_q4_0_ref) must import as MatMulNBits weights that dequantize to the spec's values, equal
// this toolkit's own quantizer on the same values, and convert a whole model.

import assert from "node:assert/strict";
import { convertGguf } from "../../src/io/convert.ts";
import { type GgufValue, parseGguf } from "../../src/io/gguf.ts";
import { GGML_Q4_0, GGML_Q8_0, ggufBlocksToNBits } from "../../src/io/gguf_blocks.ts";
import { ggufToHf } from "../../src/io/gguf_llama.ts";
import { f16ToF32, f32ToF16, float32Values } from "../../src/io/half.ts";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { dequantizeNBits, quantizeNBits } from "../../src/io/quantize.ts";
import { dequantizeModelWeights } from "../../src/io/quantized_weights.ts";
import {
  type GgufTestTensor,
  type GgufTestValue,
  randomFloats,
  requireStories260k,
  rng,
  stories,
  withTempDir,
  writeGguf,
} from "./_helpers.ts";

const HAVE = requireStories260k("gguf_blocks_test");

/** The float16 bytes of one value. */
function half(x: number): Uint8Array {
  return f32ToF16(new Float32Array([x]));
}

/** ggml's reference Q8_0 encoder: per 32 values, d = max|x| / 127 (stored f16), q = roundf(x / d). */
function encodeQ8_0(values: Float32Array): Uint8Array {
  const out = new Uint8Array((values.length / 32) * 34);
  for (let b = 0; b < values.length / 32; b++) {
    const x = values.subarray(b * 32, b * 32 + 32);
    const amax = x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const d = amax / 127, id = d ? 1 / d : 0;
    out.set(half(d), b * 34);
    for (let j = 0; j < 32; j++) {
      const v = Math.fround(x[j] * id);
      out[b * 34 + 2 + j] = (v < 0 ? -Math.round(-v) : Math.round(v)) & 0xff;
    }
  }
  return out;
}

/** ggml's reference Q4_0 encoder: d = max / -8 (the value of largest magnitude), q = min(15, (int)(x/d + 8.5)). */
function encodeQ4_0(values: Float32Array): Uint8Array {
  const out = new Uint8Array((values.length / 32) * 18);
  for (let b = 0; b < values.length / 32; b++) {
    const x = values.subarray(b * 32, b * 32 + 32);
    let amax = 0, max = 0;
    for (const v of x) {
      if (Math.abs(v) > amax) [amax, max] = [Math.abs(v), v];
    }
    const d = max / -8, id = d ? 1 / d : 0;
    out.set(half(d), b * 18);
    for (let j = 0; j < 16; j++) {
      const lo = Math.min(15, Math.trunc(Math.fround(x[j] * id) + 8.5));
      const hi = Math.min(15, Math.trunc(Math.fround(x[j + 16] * id) + 8.5));
      out[b * 18 + 2 + j] = lo | (hi << 4);
    }
  }
  return out;
}

/** The spec's dequantization of Q8_0 / Q4_0 blocks. */
function decodeBlocks(type: number, bytes: Uint8Array): Float32Array {
  const blockBytes = type === GGML_Q8_0 ? 34 : 18;
  const n = bytes.byteLength / blockBytes;
  const out = new Float32Array(n * 32);
  for (let b = 0; b < n; b++) {
    const d = f16ToF32(bytes.subarray(b * blockBytes, b * blockBytes + 2))[0];
    const qs = bytes.subarray(b * blockBytes + 2, (b + 1) * blockBytes);
    for (let j = 0; j < 32; j++) {
      const q = type === GGML_Q8_0 ? (qs[j] << 24) >> 24 : (j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4) - 8;
      out[b * 32 + j] = d * q;
    }
  }
  return out;
}

const encode = (type: number, values: Float32Array) =>
  type === GGML_Q8_0 ? encodeQ8_0(values) : encodeQ4_0(values);

Deno.test("Q8_0 and Q4_0 blocks import as MatMulNBits weights that dequantize to the spec's values", () => {
  const [rows, cols] = [6, 96];
  const values = randomFloats(rows * cols, rng(11));
  for (let i = 0; i < values.length; i += 29) values[i] *= 8;
  for (const type of [GGML_Q8_0, GGML_Q4_0]) {
    const blocks = encode(type, values);
    const q = ggufBlocksToNBits(type, blocks, { rows, cols });
    assert.deepEqual([q.bits, q.blockSize, q.zeroPoints], [type === GGML_Q8_0 ? 8 : 4, 32, undefined]);
    assert.deepEqual(dequantizeNBits(q), decodeBlocks(type, blocks), `type ${type}`);
  }
  assert.throws(
    () => ggufBlocksToNBits(GGML_Q8_0, new Uint8Array(33), { rows: 1, cols: 32 }),
    /Cannot read GGUF blocks: 33 bytes for 1 blocks of 34 bytes \(\[1, 32\]\)/,
  );
  assert.throws(
    () => ggufBlocksToNBits(12, new Uint8Array(0), { rows: 1, cols: 32 }),
    /only Q8_0 \(8\) and Q4_0 \(2\)/,
  );
});

Deno.test("GGUF Q8_0/Q4_0 import equals this toolkit's quantizer on the same values", () => {
  // blocks whose scale is a power of two (float16-exact), so both sides round the same values with the
  // same scale: the import must give byte-identical codes and equal scales
  const [rows, cols] = [5, 64];
  const next = rng(5);
  for (const type of [GGML_Q8_0, GGML_Q4_0]) {
    const values = new Float32Array(rows * cols);
    for (let b = 0; b < (rows * cols) / 32; b++) {
      const d = 2 ** -(2 + Math.floor(next() * 6));
      for (let j = 0; j < 32; j++) {
        const code = type === GGML_Q8_0 ? Math.round(next() * 254) - 127 : Math.floor(next() * 15) - 7;
        values[b * 32 + j] = code * d;
      }
      values[b * 32 + Math.floor(next() * 32)] = (type === GGML_Q8_0 ? (next() < 0.5 ? 127 : -127) : -8) * d;
    }
    const imported = ggufBlocksToNBits(type, encode(type, values), { rows, cols });
    const ours = quantizeNBits(values, { rows, cols }, { bits: type === GGML_Q8_0 ? 8 : 4, blockSize: 32 });
    assert.deepEqual(imported, ours, `type ${type}`);
    assert.deepEqual(dequantizeNBits(ours), values, "and both give the values back");
  }
});

/** The GGUF type of a stories260K metadata value (as gguf_llama_test writes them). */
function typed(key: string, value: GgufValue): GgufTestValue {
  if (typeof value === "string") return { type: 8, value };
  if (Array.isArray(value)) {
    const elementType = key.endsWith("tokens") ? 8 : key.endsWith("scores") ? 6 : 5;
    return { type: 9, elementType, value: value as (string | number)[] };
  }
  if (typeof value === "number" && Number.isInteger(value) && !key.includes("epsilon")) {
    return { type: 4, value };
  }
  return { type: 6, value: value as number };
}

/**
 * stories260K-f32.gguf rewritten with every 2-D tensor whose rows are a multiple of 32 stored as `type`
 * (`quantized`), or as float32 holding those blocks' dequantized values (`reference`).
 */
async function rewriteQuantized(type: number): Promise<{ quantized: Uint8Array; reference: Uint8Array }> {
  const source = parseGguf(await Deno.readFile(stories().gguf));
  const metadata = [...source.metadata].map(([k, v]) => [k, typed(k, v)] as [string, GgufTestValue]);
  const quantized: GgufTestTensor[] = [], reference: GgufTestTensor[] = [];
  for (const t of source.tensors.values()) {
    const plain: GgufTestTensor = { name: t.name, type: 0, dims: t.dims, data: t.data! };
    if (t.dims.length !== 2 || t.ne[0] % 32 !== 0) {
      quantized.push(plain);
      reference.push(plain);
      continue;
    }
    const blocks = encode(type, float32Values({ ...t, dtype: "float32", data: t.data! }));
    quantized.push({ name: t.name, type, dims: t.dims, data: blocks });
    reference.push({ ...plain, data: new Uint8Array(decodeBlocks(type, blocks).buffer) });
  }
  return { quantized: writeGguf(3, metadata, quantized), reference: writeGguf(3, metadata, reference) };
}

Deno.test({
  name:
    "a stories260K GGUF with Q8_0 or Q4_0 layers converts to a quantized folder equal to its dequantized twin",
  ignore: !HAVE,
  fn: async () => {
    for (const type of [GGML_Q8_0, GGML_Q4_0]) {
      const { quantized, reference } = await rewriteQuantized(type);
      const q = ggufToHf(parseGguf(quantized), { file: "q.gguf" });
      const f = ggufToHf(parseGguf(reference), { file: "f.gguf" });
      assert.deepEqual(q.config.quantization, {
        bits: type === GGML_Q8_0 ? 8 : 4,
        blockSize: 32,
        symmetric: true,
      });
      assert.deepEqual({ ...q.config, quantization: undefined }, { ...f.config, quantization: undefined });
      // q/k/v/o and gate/up (64 inputs) are quantized; down_proj (172 inputs) and the embedding stay float
      assert.ok(q.weights.has("model.layers.0.self_attn.q_proj.qweight"));
      assert.ok(q.weights.has("model.layers.4.mlp.up_proj.qweight"));
      assert.ok(q.weights.has("model.layers.0.mlp.down_proj.weight"));
      assert.equal(q.weights.get("model.embed_tokens.weight")!.dtype, "float32");
      const back = dequantizeModelWeights(q);
      assert.deepEqual([...back.weights.keys()], [...f.weights.keys()]);
      for (const [name, t] of f.weights) {
        assert.deepEqual(float32Values(back.weights.get(name)!), float32Values(t), `${type}: ${name}`);
      }
      await withTempDir(async (dir) => {
        await Deno.writeFile(`${dir}/q.gguf`, quantized);
        const summary = await convertGguf({ model: `${dir}/q.gguf`, out: `${dir}/q` });
        assert.deepEqual(summary.quantization, q.config.quantization);
        const folder = await loadModelFolder(`${dir}/q`);
        assert.deepEqual(folder.config.quantization, q.config.quantization);
        assert.deepEqual([...folder.weights.keys()], [...q.weights.keys()]);
        for (const [name, t] of q.weights) assert.deepEqual(folder.weights.get(name)!.data, t.data, name);
        await assert.rejects(
          convertGguf({
            model: `${dir}/q.gguf`,
            out: `${dir}/q2`,
            quantization: { bits: 8, blockSize: 32, symmetric: true },
          }),
          /its linear layers are already quantized .* convert it without --quantize/,
        );
      });
    }
  },
});
