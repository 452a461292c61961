// Shape and indexing ops of the reference interpreter: Reshape, Transpose, Squeeze/Unsqueeze, Flatten,
// Slice, Concat, Split, Gather(Elements), Scatter(ND|Elements), Expand, Tile, Shape, Size,
// ConstantOfShape, Constant, Range, Trilu, Identity, Dropout. Semantics follow the ONNX operator spec.

import type { Node } from "../../src/onnx/types.ts";
import {
  attrFloat,
  attrInt,
  attrInts,
  attrString,
  attrTensor,
  axesOf,
  intsOf,
  need,
  type OpImpl,
  scalarOf,
} from "./_node.ts";
import {
  broadcastDims,
  expandTo,
  fromTensorData,
  INT_DTYPES,
  make,
  normAxis,
  OpError,
  sizeOf,
  stridesOf,
  type Val,
  walk,
} from "./_tensor.ts";

function copy(v: Val): Val {
  return { dtype: v.dtype, dims: [...v.dims], data: v.data.slice() };
}

function reshaped(v: Val, dims: number[]): Val {
  return { dtype: v.dtype, dims, data: v.data.slice() };
}

const reshape: OpImpl = (inputs, node) => {
  const x = need(inputs, 0, "data");
  const target = intsOf(need(inputs, 1, "shape"), "shape");
  const allowZero = attrInt(node, "allowzero", 0) === 1;
  const dims = target.map((d, i) => {
    if (d !== 0 || allowZero) return d;
    if (i >= x.dims.length) throw new OpError(`shape[${i}] = 0 copies no dim of [${x.dims.join(", ")}]`);
    return x.dims[i];
  });
  const minus = dims.indexOf(-1);
  if (dims.filter((d) => d === -1).length > 1) {
    throw new OpError(`more than one -1 in [${target.join(", ")}]`);
  }
  if (dims.some((d) => d < -1)) throw new OpError(`invalid shape [${target.join(", ")}]`);
  const total = x.data.length;
  if (minus >= 0) {
    const known = sizeOf(dims.filter((_, i) => i !== minus));
    if (known === 0 || total % known !== 0) {
      throw new OpError(`cannot reshape [${x.dims.join(", ")}] to [${target.join(", ")}]`);
    }
    dims[minus] = total / known;
  }
  if (sizeOf(dims) !== total) {
    throw new OpError(
      `cannot reshape [${x.dims.join(", ")}] (${total} elements) to [${target.join(", ")}]`,
    );
  }
  return [reshaped(x, dims)];
};

/** Permutes axes. */
export function transposeVal(x: Val, perm: number[]): Val {
  const rank = x.dims.length;
  if (perm.length !== rank || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    throw new OpError(`perm [${perm.join(", ")}] is not a permutation of rank ${rank}`);
  }
  const inStrides = stridesOf(x.dims);
  const dims = perm.map((p) => x.dims[p]);
  const out = new Float64Array(x.data.length);
  const data = x.data;
  walk(dims, [perm.map((p) => inStrides[p])], (i, [o]) => (out[i] = data[o]));
  return { dtype: x.dtype, dims, data: out };
}

const transpose: OpImpl = (inputs, node) => {
  const x = need(inputs, 0, "data");
  const perm = attrInts(node, "perm") ?? x.dims.map((_, i) => x.dims.length - 1 - i);
  return [transposeVal(x, perm)];
};

const squeeze: OpImpl = (inputs, node) => {
  const x = need(inputs, 0, "data");
  const given = axesOf(inputs, 1, node);
  const axes = new Set(
    given
      ? given.map((a) => normAxis(a, x.dims.length, "axis"))
      : x.dims.flatMap((d, i) => (d === 1 ? [i] : [])),
  );
  for (const a of axes) {
    if (x.dims[a] !== 1) throw new OpError(`cannot squeeze axis ${a} of size ${x.dims[a]}`);
  }
  return [reshaped(x, x.dims.filter((_, i) => !axes.has(i)))];
};

const unsqueeze: OpImpl = (inputs, node) => {
  const x = need(inputs, 0, "data");
  const given = axesOf(inputs, 1, node);
  if (!given) throw new OpError("axes are required");
  const rank = x.dims.length + given.length;
  const axes = new Set(given.map((a) => normAxis(a, rank, "axis")));
  if (axes.size !== given.length) throw new OpError(`repeated axes [${given.join(", ")}]`);
  const dims: number[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) dims.push(axes.has(i) ? 1 : x.dims[j++]);
  return [reshaped(x, dims)];
};

