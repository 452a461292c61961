/**
 * {@linkcode GraphBuilder}: builds ONNX graphs op by op with typed helpers, inferring every output's dtype
 * and shape as it goes so that mistakes fail at build time, naming the node.
 *
 * @module
 */

import {
  DATA_TYPE_CODES,
  type Dim,
  type DType,
  DTYPE_BYTES,
  type Graph,
  type Model,
  type Node,
  type Shape,
} from "./types.ts";
import type { Attribute, TensorData, TensorType, ValueInfo } from "./types.ts";
import { inferNode, type InputInfo } from "./shape_inference.ts";
import { modelFromGraph } from "./model.ts";
import { foldValues } from "./_fold.ts";

/** A value produced or consumed by the builder: its graph name and static type. */
export interface Value {
  /** Name in the graph. */
  readonly name: string;
  /** Element type. */
  readonly dtype: DType;
  /** Static shape (dims may be symbolic names). */
  readonly shape: Shape;
}

/** An operand: a {@linkcode Value}, a value name, or a JS number (a scalar constant of the other operand's dtype). */
export type Operand = Value | string | number;

/** Typed arrays accepted as tensor data. */
export type TypedArray =
  | Float32Array
  | Float64Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | BigUint64Array;

/** Constructors for attributes of each ONNX attribute type. */
export const attr = {
  /** An INT attribute. */
  int: (value: number): Attribute => ({ type: "int", value }),
  /** A FLOAT attribute (rounded to float32, as ONNX stores it, so a decoded model equals the built one). */
  float: (value: number): Attribute => ({ type: "float", value: Math.fround(value) }),
  /** A STRING attribute. */
  string: (value: string): Attribute => ({ type: "string", value }),
  /** An INTS attribute. */
  ints: (value: number[]): Attribute => ({ type: "ints", value }),
  /** A FLOATS attribute (rounded to float32, as ONNX stores it). */
  floats: (value: number[]): Attribute => ({ type: "floats", value: value.map(Math.fround) }),
  /** A TENSOR attribute. */
  tensor: (value: TensorData): Attribute => ({ type: "tensor", value }),
};

/** Options for {@linkcode GraphBuilder}. */
export interface GraphBuilderOptions {
  /**
   * Default-domain opset version the graph targets.
   * @default {18}
   */
  opset?: number;
}

/** Options for {@linkcode GraphBuilder.node}. */
export interface NodeOptions {
  /** Number of outputs. @default {1} */
  outputs?: number;
  /** Node name (made unique within the current scope when omitted). */
  name?: string;
  /** Output value names (fresh names when omitted). */
  outputNames?: string[];
  /** Operator domain (`"com.microsoft"` for onnxruntime's contrib ops); the default ONNX domain when omitted. */
  domain?: string;
}

/** Options for {@linkcode GraphBuilder.toModel}. */
export interface ToModelOptions {
  /** Producer name recorded in the model. @default {"weightlora"} */
  producerName?: string;
  /** Key/value metadata recorded in the model. @default {{}} */
  metadata?: Record<string, string>;
}

const SMALL_CONST = 64;

function dtypeOfArray(data: TypedArray): DType {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Float64Array) return "float64";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof BigInt64Array) return "int64";
  if (data instanceof Int8Array) return "int8";
  if (data instanceof Uint16Array) return "float16";
  if (data instanceof Int16Array) return "int16";
  if (data instanceof Uint32Array) return "uint32";
  if (data instanceof BigUint64Array) return "uint64";
  return "uint8";
}

/**
 * Makes a {@linkcode TensorData} from JS numbers (for small constants: shapes, axes, scalars).
 *
 * @param values The element values in row-major order.
 * @param dtype Element type.
 * @param dims Dimensions (default: 1-D of the values' length).
 * @returns The tensor with little-endian bytes.
 */
export function tensorFromNumbers(
  values: readonly number[],
  dtype: DType,
  dims: number[] = [values.length],
): TensorData {
  const size = DTYPE_BYTES[dtype];
  const bytes = new Uint8Array(values.length * size);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => {
    switch (dtype) {
      case "float32":
        return view.setFloat32(i * 4, v, true);
      case "float64":
        return view.setFloat64(i * 8, v, true);
      case "int64":
        return view.setBigInt64(i * 8, BigInt(v), true);
      case "int32":
        return view.setInt32(i * 4, v, true);
      case "bool":
      case "uint8":
        return view.setUint8(i, v);
      case "int8":
        return view.setInt8(i, v);
      default:
        throw new TypeError(`Cannot make a ${dtype} constant from numbers`);
    }
  });
  return { name: "", dtype, dims, data: bytes };
}

