import assert from "node:assert/strict";
import type { TensorData } from "../../src/onnx/types.ts";
import { bf16ToF32, f32ToBf16, f32ToF16, float32Values } from "../../src/io/half.ts";
import { llamaConfigToHf } from "../../src/io/hf_config.ts";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { writeSafetensors } from "../../src/io/safetensors.ts";
import { writeShardedSafetensors } from "../../src/io/sharded_safetensors.ts";
import { randomWeights, TINY_CONFIG, tinyTokenizerJson, withTempDir, writeJson } from "./_helpers.ts";

/** Writes a tiny model folder: config, tokenizer files and the given tensors as one file. */
async function writeTinyFolder(dir: string, tensors: TensorData[], config = TINY_CONFIG): Promise<void> {
  await writeJson(`${dir}/config.json`, llamaConfigToHf(config));
  await writeJson(`${dir}/tokenizer.json`, tinyTokenizerJson(config.vocabSize));
  await writeJson(`${dir}/tokenizer_config.json`, {
    bos_token: "<s>",
    eos_token: "</s>",
    add_bos_token: true,
    chat_template: "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}",
  });
  await writeSafetensors(`${dir}/model.safetensors`, tensors, { metadata: { format: "pt" } });
}

Deno.test("loads a sharded bf16 checkpoint as float32 with config, tokenizer, template and generation defaults", async () => {
  await withTempDir(async (dir) => {
    const f32 = randomWeights(TINY_CONFIG, 7);
    const bf16 = f32.map((t): TensorData => ({ ...t, dtype: "bfloat16", data: f32ToBf16(float32Values(t)) }));
    await writeJson(`${dir}/config.json`, { ...llamaConfigToHf(TINY_CONFIG), torch_dtype: "bfloat16" });
    await writeJson(`${dir}/generation_config.json`, {
      bos_token_id: 1,
      eos_token_id: [2, 5],
      do_sample: true,
      temperature: 0.7,
      top_p: 0.9,
      top_k: 20,
      max_new_tokens: 64,
    });
    await writeJson(`${dir}/tokenizer.json`, tinyTokenizerJson(TINY_CONFIG.vocabSize));
    await Deno.writeTextFile(`${dir}/chat_template.jinja`, "{{ bos_token }}{{ messages[0].content }}");
    await writeShardedSafetensors(dir, [...bf16, {
      ...bf16[0],
      name: "model.rotary_emb.inv_freq",
      dims: [bf16[0].data.byteLength / 2],
    }], {
      maxShardBytes: 3000,
    });
    const shards = [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".safetensors")).length;
    assert.ok(shards >= 3, `expected several shards, got ${shards}`);

    const model = await loadModelFolder(dir, { id: "acme/tiny" });
    assert.equal(model.id, "acme/tiny");
    assert.equal(model.dir, dir);
    assert.deepEqual(model.config, { ...TINY_CONFIG, eosTokenIds: [2, 5] });
    assert.deepEqual([...model.weights.keys()], f32.map((t) => t.name));
    for (const [i, t] of bf16.entries()) {
      const got = model.weights.get(t.name)!;
      assert.equal(got.dtype, "float32");
      assert.deepEqual(got.dims, t.dims);
      assert.deepEqual(Array.from(float32Values(got)), Array.from(bf16ToF32(t.data)), t.name);
      // bf16 keeps the top 16 bits: within 2^-8 relative of the original.
      const orig = float32Values(f32[i]);
      float32Values(got).forEach((v, j) =>
        assert.ok(Math.abs(v - orig[j]) <= Math.abs(orig[j]) * 2 ** -8 + 1e-30)
      );
    }
    assert.deepEqual(model.unusedTensors, ["model.rotary_emb.inv_freq"]);
    assert.deepEqual(model.generation, {
      doSample: true,
      temperature: 0.7,
      topP: 0.9,
      topK: 20,
      maxNewTokens: 64,
    });
    assert.equal(model.chatTemplate, "{{ bos_token }}{{ messages[0].content }}");
    assert.equal(model.tokenizer.bosId, 1);
    assert.deepEqual([...model.tokenizer.eosIds].sort(), [2, 5]);
    // "▁ab▁a": merge rank 0 ("▁","a") applies at both places before rank 1 ("a","b") can.
    assert.deepEqual(
      model.tokenizer.encode("ab a"),
      [7, 5, 7],
      "no tokenizer_config.json: no BOS by default",
    );
    assert.deepEqual(model.tokenizer.encode("ab a", { addBos: true }), [1, 7, 5, 7]);
  });
});

