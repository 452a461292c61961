/**
 * Static shape and dtype inference: one rule per ONNX op, each mapping the input types (and the values of
 * small constant inputs such as Reshape's shape) to the output types. Broadcasting follows ONNX's
 * multidirectional (numpy) rules exactly. Mismatches throw at build time, naming the node.
 *
 * @module
 */

import type { Attribute, Dim, DType, Node, Shape, TensorType } from "./types.ts";

/** What a rule can see of one input: its type and, for small integer tensors, its (possibly symbolic) values. */
export interface InputInfo {
  /** Static type; `undefined` for an omitted optional input. */
  type?: TensorType;
  /** Known element values (1-D or scalar int tensors), entries may be symbolic dims. */
  values?: Dim[];
}

/** Thrown when a node's inputs do not fit its operator; the message names the node. */
export class ShapeError extends Error {
  /** The node that failed. */
  readonly node: string;
  constructor(node: Node, message: string) {
    super(`Cannot add node "${node.name}" (${node.opType}): ${message}`);
    this.name = "ShapeError";
    this.node = node.name;
  }
}

type Rule = (node: Node, inputs: InputInfo[], fail: (message: string) => never) => TensorType[];

const INT_MAX = 2 ** 62;

/** Formats a shape for error messages: `[batch, 3, 64]`. */
export function formatShape(shape: Shape | undefined): string {
  return shape === undefined ? "[?]" : `[${shape.join(", ")}]`;
}

/** The product of dims: a number when all are numbers, else a symbolic expression. */
export function dimProduct(dims: Dim[]): Dim {
  let numeric = 1;
  const symbols: string[] = [];
  for (const d of dims) {
    if (typeof d === "number") numeric *= d;
    else symbols.push(d);
  }
  if (symbols.length === 0 || numeric === 0) return numeric;
  return numeric === 1 ? symbols.join("*") : `${symbols.join("*")}*${numeric}`;
}

/**
 * Broadcasts shapes by ONNX's multidirectional rule; a dim of 1 stretches, equal dims match, a fixed dim
 * wins over a symbolic one.
 *
 * @param shapes The input shapes.
 * @returns The broadcast shape, or an error text when two fixed dims differ.
 */
export function broadcastShapes(...shapes: Shape[]): Shape | string {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let dim: Dim = 1;
    for (const shape of shapes) {
      const d = shape[shape.length - rank + i];
      if (d === undefined || d === 1) continue;
      if (dim === 1) dim = d;
      else if (dim !== d) {
        if (typeof dim === "number" && typeof d === "number") {
          return `cannot broadcast ${
            shapes.map(formatShape).join(" with ")
          }: dimension ${i} is ${dim} vs ${d}`;
        }
        if (typeof dim === "string" && typeof d === "number") dim = d;
        else if (typeof dim === "string" && typeof d === "string") dim = `max(${dim},${d})`;
      }
    }
    out.push(dim);
  }
  return out;
}

function attrInt(node: Node, name: string, fallback: number): number {
  const a = node.attributes[name];
  return a && a.type === "int" ? a.value : fallback;
}

function attrInts(node: Node, name: string): number[] | undefined {
  const a: Attribute | undefined = node.attributes[name];
  return a && a.type === "ints" ? a.value : undefined;
}

function normAxis(axis: number, rank: number, fail: (m: string) => never): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(`axis ${axis} is out of range for rank ${rank}`);
  return a;
}

function shapeOf(info: InputInfo | undefined, what: string, fail: (m: string) => never): Shape {
  if (!info?.type) return fail(`input ${what} is missing`);
  if (!info.type.shape) return fail(`input ${what} has unknown rank`);
  return info.type.shape;
}

function constInts(info: InputInfo | undefined, what: string, fail: (m: string) => never): number[] {
  const values = info?.values;
  if (!values) return fail(`${what} must be a constant`);
  if (values.some((v) => typeof v !== "number")) {
    fail(`${what} must hold fixed numbers, got [${values.join(", ")}]`);
  }
  return values as number[];
}

const same: Rule = (_node, inputs) => [{ ...inputs[0].type! }];

function broadcastRule(outDtype?: DType, checkDtypes = true): Rule {
  return (node, inputs, fail) => {
    const present = inputs.filter((i) => i.type);
    const dtype = present[0].type!.dtype;
    if (checkDtypes) {
      for (const [i, info] of present.entries()) {
        if (info.type!.dtype !== dtype) {
          fail(
            `input ${i} is ${info.type!.dtype} but input 0 is ${dtype} (node inputs: ${
              node.inputs.join(", ")
            })`,
          );
        }
      }
    }
    const shape = broadcastShapes(...present.map((info, i) => shapeOf(info, String(i), fail)));
    if (typeof shape === "string") return fail(shape);
    return [{ dtype: outDtype ?? dtype, shape }];
  };
}

