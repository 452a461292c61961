// Static shape and dtype inference: one case (at least) per rule of SHAPE_RULES, each checked against the
// expected type and, when every input shape is concrete, against the shapes the float64 reference
// interpreter actually produces for the same node. Then the error messages and symbolic-dim handling.

import assert from "node:assert/strict";
import {
  attr,
  type Attribute,
  broadcastShapes,
  CONTRIB_SHAPE_RULES,
  type DType,
  GraphBuilder,
  inferNode,
  type Shape,
  SHAPE_RULES,
  ShapeError,
  sliceLength,
  tensorFromNumbers,
  type TensorType,
} from "../../src/onnx/mod.ts";
import { evaluate, type RefTensor, refTensor } from "../_reference/mod.ts";

/** A graph input of the given type (random data in the reference cross-check). */
interface InputSpec {
  kind: "input";
  dtype: DType;
  shape: Shape;
}
/** A constant (an initializer whose values shape inference can see). */
interface ConstSpec {
  kind: "const";
  values: number[];
  dtype: DType;
  dims: number[];
}
type Spec = InputSpec | ConstSpec | undefined;

const t = (dtype: DType, shape: Shape): InputSpec => ({ kind: "input", dtype, shape });
const c = (values: number[], dtype: DType = "int64", dims: number[] = [values.length]): ConstSpec => ({
  kind: "const",
  values,
  dtype,
  dims,
});
const f = (...shape: Shape) => t("float32", shape);

interface Case {
  op: string;
  inputs: Spec[];
  attributes?: Record<string, Attribute>;
  outputs?: number;
  expect: TensorType[];
}

const fl = (...shape: Shape): TensorType => ({ dtype: "float32", shape });
const b1 = (...shape: Shape): TensorType => ({ dtype: "bool", shape });
const i64 = (...shape: Shape): TensorType => ({ dtype: "int64", shape });

const UNARY_SAME = [
  "Identity",
  "Neg",
  "Abs",
  "Sqrt",
  "Reciprocal",
  "Exp",
  "Log",
  "Tanh",
  "Sigmoid",
  "Erf",
  "Relu",
  "Sin",
  "Cos",
  "Sign",
  "Floor",
  "Ceil",
  "Round",
  "Softmax",
  "LogSoftmax",
];
const BROADCAST = ["Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean", "Pow"];
const COMPARE = ["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"];
const LOGIC = ["And", "Or", "Xor"];
const REDUCE = [
  "ReduceSum",
  "ReduceMean",
  "ReduceMax",
  "ReduceMin",
  "ReduceProd",
  "ReduceSumSquare",
  "ReduceL2",
  "ReduceLogSumExp",
];

