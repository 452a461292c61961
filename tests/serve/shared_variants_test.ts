import assert from "node:assert/strict";
import { BatchDecoder } from "../../src/models/batch_decoder.ts";
import { randomLlamaWeights } from "../../src/models/random_weights.ts";
import { listAdapterSites, type LlamaModule } from "../../src/models/sites.ts";
import type { Graph, TensorData } from "../../src/onnx/types.ts";
import { ort } from "../../src/runtime/ort.ts";
import type { OrtTensor } from "../../src/runtime/session.ts";
import { gatedArrays, LORA_GATES_INPUT } from "../../src/serve/gated_graph.ts";
import { hostTensor } from "../../src/runtime/tensor.ts";
import { parseAdapterFiles, prepareAdapter, type PreparedAdapter } from "../../src/serve/prepared_adapter.ts";
import {
  composeSharedVariants,
  internInitializers,
  variantBitInput,
  variantSelector,
} from "../../src/serve/shared_variants.ts";
import {
  buildVariantGraphs,
  composeBatch,
  LORA_INDEX_INPUT,
  variantArrays,
  variantInputNames,
} from "../../src/serve/variant_graphs.ts";
import {
  GATED_FROM_BYTES,
  resolveVariantLayout,
  type VariantLayout,
  VariantSessions,
} from "../../src/serve/variant_sessions.ts";
import { QWEN2_CONFIG } from "../models/_fixtures.ts";
import { randomAdapterFiles } from "./_fixtures.ts";

// Qwen2-style: q/k/v biases (a Concat of initializers that onnxruntime folds inside each branch), GQA
const config = QWEN2_CONFIG;
const weights = randomLlamaWeights(config, { seed: 11, scale: 0.3 });
const model = { config, weights };
const sites = listAdapterSites(config);

function adapter(seed: number, rank: number, modules: LlamaModule[], keep?: (site: string) => boolean) {
  const peft = parseAdapterFiles(randomAdapterFiles(config, { seed, rank, modules, scale: 0.4 }), {
    model: config,
    source: `a${seed}`,
  });
  for (const name of [...peft.sites.keys()]) if (keep && !keep(name)) peft.sites.delete(name);
  return prepareAdapter(peft, { key: `a${seed}` });
}

// two sites, five sites (another rank), and mixed batches of them
const two = adapter(
  1,
  2,
  ["q_proj", "down_proj"],
  (s) => s.includes("layers.0.self") || s.includes("layers.1.mlp"),
);
const five = adapter(2, 4, ["k_proj", "v_proj", "o_proj"], (s) => !s.endsWith("layers.1.self_attn.o_proj"));
const batches: (PreparedAdapter | null)[][] = [[null, null], [two, two], [five, five], [two, null], [
  five,
  two,
]];

/** Every initializer of a graph and its subgraphs. */
function allInitializers(g: Graph): TensorData[] {
  return [
    ...g.initializers,
    ...g.nodes.flatMap((n) =>
      Object.values(n.attributes).flatMap((a) => (a.type === "graph" ? allInitializers(a.value) : []))
    ),
  ];
}