const flatten: OpImpl = (inputs, node) => {
  const x = need(inputs, 0, "input");
  let axis = attrInt(node, "axis", 1);
  if (axis < 0) axis += x.dims.length;
  if (axis < 0 || axis > x.dims.length) throw new OpError(`axis ${axis} is out of range`);
  return [reshaped(x, [sizeOf(x.dims.slice(0, axis)), sizeOf(x.dims.slice(axis))])];
};

const slice: OpImpl = (inputs) => {
  const x = need(inputs, 0, "data");
  const rank = x.dims.length;
  const starts = intsOf(need(inputs, 1, "starts"), "starts");
  const ends = intsOf(need(inputs, 2, "ends"), "ends");
  const axes = inputs[3] ? intsOf(inputs[3], "axes") : starts.map((_, i) => i);
  const steps = inputs[4] ? intsOf(inputs[4], "steps") : starts.map(() => 1);
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length) {
    throw new OpError("starts, ends, axes and steps must have the same length");
  }
  const start = x.dims.map(() => 0);
  const step = x.dims.map(() => 1);
  const dims = [...x.dims];
  const seen = new Set<number>();
  axes.forEach((axis, i) => {
    const a = normAxis(axis, rank, "axis");
    if (seen.has(a)) throw new OpError(`axis ${axis} repeats`);
    seen.add(a);
    const d = x.dims[a];
    const s = steps[i];
    if (s === 0) throw new OpError("a step of 0");
    let b = starts[i] < 0 ? starts[i] + d : starts[i];
    let e = ends[i] < 0 ? ends[i] + d : ends[i];
    if (s > 0) {
      b = Math.min(Math.max(b, 0), d);
      e = Math.min(Math.max(e, 0), d);
    } else {
      b = Math.min(Math.max(b, 0), d - 1);
      e = Math.min(Math.max(e, -1), d - 1);
    }
    start[a] = b;
    step[a] = s;
    dims[a] = Math.max(0, Math.ceil((e - b) / s));
  });
  const inStrides = stridesOf(x.dims);
  let base = 0;
  for (let a = 0; a < rank; a++) base += start[a] * inStrides[a];
  const out = new Float64Array(sizeOf(dims));
  const data = x.data;
  walk(dims, [inStrides.map((st, a) => st * step[a])], (i, [o]) => (out[i] = data[base + o]));
  return [{ dtype: x.dtype, dims, data: out }];
};

const concat: OpImpl = (inputs, node) => {
  const xs = inputs.filter((v): v is Val => v !== undefined);
  if (xs.length === 0) throw new OpError("needs at least one input");
  const rank = xs[0].dims.length;
  const axis = normAxis(attrInt(node, "axis", 0), rank, "axis");
  for (const [i, v] of xs.entries()) {
    if (v.dtype !== xs[0].dtype) throw new OpError(`input ${i} is ${v.dtype}, input 0 is ${xs[0].dtype}`);
    if (v.dims.length !== rank || v.dims.some((d, k) => k !== axis && d !== xs[0].dims[k])) {
      throw new OpError(`input ${i} is [${v.dims.join(", ")}], input 0 is [${xs[0].dims.join(", ")}]`);
    }
  }
  const outer = sizeOf(xs[0].dims.slice(0, axis));
  const inner = sizeOf(xs[0].dims.slice(axis + 1));
  const dims = [...xs[0].dims];
  dims[axis] = xs.reduce((s, v) => s + v.dims[axis], 0);
  const out = new Float64Array(sizeOf(dims));
  let pos = 0;
  for (let o = 0; o < outer; o++) {
    for (const v of xs) {
      const block = v.dims[axis] * inner;
      out.set(v.data.subarray(o * block, (o + 1) * block), pos);
      pos += block;
    }
  }
  return [{ dtype: xs[0].dtype, dims, data: out }];
};

