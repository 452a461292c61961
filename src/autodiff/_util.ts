// Small graph-building helpers shared by the gradient rules: summing a gradient back to an input's shape
// after broadcasting, zeros of a (possibly symbolic) shape, and axis normalisation.

import type { GraphBuilder, Value } from "../onnx/builder.ts";
import type { Dim, Shape } from "../onnx/types.ts";

/** Normalises a possibly negative axis for `rank`. */
export function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

function sameDim(a: Dim | undefined, b: Dim | undefined): boolean {
  return a === b;
}

/**
 * Sums `grad` (the gradient of a broadcast result) back to `target`'s shape: leading extra axes are summed
 * away and axes where the target has size 1 are summed with keepdims.
 */
export function reduceToShape(b: GraphBuilder, grad: Value, target: Shape): Value {
  const extra = grad.shape.length - target.length;
  let g = grad;
  if (extra > 0) g = b.reduceSum(g, Array.from({ length: extra }, (_, i) => i), false);
  const axes: number[] = [];
  target.forEach((d, i) => {
    if (d === 1 && !sameDim(g.shape[i], 1)) axes.push(i);
  });
  if (axes.length) g = b.reduceSum(g, axes, true);
  return g;
}

/** A zero tensor shaped like `like` (runtime shape, so symbolic dims work). */
export function zerosLike(b: GraphBuilder, like: Value): Value {
  return b.constantOfShape(b.shapeOf(like), 0, like.dtype);
}

/** A zero tensor shaped like `like` except along `axis`, where it has `length` entries. */
export function zerosAlong(b: GraphBuilder, like: Value, axis: number, length: number): Value {
  const rank = like.shape.length;
  const pieces: Value[] = [];
  if (axis > 0) pieces.push(b.shapeOf(like, 0, axis));
  pieces.push(b.ints([length]));
  if (axis < rank - 1) pieces.push(b.shapeOf(like, axis + 1));
  const shape = pieces.length === 1 ? pieces[0] : b.concat(pieces, 0);
  return b.constantOfShape(shape, 0, like.dtype);
}

/** Sums several gradient contributions with one balanced tree of Adds. */
export function sumAll(b: GraphBuilder, parts: Value[]): Value {
  let level = parts;
  while (level.length > 1) {
    const next: Value[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) next.push(b.add(level[i], level[i + 1]));
    if (level.length % 2) next.push(level[level.length - 1]);
    level = next;
  }
  return level[0];
}

/** The permutation that swaps the last two axes of a rank-`rank` tensor. */
export function swapLastTwo(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return perm;
}