Deno.test("f16 single-file checkpoints load; tied embeddings need no lm_head; the id defaults to the folder name", async () => {
  await withTempDir(async (root) => {
    const dir = `${root}/tiny-tied`;
    await Deno.mkdir(dir);
    const config = { ...TINY_CONFIG, tieWordEmbeddings: true };
    const f16 = randomWeights(config, 3).map((t): TensorData => ({
      ...t,
      dtype: "float16",
      data: f32ToF16(float32Values(t)),
    }));
    await writeTinyFolder(dir, f16, config);
    const model = await loadModelFolder(`${dir}/`);
    assert.equal(model.id, "tiny-tied");
    assert.equal(model.weights.has("lm_head.weight"), false);
    assert.equal(model.weights.get("model.norm.weight")!.dtype, "float32");
    assert.equal(model.chatTemplate, "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}");
    assert.deepEqual(model.generation, {});
  });
});

Deno.test("missing files, wrong shapes, wrong dtypes and stray layers fail naming the file and tensor", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(loadModelFolder(dir), /Cannot load model folder .*: .*config\.json does not exist/);
    const good = randomWeights(TINY_CONFIG, 1);
    await writeTinyFolder(dir, good);
    await Deno.remove(`${dir}/model.safetensors`);
    await Deno.writeFile(`${dir}/pytorch_model.bin`, new Uint8Array(4));
    await assert.rejects(
      loadModelFolder(dir),
      /neither model\.safetensors nor model\.safetensors\.index\.json exists \(pytorch_model\.bin is not supported/,
    );

    const k = "model.layers.1.self_attn.k_proj.weight";
    const wrongShape = good.map((t) => (t.name === k ? { ...t, dims: [16, 8] } : t));
    await writeTinyFolder(dir, wrongShape);
    await assert.rejects(
      loadModelFolder(dir),
      /tensor "model\.layers\.1\.self_attn\.k_proj\.weight" in .*model\.safetensors has shape \[16,8\], expected \[8,16\] from config\.json/,
    );

    const missing = good.filter((t) => t.name !== "lm_head.weight");
    await writeTinyFolder(dir, missing);
    await assert.rejects(
      loadModelFolder(dir),
      /tensor "lm_head\.weight" \(shape \[32,16\]\) is missing from the checkpoint/,
    );

    const ints = good.map((t) =>
      t.name === "model.norm.weight"
        ? { ...t, dtype: "int32" as const, data: new Uint8Array(t.data.byteLength) }
        : t
    );
    await writeTinyFolder(dir, ints);
    await assert.rejects(
      loadModelFolder(dir),
      /tensor "model\.norm\.weight" in .*model\.safetensors has dtype int32, expected F32, F16 or BF16/,
    );

    const extraLayer = [...good, { ...good[1], name: "model.layers.2.input_layernorm.weight" }];
    await writeTinyFolder(dir, extraLayer);
    await assert.rejects(
      loadModelFolder(dir),
      /tensor "model\.layers\.2\.input_layernorm\.weight" .* belongs to layer 2, but config\.json has num_hidden_layers 2/,
    );

    await writeTinyFolder(dir, good);
    await Deno.remove(`${dir}/tokenizer.json`);
    await assert.rejects(loadModelFolder(dir), /Cannot read .*tokenizer\.json: the file does not exist/);

    await writeTinyFolder(dir, good, { ...TINY_CONFIG, vocabSize: 32 });
    await writeJson(`${dir}/tokenizer.json`, tinyTokenizerJson(40));
    await assert.rejects(
      loadModelFolder(dir),
      /tokenizer\.json has 40 token ids but config\.json's vocab_size is 32/,
    );

    await writeTinyFolder(dir, good);
    const bytes = await Deno.readFile(`${dir}/model.safetensors`);
    await Deno.writeFile(`${dir}/model.safetensors`, bytes.subarray(0, bytes.byteLength - 10));
    await assert.rejects(
      loadModelFolder(dir),
      /Cannot read safetensors file .*model\.safetensors: tensor ".*" ends at data offset \d+, past the end/,
    );
  });
});
