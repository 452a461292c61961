import assert from "node:assert/strict";
import { STORIES260K_CONFIG } from "../_util/fixtures.ts";
import { float32Values } from "../../src/io/half.ts";
import { parseLlama2cCheckpoint, parseLlama2cTokenizer } from "../../src/io/llama2c.ts";
import { llamaWeightShapes } from "../../src/io/llama_weights.ts";
import { createTokenizer } from "../../src/io/tokenizer.ts";
import { sentencePieceTokenizerConfig, sentencePieceTokenizerJson } from "../../src/io/sentencepiece_bpe.ts";
import { argmax, hfLlamaForward } from "./_hf_llama_reference.ts";
import { llama2cForward, readLlama2cModel } from "./_llama2c_reference.ts";
import { requireStories260k, stories } from "./_helpers.ts";

const HAVE = requireStories260k("llama2c_test");

Deno.test({
  name: "stories260K.bin: config, Hugging Face names and shapes, tied classifier",
  ignore: !HAVE,
  fn: async () => {
    const { config, weights } = parseLlama2cCheckpoint(await Deno.readFile(stories().bin), {
      file: "stories260K.bin",
    });
    assert.deepEqual(config, STORIES260K_CONFIG);
    const shapes = llamaWeightShapes(config);
    assert.deepEqual([...weights.keys()], [...shapes.keys()]);
    for (const [name, t] of weights) assert.deepEqual(t.dims, shapes.get(name), name);
    assert.equal([...weights.values()].reduce((a, t) => a + t.data.byteLength / 4, 0), 260032);
  },
});

Deno.test({
  name: "q/k rows are permuted per head (k over n_kv_heads) to rotate-half; other tensors are copied",
  ignore: !HAVE,
  fn: async () => {
    const bytes = await Deno.readFile(stories().bin);
    const raw = readLlama2cModel(bytes);
    const { weights } = parseLlama2cCheckpoint(bytes);
    const dim = 64;
    const hd = 8;
    for (const [name, src, heads] of [["q_proj", raw.wq, 8], ["k_proj", raw.wk, 4]] as const) {
      const rows = heads * hd;
      for (let l = 0; l < 5; l++) {
        const hf = float32Values(weights.get(`model.layers.${l}.self_attn.${name}.weight`)!);
        const meta = src.subarray(l * rows * dim, (l + 1) * rows * dim);
        for (let h = 0; h < heads; h++) {
          for (let i = 0; i < 2; i++) {
            for (let j = 0; j < hd / 2; j++) {
              const hfRow = h * hd + i * (hd / 2) + j;
              const metaRow = h * hd + 2 * j + i;
              assert.deepEqual(
                hf.subarray(hfRow * dim, (hfRow + 1) * dim),
                meta.subarray(metaRow * dim, (metaRow + 1) * dim),
              );
            }
          }
        }
      }
    }
    assert.deepEqual(
      float32Values(weights.get("model.layers.2.mlp.up_proj.weight")!),
      raw.w3.subarray(2 * 172 * 64, 3 * 172 * 64),
    );
    assert.deepEqual(
      float32Values(weights.get("model.layers.4.mlp.down_proj.weight")!),
      raw.w2.subarray(4 * 172 * 64, 5 * 172 * 64),
    );
    assert.deepEqual(float32Values(weights.get("model.embed_tokens.weight")!), raw.tokenEmbedding);
  },
});

Deno.test({
  name: "converted weights under a rotate-half forward give llama2.c's logits and its golden story",
  ignore: !HAVE,
  fn: async () => {
    const bytes = await Deno.readFile(stories().bin);
    const raw = readLlama2cModel(bytes);
    const { config, weights } = parseLlama2cCheckpoint(bytes);
    const tokens = [1, 403, 407, 261, 378, 11, 365, 2];
    const reference = llama2cForward(raw, tokens);
    const converted = hfLlamaForward(config, weights, tokens);
    let maxDiff = 0;
    reference.forEach((row, t) =>
      row.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - converted[t][i]))))
    );
    assert.ok(maxDiff < 1e-9, `max |logit difference| ${maxDiff}`);

    // Greedy decoding from BOS reproduces the story llama2.c publishes for this model.
    const vocab = parseLlama2cTokenizer(await Deno.readFile(stories().tok), { vocabSize: 512 });
    const tok = createTokenizer(sentencePieceTokenizerJson(vocab), {
      config: sentencePieceTokenizerConfig(vocab, { modelMaxLength: 512 }),
    });
    const ids = [1];
    while (ids.length < 32) ids.push(argmax(hfLlamaForward(config, weights, ids).at(-1)!));
    assert.equal(
      tok.decode(ids, { skipSpecialTokens: true }),
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
    );
  },
});

