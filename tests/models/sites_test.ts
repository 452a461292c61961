import assert from "node:assert/strict";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { adapterSite, linear, listAdapterSites, LLAMA_MODULES, siteName } from "../../src/models/sites.ts";
import { buildLlamaInferenceGraph } from "../../src/models/llama/inference.ts";
import { randomLlamaWeights } from "../../src/models/random_weights.ts";
import { GQA_CONFIG, QWEN2_CONFIG } from "./_fixtures.ts";

Deno.test("adapter sites: PEFT names and widths for every module of every layer", () => {
  const sites = listAdapterSites(GQA_CONFIG);
  assert.equal(sites.length, 7 * GQA_CONFIG.numHiddenLayers);
  assert.deepEqual(sites.slice(0, 7).map((s) => s.module), [...LLAMA_MODULES]);
  const byName = new Map(sites.map((s) => [s.name, s]));
  assert.deepEqual(byName.get("model.layers.1.self_attn.k_proj"), {
    layer: 1,
    module: "k_proj",
    name: "model.layers.1.self_attn.k_proj",
    inFeatures: 32,
    outFeatures: 8,
  });
  assert.deepEqual(
    [adapterSite(QWEN2_CONFIG, 0, "o_proj").inFeatures, adapterSite(QWEN2_CONFIG, 0, "o_proj").outFeatures],
    [32, 24],
  );
  assert.equal(siteName(3, "up_proj"), "model.layers.3.mlp.up_proj");
  assert.throws(() => adapterSite(GQA_CONFIG, 2, "q_proj"), /layer 2: the model has 2 layers/);
});

Deno.test("every linear layer of the model graph goes through the adapter hook, once, with its widths", () => {
  const seen: string[] = [];
  buildLlamaInferenceGraph({ config: QWEN2_CONFIG, weights: randomLlamaWeights(QWEN2_CONFIG) }, {
    kind: "decode",
    adapter: (_b, site, x, baseOut) => {
      seen.push(site.name);
      assert.equal(x.shape.at(-1), site.inFeatures);
      assert.equal(baseOut.shape.at(-1), site.outFeatures);
      return baseOut;
    },
  });
  assert.deepEqual(seen, listAdapterSites(QWEN2_CONFIG).map((s) => s.name));
});

Deno.test("linear: x·W + bias, and the hook's value is the output", () => {
  const b = new GraphBuilder("lin");
  const x = b.input("x", "float32", ["n", 4]);
  const w = b.initializer("w", new Float32Array(12), [4, 3]);
  const bias = b.initializer("bias", new Float32Array(3), [3]);
  const site = {
    layer: 0,
    module: "q_proj" as const,
    name: "model.layers.0.self_attn.q_proj",
    inFeatures: 4,
    outFeatures: 3,
  };
  const y = linear(b, site, x, w, { bias, adapter: (bb, _s, _x, base) => bb.neg(base) });
  assert.deepEqual(y.shape, ["n", 3]);
  assert.deepEqual(b.toGraph().nodes.map((n) => n.opType), ["MatMul", "Add", "Neg"]);
});
