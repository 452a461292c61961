/**
 * A float64 reference evaluator of ONNX graphs, written from the ONNX operator spec (opset 17/18) and
 * independent of onnxruntime: the ground truth that runtime results and finite-difference gradient
 * checks are compared with. Every value is computed in float64 whatever its declared dtype (a `Cast` to
 * float32 does not round), integers are exact up to 2^53, and errors name the node that failed.
 *
 * @module
 */

import type { DType, Graph, Node } from "../../src/onnx/types.ts";
import type { OpImpl } from "./_node.ts";
import { ELEMENTWISE_OPS } from "./_ops_elementwise.ts";
import { MATH_OPS } from "./_ops_math.ts";
import { SHAPE_OPS } from "./_ops_shape.ts";
import { FLOAT_DTYPES, fromTensorData, OpError, sizeOf, type Val } from "./_tensor.ts";

/**
 * A tensor of the reference: float dtypes hold `Float64Array`, `bool` holds `Uint8Array` (0/1), every
 * integer dtype holds `BigInt64Array`. Feeds may also give any of these for any dtype.
 */
export interface RefTensor {
  /** Declared ONNX element type. */
  dtype: DType;
  /** Dimensions. */
  dims: number[];
  /** Row-major elements. */
  data: Float64Array | BigInt64Array | Uint8Array;
}

/** Options for {@linkcode evaluate}. */
export interface EvaluateOptions {
  /**
   * Names of the values to return: graph outputs or any intermediate value. Only the nodes they depend
   * on are evaluated.
   * @default {the graph outputs}
   */
  outputs?: readonly string[];
}

const OPS: Readonly<Record<string, OpImpl>> = { ...ELEMENTWISE_OPS, ...SHAPE_OPS, ...MATH_OPS };

/** The op types {@linkcode evaluate} implements (ONNX default domain; `com.microsoft.X` for contrib ops). */
export const REFERENCE_OPS: readonly string[] = Object.keys(OPS).sort();

// Decoded initializers, cached per tensor object: finite-difference checks evaluate one graph many times.
const decoded = new WeakMap<object, Val>();

/**
 * Makes a {@linkcode RefTensor} from JS values, stored the way {@linkcode evaluate} returns them.
 *
 * @param dtype Element type.
 * @param dims Dimensions.
 * @param values Row-major elements (numbers, bigints or booleans).
 * @returns The tensor.
 * @throws {RangeError} When the number of values does not match `dims`.
 * @example
 * ```ts
 * import { refTensor } from "./interpreter.ts";
 * const t = refTensor("int64", [2], [3, -1]);
 * console.assert(t.data[1] === -1n);
 * ```
 */
export function refTensor(
  dtype: DType,
  dims: number[],
  values: ArrayLike<number | bigint | boolean>,
): RefTensor {
  if (values.length !== sizeOf(dims)) {
    throw new RangeError(
      `Cannot make a ${dtype} tensor: ${values.length} values for dims [${dims.join(", ")}]`,
    );
  }
  return toRef({ dtype, dims: [...dims], data: Float64Array.from(Array.from(values, Number)) });
}

/**
 * The elements of a {@linkcode RefTensor} as JS numbers (bools as 0/1).
 *
 * @param tensor The tensor.
 * @returns Its row-major elements.
 */
export function refToNumbers(tensor: RefTensor): number[] {
  return Array.from(tensor.data as ArrayLike<number | bigint>, Number);
}

function toRef(v: Val): RefTensor {
  if (FLOAT_DTYPES.has(v.dtype)) return { dtype: v.dtype, dims: [...v.dims], data: v.data.slice() };
  if (v.dtype === "bool") {
    return { dtype: v.dtype, dims: v.dims, data: Uint8Array.from(v.data, (x) => (x ? 1 : 0)) };
  }
  const out = new BigInt64Array(v.data.length);
  for (let i = 0; i < out.length; i++) out[i] = BigInt(v.data[i]);
  return { dtype: v.dtype, dims: v.dims, data: out };
}

function fromRef(t: RefTensor, name: string): Val {
  if (!Array.isArray(t.dims) || sizeOf(t.dims) !== t.data.length) {
    throw new RangeError(
      `Cannot evaluate: feed "${name}" has ${t.data.length} elements for dims [${t.dims}]`,
    );
  }
  const data = t.data instanceof Float64Array
    ? t.data.slice()
    : Float64Array.from(t.data as ArrayLike<number | bigint>, Number);
  return { dtype: t.dtype, dims: [...t.dims], data };
}

function checkFeed(graph: Graph, feeds: Record<string, RefTensor>): Map<string, Val> {
  const values = new Map<string, Val>();
  const bound = new Map<string, number>();
  for (const input of graph.inputs) {
    const feed = feeds[input.name];
    if (!feed) {
      if (graph.initializers.some((t) => t.name === input.name)) continue; // an initializer's default value
      throw new TypeError(`Cannot evaluate graph "${graph.name}": input "${input.name}" is not fed`);
    }
    const type = input.type;
    if (type && type.dtype !== feed.dtype) {
      throw new TypeError(
        `Cannot evaluate graph "${graph.name}": input "${input.name}" is ${type.dtype}, fed ${feed.dtype}`,
      );
    }
    const shape = type?.shape;
    if (shape) {
      const bad = shape.length !== feed.dims.length || shape.some((d, i) => {
        if (typeof d === "number") return d !== feed.dims[i];
        if (d === "") return false;
        const seen = bound.get(d);
        bound.set(d, feed.dims[i]);
        return seen !== undefined && seen !== feed.dims[i];
      });
      if (bad) {
        throw new RangeError(
          `Cannot evaluate graph "${graph.name}": input "${input.name}" is declared [${
            shape.join(", ")
          }], fed [${feed.dims.join(", ")}]`,
        );
      }
    }
    values.set(input.name, fromRef(feed, input.name));
  }
  for (const name of Object.keys(feeds)) {
    if (!graph.inputs.some((i) => i.name === name)) {
      throw new TypeError(`Cannot evaluate graph "${graph.name}": "${name}" is not a graph input`);
    }
  }
  return values;
}

