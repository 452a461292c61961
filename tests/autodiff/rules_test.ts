// Every gradient rule against central finite differences (float64 reference interpreter), on random
// shapes with broadcasting and repeated use, then the same gradient graphs on onnxruntime-web (wasm for
// every case; WebGPU for a representative subset, since lavapipe is slow).
//
// Tolerances: float64 analytic vs finite differences (eps 1e-5): |Δ| ≤ 1e-6 + 1e-5·|fd|.
// float32 onnxruntime vs float64 analytic: |Δ| ≤ 2e-5 + 2e-4·|ref|.

import { checkCase, type GradCase } from "./_gradcheck.ts";
import { requireWebGpu } from "../_util/fixtures.ts";
import { attr, type GraphBuilder, type Value } from "../../src/onnx/builder.ts";
import { type NBitsOptions, quantizeNBits } from "../../src/io/quantize.ts";

const f = (...shape: number[]) => ({ shape });
const pos = (...shape: number[]) => ({ shape, positive: true });

/**
 * `x · Wᵀ (+ bias)` through onnxruntime's MatMulNBits, W `[n, k]` random and quantized with `options` (k not
 * a multiple of the block size: the last block is padded).
 */
function nbitsCase(name: string, options: NBitsOptions, withBias = false): GradCase {
  const n = 5, k = 40;
  const w = Float32Array.from({ length: n * k }, (_, i) => Math.sin(1.3 * i + 0.2) * 0.7);
  const q = quantizeNBits(w, { rows: n, cols: k }, options);
  const kBlocks = Math.ceil(k / options.blockSize);
  return {
    name,
    inputs: withBias ? { x: f(2, 3, k), bias: f(n) } : { x: f(2, 3, k) },
    build: (b: GraphBuilder, i: Record<string, Value>) => {
      const codes = b.initializer(
        "codes",
        q.qweight,
        [n, kBlocks, q.qweight.length / (n * kBlocks)],
        "uint8",
      );
      const scales = b.initializer("scales", q.scales, [n, kBlocks]);
      const zeros = q.zeroPoints
        ? b.initializer("zeros", q.zeroPoints, [n, q.zeroPoints.length / n], "uint8")
        : undefined;
      return b.node("MatMulNBits", [i.x, codes, scales, zeros, undefined, i.bias], {
        K: attr.int(k),
        N: attr.int(n),
        bits: attr.int(options.bits),
        block_size: attr.int(options.blockSize),
      }, { domain: "com.microsoft" })[0];
    },
  };
}

