// The ONNX protobuf codec: lossless round trips (every attribute type, symbolic dims, negative int64,
// string tensors, values in float_data/int64_data built by hand), a real PyTorch-exported file
// (byte-identical re-encoding, and it runs in onnxruntime-web with the output PyTorch recorded),
// external data, the 2 GB limit, and malformed bytes (each a clear error naming the byte offset).

import assert from "node:assert/strict";
import {
  type Attribute,
  decodeModel,
  encodeModel,
  type Graph,
  GraphBuilder,
  type Model,
  PROTOBUF_LIMIT,
  resolveExternalData,
  type TensorData,
  tensorFromNumbers,
  tensorToNumbers,
  utf8,
} from "../../src/onnx/mod.ts";
import { OnnxSession } from "../../src/runtime/session.ts";
import { hostTensor, toHost } from "../../src/runtime/tensor.ts";
import { assertAllClose, evaluate, refTensor, refToNumbers } from "../_reference/mod.ts";

const FIXTURES = new URL("../fixtures/onnx/", import.meta.url);

// ---------------------------------------------------------------------------------------------------
// A minimal protobuf writer, independent of the codec under test, for hand-built bytes.

function varint(value: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}
const key = (field: number, wire: number) => varint(field * 8 + wire);
const vint = (field: number, value: number | bigint) => [...key(field, 0), ...varint(value)];
const lenField = (
  field: number,
  payload: number[],
) => [...key(field, 2), ...varint(payload.length), ...payload];
const strField = (field: number, text: string) => lenField(field, [...utf8(text)]);
const f32Bytes = (values: number[]) => [...new Uint8Array(Float32Array.from(values).buffer)];

/** A ModelProto around one graph: ir_version 8, producer "hand", opset 18. */
function handModel(graph: number[]): Uint8Array {
  return Uint8Array.from([
    ...vint(1, 8),
    ...strField(2, "hand"),
    ...lenField(7, graph),
    ...lenField(8, [...strField(1, ""), ...vint(2, 18)]),
  ]);
}

/** A tensor-typed ValueInfoProto. */
function valueInfo(name: string, elemType: number, dims: (number | string)[]): number[] {
  const shape = dims.flatMap((d) => lenField(1, typeof d === "number" ? vint(1, d) : strField(2, d)));
  return [...strField(1, name), ...lenField(2, lenField(1, [...vint(1, elemType), ...lenField(2, shape)]))];
}

// ---------------------------------------------------------------------------------------------------
// Models built in the IR.

function builderModel(): Model {
  const b = new GraphBuilder("mlp");
  const x = b.input("x", "float32", ["batch", 4]);
  const w = b.initializer("w", Float32Array.from({ length: 12 }, (_, i) => (i - 6) / 8), [4, 3]);
  const h = b.layerNorm(b.matmul(x, w), b.initializer("g", new Float32Array([1, 2, 3]), [3]));
  b.output(b.softmax(b.reshape(h, [0, -1])), "y");
  return b.toModel();
}

const tensor = (values: number[], dtype: TensorData["dtype"], dims: number[], name = ""): TensorData => ({
  ...tensorFromNumbers(values, dtype, dims),
  name,
});

