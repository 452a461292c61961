// Tests of the float64 reference interpreter on small hand-computed cases, a few per op family. Graphs
// here are written node by node (no GraphBuilder, no shape inference), so the reference is checked on
// its own before it is used to check anything else.

import assert from "node:assert/strict";
import type { Attribute, DType, Graph, Node } from "../../src/onnx/types.ts";
import { tensorFromNumbers } from "../../src/onnx/builder.ts";
import { assertAllClose } from "./assert_close.ts";
import { evaluate, REFERENCE_OPS, type RefTensor, refTensor, refToNumbers } from "./interpreter.ts";
import { SHAPE_RULES } from "../../src/onnx/shape_inference.ts";

const f32 = (dims: number[], values: number[]) => refTensor("float32", dims, values);
const i64 = (dims: number[], values: number[]) => refTensor("int64", dims, values);
const bool = (dims: number[], values: number[]) => refTensor("bool", dims, values);
const int = (value: number): Attribute => ({ type: "int", value });
const float = (value: number): Attribute => ({ type: "float", value });
const str = (value: string): Attribute => ({ type: "string", value });
const ints = (value: number[]): Attribute => ({ type: "ints", value });

/** Runs one node on the given inputs (`undefined` = omitted optional input). */
function run(
  opType: string,
  inputs: (RefTensor | undefined)[],
  attributes: Record<string, Attribute> = {},
  outputs = 1,
): RefTensor[] {
  const names = inputs.map((t, i) => (t ? `in${i}` : ""));
  const node: Node = {
    opType,
    name: `${opType}_node`,
    inputs: names,
    outputs: Array.from({ length: outputs }, (_, i) => `out${i}`),
    attributes,
  };
  const graph: Graph = {
    name: opType,
    nodes: [node],
    inputs: inputs.flatMap((
      t,
      i,
    ) => (t ? [{ name: `in${i}`, type: { dtype: t.dtype, shape: t.dims } }] : [])),
    outputs: node.outputs.map((name) => ({ name })),
    initializers: [],
    valueInfo: [],
  };
  const feeds = Object.fromEntries(inputs.flatMap((t, i) => (t ? [[`in${i}`, t]] : [])));
  const result = evaluate(graph, feeds);
  return node.outputs.map((name) => result[name]);
}

function expectTensor(t: RefTensor, dtype: DType, dims: number[], values: number[], tol = 1e-15): void {
  assert.equal(t.dtype, dtype);
  assert.deepEqual(t.dims, dims);
  assertAllClose(refToNumbers(t), values, { rtol: tol, atol: tol });
}

Deno.test("reference implements every numeric op of SHAPE_RULES", () => {
  const missing = Object.keys(SHAPE_RULES).filter((op) => !REFERENCE_OPS.includes(op));
  assert.deepEqual(missing, []);
});

Deno.test("reference: binary ops broadcast by numpy rules", () => {
  const a = f32([2, 1], [1, 2]), b = f32([3], [10, 20, 30]);
  expectTensor(run("Add", [a, b])[0], "float32", [2, 3], [11, 21, 31, 12, 22, 32]);
  expectTensor(run("Sub", [a, b])[0], "float32", [2, 3], [-9, -19, -29, -8, -18, -28]);
  expectTensor(run("Mul", [b, a])[0], "float32", [2, 3], [10, 20, 30, 20, 40, 60]);
  expectTensor(run("Div", [a, b])[0], "float32", [2, 3], [0.1, 0.05, 1 / 30, 0.2, 0.1, 2 / 30]);
  // [2,1,3] + [4,1] → [2,4,3]: out[i][j][k] = x[i][0][k] + y[j][0]
  const x = f32([2, 1, 3], [0, 1, 2, 3, 4, 5]), y = f32([4, 1], [0, 10, 20, 30]);
  const sum = run("Add", [x, y])[0];
  assert.deepEqual(sum.dims, [2, 4, 3]);
  assert.deepEqual(refToNumbers(sum).slice(0, 6), [0, 1, 2, 10, 11, 12]);
  assert.deepEqual(refToNumbers(sum).slice(12, 15), [3, 4, 5]);
  assert.equal(refToNumbers(sum)[23], 35);
  assert.throws(() => run("Add", [f32([2, 3], [0, 0, 0, 0, 0, 0]), f32([4], [0, 0, 0, 0])]), (e: Error) => {
    assert.match(e.message, /node "Add_node" \(Add\).*\[2, 3\] with \[4\]/);
    return e instanceof RangeError;
  });
});

