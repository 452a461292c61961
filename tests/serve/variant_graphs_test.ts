import assert from "node:assert/strict";
import {
  BatchDecoder,
  createDecoderSessions,
  releaseDecoderSessions,
} from "../../src/models/batch_decoder.ts";
import { listAdapterSites, type LlamaModule } from "../../src/models/sites.ts";
import { randomLlamaWeights } from "../../src/models/random_weights.ts";
import type { OrtTensor } from "../../src/runtime/session.ts";
import { hostTensor } from "../../src/runtime/tensor.ts";
import { parseAdapterFiles, prepareAdapter } from "../../src/serve/prepared_adapter.ts";
import { PackScratch, SlotPacks } from "../../src/serve/slot_packs.ts";
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

Deno.test("rows mode: each row's slot laid out per row, the row order in the key, no gathers in the graph", () => {
  const a = prepared(1, 2, ["q_proj"], "a");
  const b = prepared(2, 3, ["q_proj", "down_proj"], "b");
  const rows = [b, a, null, b];
  const bank = composeBatch(rows, sites);
  const comp = composeBatch(rows, sites, { rows: true });
  assert.equal(comp.variant.mode, "rows");
  assert.deepEqual(comp.variant.sites, bank.variant.sites);
  assert.deepEqual(comp.index, [0, 1, 2, 0]);
  assert.notEqual(comp.key, composeBatch([b, a, b, null], sites, { rows: true }).key, "row order in the key");
  assert.equal(
    composeBatch([a, a], sites, { rows: true }).variant.mode,
    "single",
    "one adapter stays single",
  );
  // row i's blocks are its slot's blocks of the bank layout
  const [bankAt, bankBt] = variantArrays(bank, config);
  const [at, bt] = variantArrays(comp, config);
  assert.deepEqual([at.name, bt.name], ["lora_at_rows", "lora_bt_rows"]);
  const [, sumIn, rank] = bankAt.dims;
  const sumOut = bankBt.dims[2];
  assert.deepEqual(at.dims, [4, sumIn, rank]);
  assert.deepEqual(bt.dims, [4, rank, sumOut]);
  comp.index.forEach((slot, row) => {
    const slotAt = bankAt.data.subarray(slot * sumIn * rank, (slot + 1) * sumIn * rank);
    assert.deepEqual(at.data.subarray(row * sumIn * rank, (row + 1) * sumIn * rank), slotAt, `Aᵀ row ${row}`);
    const slotBt = bankBt.data.subarray(slot * rank * sumOut, (slot + 1) * rank * sumOut);
    assert.deepEqual(
      bt.data.subarray(row * rank * sumOut, (row + 1) * rank * sumOut),
      slotBt,
      `Bᵀ row ${row}`,
    );
  });
  const weights = randomLlamaWeights(config, { seed: 3, scale: 0.2 });
  const graph = buildVariantGraphs({ config, weights }, comp.variant).decode.graph;
  assert.deepEqual(graph.inputs.map((i) => i.name).filter((n) => n.includes("lora")), [
    "lora_at_rows",
    "lora_bt_rows",
  ]);
  assert.equal(graph.nodes.filter((n) => n.opType === "Gather" && n.name.includes("lora")).length, 0);
  const bankGraph = buildVariantGraphs({ config, weights }, bank.variant).decode.graph;
  assert.ok(
    bankGraph.nodes.some((n) => n.opType === "Gather" && n.name.includes("lora")),
    "the bank gathers",
  );
});

