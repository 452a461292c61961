// Partial evaluation of small integer tensors (shapes, axes) while a graph is built, so that Reshape,
// Expand and friends fed by Shape → Gather → Concat chains still get static (possibly symbolic) shapes.

import type { InputInfo } from "./shape_inference.ts";
import type { Dim, Node } from "./types.ts";
import { dimProduct } from "./shape_inference.ts";

function intAttr(node: Node, name: string, fallback: number): number {
  const a = node.attributes[name];
  return a && a.type === "int" ? a.value : fallback;
}

function numeric(values: Dim[] | undefined): number[] | undefined {
  return values && values.every((v) => typeof v === "number") ? values as number[] : undefined;
}

/** Known output values of `node` (first output), or undefined when they cannot be known at build time. */
export function foldValues(node: Node, inputs: InputInfo[]): Dim[] | undefined {
  const v0 = inputs[0]?.values;
  switch (node.opType) {
    case "Shape": {
      const shape = inputs[0]?.type?.shape;
      if (!shape) return undefined;
      const rank = shape.length;
      const clamp = (a: number) => Math.min(Math.max(a < 0 ? a + rank : a, 0), rank);
      return shape.slice(clamp(intAttr(node, "start", 0)), clamp(intAttr(node, "end", rank)));
    }
    case "Identity":
    case "Squeeze":
    case "Unsqueeze":
    case "Reshape":
      return v0 && v0.length <= 64 ? [...v0] : undefined;
    case "Cast": {
      const to = intAttr(node, "to", 0);
      return to === 7 || to === 6 ? v0 : undefined;
    }
    case "Concat":
      return inputs.every((i) => i.values) ? inputs.flatMap((i) => i.values!) : undefined;
    case "Gather": {
      const idx = numeric(inputs[1]?.values);
      if (!v0 || !idx) return undefined;
      return idx.map((i) => v0[i < 0 ? i + v0.length : i]);
    }
    case "Slice": {
      const starts = numeric(inputs[1]?.values), ends = numeric(inputs[2]?.values);
      if (!v0 || !starts || !ends || starts.length !== 1) return undefined;
      const steps = numeric(inputs[4]?.values) ?? [1];
      if (steps[0] !== 1) return undefined;
      return v0.slice(starts[0], Math.min(ends[0], v0.length));
    }
    case "Add":
    case "Sub":
    case "Mul":
    case "Div": {
      const a = numeric(v0), b = numeric(inputs[1]?.values);
      if (!a || !b) return foldSymbolic(node.opType, v0, inputs[1]?.values);
      if (a.length !== b.length && a.length !== 1 && b.length !== 1) return undefined;
      const n = Math.max(a.length, b.length);
      return Array.from({ length: n }, (_, i) => {
        const x = a[a.length === 1 ? 0 : i], y = b[b.length === 1 ? 0 : i];
        return node.opType === "Add"
          ? x + y
          : node.opType === "Sub"
          ? x - y
          : node.opType === "Mul"
          ? x * y
          : Math.trunc(x / y);
      });
    }
    default:
      return undefined;
  }
}

/**
 * Arithmetic on shape values with symbolic entries (`batch * 5` → `"batch*5"`, the name Reshape's
 * inference gives the same product); only cases whose result is a clear dim are folded.
 */
function foldSymbolic(op: string, a: Dim[] | undefined, b: Dim[] | undefined): Dim[] | undefined {
  if (!a || !b || (a.length !== b.length && a.length !== 1 && b.length !== 1)) return undefined;
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length === 1 ? 0 : i], y = b[b.length === 1 ? 0 : i];
    if (op === "Mul") out.push(dimProduct([x, y]));
    else if ((op === "Add" || op === "Sub") && y === 0) out.push(x);
    else if (op === "Add" && x === 0) out.push(y);
    else if (op === "Div" && y === 1) out.push(x);
    else return undefined;
  }
  return out;
}