const CASES: GradCase[] = [
  nbitsCase("MatMulNBits int8 (frozen quantized weight)", { bits: 8, blockSize: 16 }),
  nbitsCase("MatMulNBits int4 with zero points and bias", { bits: 4, blockSize: 16, symmetric: false }, true),
  nbitsCase("MatMulNBits int4 symmetric", { bits: 4, blockSize: 32 }),
  { name: "Add broadcast", inputs: { a: f(2, 3), b: f(3) }, build: (b, i) => b.add(i.a, i.b) },
  { name: "Sub broadcast both", inputs: { a: f(2, 1, 3), b: f(4, 1) }, build: (b, i) => b.sub(i.a, i.b) },
  { name: "Mul repeated use", inputs: { a: f(2, 3) }, build: (b, i) => b.mul(b.mul(i.a, i.a), i.a) },
  { name: "Mul broadcast", inputs: { a: f(3, 1), b: f(1, 4) }, build: (b, i) => b.mul(i.a, i.b) },
  { name: "Div", inputs: { a: f(2, 3), b: pos(3) }, build: (b, i) => b.div(i.a, i.b) },
  { name: "Neg and Identity", inputs: { a: f(5) }, build: (b, i) => b.identity(b.neg(i.a)) },
  { name: "Pow constant exponent", inputs: { a: pos(2, 3) }, build: (b, i) => b.pow(i.a, b.scalar(2.5)) },
  { name: "Sqrt", inputs: { a: pos(4) }, build: (b, i) => b.sqrt(i.a) },
  { name: "Reciprocal", inputs: { a: pos(4) }, build: (b, i) => b.reciprocal(i.a) },
  { name: "Exp", inputs: { a: f(2, 2) }, build: (b, i) => b.exp(i.a) },
  { name: "Log", inputs: { a: pos(2, 2) }, build: (b, i) => b.log(i.a) },
  { name: "Tanh", inputs: { a: f(6) }, build: (b, i) => b.tanh(i.a) },
  { name: "Sigmoid", inputs: { a: f(6) }, build: (b, i) => b.sigmoid(i.a) },
  { name: "Erf", inputs: { a: f(6) }, build: (b, i) => b.erf(i.a) },
  {
    name: "Relu",
    inputs: { a: { shape: [6], values: [-1, -0.3, 0.2, 0.7, -0.5, 1.1] } },
    build: (b, i) => b.relu(i.a),
  },
  {
    name: "Abs, Sin, Cos",
    inputs: { a: f(5) },
    build: (b, i) => b.add(b.abs(i.a), b.mul(b.sin(i.a), b.cos(i.a))),
  },
  {
    name: "Max and Min",
    inputs: { a: f(2, 3), b: f(3) },
    build: (b, i) => b.add(b.max(i.a, i.b), b.min(i.a, i.b)),
  },
  { name: "Clip", inputs: { a: f(8) }, build: (b, i) => b.clip(i.a, -0.5, 0.5) },
  { name: "Softmax axis 1", inputs: { a: f(2, 4, 3) }, build: (b, i) => b.softmax(i.a, 1) },
  { name: "LogSoftmax", inputs: { a: f(3, 4) }, build: (b, i) => b.logSoftmax(i.a, -1) },
  { name: "MatMul 2-D", inputs: { a: f(3, 4), b: f(4, 2) }, build: (b, i) => b.matmul(i.a, i.b) },
  {
    name: "MatMul batched broadcast",
    inputs: { a: f(2, 3, 4), b: f(4, 5) },
    build: (b, i) => b.matmul(i.a, i.b),
  },
  {
    name: "MatMul broadcast batch of B",
    inputs: { a: f(3, 4), b: f(2, 4, 2) },
    build: (b, i) => b.matmul(i.a, i.b),
  },
  { name: "MatMul vector-matrix", inputs: { a: f(4), b: f(4, 3) }, build: (b, i) => b.matmul(i.a, i.b) },
  { name: "MatMul matrix-vector", inputs: { a: f(3, 4), b: f(4) }, build: (b, i) => b.matmul(i.a, i.b) },
  {
    name: "Gemm transA transB with C",
    inputs: { a: f(4, 3), b: f(2, 4), c: f(2) },
    build: (b, i) => b.gemm(i.a, i.b, i.c, { transA: true, transB: true, alpha: 0.5, beta: 2 }),
  },
  { name: "Gemm plain", inputs: { a: f(3, 4), b: f(4, 2) }, build: (b, i) => b.gemm(i.a, i.b) },
  { name: "ReduceSum keepdims", inputs: { a: f(2, 3, 4) }, build: (b, i) => b.reduceSum(i.a, [1], true) },
  {
    name: "ReduceSum no keepdims",
    inputs: { a: f(2, 3, 4) },
    build: (b, i) => b.reduceSum(i.a, [0, 2], false),
  },
  { name: "ReduceMean all", inputs: { a: f(2, 3) }, build: (b, i) => b.reduceMean(i.a, undefined, false) },
  { name: "ReduceMean last", inputs: { a: f(2, 3) }, build: (b, i) => b.reduceMean(i.a, [-1], true) },
  { name: "ReduceSumSquare", inputs: { a: f(3, 2) }, build: (b, i) => b.reduceSumSquare(i.a, [0], false) },
  {
    name: "Reshape with -1",
    inputs: { a: f(2, 6) },
    build: (b, i) => b.mul(b.reshape(i.a, [3, -1]), b.reshape(i.a, [3, 4])),
  },
  { name: "Transpose", inputs: { a: f(2, 3, 4) }, build: (b, i) => b.transpose(i.a, [2, 0, 1]) },
  {
    name: "Squeeze and Unsqueeze",
    inputs: { a: f(3, 1) },
    build: (b, i) => b.unsqueeze(b.squeeze(i.a, [1]), [0]),
  },
  {
    name: "Slice negative starts, two axes",
    inputs: { a: f(4, 5) },
    build: (b, i) => b.slice(i.a, [1, -3], [3, 100], [0, 1]),
  },
  {
    name: "Concat three",
    inputs: { a: f(2, 1), b: f(2, 3), c: f(2, 2) },
    build: (b, i) => b.concat([i.a, i.b, i.c, i.a], 1),
  },
  {
    name: "Split",
    inputs: { a: f(5, 2) },
    build: (b, i) => {
      const [p, q] = b.split(i.a, [2, 3], 0);
      return b.concat([b.mul(p, 2), q], 0);
    },
  },
  { name: "Split with an unused piece", inputs: { a: f(4, 2) }, build: (b, i) => b.split(i.a, [1, 3], 0)[1] },
  {
    name: "Gather embedding with repeated ids",
    inputs: { table: f(5, 3), ids: { shape: [2, 3], dtype: "int64", values: [0, 2, 2, 4, 0, 1] } },
    build: (b, i) => b.gather(i.table, i.ids, 0),
  },
  {
    name: "GatherElements",
    inputs: { a: f(3, 4), idx: { shape: [3, 2], dtype: "int64", values: [0, 3, 1, 1, 2, 0] } },
    build: (b, i) => b.gatherElements(i.a, i.idx, 1),
  },
  { name: "Expand", inputs: { a: f(3, 1) }, build: (b, i) => b.expand(i.a, [2, 3, 4]) },
  {
    name: "Where with broadcast",
    inputs: { c: { shape: [2, 3], dtype: "bool", values: [1, 0, 1, 0, 0, 1] }, a: f(2, 3), b: f(3) },
    build: (b, i) => b.where(i.c, i.a, i.b),
  },
  {
    name: "Cast round trip",
    inputs: { a: f(4) },
    build: (b, i) => b.cast(b.mul(b.cast(i.a, "float64"), 1), "float32"),
  },
  {
    name: "LayerNormalization",
    inputs: { x: f(2, 3, 4), scale: f(4), bias: f(4) },
    build: (b, i) => b.layerNorm(i.x, i.scale, i.bias, { epsilon: 1e-5 }),
  },
  {
    name: "SoftmaxCrossEntropyLoss ignore_index mean",
    inputs: { scores: f(4, 5), labels: { shape: [4], dtype: "int64", values: [1, -100, 4, 0] } },
    build: (b, i) => b.softmaxCrossEntropyLoss(i.scores, i.labels, { ignoreIndex: -100 }),
  },
  {
    name: "SoftmaxCrossEntropyLoss [N, C, T] none",
    inputs: {
      scores: f(2, 3, 4),
      labels: { shape: [2, 4], dtype: "int64", values: [0, 1, 2, 1, 2, 2, 0, 1] },
    },
    build: (b, i) => b.softmaxCrossEntropyLoss(i.scores, i.labels, { reduction: "none" }),
  },
  {
    name: "SoftmaxCrossEntropyLoss sum",
    inputs: { scores: f(3, 4), labels: { shape: [3], dtype: "int64", values: [3, 0, 1] } },
    build: (b, i) => b.softmaxCrossEntropyLoss(i.scores, i.labels, { reduction: "sum" }),
  },
];

/** Cases also run on WebGPU: one of each family, kept few because lavapipe is a software renderer. */
const WEBGPU_CASES = new Set([
  "Sub broadcast both",
  "Div",
  "Softmax axis 1",
  "MatMul batched broadcast",
  "ReduceMean last",
  "Slice negative starts, two axes",
  "Gather embedding with repeated ids",
  "LayerNormalization",
  "SoftmaxCrossEntropyLoss ignore_index mean",
]);

for (const c of CASES) {
  Deno.test(`gradient rule: ${c.name} matches finite differences (wasm)`, async () => {
    await checkCase(c, ["wasm"]);
  });
}

Deno.test("gradient rules on WebGPU match the float64 reference", async (t) => {
  if (!(await requireWebGpu(t))) return;
  for (const c of CASES.filter((c) => WEBGPU_CASES.has(c.name))) {
    await t.step(c.name, async () => {
      await checkCase(c, ["webgpu"]);
    });
  }
});
