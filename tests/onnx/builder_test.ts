// GraphBuilder: values and names, constants, typed op helpers (the attributes they emit), models, and
// the fromGraph round trip (including a graph decoded from a PyTorch-exported file).

import assert from "node:assert/strict";
import {
  attr,
  decodeModel,
  type Graph,
  GraphBuilder,
  ShapeError,
  tensorFromNumbers,
  tensorToNumbers,
} from "../../src/onnx/mod.ts";
import { evaluate, refTensor, refToNumbers } from "../_reference/mod.ts";

const TORCH_MLP = new URL("../fixtures/onnx/torch_mlp.onnx", import.meta.url);

Deno.test("builder: inputs, initializers, constants and outputs carry their types", () => {
  const b = new GraphBuilder("g");
  const x = b.input("x", "float32", ["batch", 4]);
  assert.deepEqual(x, { name: "x", dtype: "float32", shape: ["batch", 4] });
  const w = b.initializer("w", new Float32Array(12), [4, 3]);
  assert.deepEqual(w, { name: "w", dtype: "float32", shape: [4, 3] });
  const ids = b.initializer("ids", new BigInt64Array([1n, 2n]), [2]);
  assert.equal(ids.dtype, "int64");
  assert.deepEqual(b.knownValues("ids"), [1, 2]);
  const half = b.initializer("h", new Uint8Array(4), [2], "float16");
  assert.equal(half.dtype, "float16");
  assert.equal(b.constantTensor("h")?.data.length, 4);
  const k = b.ints([0, -1]);
  assert.equal(k.dtype, "int64");
  assert.deepEqual(b.knownValues(k.name), [0, -1]);
  assert.deepEqual(b.scalar(2.5).shape, []);
  const y = b.output(b.matmul(x, w), "y");
  assert.deepEqual(y.shape, ["batch", 3]);
  const graph = b.toGraph();
  assert.deepEqual(graph.outputs, [{ name: "y", type: { dtype: "float32", shape: ["batch", 3] } }]);
  assert.deepEqual(graph.nodes.map((n) => n.opType), ["MatMul", "Identity"]);
  assert.deepEqual(graph.initializers.map((t) => t.name), [
    "w",
    "ids",
    "h",
    k.name,
    graph.initializers[4].name,
  ]);
});

Deno.test("builder: misuse fails with clear errors", () => {
  const b = new GraphBuilder("g");
  const x = b.input("x", "float32", [2]);
  assert.throws(() => b.input("x", "float32", [2]), /Cannot add input "x": the name is already defined/);
  assert.throws(
    () => b.initializer("w", new Float32Array(5), [2, 3]),
    /Cannot add initializer "w": 20 bytes for float32\[2, 3\] \(expected 24\)/,
  );
  assert.throws(() => b.value("nope"), /Unknown value "nope" in graph "g"/);
  b.output(x);
  assert.throws(() => b.output(x), /Output "x" is declared twice/);
  assert.throws(() => b.relu("missing"), /Unknown value "missing"/);
  assert.throws(() => b.node("Relu", [x], {}, { outputNames: ["x"] }), /the name is already defined/);
});

Deno.test("builder: names are unique per graph and scoped", () => {
  const b = new GraphBuilder("g");
  const x = b.input("x", "float32", [2]);
  const a = b.relu(x), c = b.relu(x);
  assert.notEqual(a.name, c.name);
  const scoped = b.withScope("layer0", () => b.withScope("mlp", () => b.neg(x)));
  assert.match(scoped.name, /^layer0\/mlp\/Neg_out0/);
  const names = b.toGraph().nodes.map((n) => n.name);
  assert.deepEqual(names, ["Relu", "Relu_1", "layer0/mlp/Neg"]);
  assert.equal(b.freshName("Relu"), "Relu_2");
});

Deno.test("builder: JS numbers become scalar constants of the other operand's dtype", () => {
  const b = new GraphBuilder("g");
  const x = b.input("x", "float64", [3]);
  const y = b.mul(x, 2);
  const node = b.toGraph().nodes[0];
  const constant = b.constantTensor(node.inputs[1])!;
  assert.equal(constant.dtype, "float64");
  assert.deepEqual(constant.dims, []);
  assert.deepEqual(tensorToNumbers(constant), [2]);
  assert.equal(y.dtype, "float64");
  const i = b.input("i", "int64", [3]);
  const j = b.sub(10, i);
  assert.equal(b.constantTensor(b.toGraph().nodes[1].inputs[0])!.dtype, "int64");
  assert.equal(j.dtype, "int64");
});

