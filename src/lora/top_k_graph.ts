/**
 * The hard-threshold projection H_K of WeightLoRA (`projectTopK` (`./top_k.ts`)) as ONNX nodes, so that the gates
 * can be stepped and projected inside the optimizer graph without visiting the host. The kept set is ONNX
 * `TopK` (largest, sorted), whose ties go to the lower index (the ONNX rule: "the element with the lower index
 * will appear first"), the host rule's tie-break; `ScatterElements` turns the indices into a mask.
 *
 * @module
 */

import { attr, type GraphBuilder, type Value } from "../onnx/builder.ts";

/**
 * Adds the kept-set mask of the top-K projection: 1 at the K largest `values` (ties: the lower index), 0
 * elsewhere — the `projectTopK` (`./top_k.ts`) rule.
 *
 * @param b The graph builder.
 * @param values float32 `[n]` gate values (static n).
 * @param k int64 `[1]`: how many to keep (1 ≤ K ≤ n; a K above n fails at run time in onnxruntime's TopK).
 * @returns float32 `[n]`, 1 where kept.
 * @throws {TypeError} When `values` is not float32 of static rank-1 shape.
 * @example
 * ```ts
 * import { GraphBuilder } from "../onnx/builder.ts";
 * import { topKMask } from "./top_k_graph.ts";
 * const b = new GraphBuilder("top_k");
 * b.output(topKMask(b, b.input("g", "float32", [4]), b.input("k", "int64", [1])), "mask");
 * console.assert(b.toGraph().nodes.some((n) => n.opType === "TopK"));
 * ```
 */
export function topKMask(b: GraphBuilder, values: Value, k: Value): Value {
  const [n] = values.shape;
  if (values.dtype !== "float32" || values.shape.length !== 1 || typeof n !== "number") {
    throw new TypeError(
      `Cannot build the top-K mask of "${values.name}": expected float32 [n] with a static n, got ` +
        `${values.dtype} [${values.shape.join(", ")}]`,
    );
  }
  return b.withScope("top_k", () => {
    const [, indices] = b.node("TopK", [values, k], {
      axis: attr.int(0),
      largest: attr.int(1),
      sorted: attr.int(1),
    }, { outputs: 2 });
    const ones = b.cast(b.not(b.less(indices, 0)), "float32"); // [K] of 1 (K is known only at run time)
    return b.scatterElements(b.constant(new Array<number>(n).fill(0), "float32", [n]), indices, ones, 0);
  });
}