const split: OpImpl = (inputs, node) => {
  const x = need(inputs, 0, "input");
  const axis = normAxis(attrInt(node, "axis", 0), x.dims.length, "axis");
  const d = x.dims[axis];
  const n = node.outputs.length;
  let sizes = inputs[1] ? intsOf(inputs[1], "split") : attrInts(node, "split");
  if (!sizes) {
    const count = attrInt(node, "num_outputs", n);
    const chunk = Math.ceil(d / count);
    sizes = Array.from({ length: count }, (_, i) => Math.max(0, Math.min(chunk, d - i * chunk)));
  }
  if (sizes.length !== n) throw new OpError(`${sizes.length} split sizes for ${n} outputs`);
  if (sizes.reduce((a, b) => a + b, 0) !== d) {
    throw new OpError(`split sizes [${sizes.join(", ")}] do not add up to ${d}`);
  }
  const outer = sizeOf(x.dims.slice(0, axis));
  const inner = sizeOf(x.dims.slice(axis + 1));
  let offset = 0;
  return sizes.map((size) => {
    const dims = [...x.dims];
    dims[axis] = size;
    const out = new Float64Array(sizeOf(dims));
    for (let o = 0; o < outer; o++) {
      const from = (o * d + offset) * inner;
      out.set(x.data.subarray(from, from + size * inner), o * size * inner);
    }
    offset += size;
    return { dtype: x.dtype, dims, data: out };
  });
};

function checkIndex(index: number, dim: number, what: string): number {
  if (!Number.isInteger(index) || index < -dim || index >= dim) {
    throw new OpError(`${what} ${index} is out of range for a dimension of size ${dim}`);
  }
  return index < 0 ? index + dim : index;
}

function checkIndices(v: Val): void {
  if (!INT_DTYPES.has(v.dtype)) throw new OpError(`indices must be int32 or int64, got ${v.dtype}`);
}

const gather: OpImpl = (inputs, node) => {
  const data = need(inputs, 0, "data"), indices = need(inputs, 1, "indices");
  checkIndices(indices);
  const axis = normAxis(attrInt(node, "axis", 0), data.dims.length, "axis");
  const d = data.dims[axis];
  const outer = sizeOf(data.dims.slice(0, axis));
  const inner = sizeOf(data.dims.slice(axis + 1));
  const dims = [...data.dims.slice(0, axis), ...indices.dims, ...data.dims.slice(axis + 1)];
  const out = new Float64Array(sizeOf(dims));
  const idx = Array.from(indices.data, (i) => checkIndex(i, d, "index"));
  let pos = 0;
  for (let o = 0; o < outer; o++) {
    for (const i of idx) {
      const from = (o * d + i) * inner;
      out.set(data.data.subarray(from, from + inner), pos);
      pos += inner;
    }
  }
  return [{ dtype: data.dtype, dims, data: out }];
};

/** Calls `visit(dataOffset, position)` for each element of `indices`, its index replacing the axis coordinate. */
function elementOffsets(
  dataDims: number[],
  indices: Val,
  axis: number,
  visit: (offset: number, i: number) => void,
): void {
  if (indices.dims.length !== dataDims.length) {
    throw new OpError(`indices have rank ${indices.dims.length}, data has rank ${dataDims.length}`);
  }
  const strides = stridesOf(dataDims);
  const lanes = strides.map((s, k) => (k === axis ? 0 : s));
  for (let k = 0; k < dataDims.length; k++) {
    if (k !== axis && indices.dims[k] > dataDims[k]) {
      throw new OpError(`indices [${indices.dims.join(", ")}] exceed data [${dataDims.join(", ")}]`);
    }
  }
  walk(indices.dims, [lanes], (i, [base]) => {
    visit(base + checkIndex(indices.data[i], dataDims[axis], "index") * strides[axis], i);
  });
}

const gatherElements: OpImpl = (inputs, node) => {
  const data = need(inputs, 0, "data"), indices = need(inputs, 1, "indices");
  checkIndices(indices);
  const axis = normAxis(attrInt(node, "axis", 0), data.dims.length, "axis");
  const out = new Float64Array(indices.data.length);
  elementOffsets(data.dims, indices, axis, (offset, i) => (out[i] = data.data[offset]));
  return [{ dtype: data.dtype, dims: [...indices.dims], data: out }];
};