const CASES: Case[] = [
  ...UNARY_SAME.map((op): Case => ({ op, inputs: [f(2, 3)], expect: [fl(2, 3)] })),
  ...BROADCAST.map((op): Case => ({ op, inputs: [f(2, 1, 3), f(4, 1)], expect: [fl(2, 4, 3)] })),
  ...COMPARE.map((op): Case => ({ op, inputs: [f(3, 1), f(1, 2)], expect: [b1(3, 2)] })),
  ...LOGIC.map((op): Case => ({ op, inputs: [t("bool", [2]), t("bool", [1])], expect: [b1(2)] })),
  ...REDUCE.map((op): Case => ({ op, inputs: [f(2, 3, 4), c([0, -1])], expect: [fl(1, 3, 1)] })),
  { op: "Mod", inputs: [t("int64", [2, 3]), t("int64", [3])], expect: [i64(2, 3)] },
  { op: "Sum", inputs: [f(3), f(2, 1), f(1)], expect: [fl(2, 3)] },
  { op: "Pow", inputs: [f(2, 3), t("int64", [])], expect: [fl(2, 3)] },
  { op: "Not", inputs: [t("bool", [2, 2])], expect: [b1(2, 2)] },
  { op: "IsNaN", inputs: [f(4)], expect: [b1(4)] },
  { op: "IsInf", inputs: [f(4)], expect: [b1(4)] },
  { op: "Trilu", inputs: [f(2, 3, 3), c([1], "int64", [])], expect: [fl(2, 3, 3)] },
  { op: "CumSum", inputs: [f(2, 3), c([1], "int64", [])], expect: [fl(2, 3)] },
  { op: "Clip", inputs: [f(5), c([0], "float32", []), c([1], "float32", [])], expect: [fl(5)] },
  { op: "Dropout", inputs: [f(2, 3)], outputs: 2, expect: [fl(2, 3), b1(2, 3)] },
  { op: "Where", inputs: [t("bool", [2, 1]), f(3), f(1, 1)], expect: [fl(2, 3)] },
  { op: "MatMul", inputs: [f(2, 3), f(3, 4)], expect: [fl(2, 4)] },
  { op: "MatMul", inputs: [f(3), f(3, 4)], expect: [fl(4)] },
  { op: "MatMul", inputs: [f(2, 3), f(3)], expect: [fl(2)] },
  { op: "MatMul", inputs: [f(3), f(3)], expect: [fl()] },
  { op: "MatMul", inputs: [f(5, 1, 2, 3), f(4, 3, 6)], expect: [fl(5, 4, 2, 6)] },
  { op: "MatMul", inputs: [f(3), f(2, 3, 4)], expect: [fl(2, 4)] },
  { op: "Gemm", inputs: [f(3, 2), f(4, 3), f(4)], attributes: gemmT(1, 1), expect: [fl(2, 4)] },
  { op: "Gemm", inputs: [f(2, 3), f(3, 4), f(2, 1)], expect: [fl(2, 4)] },
  { op: "Einsum", inputs: [f(2, 3, 4), f(2, 4, 5)], attributes: eq("bij,bjk->bik"), expect: [fl(2, 3, 5)] },
  { op: "Einsum", inputs: [f(3, 3)], attributes: eq("ii->i"), expect: [fl(3)] },
  { op: "ReduceSum", inputs: [f(2, 3), c([1])], attributes: keep(0), expect: [fl(2)] },
  { op: "ReduceSum", inputs: [f(2, 3)], expect: [fl(1, 1)] },
  { op: "ReduceSum", inputs: [f(2, 3)], attributes: keep(0), expect: [fl()] },
  {
    op: "ReduceSum",
    inputs: [f(2, 3), c([])],
    attributes: { noop_with_empty_axes: attr.int(1) },
    expect: [fl(2, 3)],
  },
  { op: "ReduceMean", inputs: [f(2, 3)], attributes: { axes: attr.ints([1]) }, expect: [fl(2, 1)] },
  { op: "ArgMax", inputs: [f(2, 3)], attributes: { axis: attr.int(1) }, expect: [i64(2, 1)] },
  { op: "ArgMin", inputs: [f(2, 3)], attributes: { keepdims: attr.int(0) }, expect: [i64(3)] },
  { op: "TopK", inputs: [f(2, 5), c([3])], outputs: 2, expect: [fl(2, 3), i64(2, 3)] },
  { op: "Reshape", inputs: [f(2, 3, 4), c([0, -1])], expect: [fl(2, 12)] },
  { op: "Reshape", inputs: [f(2, 3, 4), c([-1, 2, 2])], expect: [fl(6, 2, 2)] },
  { op: "Reshape", inputs: [f(0, 3), c([3, 0])], attributes: { allowzero: attr.int(1) }, expect: [fl(3, 0)] },
  {
    op: "Transpose",
    inputs: [f(2, 3, 4)],
    attributes: { perm: attr.ints([2, 0, 1]) },
    expect: [fl(4, 2, 3)],
  },
  { op: "Transpose", inputs: [f(2, 3, 4)], expect: [fl(4, 3, 2)] },
  { op: "Squeeze", inputs: [f(1, 3, 1)], expect: [fl(3)] },
  { op: "Squeeze", inputs: [f(1, 3, 1), c([-1])], expect: [fl(1, 3)] },
  { op: "Unsqueeze", inputs: [f(3), c([0, -1])], expect: [fl(1, 3, 1)] },
  { op: "Flatten", inputs: [f(2, 3, 4)], attributes: { axis: attr.int(2) }, expect: [fl(6, 4)] },
  { op: "Slice", inputs: [f(10), c([2]), c([100])], expect: [fl(8)] },
  { op: "Slice", inputs: [f(10), c([-3]), c([2 ** 62])], expect: [fl(3)] },
  { op: "Slice", inputs: [f(10), c([-1]), c([-(2 ** 62)]), c([0]), c([-1])], expect: [fl(10)] },
  { op: "Slice", inputs: [f(10), c([-100]), c([5]), c([0]), c([2])], expect: [fl(3)] },
  { op: "Slice", inputs: [f(4, 6), c([1, 6]), c([3, 0]), c([0, 1]), c([1, -2])], expect: [fl(2, 3)] },
  { op: "Slice", inputs: [f(5), c([4]), c([2])], expect: [fl(0)] },
  { op: "Concat", inputs: [f(2, 3), f(2, 5)], attributes: axis(1), expect: [fl(2, 8)] },
  { op: "Concat", inputs: [f(2, 3), f(4, 3), f(1, 3)], attributes: axis(-2), expect: [fl(7, 3)] },
  {
    op: "Split",
    inputs: [f(2, 6), c([1, 5])],
    attributes: axis(1),
    outputs: 2,
    expect: [fl(2, 1), fl(2, 5)],
  },
  { op: "Split", inputs: [f(7, 2)], outputs: 3, expect: [fl(3, 2), fl(3, 2), fl(1, 2)] },
  { op: "Gather", inputs: [f(5, 4), c([0, 4, 1, 1], "int64", [2, 2])], expect: [fl(2, 2, 4)] },
  { op: "Gather", inputs: [f(5, 4), c([3], "int64", [])], attributes: axis(1), expect: [fl(5)] },
  {
    op: "GatherElements",
    inputs: [f(3, 4), c([0, 1, 2], "int64", [3, 1])],
    attributes: axis(1),
    expect: [fl(3, 1)],
  },
  { op: "ScatterND", inputs: [f(4, 3), c([1, 3], "int64", [2, 1]), f(2, 3)], expect: [fl(4, 3)] },
  { op: "ScatterElements", inputs: [f(3, 3), c([0, 2], "int64", [1, 2]), f(1, 2)], expect: [fl(3, 3)] },
  { op: "Expand", inputs: [f(3, 1), c([2, 1, 4])], expect: [fl(2, 3, 4)] },
  { op: "Tile", inputs: [f(2, 3), c([2, 1])], expect: [fl(4, 3)] },
  { op: "Cast", inputs: [f(2, 3)], attributes: { to: attr.int(7) }, expect: [i64(2, 3)] },
  { op: "Shape", inputs: [f(2, 3, 4)], expect: [i64(3)] },
  { op: "Shape", inputs: [f(2, 3, 4)], attributes: { start: attr.int(-2) }, expect: [i64(2)] },
  {
    op: "Shape",
    inputs: [f(2, 3, 4)],
    attributes: { start: attr.int(1), end: attr.int(-1) },
    expect: [i64(1)],
  },
  { op: "Size", inputs: [f(2, 3)], expect: [i64()] },
  { op: "NonZero", inputs: [f(2, 3)], expect: [i64(2, "NonZero_node_count")] },
  {
    op: "ConstantOfShape",
    inputs: [c([2, 3])],
    attributes: { value: attr.tensor(tensorFromNumbers([1], "int64", [1])) },
    expect: [i64(2, 3)],
  },
  {
    op: "Constant",
    inputs: [],
    attributes: { value: attr.tensor(tensorFromNumbers([1, 2, 3, 4], "float32", [2, 2])) },
    expect: [fl(2, 2)],
  },
  { op: "Constant", inputs: [], attributes: { value_ints: attr.ints([1, 2, 3]) }, expect: [i64(3)] },
  { op: "Constant", inputs: [], attributes: { value_float: attr.float(2) }, expect: [fl()] },
  { op: "Range", inputs: [c([1], "int64", []), c([10], "int64", []), c([3], "int64", [])], expect: [i64(3)] },
  {
    op: "LayerNormalization",
    inputs: [f(2, 3, 4), f(4), f(4)],
    outputs: 3,
    expect: [fl(2, 3, 4), fl(2, 3, 1), fl(2, 3, 1)],
  },
  {
    op: "LayerNormalization",
    inputs: [f(2, 3, 4), f(3, 4)],
    attributes: axis(1),
    outputs: 2,
    expect: [fl(2, 3, 4), fl(2, 1, 1)],
  },
  {
    op: "SoftmaxCrossEntropyLoss",
    inputs: [f(3, 5), c([0, 4, 2])],
    outputs: 2,
    expect: [fl(), fl(3, 5)],
  },
  {
    op: "SoftmaxCrossEntropyLoss",
    inputs: [f(2, 5, 3), c([0, 4, 2, 1, 1, -1], "int64", [2, 3])],
    attributes: { reduction: attr.string("none"), ignore_index: attr.int(-1) },
    expect: [fl(2, 3)],
  },
];