Deno.test("a composed model holds each base weight once, outside the branches", () => {
  const pool = new Map<string, TensorData>();
  const branches = batches.map((rows) => {
    const variant = composeBatch(rows, sites).variant;
    const decode = buildVariantGraphs(model, variant).decode;
    return { variant, model: { ...decode, graph: internInitializers(decode.graph, pool) } };
  });
  const plain = branches[0].model.graph.initializers;
  const plainBytes = plain.reduce((n, t) => n + t.data.byteLength, 0);
  const composed = composeSharedVariants(branches);
  assert.equal(composed.branches, 5);
  assert.equal(composed.depth, 3);
  const all = allInitializers(composed.model.graph);
  const large = all.filter((t) => t.data.byteLength >= 256);
  assert.deepEqual(
    large.map((t) => t.name).sort(),
    plain.filter((t) => t.data.byteLength >= 256).map((t) => t.name).sort(),
    "every weight once",
  );
  assert.ok(composed.sharedBytes >= plainBytes - 64, `${composed.sharedBytes} shared of ${plainBytes}`);
  assert.ok(composed.branchBytes < 0.02 * plainBytes, `${composed.branchBytes} bytes left in branches`);
  // the variants' graphs, interned, share the weights' arrays
  const q =
    "model.layers.0.self_attn.q_proj+model.layers.0.self_attn.k_proj+model.layers.0.self_attn.v_proj.weight.T";
  const copies = new Set(branches.map((b) => b.model.graph.initializers.find((t) => t.name === q)!.data));
  assert.equal(copies.size, 1, "one JavaScript copy of a weight across cached graphs");
  // inputs: the packed LoRA inputs once for every branch; placeholders for the branches that do not read them
  const inputs = composed.model.graph.inputs.map((i) => i.name);
  for (const name of [variantInputNames("single").at, variantInputNames("bank").bt, LORA_INDEX_INPUT]) {
    assert.equal(inputs.filter((n) => n === name).length, 1, name);
  }
  const at = composed.optional.find((o) => o.name === "lora_at")!;
  assert.deepEqual([...at.readers].sort(), [1, 2]);
  assert.deepEqual(at.dims, [1, 1]);
  assert.deepEqual(composed.optional.find((o) => o.name === LORA_INDEX_INPUT)!.dims, [1]);
  assert.deepEqual(inputs.filter((n) => n.startsWith("variant_bit_")), [0, 1, 2].map(variantBitInput));
});

Deno.test("selector bits: branch index, most significant bit first", () => {
  assert.deepEqual(variantSelector(5, 3), [true, false, true]);
  assert.deepEqual(variantSelector(0, 0), []);
  assert.throws(() => composeSharedVariants([]), /no variant given/);
});

/** Prefill two ragged rows, then two decode steps: every pass's logits. */
async function run(layout: VariantLayout): Promise<Float32Array[][]> {
  const sessions = await VariantSessions.create({ model, ep: "wasm", maxVariants: 8, layout });
  try {
    const comps = batches.map((rows) => composeBatch(rows, sites));
    for (const comp of comps) await sessions.acquire(comp.variant); // every variant built first
    if (layout === "shared") {
      assert.equal(sessions.shared!.branches, comps.length);
      assert.equal(sessions.list().length, comps.length);
    }
    if (layout === "gated") {
      assert.deepEqual(sessions.list().map((v) => v.key), ["gated"], "one graph, never rebuilt");
    }
    const out: Float32Array[][] = [];
    for (const comp of comps) {
      const handle = await sessions.acquire(comp.variant);
      const lora: Record<string, OrtTensor> = {};
      if (layout === "gated") {
        const g = gatedArrays(comp, config);
        for (const a of g.arrays) lora[a.name] = hostTensor(a.data, a.dims);
        lora[LORA_GATES_INPUT] = new ort.Tensor("bool", g.gates, [g.gates.length]);
        lora[LORA_INDEX_INPUT] = hostTensor(g.index, [g.index.length]);
      } else {
        for (const a of variantArrays(comp, config)) lora[a.name] = hostTensor(a.data, a.dims);
        if (comp.variant.mode === "bank") {
          lora[LORA_INDEX_INPUT] = hostTensor(BigInt64Array.from(comp.index, BigInt), [comp.index.length]);
        }
      }
      const decoder = new BatchDecoder(config, handle.sessions);
      const passes = [await decoder.prefill([[1, 5, 9, 3], [1, 7]], { ...lora, ...handle.feeds("prefill") })];
      for (let step = 0; step < 2; step++) {
        passes.push(await decoder.decode([4 + step, 8], { ...lora, ...handle.feeds("decode") }));
      }
      decoder.clear();
      out.push(passes);
    }
    return out;
  } finally {
    await sessions.release();
  }
}

