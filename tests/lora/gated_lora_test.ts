// Gradients of A, B and the gates through a whole (tiny, random) Llama training graph: our gradient graph
// evaluated in float64 by the reference interpreter, against central finite differences of the forward
// graph (also float64). Tolerance |Δ| ≤ 1e-6 + 1e-5·|fd|. On an int8 or int4 base (MatMulNBits, dequantized
// in the backward), the gradients equal the float64 gradients of the float graph over the dequantized
// weights, in the reference and on onnxruntime-web.

import assert from "node:assert/strict";
import { buildGradientGraph } from "../../src/autodiff/gradient.ts";
import { gatedLoraHook, GATES_INPUT } from "../../src/lora/gated_lora.ts";
import type { LlamaConfig } from "../../src/models/config.ts";
import { buildLlamaTrainingGraph } from "../../src/models/llama/training.ts";
import { randomLlamaWeights } from "../../src/models/random_weights.ts";
import { adapterSite } from "../../src/models/sites.ts";
import { evaluate, type RefTensor } from "../_reference/mod.ts";
import {
  dequantizeModelWeights,
  type ModelWeights,
  quantizeModelWeights,
} from "../../src/io/quantized_weights.ts";
import type { QuantizationConfig } from "../../src/models/config.ts";
import { modelFromGraph } from "../../src/onnx/model.ts";
import { OnnxSession } from "../../src/runtime/session.ts";
import { ort } from "../../src/runtime/ort.ts";
import { assertClose, seededRandom } from "../autodiff/_numeric.ts";

const CONFIG: LlamaConfig = {
  architecture: "llama",
  vocabSize: 11,
  hiddenSize: 8,
  intermediateSize: 12,
  numHiddenLayers: 2,
  numAttentionHeads: 2,
  numKeyValueHeads: 1,
  headDim: 4,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  maxPositionEmbeddings: 16,
  tieWordEmbeddings: true,
  attentionBias: false,
  bosTokenId: 1,
  eosTokenIds: [2],
};

Deno.test("gated LoRA gradients of A, B and gates through a full Llama match finite differences", () => {
  const rand = seededRandom(17);
  const sites = [
    adapterSite(CONFIG, 0, "q_proj"),
    adapterSite(CONFIG, 1, "v_proj"),
    adapterSite(CONFIG, 1, "down_proj"),
  ];
  const rank = 2;
  const lora = gatedLoraHook({
    sites: sites.map((s) => ({ name: s.name, rank, scale: 1.5, gate: 1 })),
    trainableGates: true,
  });
  const model = { config: CONFIG, weights: randomLlamaWeights(CONFIG, { seed: 3, scale: 0.4 }) };
  const forward = buildLlamaTrainingGraph(model, { batchSize: 2, seqLen: 4, adapter: lora.hook }).graph;
  const trainable = [
    ...sites.flatMap((s) => [lora.inputs.get(s.name)!.a, lora.inputs.get(s.name)!.b]),
    GATES_INPUT,
  ];
  const { graph, gradientNames } = buildGradientGraph(forward, { loss: "loss", trainable });

  const ints = (values: number[]): RefTensor => ({
    dtype: "int64",
    dims: [2, 4],
    data: BigInt64Array.from(values.map(BigInt)),
  });
  const feeds: Record<string, RefTensor> = {
    input_ids: ints([1, 5, 7, 3, 1, 9, 2, 4]),
    labels: ints([1, 5, 7, 3, -100, 9, 2, 4]),
    attention_mask: ints([1, 1, 1, 1, 1, 1, 1, 0]),
    [GATES_INPUT]: { dtype: "float32", dims: [3], data: Float64Array.from([0.8, -0.5, 1.2]) },
  };
  for (const s of sites) {
    const names = lora.inputs.get(s.name)!;
    feeds[names.a] = {
      dtype: "float32",
      dims: [rank, s.inFeatures],
      data: Float64Array.from({ length: rank * s.inFeatures }, rand),
    };
    // B ≠ 0 so that the gate gradients are not trivially zero
    feeds[names.b] = {
      dtype: "float32",
      dims: [s.outFeatures, rank],
      data: Float64Array.from({ length: s.outFeatures * rank }, rand),
    };
  }
  const analytic = evaluate(graph, feeds);
  const lossAt = (name: string, i: number, delta: number) => {
    const data = Float64Array.from(feeds[name].data as Float64Array);
    data[i] += delta;
    return (evaluate(forward, { ...feeds, [name]: { ...feeds[name], data } }).loss.data as Float64Array)[0];
  };
  const eps = 1e-5;
  for (const name of trainable) {
    const grad = analytic[gradientNames[name]].data as Float64Array;
    const n = grad.length;
    // every gate; five spread-out elements of each A and B
    const indices = name === GATES_INPUT
      ? [0, 1, 2]
      : [0, Math.floor(n / 4), Math.floor(n / 2), Math.floor((3 * n) / 4), n - 1];
    const numeric = indices.map((i) => (lossAt(name, i, eps) - lossAt(name, i, -eps)) / (2 * eps));
    assertClose(indices.map((i) => grad[i]), numeric, { atol: 1e-6, rtol: 1e-5 }, `d loss / d ${name}`);
  }
  const gateGrad = analytic[gradientNames[GATES_INPUT]].data as Float64Array;
  assert.ok(gateGrad.every((g) => Math.abs(g) > 1e-6), "gate gradients are non-zero when B ≠ 0");
});