const matmul: Rule = (_node, inputs, fail) => {
  const a = shapeOf(inputs[0], "A", fail);
  const b = shapeOf(inputs[1], "B", fail);
  if (inputs[0].type!.dtype !== inputs[1].type!.dtype) {
    fail(`A is ${inputs[0].type!.dtype} but B is ${inputs[1].type!.dtype}`);
  }
  if (a.length === 0 || b.length === 0) fail("MatMul inputs must have rank >= 1");
  const aa = a.length === 1 ? [1, a[0]] : a;
  const bb = b.length === 1 ? [b[0], 1] : b;
  const k1 = aa[aa.length - 1], k2 = bb[bb.length - 2];
  if (typeof k1 === "number" && typeof k2 === "number" && k1 !== k2) {
    fail(`inner dimensions differ: A is ${formatShape(a)}, B is ${formatShape(b)}`);
  }
  const batch = broadcastShapes(aa.slice(0, -2), bb.slice(0, -2));
  if (typeof batch === "string") return fail(`batch dimensions: ${batch}`);
  const out = [...batch];
  if (a.length > 1) out.push(aa[aa.length - 2]);
  if (b.length > 1) out.push(bb[bb.length - 1]);
  return [{ dtype: inputs[0].type!.dtype, shape: out }];
};

/**
 * onnxruntime's `com.microsoft` MatMulNBits: `A [..., K]` times a weight `[K, N]` stored blockwise
 * quantized as `B` uint8 `[N, ceil(K / block_size), block_size · bits / 8]`, `scales` (A's dtype,
 * `N · k_blocks` elements), optional `zero_points` (uint8 packed `N · ceil(k_blocks · bits / 8)`, or A's
 * dtype `N · k_blocks`) and optional `bias [N]` → `[..., N]`.
 */
const matMulNBits: Rule = (node, inputs, fail) => {
  const a = shapeOf(inputs[0], "A", fail);
  const b = shapeOf(inputs[1], "B", fail);
  const dtype = inputs[0].type!.dtype;
  const k = attrInt(node, "K", 0), n = attrInt(node, "N", 0);
  const bits = attrInt(node, "bits", 4), blockSize = attrInt(node, "block_size", 0);
  if (k < 1 || n < 1) fail(`attributes K (${k}) and N (${n}) must be positive`);
  if (bits < 2 || bits > 8) fail(`attribute bits is ${bits}, expected 2 to 8`);
  if (blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) {
    fail(`attribute block_size is ${blockSize}, expected a power of 2 ≥ 16`);
  }
  if (a.length === 0) fail("A must have rank ≥ 1");
  const inner = a[a.length - 1];
  if (typeof inner === "number" && inner !== k) fail(`A ${formatShape(a)} has ${inner} features, K is ${k}`);
  const kBlocks = Math.ceil(k / blockSize), blob = (blockSize * bits) / 8;
  if (inputs[1].type!.dtype !== "uint8") fail(`B is ${inputs[1].type!.dtype}, expected uint8`);
  if (b.length !== 3 || b[0] !== n || b[1] !== kBlocks || b[2] !== blob) {
    fail(`B is ${formatShape(b)}, expected [${n}, ${kBlocks}, ${blob}] (N, k_blocks, blob_size)`);
  }
  const count = (info: InputInfo, what: string) => dimProduct(shapeOf(info, what, fail));
  if (inputs[2]?.type?.dtype !== dtype) fail(`scales are ${inputs[2]?.type?.dtype}, expected ${dtype} (A's)`);
  if (count(inputs[2], "scales") !== n * kBlocks) {
    fail(`scales ${formatShape(inputs[2].type!.shape)} do not hold N · k_blocks = ${n * kBlocks} values`);
  }
  const zp = inputs[3];
  if (zp?.type) {
    const packed = zp.type.dtype === "uint8";
    const want = packed ? n * Math.ceil((kBlocks * bits) / 8) : n * kBlocks;
    if (!packed && zp.type.dtype !== dtype) {
      fail(`zero_points are ${zp.type.dtype}, expected uint8 or ${dtype}`);
    }
    if (count(zp, "zero_points") !== want) {
      fail(`zero_points ${formatShape(zp.type.shape)} do not hold ${want} ${zp.type.dtype} values`);
    }
  }
  const bias = inputs[5];
  if (bias?.type && (bias.type.dtype !== dtype || count(bias, "bias") !== n)) {
    fail(`bias is ${bias.type.dtype}${formatShape(bias.type.shape)}, expected ${dtype}[${n}]`);
  }
  return [{ dtype, shape: [...a.slice(0, -1), n] }];
};