Deno.test("one shared or gated session gives the logits of one session per variant: none, single (2 and 5 sites), bank", async () => {
  const separate = await run("separate");
  for (const layout of ["shared", "gated"] as const) {
    const other = await run(layout);
    separate.forEach((passes, v) => {
      passes.forEach((logits, p) => {
        assert.equal(other[v][p].length, logits.length);
        let worst = 0;
        for (let i = 0; i < logits.length; i++) worst = Math.max(worst, Math.abs(logits[i] - other[v][p][i]));
        assert.ok(worst < 1e-4, `${layout}: batch ${v} pass ${p}: max |Δ| ${worst}`);
      });
    });
  }
  // the adapters change the logits (the comparison is not vacuous)
  assert.notDeepEqual(separate[1][0], separate[0][0]);
  assert.notDeepEqual(separate[2][0], separate[0][0]);
});

Deno.test("shared layout: the variant bound drops the least recently used variant from the session", async () => {
  const sessions = await VariantSessions.create({ model, ep: "wasm", maxVariants: 2, layout: "shared" });
  try {
    assert.equal(sessions.layout, "shared");
    for (const rows of batches.slice(1, 4)) await sessions.acquire(composeBatch(rows, sites).variant);
    assert.equal(sessions.list().length, 2);
    assert.equal(sessions.shared!.branches, 2);
    assert.deepEqual(
      sessions.list().map((v) => v.key.split(":")[0]),
      ["single", "bank"],
      "the two most recent",
    );
    assert.equal(sessions.shared!.rebuilds, 4, "one build per new variant");
    await sessions.acquire(composeBatch(batches[3], sites).variant);
    assert.equal(sessions.shared!.rebuilds, 4, "a cached variant costs no rebuild");
  } finally {
    await sessions.release();
  }
});

Deno.test("gated graph: the base model in the main graph, one If per site holding only that site's LoRA", async () => {
  const { buildGatedGraph } = await import("../../src/serve/gated_graph.ts");
  const graph = buildGatedGraph(model).graph;
  const ifs = graph.nodes.filter((n) => n.opType === "If");
  assert.equal(ifs.length, sites.length);
  const plain = buildVariantGraphs(model, { sites: [], mode: "none" }).decode.graph;
  // every base MatMul stays in the main graph (onnxruntime prepacks only those), the branches read no weight
  const matmuls = (g: Graph) => g.nodes.filter((n) => n.opType === "MatMul").length;
  assert.equal(matmuls(graph), matmuls(plain));
  const weights = new Set(plain.initializers.filter((t) => t.data.byteLength >= 256).map((t) => t.name));
  for (const node of ifs) {
    const then = node.attributes.then_branch;
    assert.ok(then.type === "graph");
    assert.deepEqual(then.value.nodes.map((n) => n.opType), [
      "Slice",
      "Gather",
      "MatMul",
      "Slice",
      "Gather",
      "MatMul",
      "Add",
    ]);
    assert.ok(
      !then.value.nodes.some((n) => n.inputs.some((i) => weights.has(i))),
      "no base weight in a branch",
    );
  }
  await assert.rejects(
    () => VariantSessions.create({ model, ep: "webgpu", maxVariants: 1, layout: "gated" }),
    /wasm only/,
  );
});

Deno.test("layout auto: gated on wasm from 16 MiB of weights, separate below it and on WebGPU", () => {
  const big = new Map([["w", {
    name: "w",
    dtype: "float32" as const,
    dims: [GATED_FROM_BYTES / 4],
    data: new Uint8Array(GATED_FROM_BYTES),
  }]]);
  assert.equal(resolveVariantLayout("auto", { model: { weights: big }, ep: "wasm" }), "gated");
  assert.equal(resolveVariantLayout("auto", { model: { weights: big }, ep: "webgpu" }), "separate");
  assert.equal(resolveVariantLayout("auto", { model, ep: "wasm" }), "separate");
  assert.equal(resolveVariantLayout("shared", { model, ep: "wasm" }), "shared");
  assert.throws(
    () => resolveVariantLayout("bogus" as VariantLayout, { model, ep: "wasm" }),
    /Unknown variant layout "bogus"/,
  );
});