function gemmT(a: number, b: number): Record<string, Attribute> {
  return { transA: attr.int(a), transB: attr.int(b) };
}
function eq(equation: string): Record<string, Attribute> {
  return { equation: attr.string(equation) };
}
function keep(k: number): Record<string, Attribute> {
  return { keepdims: attr.int(k) };
}
function axis(a: number): Record<string, Attribute> {
  return { axis: attr.int(a) };
}

/** Deterministic pseudo-random values in [-1, 1) (bools as 0/1). */
function pseudoRandom(dtype: DType, n: number, seed: number): RefTensor["data"] {
  const values = Array.from({ length: n }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) * 0.999);
  if (dtype === "bool") return Uint8Array.from(values, (v) => (v > 0 ? 1 : 0));
  if (dtype === "int64") return BigInt64Array.from(values, (v) => BigInt(Math.round(v * 5) || 1));
  return Float64Array.from(values);
}

function buildCase(k: Case): { b: GraphBuilder; outs: ReturnType<GraphBuilder["node"]> } {
  const b = new GraphBuilder(k.op);
  const inputs = k.inputs.map((s, i) => {
    if (s === undefined) return undefined;
    if (s.kind === "input") return b.input(`x${i}`, s.dtype, s.shape);
    return b.constant(s.values, s.dtype, s.dims);
  });
  const outs = b.node(k.op, inputs, k.attributes ?? {}, { outputs: k.outputs ?? 1, name: `${k.op}_node` });
  return { b, outs };
}

