import assert from "node:assert/strict";
import { buildLlamaTrainingGraph, IGNORE_INDEX } from "../../../src/models/llama/training.ts";
import { randomLlamaWeights } from "../../../src/models/random_weights.ts";
import { ropeInverseFrequencies } from "../../../src/models/rope.ts";
import type { AdapterHook } from "../../../src/models/sites.ts";
import type { GraphBuilder, Value } from "../../../src/onnx/builder.ts";
import { OnnxSession } from "../../../src/runtime/mod.ts";
import { evaluate, refTensor } from "../../_reference/mod.ts";
import { referenceLogits } from "../_llama_reference.ts";
import { GQA_CONFIG, int64Rows, QWEN2_CONFIG } from "../_fixtures.ts";
import { buildGradientGraph } from "../../../src/autodiff/gradient.ts";
import { gatedLoraHook, GATES_INPUT } from "../../../src/lora/gated_lora.ts";
import { listAdapterSites } from "../../../src/models/sites.ts";
import { modelFromGraph } from "../../../src/onnx/model.ts";
import { ort } from "../../../src/runtime/ort.ts";

// Two rows of 6 tokens: the second is right-padded after 4 tokens (mask 0, label -100), and one target in
// the first row is ignored.
const IDS = [[1, 7, 30, 4, 22, 9], [1, 12, 5, 33, 0, 0]];
const MASK = [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]];
const LABELS = [[1, 7, IGNORE_INDEX, 4, 22, 9], [1, 12, 5, 33, IGNORE_INDEX, IGNORE_INDEX]];

/** Mean over counted targets of −log softmax(logits[t])[labels[t + 1]], from float64 reference logits. */
function handLoss(config: typeof GQA_CONFIG, weights: ReturnType<typeof randomLlamaWeights>): number {
  let sum = 0, count = 0;
  IDS.forEach((row, r) => {
    const real = row.slice(0, MASK[r].filter((m) => m === 1).length);
    const logits = referenceLogits(config, weights, real, { invFreq: ropeInverseFrequencies(config) });
    for (let t = 0; t + 1 < row.length; t++) {
      const target = LABELS[r][t + 1];
      if (target === IGNORE_INDEX) continue;
      const z = logits[t];
      const max = Math.max(...z);
      const logSum = Math.log(z.reduce((s, v) => s + Math.exp(v - max), 0)) + max;
      sum += logSum - z[target];
      count++;
    }
  });
  return sum / count;
}

for (const config of [GQA_CONFIG, QWEN2_CONFIG]) {
  Deno.test(`training loss equals the hand-computed masked mean cross-entropy (${config.architecture})`, async () => {
    const weights = randomLlamaWeights(config, { seed: 7, scale: 0.3 });
    const model = buildLlamaTrainingGraph({ config, weights }, {
      batchSize: 2,
      seqLen: 6,
      outputLogits: true,
    });
    const expected = handLoss(config, weights);
    // float64 reference interpreter on the same graph: agrees to ~1e-12 (only summation order differs)
    const ref = evaluate(model.graph, {
      input_ids: refTensor("int64", [2, 6], IDS.flat()),
      labels: refTensor("int64", [2, 6], LABELS.flat()),
      attention_mask: refTensor("int64", [2, 6], MASK.flat()),
    });
    assert.ok(
      Math.abs(Number(ref.loss.data[0]) - expected) < 1e-9,
      `reference ${ref.loss.data[0]} vs ${expected}`,
    );
    // onnxruntime (float32): 1e-5 relative
    const session = await OnnxSession.create(model, { ep: "wasm" });
    try {
      const out = await session.run({
        input_ids: int64Rows(IDS),
        labels: int64Rows(LABELS),
        attention_mask: int64Rows(MASK),
      });
      const loss = (out.loss.data as Float32Array)[0];
      assert.deepEqual(out.loss.dims, []);
      assert.deepEqual(out.logits.dims, [2, 6, config.vocabSize]);
      assert.ok(Math.abs(loss - expected) < 1e-5 * Math.abs(expected), `onnxruntime ${loss} vs ${expected}`);
      // changing an ignored label does not change the loss; changing a counted one does
      const other = LABELS.map((r) => [...r]);
      other[0][2] = 5;
      const changed = await session.run({
        input_ids: int64Rows(IDS),
        labels: int64Rows(other),
        attention_mask: int64Rows(MASK),
      });
      assert.notEqual((changed.loss.data as Float32Array)[0], loss);
    } finally {
      await session.release();
    }
  });
}