/** A graph whose nodes carry every attribute type, and tensors in every storage field. */
function everythingModel(): Model {
  const sub: Graph = {
    name: "body",
    nodes: [{ opType: "Neg", name: "neg", inputs: ["a"], outputs: ["b"], attributes: {} }],
    inputs: [{ name: "a", type: { dtype: "float32", shape: [] } }],
    outputs: [{ name: "b", type: { dtype: "float32", shape: [] } }],
    initializers: [],
    valueInfo: [],
  };
  const sparse = Uint8Array.from([...strField(1, "sp"), ...lenField(22, vint(3, 4)), ...vint(20, 11)]);
  const attributes: Record<string, Attribute> = {
    i: { type: "int", value: -5 },
    big: { type: "int", value: -(2 ** 40) },
    f: { type: "float", value: -2.25 },
    s: { type: "string", value: "héllo" },
    empty: { type: "string", value: "" },
    t: { type: "tensor", value: tensor([-1, 2 ** 40, -(2 ** 50)], "int64", [3]) },
    g: { type: "graph", value: sub },
    ints: { type: "ints", value: [1, -1, 0, 2 ** 45] },
    floats: { type: "floats", value: [0.5, -0.125, 3] },
    strings: { type: "strings", value: ["a", "", "ü"] },
    tensors: { type: "tensors", value: [tensor([1], "float32", []), tensor([1, 0], "bool", [2])] },
    graphs: { type: "graphs", value: [sub, { ...sub, name: "body2" }] },
    sp: { type: "raw", value: sparse },
  };
  const doubles = new Uint8Array(Float64Array.from([Math.PI, -1e300]).buffer);
  const wide = new BigInt64Array([2n ** 63n - 1n, -(2n ** 63n), -1n]);
  const graph: Graph = {
    name: "everything",
    docString: "graph doc",
    nodes: [
      { opType: "Custom", domain: "com.example", name: "c", inputs: ["x", ""], outputs: ["y"], attributes },
      {
        opType: "Identity",
        name: "id",
        inputs: ["y"],
        outputs: ["z"],
        attributes: {},
        docString: "node doc",
      },
    ],
    inputs: [
      { name: "x", type: { dtype: "float32", shape: ["batch", 3, "seq"] }, docString: "input doc" },
      { name: "unknown_rank", type: { dtype: "int64" } },
      { name: "neither", type: { dtype: "float16", shape: ["", 2] } },
    ],
    outputs: [{ name: "z", type: { dtype: "float32", shape: ["batch", 3, "seq"] } }],
    initializers: [
      tensor([1.5, -2], "float32", [2], "raw"),
      { ...tensor([1.5, -2, 0.25], "float32", [3], "floats"), storage: "float_data", docString: "t doc" },
      { ...tensor([-7, 1, 2 ** 40], "int64", [3], "int64s"), storage: "int64_data" },
      { name: "wide", dtype: "int64", dims: [3], data: new Uint8Array(wide.buffer), storage: "int64_data" },
      { ...tensor([-3, 4], "int32", [2], "int32s"), storage: "int32_data" },
      { name: "doubles", dtype: "float64", dims: [2], data: doubles, storage: "double_data" },
      {
        name: "u64",
        dtype: "uint64",
        dims: [1],
        data: new Uint8Array(new BigUint64Array([2n ** 64n - 1n]).buffer),
        storage: "uint64_data",
      },
      {
        name: "strs",
        dtype: "string",
        dims: [3],
        data: new Uint8Array(0),
        strings: [utf8("a"), utf8(""), Uint8Array.of(0xff, 0)],
        storage: "string_data",
      },
      { name: "empty", dtype: "float32", dims: [0], data: new Uint8Array(0) },
    ],
    valueInfo: [{ name: "y", type: { dtype: "float32", shape: ["batch", 3, "seq"] } }],
  };
  return {
    irVersion: 8,
    opsetImports: [{ domain: "", version: 18 }, { domain: "com.example", version: 1 }],
    producerName: "weightlora-test",
    producerVersion: "1",
    domain: "org.test",
    modelVersion: 3,
    docString: "model doc",
    metadataProps: { author: "me", empty: "" },
    graph,
  };
}

// ---------------------------------------------------------------------------------------------------

Deno.test("proto: encode → decode → encode is byte-identical and decode(encode(m)) equals m", () => {
  for (const model of [builderModel(), everythingModel()]) {
    const bytes = encodeModel(model).model;
    const decoded = decodeModel(bytes);
    assert.deepEqual(decoded, model);
    assert.deepEqual(encodeModel(decoded).model, bytes);
  }
});

Deno.test("proto: int64 values beyond 2^53 and negative values survive exactly", () => {
  const decoded = decodeModel(encodeModel(everythingModel()).model);
  const wide = decoded.graph.initializers.find((t) => t.name === "wide")!;
  const view = new DataView(wide.data.buffer, wide.data.byteOffset, wide.data.byteLength);
  assert.deepEqual([0, 1, 2].map((i) => view.getBigInt64(i * 8, true)), [2n ** 63n - 1n, -(2n ** 63n), -1n]);
  const attrs = decoded.graph.nodes[0].attributes;
  assert.deepEqual(attrs.i, { type: "int", value: -5 });
  assert.deepEqual(attrs.ints, { type: "ints", value: [1, -1, 0, 2 ** 45] });
  assert.deepEqual(tensorToNumbers((attrs.t as { value: TensorData }).value), [-1, 2 ** 40, -(2 ** 50)]);
});