Deno.test("reference: integer arithmetic truncates like ONNX", () => {
  expectTensor(run("Div", [i64([4], [7, -7, 6, 1]), i64([4], [2, 2, -4, 3])])[0], "int64", [4], [
    3,
    -3,
    -1,
    0,
  ]);
  // Mod with fmod=0 takes the divisor's sign (Python %), fmod=1 the dividend's (C fmod).
  expectTensor(run("Mod", [i64([3], [-7, 7, 6]), i64([3], [3, -3, 3])])[0], "int64", [3], [2, -2, 0]);
  expectTensor(run("Mod", [f32([2], [-7, 7.5]), f32([2], [3, 2])], { fmod: int(1) })[0], "float32", [2], [
    -1,
    1.5,
  ]);
  const out = run("Add", [i64([1], [2 ** 52]), i64([1], [1])])[0];
  assert.ok(out.data instanceof BigInt64Array);
  assert.equal(out.data[0], 2n ** 52n + 1n);
  assert.throws(() => run("Div", [i64([1], [1]), i64([1], [0])]), /division of 1 by zero/);
});

Deno.test("reference: unary math ops", () => {
  const x = f32([4], [-1, 0, 0.5, 2]);
  expectTensor(run("Neg", [x])[0], "float32", [4], [1, 0, -0.5, -2]);
  expectTensor(run("Abs", [x])[0], "float32", [4], [1, 0, 0.5, 2]);
  expectTensor(run("Relu", [x])[0], "float32", [4], [0, 0, 0.5, 2]);
  expectTensor(run("Reciprocal", [f32([2], [4, -0.5])])[0], "float32", [2], [0.25, -2]);
  expectTensor(run("Sqrt", [f32([2], [9, 2])])[0], "float32", [2], [3, Math.SQRT2]);
  expectTensor(run("Exp", [x])[0], "float32", [4], [1 / Math.E, 1, Math.sqrt(Math.E), Math.E ** 2]);
  expectTensor(run("Log", [f32([2], [1, Math.E])])[0], "float32", [2], [0, 1]);
  expectTensor(run("Tanh", [f32([2], [0, Math.log(2)])])[0], "float32", [2], [0, 0.6]);
  expectTensor(run("Sigmoid", [f32([3], [0, Math.log(3), -800])])[0], "float32", [3], [0.5, 0.75, 0]);
  expectTensor(run("Sin", [f32([2], [0, Math.PI / 6])])[0], "float32", [2], [0, 0.5]);
  expectTensor(run("Cos", [f32([2], [0, Math.PI / 3])])[0], "float32", [2], [1, 0.5]);
  expectTensor(run("Pow", [f32([3], [2, 9, 4]), f32([3], [3, 0.5, -1])])[0], "float32", [3], [8, 3, 0.25]);
  expectTensor(run("Round", [f32([6], [0.5, 1.5, 2.5, -0.5, -1.5, 2.4])])[0], "float32", [6], [
    0,
    2,
    2,
    -0,
    -2,
    2,
  ]);
  expectTensor(run("Sign", [x])[0], "float32", [4], [-1, 0, 1, 1]);
  expectTensor(run("Floor", [f32([2], [-1.5, 1.5])])[0], "float32", [2], [-2, 1]);
  expectTensor(run("Ceil", [f32([2], [-1.5, 1.5])])[0], "float32", [2], [-1, 2]);
  expectTensor(run("Identity", [x])[0], "float32", [4], [-1, 0, 0.5, 2]);
});

Deno.test("reference: erf is float64-accurate", () => {
  // Values from CPython's math.erf.
  const xs = [0.01, 0.5, 1, -2, 3, 4.5, 0];
  const expected = [
    0.011283415555849616,
    0.5204998778130465,
    0.8427007929497149,
    -0.9953222650189527,
    0.9999779095030014,
    0.9999999998033839,
    0,
  ];
  expectTensor(run("Erf", [refTensor("float64", [7], xs)])[0], "float64", [7], expected, 2e-15);
});