Deno.test("shape inference: every rule of SHAPE_RULES has a case", () => {
  const covered = new Set(CASES.map((k) => k.op));
  assert.deepEqual(Object.keys(SHAPE_RULES).filter((op) => !covered.has(op)), []);
});

Deno.test("shape inference: each case gives the expected types and matches the reference's shapes", () => {
  for (const [n, k] of CASES.entries()) {
    const label = `${k.op} case ${n}`;
    const { b, outs } = buildCase(k);
    assert.deepEqual(outs.map((o) => ({ dtype: o.dtype, shape: o.shape })), k.expect, label);
    outs.forEach((o) => b.output(o));
    const feeds: Record<string, RefTensor> = {};
    k.inputs.forEach((s, i) => {
      if (s?.kind !== "input") return;
      const dims = s.shape as number[];
      const size = dims.reduce((p, d) => p * d, 1);
      feeds[`x${i}`] = { dtype: s.dtype, dims, data: pseudoRandom(s.dtype, size, i + n) };
    });
    // evaluate() throws when a result's shape differs from the declared (inferred) output shape.
    const result = evaluate(b.toGraph(), feeds);
    outs.forEach((o) => assert.equal(result[o.name].dtype, o.dtype, label));
  }
});

Deno.test("shape inference: broadcasting follows ONNX's multidirectional rule with symbolic dims", () => {
  assert.deepEqual(broadcastShapes([2, 1, 3], [4, 1]), [2, 4, 3]);
  assert.deepEqual(broadcastShapes(["batch", 1, 3], [4, 1]), ["batch", 4, 3]);
  assert.deepEqual(broadcastShapes(["n"], [1]), ["n"]);
  assert.deepEqual(broadcastShapes([1], ["n"]), ["n"]);
  assert.deepEqual(broadcastShapes(["n"], [5]), [5]);
  assert.deepEqual(broadcastShapes([5], ["n"]), [5]);
  assert.deepEqual(broadcastShapes(["n"], ["n"]), ["n"]);
  assert.deepEqual(broadcastShapes(["a"], ["b"]), ["max(a,b)"]);
  assert.deepEqual(broadcastShapes([], [2, 3]), [2, 3]);
  assert.match(broadcastShapes([2, 3], [4]) as string, /cannot broadcast \[2, 3\] with \[4\]/);
});