const gemm: Rule = (node, inputs, fail) => {
  const a = shapeOf(inputs[0], "A", fail);
  const b = shapeOf(inputs[1], "B", fail);
  if (a.length !== 2 || b.length !== 2) {
    fail(`Gemm needs 2-D inputs, got ${formatShape(a)} and ${formatShape(b)}`);
  }
  const [m, k1] = attrInt(node, "transA", 0) ? [a[1], a[0]] : [a[0], a[1]];
  const [k2, n] = attrInt(node, "transB", 0) ? [b[1], b[0]] : [b[0], b[1]];
  if (typeof k1 === "number" && typeof k2 === "number" && k1 !== k2) {
    fail(`inner dimensions differ: A is ${formatShape(a)}, B is ${formatShape(b)}`);
  }
  if (inputs[2]?.type) {
    const c = broadcastShapes([m, n], shapeOf(inputs[2], "C", fail));
    if (typeof c === "string" || c.length !== 2 || c[0] !== m || c[1] !== n) {
      fail(`C ${formatShape(inputs[2].type.shape)} does not broadcast to [${m}, ${n}]`);
    }
  }
  return [{ dtype: inputs[0].type!.dtype, shape: [m, n] }];
};

function reduceRule(outDtype?: DType): Rule {
  return (node, inputs, fail) => {
    const x = shapeOf(inputs[0], "data", fail);
    const keep = attrInt(node, "keepdims", 1) === 1;
    let axes = attrInts(node, "axes");
    if (!axes && inputs[1]?.type) axes = constInts(inputs[1], "axes", fail);
    if (!axes || axes.length === 0) {
      if (attrInt(node, "noop_with_empty_axes", 0)) {
        return [{ dtype: outDtype ?? inputs[0].type!.dtype, shape: x }];
      }
      axes = x.map((_, i) => i);
    }
    const set = new Set(axes.map((a) => normAxis(a, x.length, fail)));
    const shape: Dim[] = [];
    x.forEach((d, i) => {
      if (!set.has(i)) shape.push(d);
      else if (keep) shape.push(1);
    });
    return [{ dtype: outDtype ?? inputs[0].type!.dtype, shape }];
  };
}

const reshape: Rule = (node, inputs, fail) => {
  const x = shapeOf(inputs[0], "data", fail);
  const target = inputs[1]?.values;
  if (!target) return fail("the target shape must be a constant (or built from Shape/Concat of known dims)");
  const allowZero = attrInt(node, "allowzero", 0) === 1;
  const out: Dim[] = target.map((
    d,
    i,
  ) => (d === 0 && !allowZero ? x[i] ?? fail(`0 at position ${i} copies no dim`) : d));
  const minus = out.findIndex((d) => d === -1);
  if (out.filter((d) => d === -1).length > 1) fail("more than one -1 in the target shape");
  const total = dimProduct(x);
  if (minus >= 0) {
    const known = dimProduct(out.filter((_, i) => i !== minus));
    if (typeof total === "number" && typeof known === "number") {
      if (known === 0 || total % known !== 0) {
        fail(`cannot reshape ${formatShape(x)} to [${target.join(", ")}]: ${total} elements`);
      }
      out[minus] = total / known;
    } else out[minus] = divideDims(x, out.filter((_, i) => i !== minus));
  } else {
    const prod = dimProduct(out);
    if (typeof total === "number" && typeof prod === "number" && total !== prod) {
      fail(
        `cannot reshape ${formatShape(x)} (${total} elements) to [${target.join(", ")}] (${prod} elements)`,
      );
    }
  }
  return [{ dtype: inputs[0].type!.dtype, shape: out }];
};

/** Symbolic division: cancels common factors of `num` and `den` (as multisets), else an expression. */
function divideDims(num: Dim[], den: Dim[]): Dim {
  const rest = [...num];
  let numeric = 1;
  for (const d of den) {
    const i = rest.indexOf(d);
    if (i >= 0) rest.splice(i, 1);
    else if (typeof d === "number") numeric *= d;
    else return `(${dimProduct(num)})/(${dimProduct(den)})`;
  }
  let numericRest = 1;
  const symbols: Dim[] = [];
  for (const d of rest) {
    if (typeof d === "number") numericRest *= d;
    else symbols.push(d);
  }
  if (numericRest % numeric !== 0) return `(${dimProduct(num)})/(${dimProduct(den)})`;
  return dimProduct([...symbols, numericRest / numeric]);
}

const transpose: Rule = (node, inputs, fail) => {
  const x = shapeOf(inputs[0], "data", fail);
  const perm = attrInts(node, "perm") ?? x.map((_, i) => x.length - 1 - i);
  if (perm.length !== x.length || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    fail(`perm [${perm.join(", ")}] is not a permutation of rank ${x.length}`);
  }
  return [{ dtype: inputs[0].type!.dtype, shape: perm.map((p) => x[p]) }];
};

const squeeze: Rule = (node, inputs, fail) => {
  const x = shapeOf(inputs[0], "data", fail);
  const axesIn = inputs[1]?.type ? constInts(inputs[1], "axes", fail) : attrInts(node, "axes");
  const axes = new Set(
    (axesIn ?? x.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => normAxis(a, x.length, fail)),
  );
  for (const a of axes) {
    if (typeof x[a] === "number" && x[a] !== 1) {
      fail(`cannot squeeze axis ${a} of size ${x[a]} in ${formatShape(x)}`);
    }
  }
  return [{ dtype: inputs[0].type!.dtype, shape: x.filter((_, i) => !axes.has(i)) }];
};