Deno.test("reference: variadic, comparison and logic ops", () => {
  const a = f32([3], [1, 5, 3]), b = f32([3], [4, 2, 3]), c = f32([1], [2.5]);
  expectTensor(run("Max", [a, b, c])[0], "float32", [3], [4, 5, 3]);
  expectTensor(run("Min", [a, b, c])[0], "float32", [3], [1, 2, 2.5]);
  expectTensor(run("Sum", [a, b, c])[0], "float32", [3], [7.5, 9.5, 8.5]);
  expectTensor(run("Mean", [a, b])[0], "float32", [3], [2.5, 3.5, 3]);
  expectTensor(run("Equal", [a, b])[0], "bool", [3], [0, 0, 1]);
  expectTensor(run("Less", [a, b])[0], "bool", [3], [1, 0, 0]);
  expectTensor(run("Greater", [a, b])[0], "bool", [3], [0, 1, 0]);
  expectTensor(run("LessOrEqual", [a, b])[0], "bool", [3], [1, 0, 1]);
  expectTensor(run("GreaterOrEqual", [a, b])[0], "bool", [3], [0, 1, 1]);
  const p = bool([4], [0, 0, 1, 1]), q = bool([4], [0, 1, 0, 1]);
  expectTensor(run("And", [p, q])[0], "bool", [4], [0, 0, 0, 1]);
  expectTensor(run("Or", [p, q])[0], "bool", [4], [0, 1, 1, 1]);
  expectTensor(run("Xor", [p, q])[0], "bool", [4], [0, 1, 1, 0]);
  const not = run("Not", [p])[0];
  expectTensor(not, "bool", [4], [1, 1, 0, 0]);
  assert.ok(not.data instanceof Uint8Array);
  expectTensor(run("IsNaN", [f32([3], [NaN, 1, Infinity])])[0], "bool", [3], [1, 0, 0]);
  expectTensor(
    run("IsInf", [f32([3], [NaN, -Infinity, Infinity])], { detect_negative: int(0) })[0],
    "bool",
    [3],
    [0, 0, 1],
  );
});

Deno.test("reference: Where, Clip and Cast", () => {
  const cond = bool([2, 1], [1, 0]);
  expectTensor(run("Where", [cond, f32([3], [1, 2, 3]), f32([], [-1])])[0], "float32", [2, 3], [
    1,
    2,
    3,
    -1,
    -1,
    -1,
  ]);
  const x = f32([4], [-2, -0.5, 0.5, 2]);
  expectTensor(run("Clip", [x, f32([], [-1]), f32([], [1])])[0], "float32", [4], [-1, -0.5, 0.5, 1]);
  expectTensor(run("Clip", [x, undefined, f32([], [0])])[0], "float32", [4], [-2, -0.5, 0, 0]);
  expectTensor(run("Clip", [x])[0], "float32", [4], [-2, -0.5, 0.5, 2]);
  expectTensor(run("Cast", [f32([3], [-1.7, 2.9, 0])], { to: int(7) })[0], "int64", [3], [-1, 2, 0]);
  expectTensor(run("Cast", [f32([3], [-1.7, 0, 3])], { to: int(9) })[0], "bool", [3], [1, 0, 1]);
  expectTensor(run("Cast", [i64([2], [3, -4])], { to: int(1) })[0], "float32", [2], [3, -4]);
  expectTensor(run("Cast", [f32([2], [300, -129])], { to: int(3) })[0], "int8", [2], [44, 127]);
});

Deno.test("reference: MatMul with batching, broadcasting and 1-D promotion", () => {
  const a = f32([2, 3], [1, 2, 3, 4, 5, 6]), b = f32([3, 2], [7, 8, 9, 10, 11, 12]);
  expectTensor(run("MatMul", [a, b])[0], "float32", [2, 2], [58, 64, 139, 154]);
  const v = f32([3], [1, 0, -1]);
  expectTensor(run("MatMul", [v, b])[0], "float32", [2], [-4, -4]);
  expectTensor(run("MatMul", [a, v])[0], "float32", [2], [-2, -2]);
  expectTensor(run("MatMul", [v, f32([3], [3, 2, 1])])[0], "float32", [], [2]);
  // [2,1,2,2] @ [3,2,2] → [2,3,2,2]; block [i][j] = A[i] @ B[j]
  const ba = f32([2, 1, 2, 2], [1, 0, 0, 1, 2, 0, 0, 2]);
  const bb = f32([3, 2, 2], [1, 2, 3, 4, 0, 1, 1, 0, 5, 5, 5, 5]);
  const out = run("MatMul", [ba, bb])[0];
  assert.deepEqual(out.dims, [2, 3, 2, 2]);
  assert.deepEqual(refToNumbers(out).slice(0, 12), [1, 2, 3, 4, 0, 1, 1, 0, 5, 5, 5, 5]);
  assert.deepEqual(refToNumbers(out).slice(12, 16), [2, 4, 6, 8]);
  assert.throws(() => run("MatMul", [a, a]), /inner dimensions differ: A is \[2, 3\], B is \[2, 3\]/);
});