/**
 * Reads the values of a small integer or float tensor as JS numbers (for constant folding and tests).
 *
 * @param tensor The tensor.
 * @returns Its elements in row-major order.
 */
export function tensorToNumbers(tensor: TensorData): number[] {
  const view = new DataView(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  const n = DTYPE_BYTES[tensor.dtype] ? tensor.data.length / DTYPE_BYTES[tensor.dtype] : 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    switch (tensor.dtype) {
      case "float32":
        out.push(view.getFloat32(i * 4, true));
        break;
      case "float64":
        out.push(view.getFloat64(i * 8, true));
        break;
      case "int64":
        out.push(Number(view.getBigInt64(i * 8, true)));
        break;
      case "int32":
        out.push(view.getInt32(i * 4, true));
        break;
      case "bool":
      case "uint8":
        out.push(view.getUint8(i));
        break;
      case "int8":
        out.push(view.getInt8(i));
        break;
      default:
        throw new TypeError(`Cannot read ${tensor.dtype} values as numbers`);
    }
  }
  return out;
}

/**
 * Builds an ONNX graph. Every helper infers its outputs' types immediately, so a shape mismatch throws a
 * {@linkcode ShapeError} naming the node being added.
 *
 * @example
 * ```ts
 * import { GraphBuilder } from "./builder.ts";
 * const b = new GraphBuilder("mlp");
 * const x = b.input("x", "float32", ["batch", 4]);
 * const w = b.initializer("w", new Float32Array(4 * 3), [4, 3]);
 * const y = b.relu(b.matmul(x, w));
 * b.output(y, "y");
 * console.assert(y.shape.join() === "batch,3");
 * ```
 */
export class GraphBuilder {
  /** Graph name. */
  readonly name: string;
  /** Default-domain opset version. */
  readonly opset: number;
  #nodes: Node[] = [];
  #inputs: ValueInfo[] = [];
  #outputs: ValueInfo[] = [];
  #initializers: TensorData[] = [];
  #types = new Map<string, TensorType>();
  #values = new Map<string, Dim[]>();
  #constants = new Map<string, TensorData>();
  #used = new Set<string>();
  #nextSuffix = new Map<string, number>();
  #scope: string[] = [];

  /**
   * Creates an empty builder.
   *
   * @param name Graph name.
   * @param options Opset version.
   */
  constructor(name: string, options: GraphBuilderOptions = {}) {
    this.name = name;
    this.opset = options.opset ?? 18;
  }

  /**
   * Continues building on an existing graph (its inputs, initializers, nodes and outputs are kept).
   *
   * @param graph The graph to extend; it is not modified.
   * @param options Opset version.
   * @returns A builder holding a copy of the graph.
   * @throws {ShapeError} When a node of the graph has no shape-inference rule or does not fit its inputs.
   */
  static fromGraph(graph: Graph, options: GraphBuilderOptions = {}): GraphBuilder {
    const b = new GraphBuilder(graph.name, options);
    for (const info of graph.inputs) {
      if (!info.type?.shape) {
        throw new TypeError(`Cannot extend graph "${graph.name}": input "${info.name}" has no shape`);
      }
      b.input(info.name, info.type.dtype, info.type.shape);
    }
    const inputNames = new Set(graph.inputs.map((i) => i.name));
    for (const t of graph.initializers) {
      // An initializer named like an input is that input's default value (IR < 4 style): the input keeps
      // its declared type and stays overridable, so the tensor is carried along but not folded.
      if (inputNames.has(t.name)) b.#initializers.push(t);
      else b.#addInitializer(t);
    }
    for (const node of graph.nodes) {
      b.#addNode({ ...node, inputs: [...node.inputs], outputs: [...node.outputs] });
    }
    for (const out of graph.outputs) b.output(out.name);
    return b;
  }

  /** Names every node and value added inside `fn` with `prefix` (nested scopes join with "/"). */
  withScope<T>(prefix: string, fn: () => T): T {
    this.#scope.push(prefix);
    try {
      return fn();
    } finally {
      this.#scope.pop();
    }
  }