Deno.test("shape inference: a broadcast error names the node and both shapes", () => {
  const b = new GraphBuilder("g");
  const x = b.input("x", "float32", [2, 3]), y = b.input("y", "float32", [4]);
  assert.throws(() => b.node("Add", [x, y], {}, { name: "bad_add" }), (e: Error) => {
    assert.ok(e instanceof ShapeError);
    assert.equal(e.node, "bad_add");
    assert.match(e.message, /^Cannot add node "bad_add" \(Add\): cannot broadcast \[2, 3\] with \[4\]/);
    return true;
  });
  assert.throws(() => b.add(x, b.input("z", "int64", [2, 3])), /input 1 is int64 but input 0 is float32/);
});

Deno.test("shape inference: symbolic dims flow through MatMul, Reshape, Concat and Slice", () => {
  const b = new GraphBuilder("g");
  const x = b.input("x", "float32", ["batch", "seq", 64]);
  assert.deepEqual(b.matmul(x, b.input("w", "float32", [64, 16])).shape, ["batch", "seq", 16]);
  assert.deepEqual(b.reshape(x, [0, 0, 8, -1]).shape, ["batch", "seq", 8, 8]);
  assert.deepEqual(b.reshape(x, [-1, 64]).shape, ["batch*seq", 64]);
  assert.deepEqual(b.reshape(x, [0, -1]).shape, ["batch", "seq*64"]);
  assert.deepEqual(b.concat([x, b.input("y", "float32", ["batch", 3, 64])], 1).shape, ["batch", "seq+3", 64]);
  assert.deepEqual(b.slice(x, [0], [2 ** 62], [1]).shape, ["batch", "seq", 64]);
  assert.deepEqual(b.slice(x, [1], [2 ** 62], [1]).shape, ["batch", "seq-1", 64]);
  assert.deepEqual(b.slice(x, [-3], [2 ** 62], [1]).shape, ["batch", 3, 64]);
  assert.deepEqual(b.slice(x, [0], [5], [1]).shape, ["batch", 5, 64]);
  assert.deepEqual(b.slice(x, [0], [2 ** 62], [1], [2]).shape, ["batch", "seq[0::2]", 64]);
  assert.deepEqual(b.slice(x, [-1], [-(2 ** 62)], [1], [-1]).shape, [
    "batch",
    "seq",
    64,
  ]);
  assert.deepEqual(b.gather(b.input("emb", "float32", [100, 8]), b.input("ids", "int64", ["b", "s"])).shape, [
    "b",
    "s",
    8,
  ]);
  assert.deepEqual(b.unsqueeze(x, [1]).shape, ["batch", 1, "seq", 64]);
  assert.deepEqual(b.transpose(x, [1, 0, 2]).shape, ["seq", "batch", 64]);
});

Deno.test("shape inference: Shape → Gather → Concat → Reshape folds with a symbolic batch", () => {
  const b = new GraphBuilder("fold");
  const x = b.input("x", "float32", ["batch", 6, 4]);
  const shape = b.shapeOf(x);
  assert.deepEqual(b.knownValues(shape.name), ["batch", 6, 4]);
  const batch = b.gather(shape, b.ints([0]));
  assert.deepEqual(b.knownValues(batch.name), ["batch"]);
  const target = b.concat([batch, b.ints([3, -1])], 0);
  assert.deepEqual(b.knownValues(target.name), ["batch", 3, -1]);
  const y = b.reshape(x, target);
  assert.deepEqual(y.shape, ["batch", 3, 8]);
  // Slicing the shape vector folds too: [batch, 6] → Reshape to [batch, 6, 2, 2].
  const head = b.slice(shape, [0], [2]);
  const z = b.reshape(x, b.concat([head, b.ints([2, 2])], 0));
  assert.deepEqual(z.shape, ["batch", 6, 2, 2]);
  b.output(y, "y");
  b.output(z, "z");
  // The folded graph is still a real graph: evaluate it with batch = 2.
  const data = Array.from({ length: 48 }, (_, i) => i);
  const out = evaluate(b.toGraph(), { x: refTensor("float32", [2, 6, 4], data) });
  assert.deepEqual(out.y.dims, [2, 3, 8]);
  assert.deepEqual(out.z.dims, [2, 6, 2, 2]);
});