Deno.test("reference: Gemm with transposes, alpha, beta and broadcast C", () => {
  const a = f32([3, 2], [1, 4, 2, 5, 3, 6]); // Aᵀ = [[1,2,3],[4,5,6]]
  const b = f32([2, 3], [7, 9, 11, 8, 10, 12]); // Bᵀ = [[7,8],[9,10],[11,12]]
  const c = f32([2], [1, -1]);
  const [y] = run("Gemm", [a, b, c], { transA: int(1), transB: int(1), alpha: float(0.5), beta: float(2) });
  expectTensor(y, "float32", [2, 2], [31, 30, 71.5, 75]);
  expectTensor(run("Gemm", [f32([1, 2], [1, 2]), f32([2, 1], [3, 4])])[0], "float32", [1, 1], [11]);
});

Deno.test("reference: Einsum with explicit equations", () => {
  const a = f32([2, 3], [1, 2, 3, 4, 5, 6]), b = f32([3, 2], [7, 8, 9, 10, 11, 12]);
  const eq = (equation: string) => ({ equation: str(equation) });
  expectTensor(run("Einsum", [a, b], eq("ij,jk->ik"))[0], "float32", [2, 2], [58, 64, 139, 154]);
  expectTensor(run("Einsum", [a], eq("ij->ji"))[0], "float32", [3, 2], [1, 4, 2, 5, 3, 6]);
  expectTensor(run("Einsum", [f32([2, 2], [1, 2, 3, 4])], eq("ii->i"))[0], "float32", [2], [1, 4]);
  expectTensor(run("Einsum", [f32([3], [1, 2, 3]), f32([3], [4, 5, 6])], eq("i, i ->"))[0], "float32", [], [
    32,
  ]);
  expectTensor(run("Einsum", [a], eq("ij->i"))[0], "float32", [2], [6, 15]);
  assert.throws(() => run("Einsum", [a, b], eq("ij,jk")), /only explicit equations/);
});

Deno.test("reference: Softmax and LogSoftmax", () => {
  const p = [0.09003057317038046, 0.24472847105479764, 0.6652409557748218];
  expectTensor(run("Softmax", [f32([3], [1, 2, 3])])[0], "float32", [3], p, 1e-15);
  expectTensor(run("LogSoftmax", [f32([3], [1, 2, 3])])[0], "float32", [3], p.map(Math.log), 1e-15);
  // axis 0 of [[0, 0], [ln 3, 0]]: columns normalise separately
  const [y] = run("Softmax", [f32([2, 2], [0, 0, Math.log(3), 0])], { axis: int(0) });
  expectTensor(y, "float32", [2, 2], [0.25, 0.5, 0.75, 0.5]);
  // large inputs do not overflow
  expectTensor(run("Softmax", [f32([2], [1000, 1000])])[0], "float32", [2], [0.5, 0.5]);
});

Deno.test("reference: reductions with axes input, keepdims and noop_with_empty_axes", () => {
  const x = f32([2, 3], [1, 2, 3, 4, 5, 6]);
  expectTensor(run("ReduceSum", [x, i64([1], [1])])[0], "float32", [2, 1], [6, 15]);
  expectTensor(run("ReduceSum", [x, i64([1], [-2])], { keepdims: int(0) })[0], "float32", [3], [5, 7, 9]);
  expectTensor(run("ReduceSum", [x])[0], "float32", [1, 1], [21]);
  expectTensor(run("ReduceSum", [x, i64([0], [])], { keepdims: int(0) })[0], "float32", [], [21]);
  expectTensor(run("ReduceSum", [x, i64([0], [])], { noop_with_empty_axes: int(1) })[0], "float32", [2, 3], [
    1,
    2,
    3,
    4,
    5,
    6,
  ]);
  expectTensor(run("ReduceMean", [x, i64([1], [1])], { keepdims: int(0) })[0], "float32", [2], [2, 5]);
  expectTensor(run("ReduceMax", [x, i64([1], [0])])[0], "float32", [1, 3], [4, 5, 6]);
  expectTensor(run("ReduceMin", [x, i64([1], [1])])[0], "float32", [2, 1], [1, 4]);
  expectTensor(run("ReduceProd", [x, i64([1], [1])])[0], "float32", [2, 1], [6, 120]);
  expectTensor(run("ReduceSumSquare", [x, i64([1], [0])])[0], "float32", [1, 3], [17, 29, 45]);
  expectTensor(run("ReduceL2", [f32([2], [3, 4])])[0], "float32", [1], [5]);
  expectTensor(run("ReduceLogSumExp", [f32([3], [1, 2, 3])], { keepdims: int(0) })[0], "float32", [], [
    3.40760596444438,
  ]);
  expectTensor(run("ReduceLogSumExp", [f32([2], [1000, 1000])])[0], "float32", [1], [1000 + Math.LN2]);
  // opset < 18 style: axes as an attribute
  expectTensor(run("ReduceMean", [x], { axes: ints([0]) })[0], "float32", [1, 3], [2.5, 3.5, 4.5]);
});