const unsqueeze: Rule = (node, inputs, fail) => {
  const x = shapeOf(inputs[0], "data", fail);
  const axesIn = inputs[1]?.type ? constInts(inputs[1], "axes", fail) : attrInts(node, "axes");
  if (!axesIn) return fail("axes are required");
  const rank = x.length + axesIn.length;
  const axes = new Set(axesIn.map((a) => normAxis(a, rank, fail)));
  if (axes.size !== axesIn.length) fail(`repeated axes [${axesIn.join(", ")}]`);
  const out: Dim[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) out.push(axes.has(i) ? 1 : x[j++]);
  return [{ dtype: inputs[0].type!.dtype, shape: out }];
};

/** Output length of a Slice along one axis, following ONNX's clamping rules. */
export function sliceLength(dim: number, start: number, end: number, step: number): number {
  const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
  let s = start < 0 ? start + dim : start;
  let e = end < 0 ? end + dim : end;
  if (step > 0) {
    s = clamp(s, 0, dim);
    e = clamp(e, 0, dim);
    return Math.max(0, Math.ceil((e - s) / step));
  }
  s = clamp(s, 0, dim - 1);
  e = clamp(e, -1, dim - 1);
  return Math.max(0, Math.ceil((e - s) / step));
}

const slice: Rule = (_node, inputs, fail) => {
  const x = shapeOf(inputs[0], "data", fail);
  const starts = constInts(inputs[1], "starts", fail);
  const ends = constInts(inputs[2], "ends", fail);
  const axes = inputs[3]?.type ? constInts(inputs[3], "axes", fail) : starts.map((_, i) => i);
  const steps = inputs[4]?.type ? constInts(inputs[4], "steps", fail) : starts.map(() => 1);
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length) {
    fail("starts, ends, axes and steps must have the same length");
  }
  const out = [...x];
  axes.forEach((axis, i) => {
    const a = normAxis(axis, x.length, fail);
    if (steps[i] === 0) fail("a step of 0");
    const d = x[a];
    const [s, e, step] = [starts[i], ends[i], steps[i]];
    // A symbolic dim is assumed long enough for the constant bounds (as in x[:, :5] or x[:, -3:]).
    if (typeof d === "number") out[a] = sliceLength(d, s, e, step);
    else if (s === 0 && e >= INT_MAX && step === 1) out[a] = d;
    else if (s > 0 && e >= INT_MAX && step === 1) out[a] = `${d}-${s}`;
    else if (s < 0 && e >= INT_MAX && step === 1) out[a] = -s;
    else if (s >= 0 && e >= 0 && e < INT_MAX && step === 1) out[a] = Math.max(0, e - s);
    else if (s === -1 && e <= -INT_MAX && step === -1) out[a] = d;
    else out[a] = `${d}[${s}:${Math.abs(e) >= INT_MAX ? "" : e}:${step}]`;
  });
  return [{ dtype: inputs[0].type!.dtype, shape: out }];
};

const concat: Rule = (node, inputs, fail) => {
  const shapes = inputs.map((info, i) => shapeOf(info, String(i), fail));
  const rank = shapes[0].length;
  const axis = normAxis(attrInt(node, "axis", 0), rank, fail);
  const dtype = inputs[0].type!.dtype;
  const out = [...shapes[0]];
  const along: Dim[] = [];
  shapes.forEach((s, i) => {
    if (inputs[i].type!.dtype !== dtype) fail(`input ${i} is ${inputs[i].type!.dtype}, input 0 is ${dtype}`);
    if (s.length !== rank) fail(`input ${i} has rank ${s.length}, input 0 has rank ${rank}`);
    s.forEach((d, k) => {
      if (k === axis) return;
      if (typeof d === "number" && typeof out[k] === "number" && d !== out[k]) {
        fail(`input ${i} is ${formatShape(s)}, input 0 is ${formatShape(shapes[0])}: dimension ${k} differs`);
      }
    });
    along.push(s[axis]);
  });
  out[axis] = along.every((d) => typeof d === "number")
    ? (along as number[]).reduce((a, b) => a + b, 0)
    : along.join("+");
  return [{ dtype, shape: out }];
};