const QUANTIZATIONS: Record<string, QuantizationConfig> = {
  int8: { bits: 8, blockSize: 16, symmetric: true },
  int4: { bits: 4, blockSize: 16, symmetric: false },
};

for (const [kind, quantization] of Object.entries(QUANTIZATIONS)) {
  Deno.test(`gradients of A, B and gates through an ${kind} base equal the float64 gradients over its dequantized weights`, async () => {
    const rand = seededRandom(29);
    // every module of layer 0, and down_proj (in = 12: a padded last block) of layer 1
    const sites = [
      ...(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"] as const).map((m) =>
        adapterSite(CONFIG, 0, m)
      ),
      adapterSite(CONFIG, 1, "down_proj"),
    ];
    const rank = 2;
    const lora = gatedLoraHook({
      sites: sites.map((s) => ({ name: s.name, rank, scale: 1.5, gate: 1 })),
      trainableGates: true,
    });
    const quantized = quantizeModelWeights({
      config: { ...CONFIG, tieWordEmbeddings: false },
      weights: randomLlamaWeights({ ...CONFIG, tieWordEmbeddings: false }, { seed: 5, scale: 0.4 }),
    }, quantization);
    const trainable = [
      ...sites.flatMap((s) => [lora.inputs.get(s.name)!.a, lora.inputs.get(s.name)!.b]),
      GATES_INPUT,
    ];
    const gradientsOf = (model: ModelWeights) => {
      const hook = gatedLoraHook({
        sites: sites.map((s) => ({ name: s.name, rank, scale: 1.5, gate: 1 })),
        trainableGates: true,
      }).hook;
      const forward = buildLlamaTrainingGraph(model, { batchSize: 2, seqLen: 4, adapter: hook }).graph;
      return buildGradientGraph(forward, { loss: "loss", trainable });
    };
    const q = gradientsOf(quantized);
    assert.ok(q.graph.nodes.some((n) => n.opType === "MatMulNBits"), "the base stays quantized");
    const f = gradientsOf(dequantizeModelWeights(quantized));
    assert.ok(!f.graph.nodes.some((n) => n.opType === "MatMulNBits"));

    const ints = (values: number[]): RefTensor => ({
      dtype: "int64",
      dims: [2, 4],
      data: BigInt64Array.from(values.map(BigInt)),
    });
    const feeds: Record<string, RefTensor> = {
      input_ids: ints([1, 5, 7, 3, 1, 9, 2, 4]),
      labels: ints([1, 5, 7, 3, -100, 9, 2, 4]),
      attention_mask: ints([1, 1, 1, 1, 1, 1, 1, 0]),
      [GATES_INPUT]: {
        dtype: "float32",
        dims: [sites.length],
        data: Float64Array.from(sites, (_, i) => 0.5 + 0.1 * i),
      },
    };
    for (const s of sites) {
      const names = lora.inputs.get(s.name)!;
      const values = (n: number) => Float64Array.from({ length: n }, () => Math.fround(rand()));
      feeds[names.a] = { dtype: "float32", dims: [rank, s.inFeatures], data: values(rank * s.inFeatures) };
      feeds[names.b] = { dtype: "float32", dims: [s.outFeatures, rank], data: values(s.outFeatures * rank) };
    }
    const expected = evaluate(f.graph, feeds);
    const reference = evaluate(q.graph, feeds);
    const session = await OnnxSession.create(modelFromGraph(q.graph), { ep: "wasm" });
    let runtime: Record<string, ort.Tensor>;
    try {
      runtime = await session.run(Object.fromEntries(
        Object.entries(feeds).map(([name, t]) => [
          name,
          t.dtype === "int64"
            ? new ort.Tensor("int64", t.data as BigInt64Array, t.dims)
            : new ort.Tensor("float32", Float32Array.from(t.data as Float64Array), t.dims),
        ]),
      ));
    } finally {
      await session.release();
    }
    for (const name of trainable) {
      const want = expected[f.gradientNames[name]].data as Float64Array;
      assert.ok(want.some((v) => Math.abs(v) > 1e-4), `d loss / d ${name} is not trivially zero`);
      const ref = reference[q.gradientNames[name]].data as Float64Array;
      assertClose(ref, want, { atol: 1e-12, rtol: 1e-9 }, `${kind} reference: d loss / d ${name}`);
      const got = (await runtime[q.gradientNames[name]].getData()) as Float32Array;
      assertClose(got, want, { atol: 2e-5, rtol: 2e-4 }, `${kind} onnxruntime: d loss / d ${name}`);
    }
  });
}