Deno.test("proto: hand-built tensors in float_data, int64_data and int32_data decode and re-encode", () => {
  const initializers = [
    // float32 [2, 2] in packed float_data
    lenField(5, [
      ...vint(1, 2),
      ...vint(1, 2),
      ...vint(2, 1),
      ...lenField(4, f32Bytes([1, -2, 0.5, 4])),
      ...strField(8, "w"),
    ]),
    // int64 [3] in packed int64_data, with INT64_MAX and a negative value
    lenField(5, [
      ...vint(1, 3),
      ...vint(2, 7),
      ...lenField(7, [...varint(-4), ...varint(2n ** 63n - 1n), ...varint(5)]),
      ...strField(8, "i"),
    ]),
    // float16 [2] in int32_data (ONNX stores 16-bit values there): 1.0 = 0x3c00, -2.0 = 0xc000
    lenField(5, [
      ...vint(1, 2),
      ...vint(2, 10),
      ...lenField(5, [...varint(0x3c00), ...varint(0xc000)]),
      ...strField(8, "h"),
    ]),
  ].flat();
  const graph = [
    ...lenField(1, [
      ...strField(1, "x"),
      ...strField(1, "w"),
      ...strField(2, "y"),
      ...strField(3, "mm"),
      ...strField(4, "MatMul"),
    ]),
    ...strField(2, "hand"),
    ...initializers,
    ...lenField(11, valueInfo("x", 1, ["n", 2])),
    ...lenField(12, valueInfo("y", 1, ["n", 2])),
  ];
  const bytes = handModel(graph);
  const model = decodeModel(bytes);
  const [w, i, h] = model.graph.initializers;
  assert.deepEqual([w.storage, w.dtype, w.dims, tensorToNumbers(w)], ["float_data", "float32", [2, 2], [
    1,
    -2,
    0.5,
    4,
  ]]);
  assert.equal(i.storage, "int64_data");
  const view = new DataView(i.data.buffer, i.data.byteOffset, 24);
  assert.deepEqual([0, 1, 2].map((k) => view.getBigInt64(k * 8, true)), [-4n, 2n ** 63n - 1n, 5n]);
  assert.deepEqual([h.storage, h.dtype, [...new Uint16Array(h.data.slice().buffer)]], [
    "int32_data",
    "float16",
    [0x3c00, 0xc000],
  ]);
  assert.deepEqual(model.graph.inputs[0].type, { dtype: "float32", shape: ["n", 2] });
  assert.deepEqual(encodeModel(model).model, bytes);
  // The values are usable: [[1, 1]] @ w = [1.5, 2]
  const { y } = evaluate(model.graph, { x: refTensor("float32", [1, 2], [1, 1]) });
  assert.deepEqual(refToNumbers(y), [1.5, 2]);
});

Deno.test("proto: unpacked float_data and int64_data (one tag per value) decode too", () => {
  const t = lenField(5, [
    ...vint(1, 2),
    ...vint(2, 1),
    ...key(4, 5),
    ...f32Bytes([3]),
    ...key(4, 5),
    ...f32Bytes([-1]),
    ...strField(8, "f"),
  ]);
  const u = lenField(5, [...vint(1, 2), ...vint(2, 7), ...vint(7, -9), ...vint(7, 10), ...strField(8, "i")]);
  const model = decodeModel(handModel([...strField(2, "g"), ...t, ...u]));
  assert.deepEqual(tensorToNumbers(model.graph.initializers[0]), [3, -1]);
  assert.deepEqual(tensorToNumbers(model.graph.initializers[1]), [-9, 10]);
});