Deno.test("builder: op helpers emit the ONNX attributes and inputs of each op", () => {
  const b = new GraphBuilder("g");
  const x = b.input("x", "float32", [2, 3]);
  const labels = b.input("labels", "int64", [2]);
  const last = () => b.toGraph().nodes.at(-1)!;
  b.gemm(x, x, undefined, { transB: true, alpha: 0.5 });
  assert.deepEqual(last().attributes, { transB: attr.int(1), alpha: attr.float(0.5) });
  assert.deepEqual(last().inputs.length, 3);
  assert.equal(last().inputs[2], "");
  b.softmax(x, 0);
  assert.deepEqual(last().attributes, { axis: attr.int(0) });
  b.cast(x, "int64");
  assert.deepEqual(last().attributes, { to: attr.int(7) });
  b.layerNorm(x, b.initializer("s", new Float32Array(3), [3]));
  assert.deepEqual(last().attributes, { axis: attr.int(-1), epsilon: attr.float(1e-5) });
  const [values, indices] = b.topK(x, 2, 1, false);
  assert.deepEqual([values.shape, indices.dtype], [[2, 2], "int64"]);
  assert.deepEqual(last().attributes, { axis: attr.int(1), largest: attr.int(0), sorted: attr.int(1) });
  b.cumSum(x, 1, { exclusive: true, reverse: true });
  assert.deepEqual(last().attributes, { exclusive: attr.int(1), reverse: attr.int(1) });
  const clipped = b.clip(x, 0);
  assert.equal(last().inputs[2], "");
  assert.equal(clipped.dtype, "float32");
  b.scatterElements(x, b.input("idx", "int64", [2, 3]), x, 1, "add");
  assert.deepEqual(last().attributes, { axis: attr.int(1), reduction: attr.string("add") });
  const loss = b.softmaxCrossEntropyLoss(x, labels, { ignoreIndex: -100 });
  assert.deepEqual(loss.shape, []);
  assert.deepEqual(last().attributes, { reduction: attr.string("mean"), ignore_index: attr.int(-100) });
  const parts = b.split(x, [1, 2], 1);
  assert.deepEqual(parts.map((p) => p.shape), [[2, 1], [2, 2]]);
  assert.equal(b.argMax(x).dtype, "int64");
  assert.deepEqual(b.argMax(x, 1, true).shape, [2, 1]);
  assert.deepEqual(b.where(b.greater(x, 0), x, 0).shape, [2, 3]);
  assert.deepEqual(b.einsum("ij->ji", x).shape, [3, 2]);
  assert.deepEqual(b.trilu(x, false).shape, [2, 3]);
  assert.deepEqual(b.constantOfShape(b.shapeOf(x), 1, "int64"), {
    name: b.toGraph().nodes.at(-1)!.outputs[0],
    dtype: "int64",
    shape: [2, 3],
  });
  assert.deepEqual(b.range(b.scalar(0, "int64"), b.scalar(5, "int64"), b.scalar(2, "int64")).shape, [3]);
  assert.deepEqual(b.expand(b.input("v", "float32", [3]), [4, 3]).shape, [4, 3]);
  assert.deepEqual(b.tile(x, [1, 2]).shape, [2, 6]);
  assert.deepEqual(b.reduceMean(x, [1], false).shape, [2]);
  assert.deepEqual(b.reduceSumSquare(x).shape, [1, 1]);
  assert.deepEqual(b.squeeze(b.unsqueeze(x, [0])).shape, [2, 3]);
});

Deno.test("builder: toModel records opset, IR version and metadata", () => {
  const b = new GraphBuilder("m", { opset: 17 });
  b.output(b.neg(b.input("x", "float32", [1])), "y");
  const model = b.toModel({ producerName: "test", metadata: { k: "v" } });
  assert.equal(model.irVersion, 8);
  assert.deepEqual(model.opsetImports, [{ domain: "", version: 17 }]);
  assert.equal(model.producerName, "test");
  assert.deepEqual(model.metadataProps, { k: "v" });
  assert.equal(new GraphBuilder("m", { opset: 21 }).toModel().irVersion, 10);
});

