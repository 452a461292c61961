import assert from "node:assert/strict";
import { ggufMetadata, parseGguf } from "../../src/io/gguf.ts";
import { readLlama2cModel } from "./_llama2c_reference.ts";
import { requireStories260k, stories, writeGguf } from "./_helpers.ts";

const HAVE = requireStories260k("gguf_test");

Deno.test({
  name: "stories260K-f32.gguf (version 1): metadata, arrays, tensor infos and zero-copy data",
  ignore: !HAVE,
  fn: async () => {
    const bytes = await Deno.readFile(stories().gguf);
    const gguf = parseGguf(bytes, { file: "stories260K-f32.gguf" });
    assert.equal(gguf.version, 1);
    assert.equal(gguf.alignment, 32);
    assert.equal(gguf.metadata.get("general.architecture"), "llama");
    assert.equal(gguf.metadata.get("llama.tensor_data_layout"), "Meta AI original pth");
    assert.equal(gguf.metadata.get("llama.attention.head_count_kv"), 4);
    assert.equal(gguf.metadata.get("llama.attention.layer_norm_rms_epsilon"), Math.fround(1e-5));
    const tokens = ggufMetadata(gguf, "tokenizer.ggml.tokens", { kind: "array" });
    assert.deepEqual([tokens.length, tokens[0], tokens[259]], [512, "<unk>", "\u2581t"]);
    assert.equal(gguf.tensors.size, 48);
    const q = gguf.tensors.get("blk.0.attn_k.weight")!;
    assert.deepEqual([q.typeName, q.ne, q.dims, q.dtype], ["F32", [64, 32], [32, 64], "float32"]);
    assert.equal(q.data!.buffer, bytes.buffer, "tensor data is a view into the file");
    assert.throws(
      () => ggufMetadata(gguf, "llama.block_count", { kind: "string", file: "s.gguf" }),
      /Cannot convert GGUF file s\.gguf: metadata "llama\.block_count" is 5, expected a string/,
    );
    assert.throws(
      () => ggufMetadata(gguf, "llama.nope", { kind: "number", file: "s.gguf" }),
      /metadata "llama\.nope" is missing/,
    );
    assert.equal(ggufMetadata(gguf, "llama.nope", { kind: "number", fallback: 7 }), 7);
  },
});

Deno.test({
  name: "the GGUF holds llama2.c's tensors byte for byte, q/k still in Meta's interleaved layout",
  ignore: !HAVE,
  fn: async () => {
    const gguf = parseGguf(await Deno.readFile(stories().gguf));
    const raw = readLlama2cModel(await Deno.readFile(stories().bin));
    const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const dim = 64;
    const kv = 32;
    for (let l = 0; l < 5; l++) {
      const slice = (a: Float32Array, n: number) => bytesOf(a.subarray(l * n, (l + 1) * n));
      assert.deepEqual(
        gguf.tensors.get(`blk.${l}.attn_q.weight`)!.data,
        slice(raw.wq, dim * dim),
        `layer ${l} q`,
      );
      assert.deepEqual(
        gguf.tensors.get(`blk.${l}.attn_k.weight`)!.data,
        slice(raw.wk, kv * dim),
        `layer ${l} k`,
      );
      assert.deepEqual(gguf.tensors.get(`blk.${l}.ffn_gate.weight`)!.data, slice(raw.w1, 172 * dim));
    }
    assert.deepEqual(
      gguf.tensors.get("output.weight")!.data,
      gguf.tensors.get("token_embd.weight")!.data,
      "tied classifier stored twice",
    );
  },
});

