// Graphs built with GraphBuilder run through OnnxSession on wasm and on WebGPU and must agree with the
// float64 reference interpreter. Few sessions (WebGPU here is lavapipe, a software renderer): each graph
// packs several ops and exposes intermediate values as outputs.
//
// Tolerance, for every float32 output on both providers: |ort − ref| <= ATOL + RTOL·|ref| with
// RTOL = 1e-5 and ATOL = 1e-6 (float32 rounding through a few dozen ops of width <= 16).

import assert from "node:assert/strict";
import { GraphBuilder, type Value } from "../../src/onnx/mod.ts";
import type { ExecutionProvider } from "../../src/runtime/execution_provider.ts";
import { ort } from "../../src/runtime/ort.ts";
import { OnnxSession } from "../../src/runtime/session.ts";
import { hostTensor, toHost } from "../../src/runtime/tensor.ts";
import { assertAllClose, evaluate, type RefTensor, refTensor } from "../_reference/mod.ts";
import { requireWebGpu } from "../_util/fixtures.ts";

const RTOL = 1e-5;
const ATOL = 1e-6;

const webGpu = await requireWebGpu("the WebGPU cases of tests/onnx/ops_test.ts");

/** Deterministic float32 values in [-scale, scale). */
function values(n: number, seed: number, scale = 1): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.fround((s / 2 ** 32 - 0.5) * 2 * scale);
  });
}

interface Case {
  graph: ReturnType<GraphBuilder["toGraph"]>;
  model: ReturnType<GraphBuilder["toModel"]>;
  feeds: Record<string, RefTensor>;
}

/**
 * Attention-like dense block: MatMul chains (batched, broadcast, transposed), broadcasting arithmetic,
 * masking with Where, Softmax, LayerNormalization, GELU via Erf, a Sigmoid gate, Reshape/Transpose,
 * Slice/Concat, ReduceSum/ReduceMean.
 */
function denseCase(): Case {
  const b = new GraphBuilder("dense");
  const [batch, seq, dim, hidden] = [2, 4, 8, 16];
  const x = b.input("x", "float32", [batch, seq, dim]);
  const mask = b.input("mask", "bool", [seq, seq]);
  const weight = (name: string, dims: number[], seed: number, scale: number) =>
    b.initializer(name, Float32Array.from(values(dims.reduce((p, q) => p * q, 1), seed, scale)), dims);
  const wq = weight("wq", [dim, dim], 1, 0.5);
  const scores = b.div(b.matmul(b.matmul(x, wq), b.transpose(x, [0, 2, 1])), Math.sqrt(dim));
  const masked = b.where(mask, scores, -1e4);
  const probs = b.softmax(masked, -1);
  const attended = b.add(b.matmul(probs, x), x);
  const normed = b.layerNorm(attended, weight("ln_scale", [dim], 2, 1), weight("ln_bias", [dim], 3, 0.1));
  const h = b.add(b.matmul(normed, weight("w1", [dim, hidden], 4, 0.5)), weight("b1", [hidden], 5, 0.1));
  const gelu = b.mul(b.mul(h, 0.5), b.add(b.erf(b.div(h, Math.SQRT2)), 1));
  const gated = b.mul(gelu, b.sigmoid(h));
  const y = b.add(b.matmul(gated, weight("w2", [hidden, dim], 6, 0.5)), normed);
  const flat = b.transpose(b.reshape(y, [-1, dim]), [1, 0]); // [dim, batch*seq]
  const ends = b.concat([b.slice(flat, [0], [2], [0]), b.slice(flat, [-2], [2 ** 62], [0])], 0); // [4, 8]
  outputs(b, { probs, normed, gelu, y, flat, ends });
  b.output(b.reduceSum(ends, [1], false), "row_sums");
  b.output(b.reduceMean(y, [0, 2], true), "means");
  const causal = Array.from({ length: seq * seq }, (_, i) => (i % seq <= Math.floor(i / seq) ? 1 : 0));
  return {
    graph: b.toGraph(),
    model: b.toModel(),
    feeds: {
      x: refTensor("float32", [batch, seq, dim], values(batch * seq * dim, 7)),
      mask: refTensor("bool", [seq, seq], causal),
    },
  };
}

/**
 * Embedding lookup and loss: Gather from a table with a symbolic batch, the Shape → Gather → Concat →
 * Reshape folding, SoftmaxCrossEntropyLoss with ignore_index (mean and none), GatherElements, and
 * ScatterElements with reduction "add" over repeated ids (the gradient of Gather).
 */