Deno.test("proto: type protos the IR does not model (sequence, denotation, empty dim_param) stay raw", () => {
  const sequence = lenField(4, lenField(1, lenField(1, vint(1, 1)))); // TypeProto.sequence_type
  const denoted = lenField(1, [
    ...vint(1, 1),
    ...lenField(2, lenField(1, [...vint(1, 3), ...strField(3, "DATA_BATCH")])),
  ]);
  const emptyParam = lenField(1, [...vint(1, 1), ...lenField(2, lenField(1, strField(2, "")))]);
  const inputs = [["s", sequence], ["d", denoted], ["e", emptyParam]].flatMap(([name, type]) =>
    lenField(11, [...strField(1, name as string), ...lenField(2, type as number[])])
  );
  const bytes = handModel([...strField(2, "g"), ...inputs]);
  const model = decodeModel(bytes);
  assert.deepEqual(model.graph.inputs.map((i) => [i.type, i.rawType?.length]), [
    [undefined, sequence.length],
    [undefined, denoted.length],
    [undefined, emptyParam.length],
  ]);
  assert.deepEqual(encodeModel(model).model, bytes);
});

Deno.test("proto: an attribute whose string is not UTF-8 is kept verbatim", () => {
  const attribute = [...strField(1, "blob"), ...lenField(4, [0xff, 0x00, 0xc3]), ...vint(20, 3)];
  const node = [
    ...strField(1, "x"),
    ...strField(2, "y"),
    ...strField(4, "Custom"),
    ...lenField(5, attribute),
  ];
  const bytes = handModel([...lenField(1, node), ...strField(2, "g")]);
  const model = decodeModel(bytes);
  assert.deepEqual(model.graph.nodes[0].attributes.blob, { type: "raw", value: Uint8Array.from(attribute) });
  assert.deepEqual(encodeModel(model).model, bytes);
});

Deno.test("proto: a PyTorch-exported file re-encodes byte-identically and runs with PyTorch's output", async () => {
  const bytes = Deno.readFileSync(new URL("torch_mlp.onnx", FIXTURES));
  const expected = JSON.parse(Deno.readTextFileSync(new URL("torch_mlp.json", FIXTURES)));
  const model = decodeModel(bytes);
  assert.equal(model.producerName, "pytorch");
  assert.deepEqual(model.opsetImports, [{ version: 17 }]);
  assert.deepEqual(model.graph.inputs[0].type, { dtype: "float32", shape: ["batch", 8] });
  assert.deepEqual(
    [...new Set(model.graph.nodes.map((n) => n.opType))].sort(),
    ["Add", "Constant", "Div", "Erf", "Gemm", "LayerNormalization", "Mul", "Softmax"],
  );
  assert.deepEqual(encodeModel(model).model, bytes);
  // float32 onnxruntime vs float32 PyTorch: rtol 1e-5, atol 1e-6.
  const session = await OnnxSession.create(model, { ep: "wasm" });
  try {
    const x = hostTensor(Float32Array.from(expected.input.data), expected.input.dims);
    const { y } = await session.run({ x });
    assert.deepEqual(y.dims, expected.output.dims);
    assertAllClose(await toHost(y), expected.output.data, {
      rtol: 1e-5,
      atol: 1e-6,
      what: "onnxruntime wasm",
    });
  } finally {
    await session.release();
  }
  // The float64 reference agrees with float32 PyTorch to float32 rounding.
  const ref = evaluate(model.graph, { x: refTensor("float32", expected.input.dims, expected.input.data) });
  assertAllClose(ref.y.data, expected.output.data, { rtol: 1e-5, atol: 1e-6, what: "reference" });
});