Deno.test("reference: ArgMax, ArgMin, TopK and CumSum", () => {
  const x = f32([2, 3], [1, 3, 3, 0, -1, 0]);
  expectTensor(run("ArgMax", [x], { axis: int(1) })[0], "int64", [2, 1], [1, 0]);
  expectTensor(
    run("ArgMax", [x], { axis: int(1), keepdims: int(0), select_last_index: int(1) })[0],
    "int64",
    [2],
    [
      2,
      2,
    ],
  );
  expectTensor(run("ArgMin", [x], { axis: int(0), keepdims: int(0) })[0], "int64", [3], [1, 1, 1]);
  const [values, indices] = run("TopK", [f32([4], [3, 1, 3, 2]), i64([1], [2])], {}, 2);
  expectTensor(values, "float32", [2], [3, 3]);
  expectTensor(indices, "int64", [2], [0, 2]);
  const [small, smallIdx] = run("TopK", [f32([2, 2], [5, 1, 2, 7]), i64([1], [1])], {
    axis: int(0),
    largest: int(0),
  }, 2);
  expectTensor(small, "float32", [1, 2], [2, 1]);
  expectTensor(smallIdx, "int64", [1, 2], [1, 0]);
  const v = f32([3], [1, 2, 3]), axis = i64([], [0]);
  expectTensor(run("CumSum", [v, axis])[0], "float32", [3], [1, 3, 6]);
  expectTensor(run("CumSum", [v, axis], { exclusive: int(1) })[0], "float32", [3], [0, 1, 3]);
  expectTensor(run("CumSum", [v, axis], { reverse: int(1) })[0], "float32", [3], [6, 5, 3]);
  expectTensor(run("CumSum", [v, axis], { reverse: int(1), exclusive: int(1) })[0], "float32", [3], [
    5,
    3,
    0,
  ]);
  expectTensor(run("CumSum", [f32([2, 2], [1, 2, 3, 4]), i64([], [-1])])[0], "float32", [2, 2], [1, 3, 3, 7]);
});

Deno.test("reference: Reshape, Transpose, Squeeze, Unsqueeze, Flatten", () => {
  const x = f32([2, 3, 2], Array.from({ length: 12 }, (_, i) => i));
  expectTensor(run("Reshape", [x, i64([2], [0, -1])])[0], "float32", [2, 6], refToNumbers(x));
  expectTensor(run("Reshape", [x, i64([3], [-1, 2, 2])])[0], "float32", [3, 2, 2], refToNumbers(x));
  expectTensor(run("Reshape", [f32([0, 3], []), i64([2], [3, 0])], { allowzero: int(1) })[0], "float32", [
    3,
    0,
  ], []);
  assert.throws(() => run("Reshape", [x, i64([2], [5, -1])]), /cannot reshape \[2, 3, 2\] to \[5, -1\]/);
  const t = run("Transpose", [x], { perm: ints([2, 0, 1]) })[0];
  expectTensor(t, "float32", [2, 2, 3], [0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11]);
  expectTensor(run("Transpose", [f32([2, 2], [1, 2, 3, 4])])[0], "float32", [2, 2], [1, 3, 2, 4]);
  const one = f32([1, 2, 1], [5, 6]);
  expectTensor(run("Squeeze", [one])[0], "float32", [2], [5, 6]);
  expectTensor(run("Squeeze", [one, i64([1], [-1])])[0], "float32", [1, 2], [5, 6]);
  assert.throws(() => run("Squeeze", [one, i64([1], [1])]), /cannot squeeze axis 1 of size 2/);
  expectTensor(run("Unsqueeze", [f32([2], [5, 6]), i64([2], [0, -1])])[0], "float32", [1, 2, 1], [5, 6]);
  expectTensor(run("Flatten", [x], { axis: int(2) })[0], "float32", [6, 2], refToNumbers(x));
  expectTensor(run("Flatten", [x], { axis: int(0) })[0], "float32", [1, 12], refToNumbers(x));
});

