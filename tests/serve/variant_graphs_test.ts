import assert from "node:assert/strict";
import { listAdapterSites, type LlamaModule } from "../../src/models/sites.ts";
import { randomLlamaWeights } from "../../src/models/random_weights.ts";
import { parseAdapterFiles, prepareAdapter } from "../../src/serve/prepared_adapter.ts";
import {
  buildVariantGraphs,
  composeBatch,
  LORA_INDEX_INPUT,
  variantArrays,
  variantInputNames,
} from "../../src/serve/variant_graphs.ts";
import { GQA_CONFIG } from "../models/_fixtures.ts";
import { randomAdapterFiles } from "./_fixtures.ts";

const config = GQA_CONFIG;
const sites = listAdapterSites(config);

function prepared(seed: number, rank: number, modules: LlamaModule[], key: string) {
  const peft = parseAdapterFiles(randomAdapterFiles(config, { seed, rank, modules, scale: 0.3 }), {
    model: config,
    source: key,
  });
  return prepareAdapter(peft, { key });
}

Deno.test("a batch's variant: none without adapters, single for one adapter, bank at the union otherwise", () => {
  const a = prepared(1, 2, ["q_proj"], "a");
  const b = prepared(2, 3, ["q_proj", "down_proj"], "b");
  const none = composeBatch([null, null], sites);
  assert.equal(none.variant.mode, "none");
  assert.deepEqual(none.variant.sites, []);
  const single = composeBatch([a, a], sites);
  assert.equal(single.variant.mode, "single");
  assert.deepEqual(single.variant.sites, a.sites.map((s) => s.site));
  const bank = composeBatch([a, null, b, a], sites);
  assert.equal(bank.variant.mode, "bank");
  assert.deepEqual(bank.index, [0, 1, 2, 0]);
  assert.deepEqual(
    bank.variant.sites,
    sites.map((s) => s.name).filter((n) => n.endsWith("q_proj") || n.endsWith("down_proj")),
  );
  assert.notEqual(bank.key, composeBatch([b, null, a], sites).key, "slot order is part of the key");
});

Deno.test("bank inputs pad each slot to the site's largest rank with zeros; single inputs are the adapter's own", () => {
  const a = prepared(1, 2, ["q_proj"], "a");
  const b = prepared(2, 3, ["q_proj", "down_proj"], "b");
  const comp = composeBatch([a, null, b], sites);
  const arrays = new Map(variantArrays(comp, config).map((x) => [x.name, x]));
  const q = sites[0];
  const at = arrays.get(variantInputNames(q.name, "bank").at)!;
  assert.deepEqual(at.dims, [3, q.inFeatures, 3]);
  const pa = a.sites.find((s) => s.site === q.name)!;
  for (let i = 0; i < q.inFeatures; i++) {
    assert.equal(at.data[i * 3 + 0], pa.at[i * 2 + 0]);
    assert.equal(at.data[i * 3 + 1], pa.at[i * 2 + 1]);
    assert.equal(at.data[i * 3 + 2], 0, "padded rank column");
    assert.equal(at.data[(q.inFeatures + i) * 3], 0, "the base slot is zeros");
  }
  const single = variantArrays(composeBatch([b], sites), config);
  assert.equal(single[0].data, b.sites[0].at, "no copy for a single adapter");
});

Deno.test("bank inputs hold a slot of the site's largest rank exactly as its own tensors", () => {
  const a = prepared(1, 2, ["q_proj"], "a");
  const b = prepared(2, 3, ["q_proj", "down_proj"], "b");
  const c = prepared(3, 3, ["q_proj"], "c");
  const arrays = new Map(variantArrays(composeBatch([a, b, c], sites), config).map((x) => [x.name, x]));
  const q = sites[0];
  const names = variantInputNames(q.name, "bank");
  const at = arrays.get(names.at)!, bt = arrays.get(names.bt)!;
  const slot = q.inFeatures * 3;
  for (const [s, adapter] of [[1, b], [2, c]] as const) {
    const p = adapter.sites.find((x) => x.site === q.name)!;
    assert.deepEqual(at.data.subarray(s * slot, (s + 1) * slot), p.at, `Aᵀ of slot ${s}`);
    const bSlot = 3 * q.outFeatures;
    assert.deepEqual(bt.data.subarray(s * bSlot, (s + 1) * bSlot), p.bt, `Bᵀ of slot ${s}`);
  }
});

Deno.test("variant graphs take LoRA inputs only at their sites", () => {
  const weights = randomLlamaWeights(config, { seed: 3, scale: 0.2 });
  const b = prepared(2, 3, ["q_proj", "down_proj"], "b");
  const inputs = (comp: ReturnType<typeof composeBatch>) =>
    buildVariantGraphs({ config, weights }, comp.variant).decode.graph.inputs.map((i) => i.name);
  const plain = inputs(composeBatch([null], sites));
  assert.ok(!plain.some((n) => n.includes("lora")));
  const single = inputs(composeBatch([b], sites));
  assert.equal(single.filter((n) => n.includes(".lora_")).length, 2 * b.sites.length);
  const bank = inputs(composeBatch([b, null], sites));
  assert.equal(bank.filter((n) => n.includes(".lora_")).length, 2 * b.sites.length);
  assert.ok(bank.includes(LORA_INDEX_INPUT));
});
