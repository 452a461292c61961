import assert from "node:assert/strict";
import { encodeSafetensors } from "../../src/io/safetensors.ts";
import { InvalidAdapterError, parseAdapterFiles, prepareAdapter } from "../../src/serve/prepared_adapter.ts";
import { randomAdapterFiles } from "./_fixtures.ts";

import { GQA_CONFIG as MODEL } from "../models/_fixtures.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("prepares Aᵀ and Bᵀ transposed, the scale folded into Bᵀ", () => {
  const files = randomAdapterFiles(MODEL, { seed: 3, rank: 2, alpha: 6, modules: ["q_proj", "down_proj"] });
  const peft = parseAdapterFiles(files, { model: MODEL, source: "demo" });
  const prepared = prepareAdapter(peft, { key: "t/demo@v1" });
  assert.equal(prepared.key, "t/demo@v1");
  assert.deepEqual(prepared.sites.map((s) => s.site), [
    "model.layers.0.self_attn.q_proj",
    "model.layers.0.mlp.down_proj",
    "model.layers.1.self_attn.q_proj",
    "model.layers.1.mlp.down_proj",
  ]);
  const down = prepared.sites[1];
  const source = peft.sites.get(down.site)!;
  assert.equal(source.scale, 3); // alpha / r
  const inFeatures = source.inFeatures;
  for (let i = 0; i < inFeatures; i++) {
    for (let r = 0; r < 2; r++) assert.equal(down.at[i * 2 + r], source.a[r * inFeatures + i]);
  }
  for (let o = 0; o < source.outFeatures; o++) {
    for (let r = 0; r < 2; r++) {
      assert.equal(down.bt[r * source.outFeatures + o], Math.fround(3 * source.b[o * 2 + r]));
    }
  }
  const bytes = prepared.sites.reduce((n, s) => n + s.at.byteLength + s.bt.byteLength, 0);
  assert.equal(prepared.bytes, bytes);
  const shared = prepareAdapter(peft, { key: "k", shared: true });
  assert.ok(shared.sites[0].at.buffer instanceof SharedArrayBuffer);
  assert.deepEqual([...shared.sites[0].bt], [...prepared.sites[0].bt]);
  // one buffer for every tensor (one allocation per adapter, one buffer to share with a worker), no overlap
  for (const p of [prepared, shared]) {
    const views = p.sites.flatMap((s) => [s.at, s.bt]);
    assert.equal(new Set(views.map((v) => v.buffer)).size, 1, "one buffer");
    assert.equal(views[0].buffer.byteLength, p.bytes, "exactly the tensors' bytes");
    const spans = views.map((v) => [v.byteOffset, v.byteOffset + v.byteLength]).sort((x, y) => x[0] - y[0]);
    spans.slice(1).forEach((span, i) => assert.ok(span[0] >= spans[i][1], "views do not overlap"));
  }
});

Deno.test("half-precision adapters are widened", () => {
  for (const dtype of ["float16", "bfloat16"] as const) {
    const files = randomAdapterFiles(MODEL, { seed: 4, dtype });
    const peft = parseAdapterFiles(files, { model: MODEL, source: dtype });
    assert.equal(peft.sites.size, 6);
  }
});

Deno.test("rejects adapters that do not fit the base model, naming the file, tensor and values", () => {
  const good = randomAdapterFiles(MODEL, { seed: 5, rank: 2, modules: ["q_proj"] });
  const check = (files: { config: Uint8Array; weights: Uint8Array }, pattern: RegExp) => {
    assert.throws(() => parseAdapterFiles(files, { model: MODEL, source: "bad" }), (e: unknown) => {
      assert.ok(e instanceof InvalidAdapterError);
      assert.match((e as Error).message, pattern);
      return true;
    });
  };
  check({ ...good, config: enc("{nope") }, /adapter "bad": adapter_config\.json is not valid JSON/);
  check({ ...good, config: enc('{"peft_type": "IA3", "r": 2}') }, /"peft_type" is "IA3"/);
  check({ ...good, weights: good.weights.subarray(0, 20) }, /bad\/adapter_model\.safetensors/);
  const wrongShape = encodeSafetensors([
    {
      name: "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
      dtype: "float32",
      dims: [2, 30],
      data: new Uint8Array(240),
    },
    {
      name: "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
      dtype: "float32",
      dims: [32, 2],
      data: new Uint8Array(256),
    },
  ]);
  check({ ...good, weights: wrongShape }, /q_proj\.lora_A\.weight" has shape \[2, 30\], expected \[2, 32\]/);
  const unknownModule = encodeSafetensors([
    {
      name: "base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight",
      dtype: "float32",
      dims: [2, 32],
      data: new Uint8Array(256),
    },
  ]);
  check(
    { ...good, weights: unknownModule },
    /module "model\.layers\.7\.self_attn\.q_proj", which is not a linear layer/,
  );
  const intDtype = encodeSafetensors([
    {
      name: "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
      dtype: "int32",
      dims: [2, 32],
      data: new Uint8Array(256),
    },
  ]);
  check({ ...good, weights: intDtype }, /has dtype int32, expected F32, F16 or BF16/);
});
