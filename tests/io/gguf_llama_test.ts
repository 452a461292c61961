import assert from "node:assert/strict";
import { type GgufValue, parseGguf } from "../../src/io/gguf.ts";
import { ggufToHf } from "../../src/io/gguf_llama.ts";
import { f16ToF32, f32ToF16, float32Values } from "../../src/io/half.ts";
import { parseLlama2cCheckpoint, parseLlama2cTokenizer } from "../../src/io/llama2c.ts";
import {
  type GgufTestTensor,
  type GgufTestValue,
  requireStories260k,
  stories,
  writeGguf,
} from "./_helpers.ts";

const HAVE = requireStories260k("gguf_llama_test");

/** The GGUF type of a stories260K metadata value (integers as u32, the epsilon and scores as f32). */
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
 * Rewrites stories260K-f32.gguf as a version-3 file, optionally with F16 tensors, patched metadata, or
 * tensors replaced or removed.
 */
async function rewriteStories(options: {
  f16?: boolean;
  metadata?: Record<string, GgufTestValue | undefined>;
  tensors?: Record<string, Partial<GgufTestTensor> | undefined>;
}): Promise<Uint8Array> {
  const source = parseGguf(await Deno.readFile(stories().gguf));
  const metadata: [string, GgufTestValue][] = [];
  for (const [k, v] of source.metadata) {
    if (options.metadata && k in options.metadata) continue;
    metadata.push([k, typed(k, v)]);
  }
  for (const [k, v] of Object.entries(options.metadata ?? {})) if (v !== undefined) metadata.push([k, v]);
  const tensors: GgufTestTensor[] = [];
  for (const t of source.tensors.values()) {
    const base: GgufTestTensor = options.f16
      ? {
        name: t.name,
        type: 1,
        dims: t.dims,
        data: f32ToF16(float32Values({ ...t, dtype: "float32", data: t.data! })),
      }
      : { name: t.name, type: 0, dims: t.dims, data: t.data! };
    if (options.tensors && t.name in options.tensors) {
      const patch = options.tensors[t.name];
      if (patch !== undefined) tensors.push({ ...base, ...patch });
      continue;
    }
    tensors.push(base);
  }
  return writeGguf(3, metadata, tensors);
}

Deno.test({
  name: "stories260K-f32.gguf converts to the same config, weights and vocabulary as the llama2.c files",
  ignore: !HAVE,
  fn: async () => {
    const converted = ggufToHf(parseGguf(await Deno.readFile(stories().gguf)), {
      file: "stories260K-f32.gguf",
    });
    const reference = parseLlama2cCheckpoint(await Deno.readFile(stories().bin));
    assert.deepEqual(
      converted.config,
      reference.config,
      "rms eps 1e-5 (not f32 9.99e-6), tied, bos 1, eos 2",
    );
    assert.deepEqual([...converted.weights.keys()], [...reference.weights.keys()]);
    for (const [name, t] of reference.weights) assert.deepEqual(converted.weights.get(name), t, name);
    const vocab = parseLlama2cTokenizer(await Deno.readFile(stories().tok), { vocabSize: 512 });
    assert.deepEqual(converted.vocab.pieces, vocab.pieces);
    assert.deepEqual(converted.vocab.types, vocab.types);
    assert.deepEqual(converted.vocab.scores.map((s) => s + 0), vocab.scores.map((s) => s + 0));
    assert.equal(converted.chatTemplate, undefined);
  },
});