Deno.test("builder: tensorFromNumbers and tensorToNumbers round trip", () => {
  for (const dtype of ["float32", "float64", "int64", "int32", "uint8", "int8", "bool"] as const) {
    const values = dtype === "bool" ? [1, 0, 1] : dtype === "uint8" ? [0, 7, 255] : [-3, 0, 5];
    const t = tensorFromNumbers(values, dtype, [3]);
    assert.deepEqual(tensorToNumbers(t), values, dtype);
  }
  assert.deepEqual(tensorToNumbers(tensorFromNumbers([0.1], "float32")), [Math.fround(0.1)]);
  assert.throws(() => tensorFromNumbers([1], "float16"), /Cannot make a float16 constant from numbers/);
});

Deno.test("builder: a built MLP evaluates to hand-computed values in the reference", () => {
  const b = new GraphBuilder("mlp");
  const x = b.input("x", "float32", ["batch", 2]);
  const w = b.initializer("w", new Float32Array([1, -1, 2, 0.5]), [2, 2]);
  const bias = b.initializer("b", new Float32Array([0.5, -4]), [2]);
  b.output(b.relu(b.add(b.matmul(x, w), bias)), "y");
  const { y } = evaluate(b.toGraph(), { x: refTensor("float32", [2, 2], [1, 1, -1, 2]) });
  // [1,1]·w = [3, -0.5] + b = [3.5, -4.5] → relu [3.5, 0]; [-1,2]·w = [3, 2] + b = [3.5, -2] → [3.5, 0]
  assert.deepEqual(refToNumbers(y), [3.5, 0, 3.5, 0]);
});

Deno.test("builder: fromGraph round-trips a graph and keeps names unique when extended", () => {
  const b = new GraphBuilder("g");
  const x = b.input("x", "float32", ["n", 3]);
  const w = b.initializer("w", new Float32Array([1, 2, 3]), [3]);
  b.output(b.relu(b.mul(x, w)), "y");
  const graph = b.toGraph();
  const copy = GraphBuilder.fromGraph(graph);
  assert.deepEqual(copy.toGraph(), graph);
  assert.deepEqual(copy.value("y").shape, ["n", 3]);
  // New nodes get names that differ from every node already in the graph.
  const z = copy.relu(copy.mul("y", 2));
  copy.output(z, "z");
  const names = copy.toGraph().nodes.map((n) => n.name);
  assert.equal(new Set(names).size, names.length, `duplicate node names in ${names.join(", ")}`);
  assert.equal(graph.nodes.length, 3, "the source graph is not modified");
  const input: Graph = { ...graph, inputs: [{ name: "x" }] };
  assert.throws(() => GraphBuilder.fromGraph(input), /Cannot extend graph "g": input "x" has no shape/);
  const broken: Graph = { ...graph, nodes: [{ ...graph.nodes[0], inputs: ["x", "nope"] }] };
  assert.throws(() => GraphBuilder.fromGraph(broken), ShapeError);
});

Deno.test("builder: fromGraph accepts an initializer that is also an input (its default value)", () => {
  const graph: Graph = {
    name: "defaults",
    nodes: [{ opType: "Add", name: "add", inputs: ["x", "bias"], outputs: ["y"], attributes: {} }],
    inputs: [
      { name: "x", type: { dtype: "float32", shape: [2] } },
      { name: "bias", type: { dtype: "float32", shape: [2] } },
    ],
    outputs: [{ name: "y", type: { dtype: "float32", shape: [2] } }],
    initializers: [{ ...tensorFromNumbers([1, 2], "float32", [2]), name: "bias" }],
    valueInfo: [],
  };
  const b = GraphBuilder.fromGraph(graph);
  assert.deepEqual(b.toGraph(), graph);
  assert.equal(b.constantTensor("bias"), undefined, "an overridable input is not a constant");
});

Deno.test("builder: fromGraph infers the types of a PyTorch-exported graph", () => {
  const model = decodeModel(Deno.readFileSync(TORCH_MLP));
  const b = GraphBuilder.fromGraph(model.graph, { opset: 17 });
  assert.deepEqual(b.value("y").shape, ["batch", 4]);
  assert.deepEqual(b.value("/norm/LayerNormalization_output_0").shape, ["batch", 16]);
  const round = b.toGraph();
  assert.deepEqual(round.nodes, model.graph.nodes);
  assert.deepEqual(round.initializers, model.graph.initializers);
});
