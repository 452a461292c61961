import assert from "node:assert/strict";
import { parseGguf } from "../../src/io/gguf.ts";
import { ggufToHf } from "../../src/io/gguf_llama.ts";
import { encodeGguf, llamaToGguf } from "../../src/io/gguf_writer.ts";
import { parseLlama2cCheckpoint, parseLlama2cTokenizer } from "../../src/io/llama2c.ts";
import type { ScoredVocab } from "../../src/io/sentencepiece_bpe.ts";
import { randomLlamaWeights } from "../../src/models/random_weights.ts";
import { GQA_CONFIG, QWEN2_CONFIG } from "../models/_fixtures.ts";
import { requireStories260k, stories } from "./_helpers.ts";

const HAVE = requireStories260k("gguf_writer_test");

Deno.test("encodeGguf: every value type and F32 tensors read back through the GGUF reader", () => {
  const a = new Float32Array([1, -2.5, 3, 4, 5, 6]);
  const b = new Float32Array([7, 8, 9]);
  const bytes = encodeGguf({
    metadata: new Map([
      ["u", { type: "uint32", value: 4000000000 }],
      ["i", { type: "int32", value: -7 }],
      ["f", { type: "float32", value: 0.25 }],
      ["yes", { type: "bool", value: true }],
      ["no", { type: "bool", value: false }],
      ["s", { type: "string", value: "ünïcode ▁piece" }],
      ["ss", { type: "string[]", value: ["<unk>", "", "▁a"] }],
      ["fs", { type: "float32[]", value: [0, -1.5] }],
      ["is", { type: "int32[]", value: [1, -3, 6] }],
    ]),
    tensors: [{ name: "a", dims: [2, 3], data: a }, { name: "b", dims: [3], data: new Uint8Array(b.buffer) }],
  });
  const gguf = parseGguf(bytes);
  assert.equal(gguf.version, 3);
  assert.deepEqual(Object.fromEntries(gguf.metadata), {
    u: 4000000000,
    i: -7,
    f: 0.25,
    yes: true,
    no: false,
    s: "ünïcode ▁piece",
    ss: ["<unk>", "", "▁a"],
    fs: [0, -1.5],
    is: [1, -3, 6],
  });
  const ta = gguf.tensors.get("a")!, tb = gguf.tensors.get("b")!;
  assert.deepEqual([ta.typeName, ta.ne, ta.dims], ["F32", [3, 2], [2, 3]]);
  assert.deepEqual(new Float32Array(ta.data!.slice().buffer), a);
  assert.deepEqual(new Float32Array(tb.data!.slice().buffer), b);
  // data offsets are aligned to 32 bytes
  assert.equal(tb.offset % 32, 0);
  assert.equal(tb.offset, 32);
});

Deno.test("encodeGguf: errors name the tensor or key", () => {
  const meta = new Map();
  assert.throws(
    () => encodeGguf({ metadata: meta, tensors: [{ name: "w", dims: [2, 2], data: new Float32Array(3) }] }),
    /Cannot write GGUF tensor "w": 12 bytes do not hold float32 \[2,2\]/,
  );
  const t = { name: "w", dims: [1], data: new Float32Array(1) };
  assert.throws(() => encodeGguf({ metadata: meta, tensors: [t, t] }), /tensor "w": the name is used twice/);
  assert.throws(
    () => encodeGguf({ metadata: new Map([["k", { type: "uint32", value: -1 }]]), tensors: [] }),
    /Cannot write GGUF metadata "k": -1 is not a uint32/,
  );
  assert.throws(
    () => encodeGguf({ metadata: new Map([["k", { type: "int32[]", value: [1.5] }]]), tensors: [] }),
    /metadata "k": item 1\.5 is not an int32/,
  );
});