function reducer(node: Node): (old: number, update: number) => number {
  const reduction = attrString(node, "reduction", "none");
  switch (reduction) {
    case "none":
      return (_old, u) => u;
    case "add":
      return (old, u) => old + u;
    case "mul":
      return (old, u) => old * u;
    case "max":
      return (old, u) => Math.max(old, u);
    case "min":
      return (old, u) => Math.min(old, u);
    default:
      throw new OpError(`unknown reduction "${reduction}"`);
  }
}

const scatterElements: OpImpl = (inputs, node) => {
  const data = need(inputs, 0, "data"), indices = need(inputs, 1, "indices");
  const updates = need(inputs, 2, "updates");
  checkIndices(indices);
  if (updates.dims.join() !== indices.dims.join()) {
    throw new OpError(
      `updates [${updates.dims.join(", ")}] differ from indices [${indices.dims.join(", ")}]`,
    );
  }
  const axis = normAxis(attrInt(node, "axis", 0), data.dims.length, "axis");
  const combine = reducer(node);
  const out = copy(data);
  elementOffsets(data.dims, indices, axis, (offset, i) => {
    out.data[offset] = combine(out.data[offset], updates.data[i]);
  });
  return [out];
};

const scatterND: OpImpl = (inputs, node) => {
  const data = need(inputs, 0, "data"), indices = need(inputs, 1, "indices");
  const updates = need(inputs, 2, "updates");
  checkIndices(indices);
  const q = indices.dims.length;
  const k = indices.dims[q - 1];
  if (q < 1 || k > data.dims.length) {
    throw new OpError(`indices [${indices.dims.join(", ")}] do not fit data [${data.dims.join(", ")}]`);
  }
  const expected = [...indices.dims.slice(0, -1), ...data.dims.slice(k)];
  if (updates.dims.join() !== expected.join()) {
    throw new OpError(`updates are [${updates.dims.join(", ")}], expected [${expected.join(", ")}]`);
  }
  const combine = reducer(node);
  const strides = stridesOf(data.dims);
  const slab = sizeOf(data.dims.slice(k));
  const out = copy(data);
  const count = sizeOf(indices.dims.slice(0, -1));
  for (let n = 0; n < count; n++) {
    let offset = 0;
    for (let j = 0; j < k; j++) {
      offset += checkIndex(indices.data[n * k + j], data.dims[j], "index") * strides[j];
    }
    for (let e = 0; e < slab; e++) {
      out.data[offset + e] = combine(out.data[offset + e], updates.data[n * slab + e]);
    }
  }
  return [out];
};

const expand: OpImpl = (inputs) => {
  const x = need(inputs, 0, "input");
  const shape = intsOf(need(inputs, 1, "shape"), "shape");
  const dims = broadcastDims([x.dims, shape]);
  if (typeof dims === "string") throw new OpError(dims);
  return [copy(expandTo(x, dims))];
};

const tile: OpImpl = (inputs) => {
  const x = need(inputs, 0, "input");
  const repeats = intsOf(need(inputs, 1, "repeats"), "repeats");
  if (repeats.length !== x.dims.length) {
    throw new OpError(`${repeats.length} repeats for rank ${x.dims.length}`);
  }
  const dims = x.dims.map((d, i) => d * repeats[i]);
  const inStrides = stridesOf(x.dims);
  const out = new Float64Array(sizeOf(dims));
  const index = new Array<number>(dims.length);
  for (let i = 0; i < out.length; i++) {
    let rest = i, offset = 0;
    for (let a = dims.length - 1; a >= 0; a--) {
      index[a] = rest % dims[a];
      rest = Math.floor(rest / dims[a]);
      offset += (index[a] % x.dims[a]) * inStrides[a];
    }
    out[i] = x.data[offset];
  }
  return [{ dtype: x.dtype, dims, data: out }];
};

const shape: OpImpl = (inputs, node) => {
  const x = need(inputs, 0, "data");
  const rank = x.dims.length;
  const clamp = (a: number) => Math.min(Math.max(a < 0 ? a + rank : a, 0), rank);
  const dims = x.dims.slice(clamp(attrInt(node, "start", 0)), clamp(attrInt(node, "end", rank)));
  return [make("int64", [dims.length], Float64Array.from(dims))];
};

const constantOfShape: OpImpl = (inputs, node) => {
  const dims = intsOf(need(inputs, 0, "input"), "shape");
  const value = attrTensor(node, "value");
  const v = value ? fromTensorData(value, "attribute value") : make("float32", [1]);
  if (v.data.length !== 1) throw new OpError("value must hold one element");
  return [make(v.dtype, dims, new Float64Array(sizeOf(dims)).fill(v.data[0]))];
};