Deno.test({
  name:
    "F16 tensors are widened to float32 before the q/k permutation; a distinct output.weight becomes lm_head",
  ignore: !HAVE,
  fn: async () => {
    const reference = parseLlama2cCheckpoint(await Deno.readFile(stories().bin));
    const source = parseGguf(await Deno.readFile(stories().gguf));
    const embed = source.tensors.get("token_embd.weight")!;
    const output = new Float32Array(float32Values({ ...embed, dtype: "float32", data: embed.data! })).map((
      v,
    ) => v * 2);
    const bytes = await rewriteStories({
      f16: true,
      metadata: { "tokenizer.chat_template": { type: 8, value: "{{ messages }}" } },
      tensors: { "output.weight": { data: f32ToF16(output) } },
    });
    const converted = ggufToHf(parseGguf(bytes));
    assert.equal(converted.config.tieWordEmbeddings, false);
    assert.equal(converted.chatTemplate, "{{ messages }}");
    for (const [name, t] of reference.weights) {
      const expected = f16ToF32(f32ToF16(float32Values(t)));
      assert.deepEqual(float32Values(converted.weights.get(name)!), expected, name);
    }
    assert.deepEqual(float32Values(converted.weights.get("lm_head.weight")!), f16ToF32(f32ToF16(output)));
  },
});

Deno.test({
  name: "quantized tensors, other architectures or tokenizers, and missing or misshapen tensors are refused",
  ignore: !HAVE,
  fn: async () => {
    const convert = async (options: Parameters<typeof rewriteStories>[0]) =>
      ggufToHf(parseGguf(await rewriteStories(options)), { file: "m.gguf" });
    await assert.rejects(
      convert({
        tensors: {
          "blk.3.attn_k.weight": { type: 8, data: new Uint8Array(32 * 64 / 32 * 34) },
          "blk.3.attn_v.weight": { type: 2, data: new Uint8Array(32 * 64 / 32 * 18) },
        },
      }),
      /Cannot convert GGUF file m\.gguf: tensor "blk\.3\.attn_v\.weight" is Q4_0 but "blk\.3\.attn_k\.weight" is Q8_0; one quantized type per model is supported/,
    );
    await assert.rejects(
      convert({ tensors: { "blk.0.ffn_up.weight": { type: 12, data: new Uint8Array(64) } } }),
      /tensor "blk\.0\.ffn_up\.weight" has type Q4_K; only F32, F16, BF16, Q8_0 and Q4_0 tensors are supported/,
    );
    await assert.rejects(
      convert({ metadata: { "general.architecture": { type: 8, value: "qwen2" } } }),
      /metadata "general\.architecture" is "qwen2", only "llama" is supported/,
    );
    await assert.rejects(
      convert({ metadata: { "tokenizer.ggml.model": { type: 8, value: "gpt2" } } }),
      /metadata "tokenizer\.ggml\.model" is "gpt2", only "llama" \(SentencePiece BPE\) is supported/,
    );
    await assert.rejects(
      convert({ metadata: { "llama.block_count": undefined } }),
      /metadata "llama\.block_count" is missing/,
    );
    await assert.rejects(
      convert({ tensors: { "blk.2.attn_v.weight": undefined } }),
      /tensor "blk\.2\.attn_v\.weight" is missing/,
    );
    await assert.rejects(
      convert({ tensors: { "output_norm.weight": { dims: [32], data: new Uint8Array(128) } } }),
      /tensor "output_norm\.weight" has shape \[32\], expected \[64\]/,
    );
    await assert.rejects(
      convert({ metadata: { "llama.rope.dimension_count": { type: 4, value: 4 } } }),
      /"llama\.rope\.dimension_count" is 4 but the head dimension is 8 \(partial RoPE is not supported\)/,
    );
    await assert.rejects(
      convert({ metadata: { "llama.rope.scaling.type": { type: 8, value: "yarn" } } }),
      /metadata "llama\.rope\.scaling\.type" is "yarn", only "linear" is supported/,
    );
    const linear = await convert({
      metadata: {
        "llama.rope.scaling.type": { type: 8, value: "linear" },
        "llama.rope.scaling.factor": { type: 6, value: 4 },
        "llama.rope.freq_base": { type: 6, value: 500000 },
      },
    });
    assert.deepEqual([linear.config.ropeScaling, linear.config.ropeTheta], [
      { type: "linear", factor: 4 },
      500000,
    ]);
  },
});