Deno.test("versions 1, 2 and 3: every value type, arrays, and tensors of readable and quantized types", () => {
  for (const version of [1, 2, 3] as const) {
    const f16 = new Uint8Array([0x00, 0x3c, 0x00, 0xc0]);
    const bytes = writeGguf(version, [
      ["u8", { type: 0, value: 200 }],
      ["i8", { type: 1, value: -5 }],
      ["u16", { type: 2, value: 60000 }],
      ["i16", { type: 3, value: -300 }],
      ["u32", { type: 4, value: 4000000000 }],
      ["i32", { type: 5, value: -70000 }],
      ["f32", { type: 6, value: 0.5 }],
      ["bool", { type: 7, value: true }],
      ["str", { type: 8, value: "héllo" }],
      ["u64", { type: 10, value: 2n ** 60n }],
      ["i64", { type: 11, value: -42n }],
      ["f64", { type: 12, value: 1e-300 }],
      ["strings", { type: 9, elementType: 8, value: ["a", "", "▁b"] }],
      ["ints", { type: 9, elementType: 5, value: [1, -2, 3] }],
      ["general.alignment", { type: 4, value: 32 }],
    ], [
      { name: "half", type: 1, dims: [2], data: f16 },
      { name: "quant", type: 2, dims: [32], data: new Uint8Array(18) },
      { name: "full", type: 0, dims: [1, 2], data: new Uint8Array(new Float32Array([3, 4]).buffer) },
    ]);
    const gguf = parseGguf(bytes, { file: `v${version}.gguf` });
    assert.equal(gguf.version, version);
    assert.deepEqual(Object.fromEntries(gguf.metadata), {
      u8: 200,
      i8: -5,
      u16: 60000,
      i16: -300,
      u32: 4000000000,
      i32: -70000,
      f32: 0.5,
      bool: true,
      str: "héllo",
      u64: 2n ** 60n,
      i64: -42,
      f64: 1e-300,
      strings: ["a", "", "▁b"],
      ints: [1, -2, 3],
      "general.alignment": 32,
    });
    assert.deepEqual(Array.from(gguf.tensors.get("half")!.data!), Array.from(f16));
    assert.equal(gguf.tensors.get("half")!.dtype, "float16");
    const quant = gguf.tensors.get("quant")!;
    assert.deepEqual(
      [quant.typeName, quant.data?.byteLength, quant.dtype],
      ["Q4_0", 18, undefined],
      "raw blocks",
    );
    assert.deepEqual(Array.from(new Float32Array(gguf.tensors.get("full")!.data!.slice().buffer)), [3, 4]);
  }
});

/** A v2 file whose only value claims type 13 (its type field sits after the 24-byte header and the key). */
function unknownValueType(): Uint8Array {
  const bytes = writeGguf(2, [["bad", { type: 4, value: 1 }]], []);
  new DataView(bytes.buffer).setUint32(24 + 8 + 3, 13, true);
  return bytes;
}

Deno.test("malformed GGUF files fail naming the file and what was being read", () => {
  const good = writeGguf(3, [["name", { type: 8, value: "x" }]], [
    { name: "w", type: 0, dims: [4], data: new Uint8Array(16) },
  ]);
  assert.doesNotThrow(() => parseGguf(good));
  const cases: [Uint8Array, RegExp][] = [
    [
      new TextEncoder().encode("GGML\x03\0\0\0"),
      /Cannot read GGUF file m\.gguf: magic is "GGML", expected "GGUF"/,
    ],
    [
      Uint8Array.from([...good.subarray(0, 4), 4, 0, 0, 0, ...good.subarray(8)]),
      /version 4 is not supported \(1 to 3\)$/,
    ],
    [
      Uint8Array.from([...good.subarray(0, 4), 0, 0, 0, 3, ...good.subarray(8)]),
      /version 50331648 is not supported \(1 to 3\) \(a big-endian file\?\)/,
    ],
    [
      good.subarray(0, 30),
      /metadata .* at byte \d+ runs past the end of the file \(30 bytes\); the file is truncated/,
    ],
    [
      good.subarray(0, good.byteLength - 20),
      /tensor "w" \(F32 \[4\]\) at data offset 0 needs bytes \d+\.\.\d+, but the file has \d+/,
    ],
    [unknownValueType(), /metadata "bad" has unknown value type 13/],
  ];
  for (const [bytes, pattern] of cases) assert.throws(() => parseGguf(bytes, { file: "m.gguf" }), pattern);
});
