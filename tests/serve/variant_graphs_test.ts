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

Deno.test("packed inputs: sites stacked in forward order, ranks padded with zeros, the base slot zeros", () => {
  const a = prepared(1, 2, ["q_proj"], "a");
  const b = prepared(2, 3, ["q_proj", "down_proj"], "b");
  const comp = composeBatch([a, null, b], sites);
  const arrays = new Map(variantArrays(comp, config).map((x) => [x.name, x]));
  const list = comp.variant.sites.map((name) => sites.find((s) => s.name === name)!);
  const sumIn = list.reduce((n, s) => n + s.inFeatures, 0);
  const sumOut = list.reduce((n, s) => n + s.outFeatures, 0);
  const at = arrays.get(variantInputNames("bank").at)!;
  const bt = arrays.get(variantInputNames("bank").bt)!;
  assert.deepEqual(at.dims, [3, sumIn, 3]);
  assert.deepEqual(bt.dims, [3, 3, sumOut]);
  // site j of slot s: Aᵀ rows [s·Σin + offset_j, … + in_j), Bᵀ columns [offset_j, … + out_j) of rows s·rank + c
  let inOffset = 0;
  let outOffset = 0;
  for (const site of list) {
    for (const [slot, adapter] of [[0, a], [1, null], [2, b]] as const) {
      const p = adapter?.sites.find((x) => x.site === site.name);
      for (let i = 0; i < site.inFeatures; i++) {
        for (let c = 0; c < 3; c++) {
          const got = at.data[((slot * sumIn) + inOffset + i) * 3 + c];
          assert.equal(got, p && c < p.rank ? p.at[i * p.rank + c] : 0, `Aᵀ ${site.name} slot ${slot}`);
        }
      }
      for (let c = 0; c < 3; c++) {
        for (let o = 0; o < site.outFeatures; o += 7) {
          const got = bt.data[(slot * 3 + c) * sumOut + outOffset + o];
          assert.equal(
            got,
            p && c < p.rank ? p.bt[c * site.outFeatures + o] : 0,
            `Bᵀ ${site.name} slot ${slot}`,
          );
        }
      }
    }
    inOffset += site.inFeatures;
    outOffset += site.outFeatures;
  }
  const single = variantArrays(composeBatch([b], sites), config);
  assert.deepEqual(single.map((x) => x.name), ["lora_at", "lora_bt"]);
  assert.deepEqual(single[0].dims, [sumIn, 3]);
  assert.deepEqual(single[1].dims, [3, sumOut]);
});

Deno.test("variant graphs take LoRA inputs only at their sites", () => {
  const weights = randomLlamaWeights(config, { seed: 3, scale: 0.2 });
  const b = prepared(2, 3, ["q_proj", "down_proj"], "b");
  const inputs = (comp: ReturnType<typeof composeBatch>) =>
    buildVariantGraphs({ config, weights }, comp.variant).decode.graph.inputs.map((i) => i.name);
  const plain = inputs(composeBatch([null], sites));
  assert.ok(!plain.some((n) => n.includes("lora")));
  const single = inputs(composeBatch([b], sites));
  assert.deepEqual(single.filter((n) => n.includes("lora")), ["lora_at", "lora_bt"], "two packed inputs");
  const bank = inputs(composeBatch([b, null], sites));
  assert.deepEqual(bank.filter((n) => n.includes("lora")), [
    "lora_at_bank",
    "lora_bt_bank",
    LORA_INDEX_INPUT,
  ]);
});
