import assert from "node:assert/strict";
import { buildLlamaInferenceGraph } from "../../src/models/llama_inference.ts";
import { loraFeeds } from "../../src/models/lora_inputs.ts";
import { randomLlamaWeights } from "../../src/models/random_weights.ts";
import { OnnxSession } from "../../src/runtime/session.ts";
import { hostTensor } from "../../src/runtime/tensor.ts";
import { bankInputNames, buildServingGraphs, LORA_INDEX_INPUT } from "../../src/serve/bank_graph.ts";
import { bankArrays, composeSlots } from "../../src/serve/_bank.ts";
import { parseAdapterFiles, prepareAdapter } from "../../src/serve/prepared_adapter.ts";
import { GQA_CONFIG, int64Rows, maxAbsDiff } from "../models/_fixtures.ts";
import { randomAdapterFiles } from "./_fixtures.ts";

const config = GQA_CONFIG;
const weights = randomLlamaWeights(config, { seed: 11, scale: 0.2 });

Deno.test("the serving graphs take a bank at every site and one row index", () => {
  const graphs = buildServingGraphs({ config, weights });
  const inputs = graphs.decode.graph.inputs.map((i) => i.name);
  assert.equal(graphs.sites.length, config.numHiddenLayers * 7);
  for (const site of graphs.sites) {
    const names = bankInputNames(site.name);
    assert.ok(inputs.includes(names.a) && inputs.includes(names.bt), site.name);
  }
  assert.equal(inputs.filter((n) => n === LORA_INDEX_INPUT).length, 1);
  const a = graphs.prefill.graph.inputs.find((i) => i.name === bankInputNames(graphs.sites[0].name).a)!;
  assert.deepEqual(a.type?.shape, ["slots", `${graphs.sites[0].name}.rank`, config.hiddenSize]);
});

Deno.test("each row of a mixed-adapter pass equals its adapter fed alone through LoRA inputs", async () => {
  const peftA = parseAdapterFiles(randomAdapterFiles(config, { seed: 1, rank: 2, scale: 0.3 }), {
    model: config,
    source: "a",
  });
  const peftB = parseAdapterFiles(
    randomAdapterFiles(config, { seed: 2, rank: 3, modules: ["k_proj", "o_proj", "up_proj"], scale: 0.3 }),
    { model: config, source: "b" },
  );
  const a = prepareAdapter(peftA, { key: "a" });
  const b = prepareAdapter(peftB, { key: "b" });
  const graphs = buildServingGraphs({ config, weights });
  const bank = await OnnxSession.create(graphs.prefill, { ep: "wasm" });
  const rows = [[1, 5, 9, 3], [1, 7, 2, 8], [1, 4, 4, 6]];
  const adapters = [a, null, b];
  const comp = composeSlots(adapters);
  assert.deepEqual(comp.index, [0, 1, 2]);
  const feeds = Object.fromEntries(
    bankArrays(comp.slots, graphs.sites).map((x) => [x.name, hostTensor(x.data, x.dims)]),
  );
  const out = await bank.run({
    input_ids: int64Rows(rows),
    position_ids: int64Rows(rows.map((r) => r.map((_, i) => i))),
    attention_mask: int64Rows(rows.map((r) => r.map(() => 1))),
    [LORA_INDEX_INPUT]: hostTensor(BigInt64Array.from(comp.index, BigInt), [rows.length]),
    ...feeds,
  });
  const logits = (await out.logits.getData()) as Float32Array;
  await bank.release();
  const vocab = config.vocabSize;
  const references = [peftA, undefined, peftB];
  for (const [r, peft] of references.entries()) {
    const sites = peft ? [...peft.sites.keys()] : [];
    const model = buildLlamaInferenceGraph({ config, weights }, { kind: "prefill", loraSites: sites });
    const session = await OnnxSession.create(model, { ep: "wasm" });
    const ref = await session.run({
      input_ids: int64Rows([rows[r]]),
      position_ids: int64Rows([rows[r].map((_, i) => i)]),
      attention_mask: int64Rows([rows[r].map(() => 1)]),
      ...(peft ? loraFeeds(sites, peft.sites) : {}),
    });
    const expected = (await ref.logits.getData()) as Float32Array;
    await session.release();
    const got = logits.subarray(r * vocab, (r + 1) * vocab);
    assert.ok(maxAbsDiff(got, expected) < 1e-5, `row ${r}: max |Δ| ${maxAbsDiff(got, expected)}`);
  }
  // the adapters do change the output (the test would not notice a missing LoRA path otherwise)
  const base = logits.subarray(vocab, 2 * vocab);
  assert.ok(maxAbsDiff(logits.subarray(0, vocab), base) > 1e-3);
});