Deno.test("reference: Slice with negative indices, steps and clamping", () => {
  const x = f32([5], [0, 1, 2, 3, 4]);
  const s = (starts: number[], ends: number[], steps?: number[]) =>
    refToNumbers(
      run("Slice", [
        x,
        i64([starts.length], starts),
        i64([ends.length], ends),
        undefined,
        steps ? i64([steps.length], steps) : undefined,
      ])[0],
    );
  assert.deepEqual(s([1], [3]), [1, 2]);
  assert.deepEqual(s([-2], [1e18]), [3, 4]); // end clamped to the dim
  assert.deepEqual(s([-100], [2]), [0, 1]); // start clamped to 0
  assert.deepEqual(s([0], [5], [2]), [0, 2, 4]);
  assert.deepEqual(s([-1], [-1e18], [-1]), [4, 3, 2, 1, 0]); // reverse to the front
  assert.deepEqual(s([10], [0], [-2]), [4, 2]); // start clamped to dim - 1
  assert.deepEqual(s([3], [1]), []);
  const m = f32([3, 4], Array.from({ length: 12 }, (_, i) => i));
  const [y] = run("Slice", [m, i64([2], [1, -1]), i64([2], [100, 0]), i64([2], [0, -1]), i64([2], [1, -2])]);
  expectTensor(y, "float32", [2, 2], [7, 5, 11, 9]);
});

Deno.test("reference: Concat, Split, Expand, Tile", () => {
  const a = f32([2, 1], [1, 2]), b = f32([2, 2], [3, 4, 5, 6]);
  expectTensor(run("Concat", [a, b], { axis: int(1) })[0], "float32", [2, 3], [1, 3, 4, 2, 5, 6]);
  expectTensor(run("Concat", [b, b], { axis: int(-2) })[0], "float32", [4, 2], [3, 4, 5, 6, 3, 4, 5, 6]);
  assert.throws(() => run("Concat", [a, f32([3, 1], [0, 0, 0])], { axis: int(1) }), /input 1 is \[3, 1\]/);
  const x = f32([2, 3], [1, 2, 3, 4, 5, 6]);
  const [p, q] = run("Split", [x, i64([2], [1, 2])], { axis: int(1) }, 2);
  expectTensor(p, "float32", [2, 1], [1, 4]);
  expectTensor(q, "float32", [2, 2], [2, 3, 5, 6]);
  const [u, v, w] = run("Split", [f32([5], [1, 2, 3, 4, 5])], {}, 3); // ceil(5/3) = 2, 2, 1
  expectTensor(u, "float32", [2], [1, 2]);
  expectTensor(v, "float32", [2], [3, 4]);
  expectTensor(w, "float32", [1], [5]);
  expectTensor(run("Expand", [a, i64([2], [2, 3])])[0], "float32", [2, 3], [1, 1, 1, 2, 2, 2]);
  expectTensor(run("Expand", [f32([3], [1, 2, 3]), i64([2], [2, 1])])[0], "float32", [2, 3], [
    1,
    2,
    3,
    1,
    2,
    3,
  ]);
  expectTensor(run("Tile", [b, i64([2], [1, 2])])[0], "float32", [2, 4], [3, 4, 3, 4, 5, 6, 5, 6]);
});

Deno.test("reference: Gather, GatherElements, ScatterND and ScatterElements", () => {
  const data = f32([3, 2], [1, 2, 3, 4, 5, 6]);
  expectTensor(run("Gather", [data, i64([2, 2], [0, 2, -1, 1])])[0], "float32", [2, 2, 2], [
    1,
    2,
    5,
    6,
    5,
    6,
    3,
    4,
  ]);
  expectTensor(run("Gather", [data, i64([], [1])], { axis: int(1) })[0], "float32", [3], [2, 4, 6]);
  assert.throws(
    () => run("Gather", [data, i64([1], [3])]),
    /index 3 is out of range for a dimension of size 3/,
  );
  const [ge] = run("GatherElements", [data, i64([2, 2], [1, 0, 0, 1])], { axis: int(1) });
  expectTensor(ge, "float32", [2, 2], [2, 1, 3, 4]);
  const zeros = f32([4], [0, 0, 0, 0]);
  const idx = i64([3, 1], [1, 3, 1]), upd = f32([3], [10, 20, 30]);
  expectTensor(run("ScatterND", [zeros, idx, upd], { reduction: str("add") })[0], "float32", [4], [
    0,
    40,
    0,
    20,
  ]);
  const rows = run("ScatterND", [data, i64([1, 1], [1]), f32([1, 2], [-3, -4])])[0];
  expectTensor(rows, "float32", [3, 2], [1, 2, -3, -4, 5, 6]);
  const [se] = run("ScatterElements", [
    f32([2, 3], [0, 0, 0, 0, 0, 0]),
    i64([2, 2], [0, 0, 2, -1]),
    f32([2, 2], [1, 2, 3, 4]),
  ], {
    axis: int(1),
    reduction: str("add"),
  });
  expectTensor(se, "float32", [2, 3], [3, 0, 0, 0, 0, 7]);
  const [plain] = run("ScatterElements", [data, i64([1, 2], [2, 0]), f32([1, 2], [9, 8])]);
  expectTensor(plain, "float32", [3, 2], [1, 8, 3, 4, 9, 6]);
});