  /** A name not used yet in this graph, under the current scope. */
  freshName(base: string): string {
    const scoped = this.#scope.length ? `${this.#scope.join("/")}/${base}` : base;
    if (!this.#used.has(scoped)) {
      this.#used.add(scoped);
      return scoped;
    }
    // Resume from the last suffix handed out for this base: probing from 1 each time made building a
    // graph of n same-named nodes O(n²).
    for (let i = this.#nextSuffix.get(scoped) ?? 1;; i++) {
      const candidate = `${scoped}_${i}`;
      if (!this.#used.has(candidate)) {
        this.#used.add(candidate);
        this.#nextSuffix.set(scoped, i + 1);
        return candidate;
      }
    }
  }

  #claim(name: string, what: string): void {
    if (this.#types.has(name)) {
      throw new TypeError(`Cannot add ${what} "${name}": the name is already defined`);
    }
    this.#used.add(name);
  }

  /** The static type of a value by name. */
  type(name: string): TensorType {
    const type = this.#types.get(name);
    if (!type) throw new TypeError(`Unknown value "${name}" in graph "${this.name}"`);
    return type;
  }

  /** The value (name + type) for a name. */
  value(name: string): Value {
    const type = this.type(name);
    return { name, dtype: type.dtype, shape: type.shape ?? [] };
  }

  /** Known element values of a small integer tensor (shapes, axes), possibly symbolic. */
  knownValues(name: string): Dim[] | undefined {
    return this.#values.get(name);
  }

  /** The constant tensor behind a name, when it is an initializer. */
  constantTensor(name: string): TensorData | undefined {
    return this.#constants.get(name);
  }

  /**
   * Declares a graph input.
   *
   * @param name Input name.
   * @param dtype Element type.
   * @param shape Dimensions (strings for symbolic ones).
   * @returns The input value.
   */
  input(name: string, dtype: DType, shape: Shape): Value {
    this.#claim(name, "input");
    const type = { dtype, shape: [...shape] };
    this.#types.set(name, type);
    this.#inputs.push({ name, type });
    return { name, dtype, shape: type.shape };
  }

  /**
   * Adds an initializer (a constant baked into the model).
   *
   * @param name Initializer name.
   * @param data Element data; a `Uint8Array` is taken as raw bytes of `dtype`.
   * @param dims Dimensions.
   * @param dtype Element type (inferred from the array type when omitted; required for raw bytes and bf16).
   * @returns The initializer's value.
   */
  initializer(name: string, data: TypedArray, dims: number[], dtype?: DType): Value {
    const type = dtype ?? dtypeOfArray(data);
    const bytes = data instanceof Uint8Array
      ? data
      : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const expected = dims.reduce((a, b) => a * b, 1) * DTYPE_BYTES[type];
    if (bytes.length !== expected) {
      throw new RangeError(
        `Cannot add initializer "${name}": ${bytes.length} bytes for ${type}[${
          dims.join(", ")
        }] (expected ${expected})`,
      );
    }
    return this.#addInitializer({ name, dtype: type, dims: [...dims], data: bytes });
  }

  #addInitializer(tensor: TensorData): Value {
    this.#claim(tensor.name, "initializer");
    this.#initializers.push(tensor);
    this.#types.set(tensor.name, { dtype: tensor.dtype, shape: tensor.dims });
    this.#constants.set(tensor.name, tensor);
    const count = tensor.dims.reduce((a, b) => a * b, 1);
    if (
      count <= SMALL_CONST && (tensor.dtype === "int64" || tensor.dtype === "int32") &&
      tensor.dims.length <= 1
    ) {
      this.#values.set(tensor.name, tensorToNumbers(tensor));
    }
    return { name: tensor.name, dtype: tensor.dtype, shape: tensor.dims };
  }

  /**
   * Adds a small constant from JS numbers as an initializer with a fresh name.
   *
   * @param values Element values.
   * @param dtype Element type.
   * @param dims Dimensions (default 1-D).
   * @returns The constant's value.
   */
  constant(values: readonly number[], dtype: DType, dims: number[] = [values.length]): Value {
    const tensor = tensorFromNumbers(values, dtype, dims);
    tensor.name = this.freshName(`const_${dtype}`);
    return this.#addInitializer(tensor);
  }

  /** A scalar constant. */
  scalar(value: number, dtype: DType = "float32"): Value {
    return this.constant([value], dtype, []);
  }

  /** A 1-D int64 constant (shapes, axes). */
  ints(values: readonly number[]): Value {
    return this.constant(values, "int64");
  }

  /**
   * Declares a graph output. When `name` differs from the value's name an Identity renames it.
   *
   * @param value The value to output.
   * @param name Output name.
   * @returns The output value.
   */
  output(value: Value | string, name?: string): Value {
    let v = this.#resolve(value);
    if (name !== undefined && name !== v.name) {
      [v] = this.node("Identity", [v], {}, { outputNames: [name], name: `${name}_identity` });
    }
    if (this.#outputs.some((o) => o.name === v.name)) {
      throw new TypeError(`Output "${v.name}" is declared twice`);
    }
    this.#outputs.push({ name: v.name, type: { dtype: v.dtype, shape: [...v.shape] } });
    return v;
  }

  #resolve(operand: Value | string): Value {
    return typeof operand === "string" ? this.value(operand) : operand;
  }

  #operands(operands: Operand[]): (Value | undefined)[] {
    const reference = operands.find((o) => typeof o !== "number") as Value | string | undefined;
    const dtype = reference === undefined ? "float32" : this.#resolve(reference).dtype;
    return operands.map((o) => (typeof o === "number" ? this.scalar(o, dtype) : this.#resolve(o)));
  }

  /**
   * Adds a node of any op (default domain, or `options.domain`) and infers its outputs.
   *
   * @param opType Operator name.
   * @param inputs Inputs in order; `undefined` or `""` for an omitted optional input.
   * @param attributes Attributes by name.
   * @param options Output count and names, node name.
   * @returns The output values.
   * @throws {ShapeError} When the inputs do not fit the op.
   */
  node(
    opType: string,
    inputs: (Operand | undefined)[],
    attributes: Record<string, Attribute> = {},
    options: NodeOptions = {},
  ): Value[] {
    const resolved = inputs.map((i) => (i === undefined || i === "" ? undefined : i));
    const values = this.#operands(resolved.filter((i) => i !== undefined) as Operand[]);
    let k = 0;
    const names = resolved.map((i) => (i === undefined ? "" : values[k++]!.name));
    const name = options.name ?? this.freshName(opType);
    this.#used.add(name);
    const count = options.outputNames?.length ?? options.outputs ?? 1;
    const outputs = options.outputNames ??
      Array.from({ length: count }, (_, i) => this.freshName(`${opType}_out${i}`));
    const node: Node = { opType, name, inputs: names, outputs, attributes };
    if (options.domain) node.domain = options.domain;
    return this.#addNode(node);
  }

  #addNode(node: Node): Value[] {
    this.#used.add(node.name);
    const infos: InputInfo[] = node.inputs.map((n) =>
      n === "" ? {} : { type: this.#types.get(n), values: this.#values.get(n) }
    );
    const types = inferNode(node, infos);
    for (const out of node.outputs) {
      if (out !== "") this.#claim(out, `output of node "${node.name}"`);
    }
    this.#nodes.push(node);
    const folded = foldValues(node, infos);
    return node.outputs.map((out, i) => {
      this.#types.set(out, types[i]);
      if (i === 0 && folded) this.#values.set(out, folded);
      return { name: out, dtype: types[i].dtype, shape: types[i].shape ?? [] };
    });
  }

  /** The graph built so far (shares tensor bytes with the builder; do not mutate). */
  toGraph(): Graph {
    return {
      name: this.name,
      nodes: [...this.#nodes],
      inputs: [...this.#inputs],
      outputs: [...this.#outputs],
      initializers: [...this.#initializers],
      valueInfo: [],
    };
  }

  /** The graph wrapped in a model with this builder's opset. */
  toModel(options: ToModelOptions = {}): Model {
    return modelFromGraph(this.toGraph(), { ...options, opset: this.opset });
  }

  // -------------------------------------------------------------------------------------------------
  // Typed helpers, one per op.

  #unary(op: string, x: Operand, attributes: Record<string, Attribute> = {}): Value {
    return this.node(op, [x], attributes)[0];
  }

  #binary(op: string, a: Operand, b: Operand): Value {
    return this.node(op, [a, b])[0];
  }

  /** Elementwise a + b (broadcasting). */
  add(a: Operand, b: Operand): Value {
    return this.#binary("Add", a, b);
  }
  /** Elementwise a - b (broadcasting). */
  sub(a: Operand, b: Operand): Value {
    return this.#binary("Sub", a, b);
  }
  /** Elementwise a * b (broadcasting). */
  mul(a: Operand, b: Operand): Value {
    return this.#binary("Mul", a, b);
  }
  /** Elementwise a / b (broadcasting). */
  div(a: Operand, b: Operand): Value {
    return this.#binary("Div", a, b);
  }
  /** Elementwise a ** b (broadcasting). */
  pow(a: Operand, b: Operand): Value {
    return this.#binary("Pow", a, b);
  }
  /** Elementwise maximum. */
  max(a: Operand, b: Operand): Value {
    return this.#binary("Max", a, b);
  }
  /** Elementwise minimum. */
  min(a: Operand, b: Operand): Value {
    return this.#binary("Min", a, b);
  }
  /** Elementwise a == b (bool). */
  equal(a: Operand, b: Operand): Value {
    return this.#binary("Equal", a, b);
  }
  /** Elementwise a < b (bool). */
  less(a: Operand, b: Operand): Value {
    return this.#binary("Less", a, b);
  }
  /** Elementwise a > b (bool). */
  greater(a: Operand, b: Operand): Value {
    return this.#binary("Greater", a, b);
  }
  /** Elementwise logical and. */
  and(a: Operand, b: Operand): Value {
    return this.#binary("And", a, b);
  }
  /** Elementwise logical not. */
  not(x: Operand): Value {
    return this.#unary("Not", x);
  }
  /** -x. */
  neg(x: Operand): Value {
    return this.#unary("Neg", x);
  }
  /** |x|. */
  abs(x: Operand): Value {
    return this.#unary("Abs", x);
  }
  /** √x. */
  sqrt(x: Operand): Value {
    return this.#unary("Sqrt", x);
  }
  /** 1/x. */
  reciprocal(x: Operand): Value {
    return this.#unary("Reciprocal", x);
  }
  /** eˣ. */
  exp(x: Operand): Value {
    return this.#unary("Exp", x);
  }
  /** ln x. */
  log(x: Operand): Value {
    return this.#unary("Log", x);
  }
  /** tanh x. */
  tanh(x: Operand): Value {
    return this.#unary("Tanh", x);
  }
  /** σ(x). */
  sigmoid(x: Operand): Value {
    return this.#unary("Sigmoid", x);
  }
  /** erf x. */
  erf(x: Operand): Value {
    return this.#unary("Erf", x);
  }
  /** max(x, 0). */
  relu(x: Operand): Value {
    return this.#unary("Relu", x);
  }
  /** sin x. */
  sin(x: Operand): Value {
    return this.#unary("Sin", x);
  }
  /** cos x. */
  cos(x: Operand): Value {
    return this.#unary("Cos", x);
  }
  /** x, under a new name. */
  identity(x: Operand): Value {
    return this.#unary("Identity", x);
  }
  /** Matrix product with numpy batching rules. */
  matmul(a: Operand, b: Operand): Value {
    return this.#binary("MatMul", a, b);
  }
  /** alpha·A'·B' + beta·C for 2-D A and B. */
  gemm(
    a: Operand,
    b: Operand,
    c?: Operand,
    options: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number } = {},
  ): Value {
    const attributes: Record<string, Attribute> = {};
    if (options.transA) attributes.transA = attr.int(1);
    if (options.transB) attributes.transB = attr.int(1);
    if (options.alpha !== undefined) attributes.alpha = attr.float(options.alpha);
    if (options.beta !== undefined) attributes.beta = attr.float(options.beta);
    return this.node("Gemm", [a, b, c], attributes)[0];
  }
  /** Softmax along `axis`. */
  softmax(x: Operand, axis = -1): Value {
    return this.#unary("Softmax", x, { axis: attr.int(axis) });
  }
  /** Log-softmax along `axis`. */
  logSoftmax(x: Operand, axis = -1): Value {
    return this.#unary("LogSoftmax", x, { axis: attr.int(axis) });
  }
  #reduce(op: string, x: Operand, axes: number[] | undefined, keepdims: boolean): Value {
    return this.node(op, [x, axes ? this.ints(axes) : undefined], {
      keepdims: attr.int(keepdims ? 1 : 0),
    })[0];
  }
  /** Sum over `axes` (all when omitted). */
  reduceSum(x: Operand, axes?: number[], keepdims = true): Value {
    return this.#reduce("ReduceSum", x, axes, keepdims);
  }
  /** Mean over `axes` (all when omitted). */
  reduceMean(x: Operand, axes?: number[], keepdims = true): Value {
    return this.#reduce("ReduceMean", x, axes, keepdims);
  }
  /** Max over `axes` (all when omitted). */
  reduceMax(x: Operand, axes?: number[], keepdims = true): Value {
    return this.#reduce("ReduceMax", x, axes, keepdims);
  }
  /** Sum of squares over `axes` (all when omitted). */
  reduceSumSquare(x: Operand, axes?: number[], keepdims = true): Value {
    return this.#reduce("ReduceSumSquare", x, axes, keepdims);
  }
  /** Reshape to `shape` (0 copies a dim, -1 infers one); `shape` may be a value built from Shape/Concat. */
  reshape(x: Operand, shape: readonly number[] | Value): Value {
    return this.node("Reshape", [x, Array.isArray(shape) ? this.ints(shape) : shape as Value])[0];
  }
  /** Permute axes. */
  transpose(x: Operand, perm?: number[]): Value {
    return this.#unary("Transpose", x, perm ? { perm: attr.ints(perm) } : {});
  }
  /** Remove size-1 axes. */
  squeeze(x: Operand, axes?: number[]): Value {
    return this.node("Squeeze", [x, axes ? this.ints(axes) : undefined])[0];
  }
  /** Insert size-1 axes. */
  unsqueeze(x: Operand, axes: number[]): Value {
    return this.node("Unsqueeze", [x, this.ints(axes)])[0];
  }
  /** Slice `x[starts:ends:steps]` along `axes`. */
  slice(x: Operand, starts: number[], ends: number[], axes?: number[], steps?: number[]): Value {
    return this.node("Slice", [
      x,
      this.ints(starts),
      this.ints(ends),
      axes ? this.ints(axes) : undefined,
      steps ? this.ints(steps) : undefined,
    ])[0];
  }
  /** Concatenate along `axis`. */
  concat(xs: Operand[], axis: number): Value {
    return this.node("Concat", xs, { axis: attr.int(axis) })[0];
  }
  /** Split along `axis` into pieces of the given sizes. */
  split(x: Operand, sizes: number[], axis: number): Value[] {
    return this.node("Split", [x, this.ints(sizes)], { axis: attr.int(axis) }, { outputs: sizes.length });
  }
  /** Gather rows (embedding lookup) along `axis`. */
  gather(data: Operand, indices: Operand, axis = 0): Value {
    return this.node("Gather", [data, indices], { axis: attr.int(axis) })[0];
  }
  /** Gather elements along `axis` (output has the indices' shape). */
  gatherElements(data: Operand, indices: Operand, axis = 0): Value {
    return this.node("GatherElements", [data, indices], { axis: attr.int(axis) })[0];
  }
  /** Scatter `updates` into `data` at N-d `indices` (optionally accumulating with `reduction`). */
  scatterND(data: Operand, indices: Operand, updates: Operand, reduction?: "add" | "mul"): Value {
    return this.node(
      "ScatterND",
      [data, indices, updates],
      reduction ? { reduction: attr.string(reduction) } : {},
    )[0];
  }
  /** Scatter `updates` into `data` along `axis` (optionally accumulating with `reduction`). */
  scatterElements(
    data: Operand,
    indices: Operand,
    updates: Operand,
    axis = 0,
    reduction?: "add" | "mul",
  ): Value {
    const attributes: Record<string, Attribute> = { axis: attr.int(axis) };
    if (reduction) attributes.reduction = attr.string(reduction);
    return this.node("ScatterElements", [data, indices, updates], attributes)[0];
  }
  /** Broadcast `x` to `shape`. */
  expand(x: Operand, shape: readonly number[] | Value): Value {
    return this.node("Expand", [x, Array.isArray(shape) ? this.ints(shape) : shape as Value])[0];
  }
  /** Elementwise select: condition ? a : b. */
  where(condition: Operand, a: Operand, b: Operand): Value {
    const [c] = this.#operands([condition]);
    const [x, y] = this.#operands([a, b]);
    return this.node("Where", [c!, x!, y!])[0];
  }
  /** Convert to another dtype. */
  cast(x: Operand, dtype: DType): Value {
    return this.#unary("Cast", x, { to: attr.int(DATA_TYPE_CODES[dtype]) });
  }
  /** Layer normalisation over the axes from `axis` on. */
  layerNorm(
    x: Operand,
    scale: Operand,
    bias?: Operand,
    options: { axis?: number; epsilon?: number } = {},
  ): Value {
    return this.node("LayerNormalization", [x, scale, bias], {
      axis: attr.int(options.axis ?? -1),
      epsilon: attr.float(options.epsilon ?? 1e-5),
    })[0];
  }
  /** Softmax cross-entropy of `scores` [N, C, ...] against integer `labels` [N, ...]. */
  softmaxCrossEntropyLoss(
    scores: Operand,
    labels: Operand,
    options: { ignoreIndex?: number; reduction?: "mean" | "sum" | "none" } = {},
  ): Value {
    const attributes: Record<string, Attribute> = { reduction: attr.string(options.reduction ?? "mean") };
    if (options.ignoreIndex !== undefined) attributes.ignore_index = attr.int(options.ignoreIndex);
    return this.node("SoftmaxCrossEntropyLoss", [scores, labels], attributes)[0];
  }
  /** The shape of `x` as an int64 vector (optionally a range of axes). */
  shapeOf(x: Operand, start?: number, end?: number): Value {
    const attributes: Record<string, Attribute> = {};
    if (start !== undefined) attributes.start = attr.int(start);
    if (end !== undefined) attributes.end = attr.int(end);
    return this.#unary("Shape", x, attributes);
  }
  /** A tensor of `shape` filled with `value`. */
  constantOfShape(shape: Value, value: number, dtype: DType = "float32"): Value {
    return this.node("ConstantOfShape", [shape], {
      value: attr.tensor(tensorFromNumbers([value], dtype, [1])),
    })[0];
  }
  /** Upper (or lower) triangle of the last two axes, shifted by `k`. */
  trilu(x: Operand, upper = true, k?: Operand): Value {
    return this.node("Trilu", [x, k], { upper: attr.int(upper ? 1 : 0) })[0];
  }
  /** The sequence start, start+delta, … below limit. */
  range(start: Operand, limit: Operand, delta: Operand): Value {
    return this.node("Range", [start, limit, delta])[0];
  }
  /** Cumulative sum along `axis`. */
  cumSum(x: Operand, axis: number, options: { exclusive?: boolean; reverse?: boolean } = {}): Value {
    const attributes: Record<string, Attribute> = {};
    if (options.exclusive) attributes.exclusive = attr.int(1);
    if (options.reverse) attributes.reverse = attr.int(1);
    return this.node("CumSum", [x, this.constant([axis], "int64", [])], attributes)[0];
  }
  /** The k largest (or smallest) values and their indices along `axis`. */
  topK(x: Operand, k: number, axis = -1, largest = true): [Value, Value] {
    const [values, indices] = this.node("TopK", [x, this.ints([k])], {
      axis: attr.int(axis),
      largest: attr.int(largest ? 1 : 0),
      sorted: attr.int(1),
    }, { outputs: 2 });
    return [values, indices];
  }
  /** Index of the maximum along `axis`. */
  argMax(x: Operand, axis = -1, keepdims = false): Value {
    return this.#unary("ArgMax", x, { axis: attr.int(axis), keepdims: attr.int(keepdims ? 1 : 0) });
  }
  /** Clamp to [min, max]. */
  clip(x: Operand, min?: number, max?: number): Value {
    const [v] = this.#operands([x]);
    return this.node("Clip", [
      v,
      min === undefined ? undefined : this.scalar(min, v!.dtype),
      max === undefined ? undefined : this.scalar(max, v!.dtype),
    ])[0];
  }
  /** Repeat `x` along each axis. */
  tile(x: Operand, repeats: number[]): Value {
    return this.node("Tile", [x, this.ints(repeats)])[0];
  }
  /** Einstein summation (explicit equations). */
  einsum(equation: string, ...xs: Operand[]): Value {
    return this.node("Einsum", xs, { equation: attr.string(equation) })[0];
  }
}