const split: Rule = (node, inputs, fail) => {
  const x = shapeOf(inputs[0], "input", fail);
  const axis = normAxis(attrInt(node, "axis", 0), x.length, fail);
  const n = node.outputs.length;
  let sizes: Dim[];
  if (inputs[1]?.type) sizes = constInts(inputs[1], "split", fail);
  else {
    const d = x[axis];
    if (typeof d !== "number") {
      // equal parts of a symbolic dimension (opset 18's num_outputs): a new symbol per part size
      if (attrInt(node, "num_outputs", 0) !== n) {
        return fail(`cannot split symbolic dimension ${d} without sizes`);
      }
      return Array.from({ length: n }, () => {
        const shape = [...x];
        shape[axis] = `${d}/${n}`;
        return { dtype: inputs[0].type!.dtype, shape };
      });
    }
    const chunk = Math.ceil(d / n);
    sizes = Array.from({ length: n }, (_, i) => Math.max(0, Math.min(chunk, d - i * chunk)));
  }
  if (sizes.length !== n) fail(`${sizes.length} split sizes for ${n} outputs`);
  const total = (sizes as number[]).reduce((a, b) => a + b, 0);
  if (typeof x[axis] === "number" && total !== x[axis]) {
    fail(`split sizes [${sizes.join(", ")}] do not add up to dimension ${axis} of ${formatShape(x)}`);
  }
  return sizes.map((s) => {
    const shape = [...x];
    shape[axis] = s;
    return { dtype: inputs[0].type!.dtype, shape };
  });
};

const gather: Rule = (node, inputs, fail) => {
  const data = shapeOf(inputs[0], "data", fail);
  const indices = shapeOf(inputs[1], "indices", fail);
  const idtype = inputs[1].type!.dtype;
  if (idtype !== "int64" && idtype !== "int32") fail(`indices must be int32 or int64, got ${idtype}`);
  const axis = normAxis(attrInt(node, "axis", 0), data.length, fail);
  return [{
    dtype: inputs[0].type!.dtype,
    shape: [...data.slice(0, axis), ...indices, ...data.slice(axis + 1)],
  }];
};

const expand: Rule = (_node, inputs, fail) => {
  const x = shapeOf(inputs[0], "input", fail);
  const target = inputs[1]?.values;
  if (!target) return fail("the target shape must be a constant");
  const shape = broadcastShapes(x, target);
  if (typeof shape === "string") return fail(shape);
  return [{ dtype: inputs[0].type!.dtype, shape }];
};

const where: Rule = (node, inputs, fail) => {
  if (inputs[0].type?.dtype !== "bool") fail(`condition must be bool, got ${inputs[0].type?.dtype}`);
  if (inputs[1].type!.dtype !== inputs[2].type!.dtype) {
    fail(`X is ${inputs[1].type!.dtype} but Y is ${inputs[2].type!.dtype}`);
  }
  const shape = broadcastShapes(
    shapeOf(inputs[0], "condition", fail),
    shapeOf(inputs[1], "X", fail),
    shapeOf(inputs[2], "Y", fail),
  );
  if (typeof shape === "string") return fail(shape);
  void node;
  return [{ dtype: inputs[1].type!.dtype, shape }];
};

const cast: Rule = (node, inputs, fail) => {
  const to = node.attributes.to;
  if (!to || to.type !== "int") return fail("attribute 'to' is required");
  return [{ dtype: dtypeOfCode(to.value, fail), shape: shapeOf(inputs[0], "input", fail) }];
};

const CODE_DTYPES: Record<number, DType> = {
  1: "float32",
  2: "uint8",
  3: "int8",
  4: "uint16",
  5: "int16",
  6: "int32",
  7: "int64",
  8: "string",
  9: "bool",
  10: "float16",
  11: "float64",
  12: "uint32",
  13: "uint64",
  16: "bfloat16",
};

function dtypeOfCode(code: number, fail: (m: string) => never): DType {
  return CODE_DTYPES[code] ?? fail(`unsupported data type code ${code}`);
}

const layerNorm: Rule = (node, inputs, fail) => {
  const x = shapeOf(inputs[0], "X", fail);
  const axis = normAxis(attrInt(node, "axis", -1), x.length, fail);
  for (const [i, what] of [[1, "Scale"], [2, "B"]] as const) {
    if (!inputs[i]?.type) continue;
    const s = shapeOf(inputs[i], what, fail);
    const b = broadcastShapes(x.slice(axis), s);
    const grows = (d: Dim, k: number) => typeof x[axis + k] === "number" && d !== x[axis + k];
    if (typeof b === "string" || b.length !== x.length - axis || b.some(grows)) {
      fail(
        `${what} ${formatShape(s)} does not broadcast to the normalized shape ${formatShape(x.slice(axis))}`,
      );
    }
  }
  const stats = x.map((d, i) => (i < axis ? d : 1));
  const stash = dtypeOfCode(attrInt(node, "stash_type", 1), fail);
  const out: TensorType[] = [{ dtype: inputs[0].type!.dtype, shape: x }];
  if (node.outputs.length > 1) out.push({ dtype: stash, shape: stats });
  if (node.outputs.length > 2) out.push({ dtype: stash, shape: stats });
  return out;
};

