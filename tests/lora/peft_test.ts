import assert from "node:assert/strict";
import { loadPeftAdapter, parsePeftConfig, peftAdapterFromTensors } from "../../src/lora/peft.ts";
import { encodeSafetensors } from "../../src/io/safetensors.ts";
import { f32ToF16 } from "../../src/io/half.ts";
import type { TensorData } from "../../src/onnx/types.ts";

import { GQA_CONFIG as MODEL } from "../models/_fixtures.ts";

function f32(name: string, dims: number[], start = 0): TensorData {
  const n = dims.reduce((a, b) => a * b, 1);
  const values = Float32Array.from({ length: n }, (_, i) => start + i / 100);
  return { name, dtype: "float32", dims, data: new Uint8Array(values.buffer) };
}

/** q_proj and v_proj in both layers, rank 2, except layer 1's v_proj at rank 3 (rank_pattern). */
function adapterTensors(): TensorData[] {
  const tensors: TensorData[] = [];
  for (let l = 0; l < 2; l++) {
    const q = `base_model.model.model.layers.${l}.self_attn.q_proj`;
    const v = `base_model.model.model.layers.${l}.self_attn.v_proj`;
    const rv = l === 1 ? 3 : 2;
    tensors.push(f32(`${q}.lora_A.weight`, [2, 32]), f32(`${q}.lora_B.weight`, [32, 2]));
    tensors.push(f32(`${v}.lora_A.weight`, [rv, 32]), f32(`${v}.lora_B.weight`, [8, rv]));
  }
  return tensors;
}

const CONFIG_JSON = {
  peft_type: "LORA",
  r: 2,
  lora_alpha: 8,
  target_modules: ["q_proj", "v_proj"],
  rank_pattern: { "model.layers.1.self_attn.v_proj": 3 },
  alpha_pattern: { "layers.0.self_attn.q_proj": 4 },
  use_rslora: false,
  bias: "none",
  base_model_name_or_path: "stories-test",
};

async function writeAdapter(
  configJson: unknown,
  tensors: TensorData[],
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "peft_test_" });
  await Deno.writeTextFile(`${dir}/adapter_config.json`, JSON.stringify(configJson));
  await Deno.writeFile(`${dir}/adapter_model.safetensors`, encodeSafetensors(tensors));
  return dir;
}