Deno.test("proto: external data moves out, resolves and runs in onnxruntime", async () => {
  const b = new GraphBuilder("ext");
  const x = b.input("x", "float32", [2, 64]);
  const big = (seed: number) => Float32Array.from({ length: 64 * 64 }, (_, i) => Math.sin(i * seed) / 8);
  const w1 = b.initializer("w1", big(1), [64, 64]);
  const w2 = b.initializer("w2", big(2), [64, 64]);
  const bias = b.initializer("bias", new Float32Array(64).fill(0.5), [64]);
  b.output(b.add(b.matmul(b.tanh(b.matmul(x, w1)), w2), bias), "y");
  const model = b.toModel();
  const encoded = encodeModel(model, { externalDataThreshold: 1024, externalDataLocation: "ext.bin" });
  assert.equal(encoded.externalDataLocation, "ext.bin");
  assert.ok(encoded.model.length < 4096, `model proto is ${encoded.model.length} bytes`);
  const decoded = decodeModel(encoded.model);
  const [t1, t2, t3] = decoded.graph.initializers;
  assert.deepEqual(t1.external, { location: "ext.bin", offset: 0, length: 16384 });
  assert.deepEqual(t2.external, { location: "ext.bin", offset: 16384, length: 16384 });
  assert.equal(t1.data.length, 0);
  assert.equal(t3.external, undefined, "small tensors stay inline");
  assert.equal(encoded.externalData!.length, 32768);
  const x0 = refTensor("float32", [2, 64], new Array(128).fill(0));
  assert.throws(() => evaluate(decoded.graph, { x: x0 }), /initializer "w1" has external data \("ext.bin"\)/);

  const resolved = resolveExternalData(decoded, { "ext.bin": encoded.externalData! });
  assert.deepEqual(
    resolved.graph.initializers.map((t) => t.data),
    model.graph.initializers.map((t) => t.data),
  );
  assert.deepEqual(encodeModel(resolved).model, encodeModel(model).model);
  assert.throws(
    () => resolveExternalData(decoded, {}),
    /tensor "w1": external data file "ext.bin" is missing/,
  );
  assert.throws(
    () => resolveExternalData(decoded, { "ext.bin": new Uint8Array(100) }),
    /bytes 0..16384 lie past the end of "ext.bin" \(100 bytes\)/,
  );

  const xs = Float32Array.from({ length: 128 }, (_, i) => Math.cos(i));
  const { y: expected } = evaluate(model.graph, { x: refTensor("float32", [2, 64], xs) });
  const session = await OnnxSession.create(encoded.model, {
    ep: "wasm",
    externalData: { "ext.bin": encoded.externalData! },
  });
  try {
    const { y } = await session.run({ x: hostTensor(xs, [2, 64]) });
    assertAllClose(await toHost(y), expected.data, { rtol: 1e-5, atol: 1e-6, what: "external-data model" });
  } finally {
    await session.release();
  }
});

Deno.test("proto: external data is aligned to 64 bytes", () => {
  const b = new GraphBuilder("align");
  const x = b.input("x", "float32", [3]);
  const a = b.initializer("a", new Float32Array(3), [3]); // 12 bytes
  const c = b.initializer("c", new Float32Array(5), [5]); // 20 bytes
  b.output(b.concat([b.add(x, a), c], 0), "y");
  const encoded = encodeModel(b.toModel(), { externalDataThreshold: 1 });
  const [ta, tc] = decodeModel(encoded.model).graph.initializers;
  assert.deepEqual(ta.external, { location: "model.onnx.data", offset: 0, length: 12 });
  assert.deepEqual(tc.external, { location: "model.onnx.data", offset: 64, length: 20 });
  assert.equal(encoded.externalData!.length, 84);
});

Deno.test("proto: a model over 2 GB without external data is a clear RangeError", () => {
  const b = new GraphBuilder("huge");
  b.output(b.neg(b.input("x", "float32", [1])), "y");
  const model = b.toModel();
  // A tensor claiming 2 GiB of bytes: the writer references large byte arrays without reading or
  // copying them before the size check, so nothing of that size is allocated.
  const fake = { length: 2 ** 31, byteLength: 2 ** 31 } as unknown as Uint8Array;
  model.graph.initializers.push({ name: "w", dtype: "uint8", dims: [2 ** 31], data: fake });
  assert.ok(2 ** 31 > PROTOBUF_LIMIT);
  assert.throws(() => encodeModel(model), (e: Error) => {
    assert.ok(e instanceof RangeError);
    assert.match(
      e.message,
      /Cannot encode ONNX model "huge": 2147483\d{3} bytes exceeds protobuf's 2 GB limit/,
    );
    assert.match(e.message, /set externalDataThreshold/);
    return true;
  });
});

// ---------------------------------------------------------------------------------------------------
// Malformed bytes

function assertDecodeError(bytes: Uint8Array, pattern?: RegExp): void {
  let error: unknown;
  try {
    decodeModel(bytes);
  } catch (e) {
    error = e;
  }
  assert.ok(error, `decoding ${bytes.length} bytes succeeded`);
  assert.ok(error instanceof RangeError || error instanceof TypeError, `${error}`);
  assert.match((error as Error).message, /^Cannot decode ONNX protobuf: .* at byte \d+ in /);
  if (pattern) assert.match((error as Error).message, pattern);
}