const softmaxCrossEntropy: Rule = (node, inputs, fail) => {
  const scores = shapeOf(inputs[0], "scores", fail);
  const labels = shapeOf(inputs[1], "labels", fail);
  if (scores.length < 2) fail(`scores must be [N, C, ...], got ${formatShape(scores)}`);
  const expected = [scores[0], ...scores.slice(2)];
  const differs = (d: Dim, i: number) =>
    typeof d === "number" && typeof expected[i] === "number" && d !== expected[i];
  if (labels.length !== expected.length || labels.some(differs)) {
    fail(`labels ${formatShape(labels)} do not match scores ${formatShape(scores)} (expected [N, d1, ...])`);
  }
  const ldtype = inputs[1].type!.dtype;
  if (ldtype !== "int64" && ldtype !== "int32") fail(`labels must be int32 or int64, got ${ldtype}`);
  const reduction = node.attributes.reduction;
  const mode = reduction?.type === "string" ? reduction.value : "mean";
  const dtype = inputs[0].type!.dtype;
  const out: TensorType[] = [{ dtype, shape: mode === "none" ? expected : [] }];
  if (node.outputs.length > 1) out.push({ dtype, shape: scores });
  return out;
};

const shape: Rule = (node, inputs, fail) => {
  const x = shapeOf(inputs[0], "data", fail);
  const rank = x.length;
  const clampAxis = (a: number) => Math.min(Math.max(a < 0 ? a + rank : a, 0), rank);
  const start = clampAxis(attrInt(node, "start", 0));
  const end = clampAxis(attrInt(node, "end", rank));
  return [{ dtype: "int64", shape: [Math.max(0, end - start)] }];
};

const constantOfShape: Rule = (node, inputs, fail) => {
  const dims = inputs[0]?.values;
  const value = node.attributes.value;
  const dtype = value?.type === "tensor" ? value.value.dtype : "float32";
  if (!dims) {
    const len = shapeOf(inputs[0], "shape", fail)[0];
    if (typeof len !== "number") return fail("the shape input must have a fixed length");
    return [{ dtype, shape: Array.from({ length: len }, (_, i) => `${node.name}_d${i}`) }];
  }
  return [{ dtype, shape: dims }];
};

const constant: Rule = (node, _inputs, fail) => {
  const [name, a] = Object.entries(node.attributes)[0] ?? fail("Constant needs a value attribute");
  switch (name) {
    case "value":
      if (a.type !== "tensor") return fail("value must be a tensor");
      return [{ dtype: a.value.dtype, shape: a.value.dims }];
    case "value_float":
      return [{ dtype: "float32", shape: [] }];
    case "value_floats":
      return [{ dtype: "float32", shape: [(a.value as number[]).length] }];
    case "value_int":
      return [{ dtype: "int64", shape: [] }];
    case "value_ints":
      return [{ dtype: "int64", shape: [(a.value as number[]).length] }];
    default:
      return fail(`unsupported Constant attribute ${name}`);
  }
};

const range: Rule = (node, inputs, fail) => {
  const [start, limit, delta] = [0, 1, 2].map((i) => inputs[i]?.values?.[0]);
  const dtype = inputs[0].type?.dtype ?? fail("start is missing");
  if (typeof start === "number" && typeof limit === "number" && typeof delta === "number") {
    return [{ dtype, shape: [Math.max(Math.ceil((limit - start) / delta), 0)] }];
  }
  if (start === 0 && delta === 1 && limit !== undefined) return [{ dtype, shape: [limit] }];
  return [{ dtype, shape: [`${node.name}_len`] }];
};

/** NonZero: the indices of the non-zero elements, int64 `[rank, count]` (count known only at run time). */
const nonZero: Rule = (node, inputs, fail) => {
  const x = shapeOf(inputs[0], "X", fail);
  return [{ dtype: "int64", shape: [x.length, `${node.name}_count`] }];
};

/** TopK: values and indices, K along the axis (symbolic when K is a graph input). */
const topK: Rule = (node, inputs, fail) => {
  const x = shapeOf(inputs[0], "X", fail);
  if (!inputs[1]) fail("K is missing");
  const k = inputs[1].values?.[0] ?? `${node.name}_k`;
  const axis = normAxis(attrInt(node, "axis", -1), x.length, fail);
  const shape = [...x];
  shape[axis] = k;
  return [{ dtype: inputs[0].type!.dtype, shape }, { dtype: "int64", shape }];
};

const tile: Rule = (_node, inputs, fail) => {
  const x = shapeOf(inputs[0], "input", fail);
  const repeats = constInts(inputs[1], "repeats", fail);
  if (repeats.length !== x.length) fail(`${repeats.length} repeats for rank ${x.length}`);
  return [{
    dtype: inputs[0].type!.dtype,
    shape: x.map((
      d,
      i,
    ) => (typeof d === "number" ? d * repeats[i] : repeats[i] === 1 ? d : `${d}*${repeats[i]}`)),
  }];
};

const argReduce: Rule = (node, inputs, fail) => {
  const x = shapeOf(inputs[0], "data", fail);
  const axis = normAxis(attrInt(node, "axis", 0), x.length, fail);
  const keep = attrInt(node, "keepdims", 1) === 1;
  const shape = keep ? x.map((d, i) => (i === axis ? 1 : d)) : x.filter((_, i) => i !== axis);
  return [{ dtype: "int64", shape }];
};