Deno.test("shape inference: errors name the node, the op and the bad shapes", () => {
  const b = new GraphBuilder("g");
  const x = b.input("x", "float32", [2, 3]);
  const cases: [() => unknown, RegExp][] = [
    [() => b.matmul(x, x), /\(MatMul\): inner dimensions differ: A is \[2, 3\], B is \[2, 3\]/],
    [
      () => b.reshape(x, [4, 2]),
      /\(Reshape\): cannot reshape \[2, 3\] \(6 elements\) to \[4, 2\] \(8 elements\)/,
    ],
    [() => b.reshape(x, [-1, -1]), /more than one -1/],
    [() => b.reshape(x, [4, -1]), /cannot reshape \[2, 3\] to \[4, -1\]: 6 elements/],
    [
      () => b.concat([x, b.input("r3", "float32", [2, 3, 1])], 0),
      /\(Concat\): input 1 has rank 3, input 0 has rank 2/,
    ],
    [
      () => b.concat([x, b.input("w", "float32", [2, 4])], 0),
      /input 1 is \[2, 4\], input 0 is \[2, 3\]: dimension 1 differs/,
    ],
    [() => b.concat([x, b.input("i", "int64", [2, 3])], 0), /input 1 is int64, input 0 is float32/],
    [() => b.concat([x], 2), /axis 2 is out of range for rank 2/],
    [() => b.split(x, [1, 1], 1), /split sizes \[1, 1\] do not add up to dimension 1 of \[2, 3\]/],
    [
      () => b.gather(x, b.input("fi", "float32", [2])),
      /\(Gather\): indices must be int32 or int64, got float32/,
    ],
    [() => b.transpose(x, [0, 0]), /perm \[0, 0\] is not a permutation of rank 2/],
    [() => b.squeeze(x, [0]), /cannot squeeze axis 0 of size 2 in \[2, 3\]/],
    [() => b.node("Reshape", [x, b.input("s", "int64", [2])]), /the target shape must be a constant/],
    [() => b.node("NoSuchOp", [x]), /\(NoSuchOp\): no shape-inference rule for this op/],
    [() => b.node("Add", [x, "undefined_value"]), /Unknown value "undefined_value"/],
    [() => b.where(x, x, x), /\(Where\): condition must be bool, got float32/],
    [() => b.gemm(x, x), /Gemm.*inner dimensions differ/],
    [
      () => b.layerNorm(x, b.input("sc", "float32", [4])),
      /Scale \[4\] does not broadcast to the normalized shape \[3\]/,
    ],
    [
      () => b.softmaxCrossEntropyLoss(x, b.input("lab", "int64", [3])),
      /labels \[3\] do not match scores \[2, 3\]/,
    ],
    [() => b.einsum("ij,jk->ik", x, x), /letter j is 3 and 2/],
    [() => b.tile(x, [2]), /1 repeats for rank 2/],
    [() => b.node("Cast", [x]), /attribute 'to' is required/],
  ];
  for (const [fn, pattern] of cases) {
    assert.throws(fn, (e: Error) => {
      assert.ok(e instanceof ShapeError || e instanceof TypeError, `${e.name}: ${e.message}`);
      assert.match(e.message, pattern);
      return true;
    });
  }
});

Deno.test("shape inference: inferNode checks inputs and output counts", () => {
  const node = { opType: "Relu", name: "r", inputs: ["x"], outputs: ["y", "z"], attributes: {} };
  assert.throws(() => inferNode(node, [{ type: fl(2) }]), /\(Relu\): the op yields 1 outputs, node names 2/);
  assert.throws(
    () => inferNode({ ...node, outputs: ["y"] }, [{}]),
    /input "x" is not defined before this node/,
  );
  assert.throws(
    () => inferNode({ ...node, domain: "com.microsoft" }, [{ type: fl(2) }]),
    /domain "com.microsoft"/,
  );
  assert.deepEqual(inferNode({ ...node, outputs: ["y"] }, [{ type: fl("n") }]), [fl("n")]);
});

Deno.test("shape inference: sliceLength follows ONNX clamping", () => {
  assert.equal(sliceLength(10, 2, 100, 1), 8);
  assert.equal(sliceLength(10, -3, 2 ** 62, 1), 3);
  assert.equal(sliceLength(10, -100, 3, 1), 3);
  assert.equal(sliceLength(10, 9, -(2 ** 62), -1), 10);
  assert.equal(sliceLength(10, 100, 0, -3), 3); // 9, 6, 3
  assert.equal(sliceLength(10, 0, 10, 3), 4);
  assert.equal(sliceLength(10, 5, 5, 1), 0);
  assert.equal(sliceLength(10, 5, 2, 1), 0);
});