/** Rewrites a legacy v0 checkpoint in llama2.c's v1 layout (export.py `version1_export`). */
function toVersion1(v0: Uint8Array): Uint8Array {
  const header = new Int32Array(v0.slice(0, 28).buffer);
  const [dim, hidden, layers, heads, kvHeads, vocab, seq] = header;
  const kvDim = (dim / heads) * kvHeads;
  const floats = new Float32Array(v0.slice(28).buffer);
  let o = 0;
  const take = (n: number) => floats.subarray(o, o += n);
  const emb = take(vocab * dim);
  const attNorm = take(layers * dim);
  const wq = take(layers * dim * dim);
  const wk = take(layers * kvDim * dim);
  const wv = take(layers * kvDim * dim);
  const wo = take(layers * dim * dim);
  const ffnNorm = take(layers * dim);
  const w1 = take(layers * hidden * dim);
  const w2 = take(layers * hidden * dim);
  const w3 = take(layers * hidden * dim);
  const norm = take(dim);
  const parts = [attNorm, ffnNorm, norm, emb, wq, wk, wv, wo, w1, w2, w3];
  const out = new Uint8Array(256 + parts.reduce((a, p) => a + p.byteLength, 0));
  const view = new DataView(out.buffer);
  view.setUint32(0, 0x616b3432, true);
  view.setInt32(4, 1, true);
  [dim, hidden, layers, heads, kvHeads, vocab, seq].forEach((v, i) => view.setInt32(8 + 4 * i, v, true));
  view.setUint8(36, 1);
  let p = 256;
  for (const part of parts) {
    out.set(new Uint8Array(part.buffer, part.byteOffset, part.byteLength), p);
    p += part.byteLength;
  }
  return out;
}

Deno.test({
  name: "the v1 (ak42) layout gives the same tensors as the legacy layout; v2 and bad files are refused",
  ignore: !HAVE,
  fn: async () => {
    const v0 = await Deno.readFile(stories().bin);
    const a = parseLlama2cCheckpoint(v0);
    const b = parseLlama2cCheckpoint(toVersion1(v0));
    assert.deepEqual(b.config, a.config);
    for (const [name, t] of a.weights) assert.deepEqual(b.weights.get(name)!.data, t.data, name);

    const v2 = toVersion1(v0);
    new DataView(v2.buffer).setInt32(4, 2, true);
    assert.throws(
      () => parseLlama2cCheckpoint(v2, { file: "q80.bin" }),
      /Cannot read llama2\.c checkpoint q80\.bin: version 2 is not supported/,
    );
    assert.throws(
      () => parseLlama2cCheckpoint(v0.subarray(0, v0.byteLength - 4), { file: "cut.bin" }),
      /Cannot read llama2\.c checkpoint cut\.bin: it has 1056536 bytes but its header \(dim 64, hidden_dim 172, n_layers 5, n_heads 8, n_kv_heads 4, vocab_size 512, seq_len 512, shared classifier\) needs 1056540/,
    );
    const badHeads = v0.slice();
    new DataView(badHeads.buffer).setInt32(16, 3, true);
    assert.throws(
      () => parseLlama2cCheckpoint(badHeads, { file: "h.bin" }),
      /n_heads 8, n_kv_heads 3 are inconsistent/,
    );
    const zero = v0.slice();
    new DataView(zero.buffer).setInt32(8, 0, true);
    assert.throws(() => parseLlama2cCheckpoint(zero, { file: "z.bin" }), /header field n_layers is 0/);
    assert.throws(
      () => parseLlama2cCheckpoint(new Uint8Array(10), { file: "t.bin" }),
      /10 bytes is shorter than the 28-byte header/,
    );
  },
});

Deno.test({
  name: "tok512.bin becomes a SentencePiece vocabulary (▁ for spaces, <s>/</s>, byte pieces)",
  ignore: !HAVE,
  fn: async () => {
    const bytes = await Deno.readFile(stories().tok);
    const vocab = parseLlama2cTokenizer(bytes, { vocabSize: 512, file: "tok512.bin" });
    assert.deepEqual(vocab.pieces.slice(0, 4), ["<unk>", "<s>", "</s>", "<0x00>"]);
    assert.deepEqual(vocab.types.slice(0, 4), ["unknown", "control", "control", "byte"]);
    assert.equal(vocab.pieces[259], "\u2581t");
    assert.equal(vocab.pieces[265], "\u2581the");
    assert.equal(vocab.scores[265], -6);
    assert.equal(vocab.types.filter((t) => t === "byte").length, 256);
    assert.throws(
      () => parseLlama2cTokenizer(bytes, { vocabSize: 511, file: "tok512.bin" }),
      /bytes remain after 511 tokens/,
    );
    assert.throws(
      () => parseLlama2cTokenizer(bytes, { vocabSize: 513, file: "tok512.bin" }),
      /it ends at token 512 of 513/,
    );
    assert.throws(
      () => parseLlama2cTokenizer(bytes.subarray(0, 3000), { vocabSize: 512, file: "tok512.bin" }),
      /Cannot read llama2\.c tokenizer tok512\.bin: (it ends at token|token \d+ has invalid byte length)/,
    );
  },
});