const dropout: Rule = (node, inputs, fail) => {
  const x = shapeOf(inputs[0], "data", fail);
  const out: TensorType[] = [{ dtype: inputs[0].type!.dtype, shape: x }];
  if (node.outputs.length > 1) out.push({ dtype: "bool", shape: x });
  return out;
};

const flatten: Rule = (node, inputs, fail) => {
  const x = shapeOf(inputs[0], "input", fail);
  let axis = attrInt(node, "axis", 1);
  if (axis < 0) axis += x.length;
  return [{ dtype: inputs[0].type!.dtype, shape: [dimProduct(x.slice(0, axis)), dimProduct(x.slice(axis))] }];
};

const einsum: Rule = (node, inputs, fail) => {
  const eq = node.attributes.equation;
  if (!eq || eq.type !== "string") return fail("equation is required");
  const [lhs, rhs] = eq.value.replaceAll(" ", "").split("->");
  if (rhs === undefined || lhs.includes(".")) {
    fail(`only explicit equations without ellipsis are supported: ${eq.value}`);
  }
  const sizes = new Map<string, Dim>();
  lhs.split(",").forEach((term, i) => {
    const s = shapeOf(inputs[i], String(i), fail);
    if (s.length !== term.length) fail(`term "${term}" has ${term.length} letters for ${formatShape(s)}`);
    [...term].forEach((letter, k) => {
      const prev = sizes.get(letter);
      if (prev === undefined || prev === 1) sizes.set(letter, s[k]);
      else if (typeof prev === "number" && typeof s[k] === "number" && s[k] !== 1 && prev !== s[k]) {
        fail(`letter ${letter} is ${prev} and ${s[k]}`);
      }
    });
  });
  return [{
    dtype: inputs[0].type!.dtype,
    shape: [...rhs].map((l) => sizes.get(l) ?? fail(`unknown letter ${l}`)),
  }];
};

const scatter: Rule = (
  _node,
  inputs,
  fail,
) => [{ dtype: inputs[0].type!.dtype, shape: shapeOf(inputs[0], "data", fail) }];

const gatherElements: Rule = (_node, inputs, fail) => [
  { dtype: inputs[0].type!.dtype, shape: shapeOf(inputs[1], "indices", fail) },
];

const boolOut = broadcastRule("bool");

/** The shape-inference rule of every op the builder can emit (ONNX default domain, opset 17/18). */
export const SHAPE_RULES: Readonly<Record<string, Rule>> = {
  // elementwise, same type as input 0
  Identity: same,
  Neg: same,
  Abs: same,
  Sqrt: same,
  Reciprocal: same,
  Exp: same,
  Log: same,
  Tanh: same,
  Sigmoid: same,
  Erf: same,
  Relu: same,
  Sin: same,
  Cos: same,
  Sign: same,
  Floor: same,
  Ceil: same,
  Round: same,
  Softmax: same,
  LogSoftmax: same,
  Trilu: same,
  CumSum: same,
  Clip: same,
  Not: same,
  IsNaN: (_n, inputs, fail) => [{ dtype: "bool", shape: shapeOf(inputs[0], "X", fail) }],
  IsInf: (_n, inputs, fail) => [{ dtype: "bool", shape: shapeOf(inputs[0], "X", fail) }],
  Dropout: dropout,
  // broadcasting
  Add: broadcastRule(),
  Sub: broadcastRule(),
  Mul: broadcastRule(),
  Div: broadcastRule(),
  Mod: broadcastRule(),
  Pow: (node, inputs, fail) => {
    const out = broadcastRule(undefined, false)(node, inputs, fail);
    return [{ dtype: inputs[0].type!.dtype, shape: out[0].shape }];
  },
  Max: broadcastRule(),
  Min: broadcastRule(),
  Sum: broadcastRule(),
  Mean: broadcastRule(),
  Equal: boolOut,
  Less: boolOut,
  LessOrEqual: boolOut,
  Greater: boolOut,
  GreaterOrEqual: boolOut,
  And: boolOut,
  Or: boolOut,
  Xor: boolOut,
  Where: where,
  // linear algebra
  MatMul: matmul,
  Gemm: gemm,
  Einsum: einsum,
  // reductions
  ReduceSum: reduceRule(),
  ReduceMean: reduceRule(),
  ReduceMax: reduceRule(),
  ReduceMin: reduceRule(),
  ReduceProd: reduceRule(),
  ReduceSumSquare: reduceRule(),
  ReduceL2: reduceRule(),
  ReduceLogSumExp: reduceRule(),
  ArgMax: argReduce,
  ArgMin: argReduce,
  TopK: topK,
  NonZero: nonZero,
  // shape manipulation
  Reshape: reshape,
  Transpose: transpose,
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Flatten: flatten,
  Slice: slice,
  Concat: concat,
  Split: split,
  Gather: gather,
  GatherElements: gatherElements,
  ScatterND: scatter,
  ScatterElements: scatter,
  Expand: expand,
  Tile: tile,
  Cast: cast,
  Shape: shape,
  Size: () => [{ dtype: "int64", shape: [] }],
  ConstantOfShape: constantOfShape,
  Constant: constant,
  Range: range,
  // normalisation and losses
  LayerNormalization: layerNorm,
  SoftmaxCrossEntropyLoss: softmaxCrossEntropy,
};