Deno.test("shape inference: com.microsoft MatMulNBits checks B, scales, zero points and bias", () => {
  const node = {
    opType: "MatMulNBits",
    domain: "com.microsoft",
    name: "mm",
    inputs: ["a", "b", "s", "z"],
    outputs: ["y"],
    attributes: { K: attr.int(40), N: attr.int(6), bits: attr.int(4), block_size: attr.int(16) },
  };
  const u8 = (...shape: Shape): TensorType => ({ dtype: "uint8", shape });
  // K = 40 → 3 blocks of 16 (8 bytes each at 4 bits); packed 4-bit zero points: ⌈3 · 4 / 8⌉ = 2 per row
  const ok = [{ type: fl("batch", "seq", 40) }, { type: u8(6, 3, 8) }, { type: fl(6, 3) }, {
    type: u8(6, 2),
  }];
  assert.equal(typeof CONTRIB_SHAPE_RULES.MatMulNBits, "function");
  assert.deepEqual(inferNode(node, ok), [fl("batch", "seq", 6)]);
  assert.deepEqual(inferNode({ ...node, inputs: ["a", "b", "s"] }, ok.slice(0, 3)), [fl("batch", "seq", 6)]);
  const bad: [InputInfoLike[], Record<string, Attribute>, RegExp][] = [
    [[ok[0], { type: u8(6, 3, 16) }, ok[2], ok[3]], {}, /B is \[6, 3, 16\], expected \[6, 3, 8\]/],
    [[{ type: fl(2, 32) }, ok[1], ok[2], ok[3]], {}, /A \[2, 32\] has 32 features, K is 40/],
    [[ok[0], ok[1], { type: fl(6, 2) }, ok[3]], {}, /scales \[6, 2\] do not hold N · k_blocks = 18 values/],
    [[ok[0], ok[1], ok[2], { type: u8(6, 3) }], {}, /zero_points \[6, 3\] do not hold 12 uint8 values/],
    [ok, { block_size: attr.int(24) }, /block_size is 24, expected a power of 2 ≥ 16/],
    [ok, { bits: attr.int(9) }, /bits is 9, expected 2 to 8/],
  ];
  for (const [inputs, attributes, pattern] of bad) {
    assert.throws(
      () => inferNode({ ...node, attributes: { ...node.attributes, ...attributes } }, inputs),
      (e: Error) =>
        e instanceof ShapeError && /Cannot add node "mm" \(MatMulNBits\)/.test(e.message) &&
        pattern.test(e.message),
    );
  }
  assert.throws(() => inferNode({ ...node, domain: undefined }, ok), /no shape-inference rule for this op/);
  // the builder puts the node in its domain and the model imports com.microsoft
  const b = new GraphBuilder("nbits");
  const a = b.input("a", "float32", [1, 40]);
  const [y] = b.node(
    "MatMulNBits",
    [
      a,
      b.initializer("b", new Uint8Array(6 * 3 * 8), [6, 3, 8], "uint8"),
      b.initializer("s", new Float32Array(18), [6, 3]),
    ],
    node.attributes,
    { domain: "com.microsoft" },
  );
  b.output(y);
  const model = b.toModel();
  assert.equal(model.graph.nodes[0].domain, "com.microsoft");
  assert.deepEqual(model.opsetImports, [{ domain: "", version: 18 }, {
    domain: "com.microsoft",
    version: 1,
  }]);
});

type InputInfoLike = { type?: TensorType };

Deno.test("shape inference: TopK with K a graph input gives a symbolic K along the axis", () => {
  const b = new GraphBuilder("top_k_input");
  const [values, indices] = b.node(
    "TopK",
    [b.input("x", "float32", [2, 5]), b.input("k", "int64", [1])],
    { axis: attr.int(1) },
    { outputs: 2, name: "top" },
  );
  assert.deepEqual([values.dtype, values.shape], ["float32", [2, "top_k"]]);
  assert.deepEqual([indices.dtype, indices.shape], ["int64", [2, "top_k"]]);
});