/** The nodes needed to compute `wanted`, in graph order. */
function neededNodes(graph: Graph, wanted: readonly string[]): Node[] {
  const producer = new Map<string, number>();
  graph.nodes.forEach((node, i) => node.outputs.forEach((o) => o !== "" && producer.set(o, i)));
  const keep = new Set<number>();
  const stack = [...wanted];
  while (stack.length) {
    const i = producer.get(stack.pop()!);
    if (i === undefined || keep.has(i)) continue;
    keep.add(i);
    for (const input of graph.nodes[i].inputs) if (input !== "") stack.push(input);
  }
  return graph.nodes.filter((_, i) => keep.has(i));
}

function runNode(node: Node, values: Map<string, Val>, lookup: (name: string) => Val | undefined): void {
  const where = `Cannot evaluate node "${node.name}" (${node.opType})`;
  const contrib = node.domain === "com.microsoft";
  if (node.domain && node.domain !== "ai.onnx" && !contrib) {
    throw new TypeError(`${where}: domain "${node.domain}" is not supported by the reference interpreter`);
  }
  const impl = OPS[contrib ? `com.microsoft.${node.opType}` : node.opType];
  if (!impl) {
    throw new TypeError(`${where}: the reference interpreter has no implementation of op "${node.opType}"`);
  }
  const inputs = node.inputs.map((name) => {
    if (name === "") return undefined;
    const v = lookup(name);
    if (!v) throw new ReferenceError(`${where}: input "${name}" is not computed before this node`);
    return v;
  });
  let outputs: (Val | undefined)[];
  try {
    outputs = impl(inputs, node);
  } catch (error) {
    if (error instanceof OpError) throw new RangeError(`${where}: ${error.message}`, { cause: error });
    throw error;
  }
  node.outputs.forEach((name, i) => {
    if (name === "") return;
    const v = outputs[i];
    if (!v) throw new RangeError(`${where}: output ${i} ("${name}") is not produced by this op`);
    values.set(name, v);
  });
}

/**
 * Evaluates a graph in float64.
 *
 * @param graph The graph; its initializers are read as constants (external data must be resolved first).
 * @param feeds A tensor for every graph input that is not an initializer.
 * @param options Which values to return (graph outputs by default).
 * @returns The requested values by name.
 * @throws {TypeError} On a missing or mistyped feed, or an op the interpreter does not implement (named).
 * @throws {RangeError} When a node's inputs do not fit its op (the node and the bad value are named), or a
 * result's shape differs from the shape the graph declares for that output.
 * @example
 * ```ts
 * import { GraphBuilder } from "../../src/onnx/builder.ts";
 * import { evaluate, refTensor } from "./interpreter.ts";
 * const b = new GraphBuilder("g");
 * b.output(b.mul(b.input("x", "float32", [2]), 3), "y");
 * const { y } = evaluate(b.toGraph(), { x: refTensor("float32", [2], [1, 2]) });
 * console.assert(y.data[1] === 6);
 * ```
 */
export function evaluate(
  graph: Graph,
  feeds: Record<string, RefTensor>,
  options: EvaluateOptions = {},
): Record<string, RefTensor> {
  const values = checkFeed(graph, feeds);
  const initializers = new Map(graph.initializers.map((t) => [t.name, t]));
  const lookup = (name: string): Val | undefined => {
    const v = values.get(name);
    if (v) return v;
    const tensor = initializers.get(name);
    if (!tensor) return undefined;
    let c = decoded.get(tensor);
    if (!c) {
      try {
        c = fromTensorData(tensor, `initializer "${name}"`);
      } catch (error) {
        if (!(error instanceof OpError)) throw error;
        throw new TypeError(`Cannot evaluate graph "${graph.name}": ${error.message}`, { cause: error });
      }
      decoded.set(tensor, c);
    }
    return c;
  };
  const wanted = options.outputs ?? graph.outputs.map((o) => o.name);
  for (const node of neededNodes(graph, wanted)) runNode(node, values, lookup);
  const result: Record<string, RefTensor> = {};
  for (const name of wanted) {
    const v = lookup(name);
    if (!v) throw new ReferenceError(`Cannot evaluate graph "${graph.name}": no value "${name}"`);
    const declared = graph.outputs.find((o) => o.name === name)?.type;
    if (declared?.shape) {
      const shape = declared.shape;
      if (shape.length !== v.dims.length || shape.some((d, i) => typeof d === "number" && d !== v.dims[i])) {
        throw new RangeError(
          `Cannot evaluate graph "${graph.name}": output "${name}" is declared [${shape.join(", ")}] ` +
            `but evaluates to [${v.dims.join(", ")}]`,
        );
      }
    }
    result[name] = toRef(v);
  }
  return result;
}