const constant: OpImpl = (_inputs, node) => {
  const entries = Object.entries(node.attributes);
  if (entries.length !== 1) throw new OpError("needs exactly one value attribute");
  const [name, a] = entries[0];
  if (name === "value" && a.type === "tensor") return [fromTensorData(a.value, "attribute value")];
  if (name === "value_float" && a.type === "float") return [make("float32", [], Float64Array.of(a.value))];
  if (name === "value_floats" && a.type === "floats") {
    return [make("float32", [a.value.length], Float64Array.from(a.value))];
  }
  if (name === "value_int" && a.type === "int") return [make("int64", [], Float64Array.of(a.value))];
  if (name === "value_ints" && a.type === "ints") {
    return [make("int64", [a.value.length], Float64Array.from(a.value))];
  }
  throw new OpError(`unsupported value attribute "${name}" of type ${a.type}`);
};

const range: OpImpl = (inputs) => {
  const start = need(inputs, 0, "start"), limit = need(inputs, 1, "limit"), delta = need(inputs, 2, "delta");
  const s = scalarOf(start, "start"), l = scalarOf(limit, "limit"), d = scalarOf(delta, "delta");
  if (d === 0) throw new OpError("delta is 0");
  const n = Math.max(Math.ceil((l - s) / d), 0);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = s + i * d;
  return [make(start.dtype, [n], out)];
};

const trilu: OpImpl = (inputs, node) => {
  const x = need(inputs, 0, "input");
  const k = inputs[1] ? scalarOf(inputs[1], "k") : 0;
  const upper = attrInt(node, "upper", 1) === 1;
  const rank = x.dims.length;
  if (rank < 2) throw new OpError(`input must have rank >= 2, got [${x.dims.join(", ")}]`);
  const rows = x.dims[rank - 2], cols = x.dims[rank - 1];
  const out = copy(x);
  for (let i = 0; i < out.data.length; i++) {
    const col = i % cols, row = Math.floor(i / cols) % rows;
    const keep = upper ? col - row >= k : col - row <= k;
    if (!keep) out.data[i] = 0;
  }
  return [out];
};

/** NonZero: int64 `[rank, count]`, the indices of the non-zero elements in row-major order. */
const nonZero: OpImpl = (inputs) => {
  const x = need(inputs, 0, "X");
  const hits: number[] = [];
  x.data.forEach((v, i) => v !== 0 && hits.push(i));
  const strides = x.dims.map((_, a) => x.dims.slice(a + 1).reduce((p, q) => p * q, 1));
  const out = make("int64", [x.dims.length, hits.length]);
  strides.forEach((stride, a) =>
    hits.forEach((flat, j) => (out.data[a * hits.length + j] = Math.floor(flat / stride) % x.dims[a]))
  );
  return [out];
};

const dropout: OpImpl = (inputs, node) => {
  const x = need(inputs, 0, "data");
  const ratio = inputs[1] ? scalarOf(inputs[1], "ratio") : attrFloat(node, "ratio", 0.5);
  const training = inputs[2] ? scalarOf(inputs[2], "training_mode") !== 0 : false;
  if (training && ratio !== 0) {
    throw new OpError("training-mode Dropout is random; the reference cannot evaluate it");
  }
  return [copy(x), make("bool", [...x.dims], new Float64Array(x.data.length).fill(1))];
};

/** The shape and indexing ops, by ONNX op type. */
export const SHAPE_OPS: Record<string, OpImpl> = {
  Identity: (inputs) => [copy(need(inputs, 0, "input"))],
  Reshape: reshape,
  Transpose: transpose,
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Flatten: flatten,
  Slice: slice,
  Concat: concat,
  Split: split,
  Gather: gather,
  NonZero: nonZero,
  GatherElements: gatherElements,
  ScatterElements: scatterElements,
  ScatterND: scatterND,
  Expand: expand,
  Tile: tile,
  Shape: shape,
  Size: (inputs) => [make("int64", [], Float64Array.of(need(inputs, 0, "data").data.length))],
  ConstantOfShape: constantOfShape,
  Constant: constant,
  Range: range,
  Trilu: trilu,
  Dropout: dropout,
};