Deno.test("logits only at counted positions: the same loss and gradients as logits everywhere", async () => {
  // prompt/completion rows: long ignored prompts, a few counted targets, right padding; sequence length
  // set by the run (as the trainer builds it)
  const config = GQA_CONFIG;
  const weights = randomLlamaWeights(config, { seed: 11, scale: 0.3 });
  const ids = [[1, 7, 30, 4, 22, 9, 14, 3], [1, 12, 5, 33, 8, 2, 0, 0]];
  const labels = [[-100, -100, -100, -100, -100, 9, 14, 3], [-100, -100, -100, -100, 8, 2, -100, -100]];
  const mask = [[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0]];
  const sites = listAdapterSites(config).filter((_, i) => i % 3 === 0);
  const rank = 2;
  const spec = sites.map((s) => ({ name: s.name, rank, scale: 2, gate: 1 }));
  const run = async (logitsAt: "all" | "counted") => {
    const lora = gatedLoraHook({ sites: spec, trainableGates: true });
    const forward = buildLlamaTrainingGraph({ config, weights }, {
      batchSize: 2,
      seqLen: "dynamic",
      adapter: lora.hook,
      logitsAt,
    });
    const gathers = forward.graph.nodes.filter((n) => n.name.includes("logit_rows")).length;
    assert.equal(gathers > 0, logitsAt === "counted", `${logitsAt}: gathered rows`);
    const trainable = [
      ...sites.flatMap((s) => [lora.inputs.get(s.name)!.a, lora.inputs.get(s.name)!.b]),
      GATES_INPUT,
    ];
    const { graph, gradientNames } = buildGradientGraph(forward.graph, { loss: "loss", trainable });
    const feeds: Record<string, ort.Tensor> = {
      input_ids: int64Rows(ids),
      labels: int64Rows(labels),
      attention_mask: int64Rows(mask),
      [GATES_INPUT]: new ort.Tensor("float32", new Float32Array(sites.length).fill(0.7), [sites.length]),
    };
    sites.forEach((s, k) => {
      const names = lora.inputs.get(s.name)!;
      const fill = (n: number, seed: number) =>
        Float32Array.from({ length: n }, (_, i) => Math.sin(seed + 0.7 * i) / 4);
      feeds[names.a] = new ort.Tensor("float32", fill(rank * s.inFeatures, k), [rank, s.inFeatures]);
      feeds[names.b] = new ort.Tensor("float32", fill(s.outFeatures * rank, 50 + k), [s.outFeatures, rank]);
    });
    const session = await OnnxSession.create(modelFromGraph(graph), { ep: "wasm" });
    try {
      const out = await session.run(feeds);
      const grads: Record<string, Float32Array> = {};
      for (const name of trainable) grads[name] = (await out[gradientNames[name]].getData()) as Float32Array;
      return { loss: (out.loss.data as Float32Array)[0], grads };
    } finally {
      await session.release();
    }
  };
  const all = await run("all");
  const counted = await run("counted");
  assert.ok(
    Math.abs(counted.loss - all.loss) <= 1e-5 * Math.abs(all.loss),
    `loss ${counted.loss} vs ${all.loss}`,
  );
  for (const [name, want] of Object.entries(all.grads)) {
    const got = counted.grads[name];
    const scale = Math.max(...want.map(Math.abs));
    assert.ok(scale > 0, `d loss / d ${name} is not zero`);
    const worst = Math.max(...got.map((v, i) => Math.abs(v - want[i])));
    assert.ok(worst <= 1e-5 * scale + 1e-7, `d loss / d ${name}: max |Δ| ${worst} (scale ${scale})`);
  }
});

const DIFFERENTIABLE = new Set([
  "MatMul",
  "Gemm",
  "Add",
  "Sub",
  "Mul",
  "Div",
  "Neg",
  "Pow",
  "Sqrt",
  "Reciprocal",
  "Exp",
  "Log",
  "Tanh",
  "Sigmoid",
  "Erf",
  "Relu",
  "Softmax",
  "LogSoftmax",
  "ReduceSum",
  "ReduceMean",
  "Reshape",
  "Transpose",
  "Squeeze",
  "Unsqueeze",
  "Slice",
  "Concat",
  "Split",
  "Gather",
  "Expand",
  "Where",
  "Cast",
  "SoftmaxCrossEntropyLoss",
]);

Deno.test("every op between adapter inputs and the loss is one autodiff supports", () => {
  // a gated LoRA hook like the trainer's: baseOut + gate · scale · (x Aᵀ) Bᵀ at every site
  const hook: AdapterHook = (b: GraphBuilder, site, x: Value, baseOut: Value) => {
    const a = b.input(`${site.name}.lora_A`, "float32", [2, site.inFeatures]);
    const bm = b.input(`${site.name}.lora_B`, "float32", [site.outFeatures, 2]);
    const gate = b.input(`${site.name}.gate`, "float32", [1]);
    const down = b.matmul(x, b.transpose(a, [1, 0]));
    return b.add(baseOut, b.mul(b.mul(b.matmul(down, b.transpose(bm, [1, 0])), gate), 2));
  };
  const config = QWEN2_CONFIG;
  const model = buildLlamaTrainingGraph({ config, weights: randomLlamaWeights(config) }, {
    batchSize: 2,
    seqLen: 5,
    adapter: hook,
  });
  const trainable = new Set(
    model.graph.inputs.filter((i) => i.name.includes(".lora_") || i.name.endsWith(".gate")),
  );
  assert.equal(trainable.size, 3 * 7 * config.numHiddenLayers);
  const reached = new Set([...trainable].map((i) => i.name));
  const ops = new Set<string>();
  for (const node of model.graph.nodes) {
    if (!node.inputs.some((n) => reached.has(n))) continue;
    ops.add(node.opType);
    for (const o of node.outputs) reached.add(o);
  }
  assert.ok(reached.has("loss"));
  const bad = [...ops].filter((op) => !DIFFERENTIABLE.has(op));
  assert.deepEqual(bad, [], `ops on adapter → loss paths: ${[...ops].join(", ")}`);
});

Deno.test("training graph sizes are validated", () => {
  const weights = randomLlamaWeights(GQA_CONFIG);
  assert.throws(
    () => buildLlamaTrainingGraph({ config: GQA_CONFIG, weights }, { batchSize: 2, seqLen: 1 }),
    /seqLen must be an integer ≥ 2, got 1/,
  );
  assert.throws(
    () => buildLlamaTrainingGraph({ config: GQA_CONFIG, weights }, { batchSize: 0, seqLen: 4 }),
    /batchSize must be a positive integer, got 0/,
  );
});