Deno.test("loads a PEFT adapter: ranks, alphas and scales per site, tensors in PEFT layout", async () => {
  const dir = await writeAdapter(CONFIG_JSON, adapterTensors());
  try {
    const adapter = await loadPeftAdapter(dir, MODEL);
    assert.deepEqual([...adapter.sites.keys()], [
      "model.layers.0.self_attn.q_proj",
      "model.layers.0.self_attn.v_proj",
      "model.layers.1.self_attn.q_proj",
      "model.layers.1.self_attn.v_proj",
    ]);
    const q0 = adapter.sites.get("model.layers.0.self_attn.q_proj")!;
    assert.equal(q0.scale, 4 / 2); // alpha_pattern
    assert.equal(q0.a.length, 2 * 32);
    assert.equal(q0.a[1], Math.fround(0.01));
    const v1 = adapter.sites.get("model.layers.1.self_attn.v_proj")!;
    assert.deepEqual([v1.rank, v1.inFeatures, v1.outFeatures, v1.scale], [3, 32, 8, 8 / 3]);
    assert.equal(adapter.config.baseModelNameOrPath, "stories-test");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rsLoRA scales by alpha / sqrt(r); float16 tensors are widened", () => {
  const config = parsePeftConfig(
    { ...CONFIG_JSON, use_rslora: true, rank_pattern: {}, alpha_pattern: {} },
    "t",
  );
  const half = (t: TensorData): TensorData => ({
    ...t,
    dtype: "float16",
    data: f32ToF16(new Float32Array(t.data.slice().buffer)),
  });
  const tensors = new Map(
    adapterTensors().filter((t) => !t.name.includes("layers.1.self_attn.v_proj")).map((
      t,
    ) => [t.name, half(t)]),
  );
  tensors.set("base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight", f32("a", [2, 32]));
  tensors.set("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight", f32("b", [8, 2]));
  const adapter = peftAdapterFromTensors(config, tensors, { model: MODEL, source: "t" });
  const q0 = adapter.sites.get("model.layers.0.self_attn.q_proj")!;
  assert.equal(q0.scale, 8 / Math.sqrt(2));
  assert.equal(q0.a[3], 0.0299987792968750); // 0.03 rounded to float16, widened exactly
  assert.equal(q0.a.length, 64);
});

Deno.test("a tensor of the wrong shape is named with both shapes", async () => {
  const tensors = adapterTensors();
  tensors[6] = f32("base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight", [3, 30]);
  const dir = await writeAdapter(CONFIG_JSON, tensors);
  try {
    await assert.rejects(
      loadPeftAdapter(dir, MODEL),
      new RegExp(
        `Cannot load adapter "${dir}": tensor "base_model\\.model\\.model\\.layers\\.1\\.self_attn\\.v_proj` +
          `\\.lora_A\\.weight" has shape \\[3, 30\\], expected \\[3, 32\\]`,
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a rank that disagrees with rank_pattern is rejected", () => {
  const config = parsePeftConfig({ ...CONFIG_JSON, rank_pattern: {} }, "t");
  const tensors = new Map(adapterTensors().map((t) => [t.name, t]));
  assert.throws(
    () => peftAdapterFromTensors(config, tensors, { model: MODEL, source: "t" }),
    /tensor "base_model\.model\.model\.layers\.1\.self_attn\.v_proj\.lora_A\.weight" has shape \[3, 32\], expected \[2, 32\]/,
  );
});

Deno.test("a module the model does not have is rejected, naming the key", () => {
  const config = parsePeftConfig(CONFIG_JSON, "t");
  const tensors = new Map(adapterTensors().map((t) => [t.name, t]));
  const key = "base_model.model.model.layers.5.self_attn.q_proj.lora_A.weight";
  tensors.set(key, f32(key, [2, 32]));
  assert.throws(
    () => peftAdapterFromTensors(config, tensors, { model: MODEL, source: "t" }),
    /tensor "base_model\.model\.model\.layers\.5\.self_attn\.q_proj\.lora_A\.weight" is for module "model\.layers\.5\.self_attn\.q_proj", which is not a linear layer of the model/,
  );
  const odd = new Map(tensors);
  odd.delete(key);
  odd.set("base_model.model.lm_head.lora_A.weight", f32("x", [2, 32]));
  assert.throws(
    () => peftAdapterFromTensors(config, odd, { model: MODEL, source: "t" }),
    /module "lm_head", which is not a linear layer/,
  );
  const notLora = new Map(tensors);
  notLora.delete(key);
  notLora.set("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", f32("m", [32]));
  assert.throws(
    () => peftAdapterFromTensors(config, notLora, { model: MODEL, source: "t" }),
    /tensor "base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_magnitude_vector" is not a LoRA weight/,
  );
});

Deno.test("missing tensors: a lone lora_A, and a targeted module with none", () => {
  const config = parsePeftConfig(CONFIG_JSON, "t");
  const all = new Map(adapterTensors().map((t) => [t.name, t]));
  const loneA = new Map(all);
  loneA.delete("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight");
  assert.throws(
    () => peftAdapterFromTensors(config, loneA, { model: MODEL, source: "t" }),
    /tensor "base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight" is missing/,
  );
  const noSite = new Map(all);
  noSite.delete("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight");
  noSite.delete("base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight");
  assert.throws(
    () => peftAdapterFromTensors(config, noSite, { model: MODEL, source: "t" }),
    /"base_model\.model\.model\.layers\.1\.self_attn\.q_proj\.lora_A\.weight" is missing, but target_modules selects/,
  );
  const onlyLayer0 = parsePeftConfig({ ...CONFIG_JSON, layers_to_transform: [0] }, "t");
  const layer0 = new Map([...all].filter(([k]) => k.includes("layers.0.")));
  assert.equal(peftAdapterFromTensors(onlyLayer0, layer0, { model: MODEL, source: "t" }).sites.size, 2);
  const regex = parsePeftConfig(
    { ...CONFIG_JSON, target_modules: ".*layers\\.0\\.self_attn\\.(q|v)_proj" },
    "t",
  );
  assert.equal(peftAdapterFromTensors(regex, layer0, { model: MODEL, source: "t" }).sites.size, 2);
});

Deno.test("unsupported or invalid adapter configs fail, naming the field and value", async () => {
  assert.throws(() => parsePeftConfig({ ...CONFIG_JSON, use_dora: true }, "d"), /"use_dora": DoRA/);
  assert.throws(() => parsePeftConfig({ ...CONFIG_JSON, peft_type: "IA3" }, "d"), /"peft_type" is "IA3"/);
  assert.throws(
    () => parsePeftConfig({ ...CONFIG_JSON, r: 0 }, "d"),
    /field "r" is 0, expected a positive integer/,
  );
  assert.throws(() => parsePeftConfig({ ...CONFIG_JSON, bias: "all" }, "d"), /"bias" is "all"/);
  assert.throws(
    () => parsePeftConfig({ ...CONFIG_JSON, modules_to_save: ["lm_head"] }, "d"),
    /"modules_to_save" is \["lm_head"\]/,
  );
  assert.throws(
    () => parsePeftConfig({ ...CONFIG_JSON, rank_pattern: { q_proj: 2.5 } }, "d"),
    /"rank_pattern" has "q_proj": 2\.5/,
  );
  assert.throws(
    () => parsePeftConfig({ ...CONFIG_JSON, target_modules: [] }, "d"),
    /"target_modules" is \[\]/,
  );
  const dir = await Deno.makeTempDir({ prefix: "peft_test_" });
  try {
    await assert.rejects(loadPeftAdapter(dir, MODEL), /adapter_config\.json does not exist/);
    await Deno.writeTextFile(`${dir}/adapter_config.json`, "{ nope");
    await assert.rejects(loadPeftAdapter(dir, MODEL), /adapter_config\.json is not valid JSON/);
    await Deno.writeTextFile(`${dir}/adapter_config.json`, JSON.stringify(CONFIG_JSON));
    await assert.rejects(loadPeftAdapter(dir, MODEL), /adapter_model\.safetensors does not exist/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a hostile target_modules or rank_pattern regex is handled in well under 100 ms", () => {
  const tensors = new Map(adapterTensors().map((t) => [t.name, t]));
  for (
    const json of [
      { ...CONFIG_JSON, target_modules: ".{7}(.*)*!" },
      { ...CONFIG_JSON, rank_pattern: { ".{7}(.*)*!": 3, "model.layers.1.self_attn.v_proj": 3 } },
      { ...CONFIG_JSON, alpha_pattern: { "(.*a){25}": 4 } },
    ]
  ) {
    const start = performance.now();
    const config = parsePeftConfig(json, "t");
    const adapter = peftAdapterFromTensors(config, tensors, { model: MODEL, source: "t" });
    const ms = performance.now() - start;
    assert.equal(adapter.sites.size, 4);
    assert.ok(ms < 100, `${JSON.stringify(json.target_modules)} took ${ms.toFixed(1)} ms`);
  }
  assert.throws(
    () => parsePeftConfig({ ...CONFIG_JSON, target_modules: "(q)_proj\\1" }, "t"),
    /field "target_modules" has the pattern "\(q\)_proj\\\\1", which is refused: backreferences are not supported/,
  );
  assert.throws(
    () => parsePeftConfig({ ...CONFIG_JSON, alpha_pattern: { "(?=q)q_proj": 2 } }, "t"),
    /field "alpha_pattern" has the pattern "\(\?=q\)q_proj", which is refused: lookaround/,
  );
});

Deno.test("absurd lora_alpha and non-finite weights are refused", () => {
  assert.throws(
    () => parsePeftConfig({ ...CONFIG_JSON, lora_alpha: 1e308 }, "t"),
    /field "lora_alpha" is 1e\+308, expected a positive number up to 65536/,
  );
  assert.throws(
    () => parsePeftConfig({ ...CONFIG_JSON, alpha_pattern: { q_proj: 1e300 } }, "t"),
    /"alpha_pattern" has "q_proj": 1e\+300, expected a positive number up to 65536/,
  );
  const config = parsePeftConfig(CONFIG_JSON, "t");
  for (const bad of [NaN, Infinity, -Infinity]) {
    const tensors = adapterTensors();
    const b = tensors[1];
    const values = new Float32Array(b.data.slice().buffer);
    values[5] = bad;
    tensors[1] = { ...b, data: new Uint8Array(values.buffer) };
    assert.throws(
      () =>
        peftAdapterFromTensors(config, new Map(tensors.map((t) => [t.name, t])), {
          model: MODEL,
          source: "t",
        }),
      new RegExp(`q_proj\\.lora_B\\.weight" holds ${bad} at index 5: weights must be finite`),
    );
  }
});

Deno.test("many complex pattern keys are refused quickly: the patterns of a config share one budget", () => {
  const keys = Object.fromEntries(Array.from({ length: 4000 }, (_, i) => [`(.*){${i % 90 + 10}}x${i}`, 2]));
  const started = performance.now();
  assert.throws(
    () => parsePeftConfig({ ...CONFIG_JSON, rank_pattern: keys }, "t"),
    /patterns \(target_modules, rank_pattern, alpha_pattern\) are too complex in all: over 4096 instructions at "rank_pattern" pattern/,
  );
  const ms = performance.now() - started;
  assert.ok(ms < 100, `refused after ${ms.toFixed(1)} ms`);
  // plain module names cost nothing from the budget
  const plain = Object.fromEntries(
    Array.from({ length: 4000 }, (_, i) => [`model.layers.${i}.self_attn.q_proj`, 2]),
  );
  assert.equal(
    Object.keys(parsePeftConfig({ ...CONFIG_JSON, rank_pattern: plain }, "t").rankPattern).length,
    4000,
  );
});