// onnxruntime's contrib ops used by the fused inference graphs (not differentiated: training graphs use the
// standard ops above).

const skipSimplifiedLayerNorm: Rule = (_node, inputs, fail) => {
  const x = shapeOf(inputs[0], "input", fail);
  const skip = shapeOf(inputs[1], "skip", fail);
  if (typeof broadcastShapes(x, skip) === "string" || x.length !== skip.length) {
    fail(`input ${formatShape(x)} and skip ${formatShape(skip)} differ`);
  }
  const dtype = inputs[0].type!.dtype;
  const stats = { dtype: "float32" as DType, shape: [...x.slice(0, -1), 1] };
  return [{ dtype, shape: x }, stats, stats, { dtype, shape: x }];
};

const groupQueryAttention: Rule = (node, inputs, fail) => {
  const q = shapeOf(inputs[0], "query", fail);
  if (q.length !== 3) fail(`query must be [batch, seq, hidden], got ${formatShape(q)}`);
  const heads = attrInt(node, "num_heads", 0);
  const kvHeads = attrInt(node, "kv_num_heads", 0);
  if (heads <= 0 || kvHeads <= 0 || heads % kvHeads !== 0) {
    fail(`num_heads (${heads}) must be a positive multiple of kv_num_heads (${kvHeads})`);
  }
  const packed = !inputs[1]?.type;
  const hidden = q[2];
  let headSize: number;
  if (typeof hidden !== "number") return fail(`query's hidden size must be static, got ${formatShape(q)}`);
  if (packed) {
    if (hidden % (heads + 2 * kvHeads) !== 0) {
      fail(`packed QKV width ${hidden} is not (heads + 2·kv_heads)·head_size`);
    }
    headSize = hidden / (heads + 2 * kvHeads);
  } else {
    if (hidden % heads !== 0) fail(`query width ${hidden} is not a multiple of num_heads ${heads}`);
    headSize = hidden / heads;
  }
  const dtype = inputs[0].type!.dtype;
  const present = { dtype, shape: [q[0], kvHeads, "present", headSize] };
  return [{ dtype, shape: [q[0], q[1], heads * headSize] }, present, present];
};

/** Shape-inference rules of onnxruntime's contrib ops (domain `com.microsoft`, version 1) the builder emits. */
export const CONTRIB_SHAPE_RULES: Readonly<Record<string, Rule>> = {
  MatMulNBits: matMulNBits,
  SkipSimplifiedLayerNormalization: skipSimplifiedLayerNorm,
  GroupQueryAttention: groupQueryAttention,
  RotaryEmbedding: (_node, inputs) => [{ ...inputs[0].type! }],
  QuickGelu: (_node, inputs) => [{ ...inputs[0].type! }],
};

/** The rule tables by node domain (`""` is the default ONNX domain, where onnxruntime also registers
 * its contrib op `SimplifiedLayerNormalization`). */
const RULES_BY_DOMAIN: Readonly<Record<string, Readonly<Record<string, Rule>>>> = {
  "": { ...SHAPE_RULES, SimplifiedLayerNormalization: (_node, inputs) => [{ ...inputs[0].type! }] },
  "com.microsoft": CONTRIB_SHAPE_RULES,
};

/**
 * Infers the output types of one node.
 *
 * @param node The node (its name is used in errors).
 * @param inputs What is known of each input, in order (`{}` for an omitted optional input).
 * @returns One type per output.
 * @throws {ShapeError} When the op is unknown or its inputs do not fit.
 */
export function inferNode(node: Node, inputs: InputInfo[]): TensorType[] {
  const fail = (message: string): never => {
    throw new ShapeError(node, message);
  };
  const domain = node.domain ?? "";
  const rules = Object.hasOwn(RULES_BY_DOMAIN, domain)
    ? RULES_BY_DOMAIN[domain]
    : fail(`domain "${domain}" is not supported by shape inference`);
  const rule = Object.hasOwn(rules, node.opType) ? rules[node.opType] : fail(
    domain
      ? `domain "${domain}" has no shape-inference rule for this op`
      : "no shape-inference rule for this op",
  );
  for (const [i, name] of node.inputs.entries()) {
    if (name !== "" && !inputs[i]?.type) fail(`input "${name}" is not defined before this node`);
  }
  const out = rule(node, inputs, fail);
  if (out.length < node.outputs.length) {
    fail(`the op yields ${out.length} outputs, node names ${node.outputs.length}`);
  }
  return out.slice(0, node.outputs.length);
}