Deno.test("with B = 0 the gate gradient is exactly zero", () => {
  const site = adapterSite(CONFIG, 0, "o_proj");
  const lora = gatedLoraHook({
    sites: [{ name: site.name, rank: 2, scale: 2, gate: 1 }],
    trainableGates: true,
  });
  const model = { config: CONFIG, weights: randomLlamaWeights(CONFIG, { seed: 1 }) };
  const forward = buildLlamaTrainingGraph(model, { batchSize: 1, seqLen: 3, adapter: lora.hook }).graph;
  const names = lora.inputs.get(site.name)!;
  const { graph, gradientNames } = buildGradientGraph(forward, {
    loss: "loss",
    trainable: [names.a, names.b, GATES_INPUT],
  });
  const ids: RefTensor = { dtype: "int64", dims: [1, 3], data: BigInt64Array.from([1n, 4n, 6n]) };
  const out = evaluate(graph, {
    input_ids: ids,
    labels: ids,
    attention_mask: { dtype: "int64", dims: [1, 3], data: BigInt64Array.from([1n, 1n, 1n]) },
    [names.a]: {
      dtype: "float32",
      dims: [2, site.inFeatures],
      data: Float64Array.from({ length: 2 * site.inFeatures }, (_, i) => i / 10),
    },
    [names.b]: {
      dtype: "float32",
      dims: [site.outFeatures, 2],
      data: new Float64Array(site.outFeatures * 2),
    },
    [GATES_INPUT]: { dtype: "float32", dims: [1], data: Float64Array.from([1]) },
  });
  assert.equal((out[gradientNames[GATES_INPUT]].data as Float64Array)[0], 0);
  assert.equal((out[gradientNames[names.a]].data as Float64Array).every((v) => v === 0), true);
  assert.ok((out[gradientNames[names.b]].data as Float64Array).some((v) => v !== 0));
});

Deno.test("sites not in the spec get no adapter nodes; unknown sites are reported", () => {
  const lora = gatedLoraHook({
    sites: [{ name: "model.layers.1.mlp.up_proj", rank: 2, scale: 1, gate: 1 }, {
      name: "model.layers.9.mlp.up_proj",
      rank: 2,
      scale: 1,
      gate: 1,
    }],
    trainableGates: false,
  });
  const model = { config: CONFIG, weights: randomLlamaWeights(CONFIG) };
  const graph = buildLlamaTrainingGraph(model, { batchSize: 1, seqLen: 2, adapter: lora.hook }).graph;
  const loraNodes = graph.nodes.filter((n) => n.name.includes("/lora/"));
  assert.ok(loraNodes.length > 0);
  for (const node of loraNodes) assert.ok(node.name.includes("model.layers.1.mlp.up_proj/lora/"), node.name);
  assert.deepEqual(lora.unused(), ["model.layers.9.mlp.up_proj"]);
  assert.ok(!graph.inputs.some((i) => i.name === GATES_INPUT), "frozen gates are constants, not inputs");
});
