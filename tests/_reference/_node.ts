// Attribute and input accessors shared by the reference interpreter's op implementations.

import type { Node, TensorData } from "../../src/onnx/types.ts";
import { OpError, type Val } from "./_tensor.ts";

/** An op implementation: inputs in node order (`undefined` for omitted optional ones) → outputs. */
export type OpImpl = (inputs: (Val | undefined)[], node: Node) => (Val | undefined)[];

export function attrInt(node: Node, name: string, fallback: number): number {
  const a = node.attributes[name];
  if (a === undefined) return fallback;
  if (a.type !== "int") throw new OpError(`attribute "${name}" must be an int, got ${a.type}`);
  return a.value;
}

export function attrFloat(node: Node, name: string, fallback: number): number {
  const a = node.attributes[name];
  if (a === undefined) return fallback;
  if (a.type !== "float" && a.type !== "int") {
    throw new OpError(`attribute "${name}" must be a float, got ${a.type}`);
  }
  return a.value;
}

export function attrString(node: Node, name: string, fallback: string): string {
  const a = node.attributes[name];
  if (a === undefined) return fallback;
  if (a.type !== "string") throw new OpError(`attribute "${name}" must be a string, got ${a.type}`);
  return a.value;
}

export function attrInts(node: Node, name: string): number[] | undefined {
  const a = node.attributes[name];
  if (a === undefined) return undefined;
  if (a.type !== "ints") throw new OpError(`attribute "${name}" must be ints, got ${a.type}`);
  return a.value;
}

export function attrTensor(node: Node, name: string): TensorData | undefined {
  const a = node.attributes[name];
  if (a === undefined) return undefined;
  if (a.type !== "tensor") throw new OpError(`attribute "${name}" must be a tensor, got ${a.type}`);
  return a.value;
}

/** Input `i`, which the op requires. */
export function need(inputs: (Val | undefined)[], i: number, what: string): Val {
  const v = inputs[i];
  if (!v) throw new OpError(`required input ${i} (${what}) is missing`);
  return v;
}

/** The elements of a small integer input (axes, shapes, starts, …) as JS integers. */
export function intsOf(v: Val, what: string): number[] {
  const out = Array.from(v.data);
  for (const x of out) {
    if (!Number.isInteger(x)) throw new OpError(`${what} must hold integers, got ${x}`);
  }
  return out;
}

/** The single element of a scalar (or one-element) input. */
export function scalarOf(v: Val, what: string): number {
  if (v.data.length !== 1) {
    throw new OpError(`${what} must have one element, got shape [${v.dims.join(", ")}]`);
  }
  return v.data[0];
}

/** Axes from input `i` (opset >= 13 style) or else from the `axes` attribute; undefined when neither. */
export function axesOf(inputs: (Val | undefined)[], i: number, node: Node): number[] | undefined {
  const v = inputs[i];
  if (v) return intsOf(v, "axes");
  return attrInts(node, "axes");
}