Deno.test("reference: Shape, Size, ConstantOfShape, Constant, Range, Trilu, Dropout", () => {
  const x = f32([2, 3, 4], new Array(24).fill(0));
  expectTensor(run("Shape", [x])[0], "int64", [3], [2, 3, 4]);
  expectTensor(run("Shape", [x], { start: int(-2) })[0], "int64", [2], [3, 4]);
  expectTensor(run("Shape", [x], { start: int(1), end: int(-1) })[0], "int64", [1], [3]);
  expectTensor(run("Size", [x])[0], "int64", [], [24]);
  const value: Attribute = { type: "tensor", value: tensorFromNumbers([7], "int64", [1]) };
  expectTensor(run("ConstantOfShape", [i64([2], [2, 1])], { value })[0], "int64", [2, 1], [7, 7]);
  expectTensor(run("ConstantOfShape", [i64([1], [2])])[0], "float32", [2], [0, 0]);
  expectTensor(run("Constant", [], { value_ints: ints([4, -5]) })[0], "int64", [2], [4, -5]);
  expectTensor(run("Constant", [], { value_float: float(1.5) })[0], "float32", [], [1.5]);
  expectTensor(run("Range", [i64([], [1]), i64([], [10]), i64([], [3])])[0], "int64", [3], [1, 4, 7]);
  expectTensor(run("Range", [f32([], [10]), f32([], [4]), f32([], [-3])])[0], "float32", [2], [10, 7]);
  expectTensor(run("Range", [f32([], [0]), f32([], [1]), f32([], [0.25])])[0], "float32", [4], [
    0,
    0.25,
    0.5,
    0.75,
  ]);
  const m = f32([3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  expectTensor(run("Trilu", [m])[0], "float32", [3, 3], [1, 2, 3, 0, 5, 6, 0, 0, 9]);
  expectTensor(run("Trilu", [m, i64([], [1])])[0], "float32", [3, 3], [0, 2, 3, 0, 0, 6, 0, 0, 0]);
  expectTensor(run("Trilu", [m, i64([], [-1])], { upper: int(0) })[0], "float32", [3, 3], [
    0,
    0,
    0,
    4,
    0,
    0,
    7,
    8,
    0,
  ]);
  const [d, mask] = run("Dropout", [f32([2], [1, 2])], {}, 2);
  expectTensor(d, "float32", [2], [1, 2]);
  expectTensor(mask, "bool", [2], [1, 1]);
});

Deno.test("reference: LayerNormalization with scale, bias and statistics", () => {
  const x = f32([2, 4], [1, 2, 3, 4, 2, 2, 2, 2]);
  const scale = f32([4], [1, 1, 2, 2]), bias = f32([4], [0, 0, 0, 1]);
  const [y, mean, invStd] = run("LayerNormalization", [x, scale, bias], { epsilon: float(0) }, 3);
  const k = 1 / Math.sqrt(1.25); // variance of [1,2,3,4] is 1.25
  expectTensor(y, "float32", [2, 4], [-1.5 * k, -0.5 * k, 1 * k, 3 * k + 1, NaN, NaN, NaN, NaN]);
  expectTensor(mean, "float32", [2, 1], [2.5, 2]);
  expectTensor(invStd, "float32", [2, 1], [k, Infinity]);
  const [z] = run("LayerNormalization", [f32([1, 2], [0, 2]), f32([2], [1, 1])], { epsilon: float(1e-5) });
  const e = 1 / Math.sqrt(1 + 1e-5);
  expectTensor(z, "float32", [1, 2], [-e, e]);
});

Deno.test("reference: SoftmaxCrossEntropyLoss with ignore_index and reductions", () => {
  // rows: [0, 0] → class 0 has log-prob −ln 2; [ln 3, 0] → class 1 has log-prob −ln 4; row 3 is ignored.
  const scores = f32([3, 2], [0, 0, Math.log(3), 0, 5, -5]);
  const labels = i64([3], [0, 1, -100]);
  const ln2 = Math.LN2;
  const attrs = (reduction: string) => ({ reduction: str(reduction), ignore_index: int(-100) });
  expectTensor(run("SoftmaxCrossEntropyLoss", [scores, labels], attrs("mean"))[0], "float32", [], [
    1.5 * ln2,
  ]);
  expectTensor(run("SoftmaxCrossEntropyLoss", [scores, labels], attrs("sum"))[0], "float32", [], [3 * ln2]);
  const [none, logProb] = run("SoftmaxCrossEntropyLoss", [scores, labels], attrs("none"), 2);
  expectTensor(none, "float32", [3], [ln2, 2 * ln2, 0]);
  assert.deepEqual(logProb.dims, [3, 2]);
  assertAllClose(refToNumbers(logProb).slice(0, 4), [-ln2, -ln2, Math.log(0.75), -2 * ln2], { rtol: 1e-15 });
  const weights = f32([2], [1, 3]);
  const [weighted] = run("SoftmaxCrossEntropyLoss", [scores, labels, weights], attrs("mean"));
  expectTensor(weighted, "float32", [], [(ln2 + 3 * 2 * ln2) / 4]);
  // [N, C, d]: classes on axis 1, so position 0 scores (0, 0) and position 1 scores (ln 3, 0)
  const [spatial] = run("SoftmaxCrossEntropyLoss", [
    f32([1, 2, 2], [0, Math.log(3), 0, 0]),
    i64([1, 2], [1, 1]),
  ]);
  expectTensor(spatial, "float32", [], [1.5 * ln2]);
  assert.throws(() => run("SoftmaxCrossEntropyLoss", [scores, i64([3], [0, 2, 0])]), /label 2 at \[1, 0\]/);
});

Deno.test("reference: graph evaluation reads initializers and returns intermediates", () => {
  const w = tensorFromNumbers([2, 3], "float32", [2]);
  w.name = "w";
  const half = { name: "h", dtype: "float16" as const, dims: [1], data: new Uint8Array([0x00, 0x38]) }; // 0.5
  const graph: Graph = {
    name: "g",
    nodes: [
      { opType: "Mul", name: "mul", inputs: ["x", "w"], outputs: ["t"], attributes: {} },
      { opType: "Cast", name: "cast", inputs: ["h"], outputs: ["h32"], attributes: { to: int(1) } },
      { opType: "Add", name: "add", inputs: ["t", "h32"], outputs: ["y"], attributes: {} },
      { opType: "Exp", name: "unused", inputs: ["x"], outputs: ["z"], attributes: {} },
    ],
    inputs: [{ name: "x", type: { dtype: "float32", shape: ["n"] } }],
    outputs: [{ name: "y", type: { dtype: "float32", shape: ["n"] } }],
    initializers: [w, half],
    valueInfo: [],
  };
  const x = f32([2], [1, -1]);
  expectTensor(evaluate(graph, { x }).y, "float32", [2], [2.5, -2.5]);
  const both = evaluate(graph, { x }, { outputs: ["t", "y"] });
  expectTensor(both.t, "float32", [2], [2, -3]);
  assert.deepEqual(Object.keys(both), ["t", "y"]);
  assert.throws(() => evaluate(graph, {}), /input "x" is not fed/);
  assert.throws(() => evaluate(graph, { x: i64([2], [1, 1]) }), /input "x" is float32, fed int64/);
  const fixed = { ...graph, inputs: [{ name: "x", type: { dtype: "float32" as const, shape: [3] } }] };
  assert.throws(() => evaluate(fixed, { x }), /input "x" is declared \[3\], fed \[2\]/);
  const unknown = { ...graph, nodes: [{ ...graph.nodes[0], opType: "FancyOp", name: "fancy" }] };
  assert.throws(() => evaluate(unknown, { x }, { outputs: ["t"] }), (e: Error) => {
    assert.match(e.message, /node "fancy" \(FancyOp\).*no implementation of op "FancyOp"/);
    return e instanceof TypeError;
  });
  const lying = { ...graph, outputs: [{ name: "y", type: { dtype: "float32" as const, shape: [5] } }] };
  assert.throws(() => evaluate(lying, { x }), /output "y" is declared \[5\] but evaluates to \[2\]/);
});