function indexingCase(): Case {
  const b = new GraphBuilder("indexing");
  const [vocab, dim, seq] = [12, 8, 5];
  const ids = b.input("ids", "int64", ["batch", seq]);
  const labels = b.input("labels", "int64", ["batch", seq]);
  const table = b.initializer("table", Float32Array.from(values(vocab * dim, 11)), [vocab, dim]);
  const wout = b.initializer("wout", Float32Array.from(values(dim * vocab, 12, 0.7)), [dim, vocab]);
  const embedded = b.gather(table, ids); // [batch, seq, dim]
  const shape = b.shapeOf(embedded);
  const rows = b.mul(b.gather(shape, b.ints([0])), seq); // batch * seq, folded symbolically
  const flat = b.reshape(embedded, b.concat([rows, b.ints([dim])], 0)); // [batch*seq, dim]
  assert.deepEqual(flat.shape, ["batch*5", dim]);
  const logits = b.matmul(flat, wout); // [batch*seq, vocab]
  const flatLabels = b.reshape(labels, [-1]);
  const loss = b.softmaxCrossEntropyLoss(logits, flatLabels, { ignoreIndex: -100 });
  const perToken = b.softmaxCrossEntropyLoss(logits, flatLabels, { ignoreIndex: -100, reduction: "none" });
  const picked = b.gatherElements(b.logSoftmax(logits, 1), b.unsqueeze(b.relu(flatLabels), [1]), 1);
  const grad = b.scatterElements(
    b.constantOfShape(b.ints([vocab, dim]), 0),
    b.expand(b.reshape(ids, [-1, 1]), b.concat([rows, b.ints([dim])], 0)),
    flat,
    0,
    "add",
  );
  outputs(b, { logits, loss, perToken, picked, grad });
  const idValues = [3, 1, 3, 0, 11, 7, 7, 7, 2, 3]; // repeats, so the scatter accumulates
  const labelValues = [1, -100, 4, 0, 11, 5, -100, 2, 9, 3];
  return {
    graph: b.toGraph(),
    model: b.toModel(),
    feeds: {
      ids: refTensor("int64", [2, seq], idValues),
      labels: refTensor("int64", [2, seq], labelValues),
    },
  };
}

function outputs(b: GraphBuilder, values: Record<string, Value>): void {
  for (const [name, value] of Object.entries(values)) b.output(value, name);
}

function toOrt(t: RefTensor): ort.Tensor {
  if (t.dtype === "float32") return hostTensor(Float32Array.from(t.data as Float64Array), t.dims);
  if (t.dtype === "int64") return hostTensor(t.data as BigInt64Array, t.dims);
  if (t.dtype === "bool") return new ort.Tensor("bool", t.data as Uint8Array, t.dims);
  throw new TypeError(`No onnxruntime tensor for ${t.dtype}`);
}

async function checkAgainstReference(c: Case, ep: ExecutionProvider): Promise<void> {
  const expected = evaluate(c.graph, c.feeds);
  const session = await OnnxSession.create(c.model, { ep });
  try {
    assert.equal(session.ep, ep);
    const feeds = Object.fromEntries(Object.entries(c.feeds).map(([name, t]) => [name, toOrt(t)]));
    const results = await session.run(feeds);
    for (const [name, ref] of Object.entries(expected)) {
      const actual = results[name];
      assert.ok(actual, `output "${name}" is missing on ${ep}`);
      assert.deepEqual([...actual.dims], ref.dims, `dims of "${name}" on ${ep}`);
      assertAllClose(await toHost(actual), ref.data, { rtol: RTOL, atol: ATOL, what: `"${name}" on ${ep}` });
    }
  } finally {
    await session.release();
  }
}

for (const ep of ["wasm", "webgpu"] as const) {
  const ignore = ep === "webgpu" && !webGpu;
  Deno.test({
    name: `ops on ${ep}: attention-like dense block agrees with the float64 reference`,
    ignore,
    fn: () => checkAgainstReference(denseCase(), ep),
  });
  Deno.test({
    name: `ops on ${ep}: embedding, losses and scatter-add agree with the float64 reference`,
    ignore,
    fn: () => checkAgainstReference(indexingCase(), ep),
  });
}

Deno.test("ops: the reference values of the loss are the hand-checkable ones", () => {
  // Independent of onnxruntime: the mean loss is the mean of the per-token losses over non-ignored labels.
  const c = indexingCase();
  const { loss, perToken } = evaluate(c.graph, c.feeds);
  const tokens = Array.from(perToken.data as Float64Array);
  const kept = [1, -100, 4, 0, 11, 5, -100, 2, 9, 3].map((l) => l !== -100);
  assert.deepEqual(tokens.map((v, i) => v === 0 && !kept[i]).filter(Boolean).length, 2);
  const mean = tokens.reduce((s, v) => s + v, 0) / kept.filter(Boolean).length;
  assertAllClose(loss.data, [mean], { rtol: 1e-14, atol: 0 });
});