Deno.test("rows mode computes the bank's logits", async () => {
  const weights = randomLlamaWeights(config, { seed: 4, scale: 0.2 });
  const a = prepared(1, 2, ["q_proj"], "a");
  const b = prepared(2, 3, ["q_proj", "down_proj"], "b");
  const rows = [b, null, a];
  const logits: Float32Array[][] = [];
  for (const options of [{}, { rows: true }]) {
    const comp = composeBatch(rows, sites, options);
    const sessions = await createDecoderSessions({
      decode: buildVariantGraphs({ config, weights }, comp.variant).decode,
      ep: "wasm",
    });
    try {
      const feeds: Record<string, OrtTensor> = {};
      for (const x of variantArrays(comp, config)) feeds[x.name] = hostTensor(x.data, x.dims);
      if (comp.variant.mode === "bank") {
        feeds[LORA_INDEX_INPUT] = hostTensor(BigInt64Array.from(comp.index, BigInt), [rows.length]);
      }
      const decoder = new BatchDecoder(config, sessions);
      const passes = [await decoder.prefill([[1, 5, 9], [1, 7], [2]], feeds)];
      passes.push(await decoder.decode([4, 8, 6], feeds));
      decoder.clear();
      logits.push(passes);
    } finally {
      await releaseDecoderSessions(sessions);
    }
  }
  const [bank, perRow] = logits;
  for (let p = 0; p < bank.length; p++) {
    let worst = 0;
    for (let i = 0; i < bank[p].length; i++) worst = Math.max(worst, Math.abs(bank[p][i] - perRow[p][i]));
    assert.ok(worst < 1e-5, `pass ${p}: rows and bank differ by ${worst}`);
  }
});

Deno.test("slot packs: reused across passes, the same arrays as packing anew, dropped with their adapter", () => {
  const a = prepared(1, 2, ["q_proj"], "a");
  const b = prepared(2, 3, ["q_proj", "down_proj"], "b");
  const packs = new SlotPacks();
  const first = composeBatch([a, b, null], sites, { rows: true });
  const fresh = variantArrays(first, config);
  const cached = variantArrays(first, config, { packs });
  assert.deepEqual(cached, fresh);
  assert.equal(packs.built, 3, "one pack per slot");
  // another batch of the same adapters: nothing packed again
  const again = variantArrays(composeBatch([b, null, a, a], sites, { rows: true }), config, { packs });
  assert.deepEqual(again, variantArrays(composeBatch([b, null, a, a], sites, { rows: true }), config));
  assert.equal(packs.built, 3);
  // a different site set or rank is another pack
  variantArrays(composeBatch([a, null], sites), config, { packs });
  assert.equal(packs.built, 5);
  const bytes = packs.bytes;
  packs.evict("a");
  assert.ok(packs.bytes < bytes);
  variantArrays(first, config, { packs });
  assert.equal(packs.built, 6, "an evicted adapter is packed again");
  // over budget: the least recently used adapters' packs go, the one just packed stays
  const tiny = new SlotPacks({ maxBytes: 1 });
  variantArrays(first, config, { packs: tiny });
  const [, sumIn, rank] = fresh[0].dims;
  assert.equal(tiny.bytes, (sumIn * rank + rank * fresh[1].dims[2]) * 4, "one slot's pack kept");
});

Deno.test("a scratch: mixed-batch inputs written into reused buffers, equal to fresh arrays", () => {
  const a = prepared(1, 2, ["q_proj"], "a");
  const b = prepared(2, 3, ["q_proj", "down_proj"], "b");
  const scratch = new PackScratch();
  const big = composeBatch([b, a, null, b], sites, { rows: true });
  const first = variantArrays(big, config, { scratch });
  assert.deepEqual(first, variantArrays(big, config));
  const buffer = first[0].data.buffer;
  // a smaller batch overwrites the same buffer: the earlier views are stale, the new ones right
  const small = composeBatch([a, b], sites, { rows: true });
  const second = variantArrays(small, config, { scratch });
  assert.equal(second[0].data.buffer, buffer, "no new allocation");
  assert.deepEqual(second, variantArrays(small, config));
  const bank = composeBatch([a, null, b], sites);
  assert.deepEqual(variantArrays(bank, config, { scratch }), variantArrays(bank, config));
});