Deno.test("proto: empty input and non-bytes are clear errors", () => {
  assertDecodeError(new Uint8Array(0), /the input is empty at byte 0/);
  assert.throws(() => decodeModel([1, 2] as unknown as Uint8Array), TypeError);
});

Deno.test("proto: every truncation of a small model is a clear error", () => {
  const bytes = encodeModel(builderModel()).model;
  for (let n = 0; n < bytes.length; n++) assertDecodeError(bytes.subarray(0, n));
  // The errors name real offsets inside the prefix.
  assertDecodeError(bytes.subarray(0, bytes.length - 1), new RegExp(`at byte (\\d+)`));
});

Deno.test("proto: length prefixes past the end, bad wire types, long varints, bad dtypes are clear errors", () => {
  // graph field (7, bytes) claiming 100 bytes with 3 present
  assertDecodeError(
    Uint8Array.of(0x08, 0x08, 0x3a, 100, 1, 2, 3),
    /length 100 runs past the end .* at byte 4 in ModelProto/,
  );
  // field 1 with wire type 3 (start group) and 7 (invalid)
  assertDecodeError(Uint8Array.of(0x0b, 0x00), /unsupported wire type 3 at byte 1 in ModelProto/);
  assertDecodeError(Uint8Array.of(0x08, 0x08, 0x0f), /unsupported wire type 7 at byte 3/);
  // an 11-byte varint
  assertDecodeError(
    Uint8Array.from([0x08, ...new Array(10).fill(0xff), 0x01]),
    /varint longer than 10 bytes at byte 1/,
  );
  // field number 0
  assertDecodeError(Uint8Array.of(0x00, 0x01), /field number 0/);
  // a nested length prefix past the end of its message (node inside graph)
  const graph = [...lenField(1, [...strField(1, "x")]), ...strField(2, "g")];
  graph[1] = 50;
  assertDecodeError(handModel(graph), /length 50 runs past the end .* in ModelProto.graph/);
  // an unsupported data type code in an initializer (complex64 = 14)
  const bad = lenField(5, [...vint(1, 1), ...vint(2, 14), ...strField(8, "c")]);
  assertDecodeError(
    handModel([...strField(2, "g"), ...bad]),
    /tensor "c" has unsupported data type code 14 at byte \d+ in initializer #0/,
  );
  // raw_data shorter than dims say
  const short = lenField(5, [
    ...vint(1, 4),
    ...vint(2, 1),
    ...strField(8, "s"),
    ...lenField(9, [0, 0, 0, 0]),
  ]);
  assertDecodeError(
    handModel([...strField(2, "g"), ...short]),
    /tensor "s" of float32\[4\] has 4 data bytes, expected 16/,
  );
  // valid framing but no graph / no opset
  assertDecodeError(Uint8Array.of(0x08, 0x08), /ModelProto has no graph/);
  assertDecodeError(Uint8Array.of(0x08, 0x08, 0x3a, 0x00), /ModelProto has no opset_import at byte 4/);
  // invalid UTF-8 in a name
  assertDecodeError(handModel([...lenField(2, [0xff, 0xfe])]), /invalid UTF-8 string/);
});

Deno.test("proto: random bytes never crash or hang the decoder", () => {
  let seed = 12345;
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed;
  };
  const start = performance.now();
  for (let trial = 0; trial < 500; trial++) {
    const bytes = Uint8Array.from({ length: 1 + (next() % 300) }, () => next() % 256);
    assertDecodeError(bytes);
  }
  // Flip single bytes of a valid model: each result either decodes or is a clear error.
  const valid = encodeModel(builderModel()).model;
  for (let trial = 0; trial < 300; trial++) {
    const bytes = valid.slice();
    bytes[next() % bytes.length] = next() % 256;
    try {
      decodeModel(bytes);
    } catch (error) {
      assert.ok(error instanceof RangeError || error instanceof TypeError, `${error}`);
      assert.match((error as Error).message, /at byte \d+/);
    }
  }
  assert.ok(performance.now() - start < 20_000, "decoding garbage took over 20 s");
});