Deno.test({
  name:
    "llamaToGguf: stories260K gives llama.cpp's tensors (byte for byte) and converts back to the same model",
  ignore: !HAVE,
  fn: async () => {
    const { bin, tok, gguf: original } = stories();
    const checkpoint = parseLlama2cCheckpoint(await Deno.readFile(bin));
    const vocab = parseLlama2cTokenizer(await Deno.readFile(tok), { vocabSize: checkpoint.config.vocabSize });
    const written = parseGguf(llamaToGguf({ ...checkpoint, vocab }, { name: "stories260K" }));
    assert.equal(written.metadata.get("general.name"), "stories260K");
    // the reference file (made by llama.cpp's converter from the same checkpoint) holds the same bytes:
    // q/k rows are back in Meta's interleaved order
    const reference = parseGguf(await Deno.readFile(original));
    for (const [name, t] of written.tensors) {
      const theirs = reference.tensors.get(name);
      assert.ok(theirs, `tensor ${name} is not in the reference`);
      assert.deepEqual(t.ne, theirs.ne, name);
      assert.ok(Buffer.from(t.data!).equals(Buffer.from(theirs.data!)), `tensor ${name} differs`);
    }
    // the reference also spells out the tied classifier; ours leaves it to token_embd, as llama.cpp allows
    const extra = [...reference.tensors.keys()].filter((n) => !written.tensors.has(n));
    assert.deepEqual(extra, ["output.weight"]);
    assert.ok(
      Buffer.from(reference.tensors.get("output.weight")!.data!).equals(
        Buffer.from(written.tensors.get("token_embd.weight")!.data!),
      ),
    );
    for (
      const key of ["tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "llama.attention.head_count_kv"]
    ) {
      assert.deepEqual(written.metadata.get(key), reference.metadata.get(key), key);
    }
    // and our GGUF importer reads back the checkpoint and vocabulary
    const back = ggufToHf(written);
    assert.deepEqual(back.config, checkpoint.config);
    for (const [name, t] of checkpoint.weights) {
      assert.ok(Buffer.from(back.weights.get(name)!.data).equals(Buffer.from(t.data)), name);
    }
    assert.deepEqual(back.vocab, vocab);
  },
});

Deno.test("llamaToGguf: an untied GQA model keeps its output matrix; other architectures are refused", () => {
  const weights = randomLlamaWeights(GQA_CONFIG, { seed: 3 });
  const pieces = Array.from(
    { length: GQA_CONFIG.vocabSize },
    (_, i) => (i < 3 ? ["<unk>", "<s>", "</s>"][i] : `▁t${i}`),
  );
  const vocab: ScoredVocab = {
    pieces,
    scores: pieces.map((_, i) => -i),
    types: pieces.map((_, i) => (i === 0 ? "unknown" : i < 3 ? "control" : "normal")),
    unkId: 0,
    bosId: 1,
    eosId: 2,
  };
  const gguf = parseGguf(llamaToGguf({ config: GQA_CONFIG, weights, vocab }));
  assert.ok(gguf.tensors.has("output.weight"));
  const back = ggufToHf(gguf);
  assert.equal(back.config.tieWordEmbeddings, false);
  assert.equal(back.config.numKeyValueHeads, 2);
  for (const [name, t] of weights) {
    assert.ok(Buffer.from(back.weights.get(name)!.data).equals(Buffer.from(t.data)), name);
  }
  assert.throws(
    () => llamaToGguf({ config: QWEN2_CONFIG, weights: randomLlamaWeights(QWEN2_CONFIG), vocab }),
    /Cannot write a llama GGUF file: architecture "qwen2" is not "llama"/,
  );
  assert.throws(
    () => llamaToGguf({ config: GQA_CONFIG, weights, vocab: { ...vocab, pieces: pieces.slice(1) } }),
    /the vocabulary has 47 pieces, the config 48/,
  );
  const missing = new Map(weights);
  missing.delete("model.layers.1.mlp.up_proj.weight");
  assert.throws(
    () => llamaToGguf({ config: GQA_CONFIG, weights: missing, vocab }),
    /weight "model\.layers\.1\.mlp\.up_proj\.weight" is missing/,
  );
});
