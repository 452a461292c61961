// Linear algebra, reductions, normalisation and losses of the reference interpreter: MatMul, Gemm, Einsum,
// Softmax/LogSoftmax, Reduce*, ArgMax/ArgMin, TopK, CumSum, LayerNormalization, SoftmaxCrossEntropyLoss.
// Semantics follow the ONNX operator spec (opset 17/18); everything accumulates in float64.

import type { Node } from "../../src/onnx/types.ts";
import { attrFloat, attrInt, attrString, axesOf, need, type OpImpl, scalarOf } from "./_node.ts";
import { binary } from "./_ops_elementwise.ts";
import { transposeVal } from "./_ops_shape.ts";
import {
  broadcastDims,
  broadcastStrides,
  expandTo,
  make,
  normAxis,
  OpError,
  sizeOf,
  stridesOf,
  type Val,
  walk,
} from "./_tensor.ts";

/** Batched matrix product with numpy rules: 1-D operands are promoted and the added axis removed. */
export function matmulVal(a: Val, b: Val): Val {
  if (a.dims.length === 0 || b.dims.length === 0) throw new OpError("MatMul inputs must have rank >= 1");
  const ad = a.dims.length === 1 ? [1, a.dims[0]] : a.dims;
  const bd = b.dims.length === 1 ? [b.dims[0], 1] : b.dims;
  const m = ad[ad.length - 2], k = ad[ad.length - 1], k2 = bd[bd.length - 2], n = bd[bd.length - 1];
  if (k !== k2) {
    throw new OpError(`inner dimensions differ: A is [${a.dims.join(", ")}], B is [${b.dims.join(", ")}]`);
  }
  const batch = broadcastDims([ad.slice(0, -2), bd.slice(0, -2)]);
  if (typeof batch === "string") throw new OpError(`batch dimensions: ${batch}`);
  const sa = broadcastStrides(ad.slice(0, -2), batch).map((s) => s * m * k);
  const sb = broadcastStrides(bd.slice(0, -2), batch).map((s) => s * k * n);
  const out = new Float64Array(sizeOf(batch) * m * n);
  const x = a.data, y = b.data;
  walk(batch, [sa, sb], (bi, [oa, ob]) => {
    const oc = bi * m * n;
    for (let i = 0; i < m; i++) {
      const dst = oc + i * n;
      for (let p = 0; p < k; p++) {
        const av = x[oa + i * k + p], row = ob + p * n;
        for (let j = 0; j < n; j++) out[dst + j] += av * y[row + j];
      }
    }
  });
  const dims = [...batch];
  if (a.dims.length > 1) dims.push(m);
  if (b.dims.length > 1) dims.push(n);
  return { dtype: a.dtype, dims, data: out };
}

const matmul: OpImpl = (inputs) => {
  const a = need(inputs, 0, "A"), b = need(inputs, 1, "B");
  if (a.dtype !== b.dtype) throw new OpError(`A is ${a.dtype} but B is ${b.dtype}`);
  return [matmulVal(a, b)];
};

const gemm: OpImpl = (inputs, node) => {
  let a = need(inputs, 0, "A"), b = need(inputs, 1, "B");
  if (a.dims.length !== 2 || b.dims.length !== 2) {
    throw new OpError(`Gemm needs 2-D inputs, got [${a.dims.join(", ")}] and [${b.dims.join(", ")}]`);
  }
  if (attrInt(node, "transA", 0)) a = transposeVal(a, [1, 0]);
  if (attrInt(node, "transB", 0)) b = transposeVal(b, [1, 0]);
  const alpha = attrFloat(node, "alpha", 1), beta = attrFloat(node, "beta", 1);
  let y = matmulVal(a, b);
  if (alpha !== 1) y = { ...y, data: y.data.map((v) => alpha * v) };
  const c = inputs[2];
  if (c) {
    const dims = broadcastDims([y.dims, c.dims]);
    if (typeof dims === "string" || dims.join() !== y.dims.join()) {
      throw new OpError(`C [${c.dims.join(", ")}] does not broadcast to [${y.dims.join(", ")}]`);
    }
    y = binary(y, c, (p, q) => p + beta * q);
  }
  return [y];
};

const einsum: OpImpl = (inputs, node) => {
  const equation = attrString(node, "equation", "").replaceAll(" ", "");
  const [lhs, rhs] = equation.split("->");
  if (rhs === undefined || equation.includes(".")) {
    throw new OpError(`only explicit equations without ellipsis are supported, got "${equation}"`);
  }
  const terms = lhs.split(",");
  const xs = inputs.filter((v): v is Val => v !== undefined);
  if (terms.length !== xs.length) throw new OpError(`${terms.length} terms for ${xs.length} inputs`);
  const sizes = new Map<string, number>();
  terms.forEach((term, t) => {
    if (term.length !== xs[t].dims.length) {
      throw new OpError(`term "${term}" has ${term.length} letters for [${xs[t].dims.join(", ")}]`);
    }
    [...term].forEach((letter, k) => {
      const d = xs[t].dims[k];
      const prev = sizes.get(letter);
      if (prev !== undefined && prev !== d) throw new OpError(`letter ${letter} is ${prev} and ${d}`);
      sizes.set(letter, d);
    });
  });
  for (const l of rhs) if (!sizes.has(l)) throw new OpError(`output letter ${l} is not in the inputs`);
  const letters = [...rhs, ...[...sizes.keys()].filter((l) => !rhs.includes(l))];
  const loopDims = letters.map((l) => sizes.get(l)!);
  const termStrides = terms.map((term, t) => {
    const s = stridesOf(xs[t].dims);
    return letters.map((l) => [...term].reduce((acc, c, k) => (c === l ? acc + s[k] : acc), 0));
  });
  const outDims = [...rhs].map((l) => sizes.get(l)!);
  const inner = sizeOf(loopDims.slice(rhs.length));
  const out = new Float64Array(sizeOf(outDims));
  walk(loopDims, termStrides, (i, offsets) => {
    let p = 1;
    for (let t = 0; t < xs.length; t++) p *= xs[t].data[offsets[t]];
    out[Math.floor(i / inner)] += p;
  });
  return [make(xs[0].dtype, outDims, out)];
};

/** Views `dims` as [outer, n, inner] around `axis`. */
function around(dims: number[], axis: number): [number, number, number] {
  return [sizeOf(dims.slice(0, axis)), dims[axis], sizeOf(dims.slice(axis + 1))];
}

function softmaxVal(x: Val, axisAttr: number, log: boolean): Val {
  const axis = normAxis(axisAttr, x.dims.length, "axis");
  const [outer, n, inner] = around(x.dims, axis);
  const out = new Float64Array(x.data.length);
  for (let o = 0; o < outer; o++) {
    for (let q = 0; q < inner; q++) {
      const base = o * n * inner + q;
      let max = -Infinity;
      for (let i = 0; i < n; i++) max = Math.max(max, x.data[base + i * inner]);
      let sum = 0;
      for (let i = 0; i < n; i++) sum += Math.exp(x.data[base + i * inner] - max);
      const logSum = Math.log(sum);
      for (let i = 0; i < n; i++) {
        const z = x.data[base + i * inner] - max;
        out[base + i * inner] = log ? z - logSum : Math.exp(z) / sum;
      }
    }
  }
  return { dtype: x.dtype, dims: [...x.dims], data: out };
}

interface Reduction {
  init: number;
  step: (acc: number, v: number) => number;
  finish?: (acc: number, count: number) => number;
}

const REDUCTIONS: Record<string, Reduction> = {
  ReduceSum: { init: 0, step: (a, v) => a + v },
  ReduceMean: { init: 0, step: (a, v) => a + v, finish: (a, n) => a / n },
  ReduceMax: { init: -Infinity, step: (a, v) => (Number.isNaN(a) ? a : v > a || Number.isNaN(v) ? v : a) },
  ReduceMin: { init: Infinity, step: (a, v) => (Number.isNaN(a) ? a : v < a || Number.isNaN(v) ? v : a) },
  ReduceProd: { init: 1, step: (a, v) => a * v },
  ReduceSumSquare: { init: 0, step: (a, v) => a + v * v },
  ReduceL2: { init: 0, step: (a, v) => a + v * v, finish: (a) => Math.sqrt(a) },
  ReduceLogSumExp: { init: 0, step: (a, v) => a + Math.exp(v), finish: (a) => Math.log(a) },
};

/** The set of reduced axes: `axesIn` normalised, or every axis when it is empty. */
function axisSet(rank: number, axesIn: number[]): Set<number> {
  if (axesIn.length === 0) return new Set(Array.from({ length: rank }, (_, i) => i));
  return new Set(axesIn.map((a) => normAxis(a, rank, "axis")));
}

/** Reduces `x` over `axes` (all when empty), keeping reduced axes as 1 when `keep`. */
export function reduceVal(x: Val, axesIn: number[], keep: boolean, r: Reduction): Val {
  const axes = axisSet(x.dims.length, axesIn);
  const keptDims = x.dims.map((d, i) => (axes.has(i) ? 1 : d));
  const outStrides = stridesOf(keptDims).map((s, i) => (axes.has(i) ? 0 : s));
  const out = new Float64Array(sizeOf(keptDims)).fill(r.init);
  const data = x.data;
  walk(x.dims, [outStrides], (i, [o]) => (out[o] = r.step(out[o], data[i])));
  const count = sizeOf(x.dims.filter((_, i) => axes.has(i)));
  if (r.finish) { for (let i = 0; i < out.length; i++) out[i] = r.finish(out[i], count); }
  const dims = keep ? keptDims : x.dims.filter((_, i) => !axes.has(i));
  return { dtype: x.dtype, dims, data: out };
}

function reduceOp(r: Reduction, logSumExp = false): OpImpl {
  return (inputs, node) => {
    const x = need(inputs, 0, "data");
    const axes = axesOf(inputs, 1, node) ?? [];
    const keep = attrInt(node, "keepdims", 1) === 1;
    if (axes.length === 0 && attrInt(node, "noop_with_empty_axes", 0) === 1) {
      return [{ dtype: x.dtype, dims: [...x.dims], data: x.data.slice() }];
    }
    if (!logSumExp) return [reduceVal(x, axes, keep, r)];
    // Stable log-sum-exp: subtract the max of each reduced group first.
    const max = reduceVal(x, axes, true, REDUCTIONS.ReduceMax);
    const shifted = binary(x, max, (v, m) => (Number.isFinite(m) ? v - m : v));
    const lse = binary(reduceVal(shifted, axes, true, r), max, (v, m) => (Number.isFinite(m) ? v + m : v));
    const reduced = axisSet(x.dims.length, axes);
    return [{ ...lse, dims: keep ? lse.dims : x.dims.filter((_, i) => !reduced.has(i)) }];
  };
}

function argReduce(largest: boolean): OpImpl {
  return (inputs, node) => {
    const x = need(inputs, 0, "data");
    const axis = normAxis(attrInt(node, "axis", 0), x.dims.length, "axis");
    const keep = attrInt(node, "keepdims", 1) === 1;
    const last = attrInt(node, "select_last_index", 0) === 1;
    const [outer, n, inner] = around(x.dims, axis);
    const out = new Float64Array(outer * inner);
    for (let o = 0; o < outer; o++) {
      for (let q = 0; q < inner; q++) {
        const base = o * n * inner + q;
        let best = 0;
        for (let i = 1; i < n; i++) {
          const v = x.data[base + i * inner], b = x.data[base + best * inner];
          if (largest ? v > b || (last && v === b) : v < b || (last && v === b)) best = i;
        }
        out[o * inner + q] = best;
      }
    }
    const dims = keep ? x.dims.map((d, i) => (i === axis ? 1 : d)) : x.dims.filter((_, i) => i !== axis);
    return [make("int64", dims, out)];
  };
}

const topK: OpImpl = (inputs, node) => {
  const x = need(inputs, 0, "X");
  const k = scalarOf(need(inputs, 1, "K"), "K");
  const axis = normAxis(attrInt(node, "axis", -1), x.dims.length, "axis");
  const largest = attrInt(node, "largest", 1) === 1;
  const [outer, n, inner] = around(x.dims, axis);
  if (!Number.isInteger(k) || k < 0 || k > n) {
    throw new OpError(`K = ${k} is out of range for an axis of ${n}`);
  }
  const dims = [...x.dims];
  dims[axis] = k;
  const values = new Float64Array(sizeOf(dims)), indices = new Float64Array(sizeOf(dims));
  const order = Array.from({ length: n }, (_, i) => i);
  for (let o = 0; o < outer; o++) {
    for (let q = 0; q < inner; q++) {
      const base = o * n * inner + q;
      const v = (i: number) => x.data[base + i * inner];
      // Ties keep the lower index first, as the spec requires; Array.prototype.sort is stable.
      const sorted = [...order].sort((i, j) => (largest ? v(j) - v(i) : v(i) - v(j)));
      for (let t = 0; t < k; t++) {
        values[o * k * inner + t * inner + q] = v(sorted[t]);
        indices[o * k * inner + t * inner + q] = sorted[t];
      }
    }
  }
  return [make(x.dtype, dims, values), make("int64", [...dims], indices)];
};

const cumSum: OpImpl = (inputs, node) => {
  const x = need(inputs, 0, "x");
  const axis = normAxis(scalarOf(need(inputs, 1, "axis"), "axis"), x.dims.length, "axis");
  const exclusive = attrInt(node, "exclusive", 0) === 1, reverse = attrInt(node, "reverse", 0) === 1;
  const [outer, n, inner] = around(x.dims, axis);
  const out = new Float64Array(x.data.length);
  for (let o = 0; o < outer; o++) {
    for (let q = 0; q < inner; q++) {
      const base = o * n * inner + q;
      let acc = 0;
      for (let t = 0; t < n; t++) {
        const i = reverse ? n - 1 - t : t;
        const v = x.data[base + i * inner];
        if (exclusive) {
          out[base + i * inner] = acc;
          acc += v;
        } else {
          acc += v;
          out[base + i * inner] = acc;
        }
      }
    }
  }
  return [{ dtype: x.dtype, dims: [...x.dims], data: out }];
};

const layerNorm: OpImpl = (inputs, node) => {
  const x = need(inputs, 0, "X"), scale = need(inputs, 1, "Scale");
  const axis = normAxis(attrInt(node, "axis", -1), x.dims.length, "axis");
  const epsilon = attrFloat(node, "epsilon", 1e-5);
  const outer = sizeOf(x.dims.slice(0, axis)), n = sizeOf(x.dims.slice(axis));
  const normalized = new Float64Array(x.data.length);
  const means = new Float64Array(outer), invStd = new Float64Array(outer);
  for (let o = 0; o < outer; o++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x.data[o * n + i];
    mean /= n;
    let variance = 0;
    for (let i = 0; i < n; i++) variance += (x.data[o * n + i] - mean) ** 2;
    variance /= n;
    const inv = 1 / Math.sqrt(variance + epsilon);
    for (let i = 0; i < n; i++) normalized[o * n + i] = (x.data[o * n + i] - mean) * inv;
    means[o] = mean;
    invStd[o] = inv;
  }
  const normShape = x.dims.slice(axis);
  for (const [what, v] of [["Scale", scale], ["B", inputs[2]]] as const) {
    const dims = v && broadcastDims([normShape, v.dims]);
    if (v && (typeof dims === "string" || dims!.join() !== normShape.join())) {
      throw new OpError(`${what} [${v.dims.join(", ")}] does not broadcast to [${normShape.join(", ")}]`);
    }
  }
  const flatScale = expandTo(scale, normShape).data;
  const flatBias = inputs[2] ? expandTo(inputs[2], normShape).data : undefined;
  const y = new Float64Array(x.data.length);
  for (let i = 0; i < y.length; i++) {
    y[i] = normalized[i] * flatScale[i % n] + (flatBias ? flatBias[i % n] : 0);
  }
  const statDims = x.dims.map((d, i) => (i < axis ? d : 1));
  const stash = attrInt(node, "stash_type", 1) === 11 ? "float64" : "float32";
  return [make(x.dtype, [...x.dims], y), make(stash, statDims, means), make(stash, [...statDims], invStd)];
};

const softmaxCrossEntropyLoss: OpImpl = (inputs, node) => {
  const scores = need(inputs, 0, "scores"), labels = need(inputs, 1, "labels");
  const weights = inputs[2];
  const reduction = attrString(node, "reduction", "mean");
  const ignore = node.attributes.ignore_index ? attrInt(node, "ignore_index", 0) : undefined;
  if (scores.dims.length < 2) {
    throw new OpError(`scores must be [N, C, ...], got [${scores.dims.join(", ")}]`);
  }
  const [n, c] = scores.dims;
  const rest = scores.dims.slice(2);
  const labelDims = [n, ...rest];
  if (labels.dims.join() !== labelDims.join()) {
    throw new OpError(`labels [${labels.dims.join(", ")}] do not match scores [${scores.dims.join(", ")}]`);
  }
  if (weights && (weights.dims.length !== 1 || weights.dims[0] !== c)) {
    throw new OpError(`weights [${weights.dims.join(", ")}] must be [${c}]`);
  }
  const logProb = softmaxVal(scores, 1, true);
  const d = sizeOf(rest);
  const loss = new Float64Array(n * d);
  let weightSum = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      const label = labels.data[i * d + j];
      if (label === ignore) continue;
      if (!Number.isInteger(label) || label < 0 || label >= c) {
        throw new OpError(`label ${label} at [${i}, ${j}] is out of range for ${c} classes`);
      }
      const w = weights ? weights.data[label] : 1;
      loss[i * d + j] = -logProb.data[(i * c + label) * d + j] * w;
      weightSum += w;
    }
  }
  let out: Val;
  if (reduction === "none") out = make(scores.dtype, labelDims, loss);
  else if (reduction === "sum" || reduction === "mean") {
    let total = 0;
    for (const v of loss) total += v;
    // "mean" divides by the summed weights of the non-ignored targets (their count without weights);
    // with every target ignored that is 0/0 = NaN, as in the spec's reference implementation.
    out = make(scores.dtype, [], Float64Array.of(reduction === "sum" ? total : total / weightSum));
  } else throw new OpError(`unknown reduction "${reduction}"`);
  return [out, logProb];
};

function softmaxOp(log: boolean): OpImpl {
  return (inputs, node: Node) => [softmaxVal(need(inputs, 0, "input"), attrInt(node, "axis", -1), log)];
}

/**
 * onnxruntime's `com.microsoft` MatMulNBits: `A [..., K] · Wᵀ (+ bias)`, W `[N, K]` read from uint8 codes
 * `[N, k_blocks, block_size · bits / 8]` (4-bit: even element in the low nibble) as
 * `(code − zero_point) · scale` per block, zero points packed uint8 (default 2^(bits−1)) or float.
 */
const matMulNBits: OpImpl = (inputs, node) => {
  const a = need(inputs, 0, "A"), codes = need(inputs, 1, "B"), scales = need(inputs, 2, "scales");
  const zp = inputs[3], bias = inputs[5];
  if (inputs[4]) throw new OpError("g_idx is not supported");
  const k = attrInt(node, "K", 0), n = attrInt(node, "N", 0), bits = attrInt(node, "bits", 4);
  const blockSize = attrInt(node, "block_size", 0);
  if (bits !== 4 && bits !== 8) throw new OpError(`bits = ${bits}: only 4 and 8 are implemented`);
  const kBlocks = Math.ceil(k / blockSize), blob = (blockSize * bits) / 8;
  if (codes.data.length !== n * kBlocks * blob) throw new OpError(`B holds ${codes.data.length} bytes`);
  const code = (bytes: Float64Array, offset: number, i: number) =>
    bits === 8
      ? bytes[offset + i]
      : (i & 1) === 0
      ? bytes[offset + (i >> 1)] % 16
      : Math.floor(bytes[offset + (i >> 1)] / 16);
  const zpBytes = Math.ceil((kBlocks * bits) / 8);
  const w = new Float64Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let blk = 0; blk < kBlocks; blk++) {
      const zero = !zp
        ? 1 << (bits - 1)
        : zp.dtype === "uint8"
        ? code(zp.data, r * zpBytes, blk)
        : zp.data[r * kBlocks + blk];
      const scale = scales.data[r * kBlocks + blk];
      for (let i = 0; i < blockSize && blk * blockSize + i < k; i++) {
        w[r * k + blk * blockSize + i] = (code(codes.data, (r * kBlocks + blk) * blob, i) - zero) * scale;
      }
    }
  }
  let y = matmulVal(a, transposeVal(make(a.dtype, [n, k], w), [1, 0]));
  if (bias) y = binary(y, bias, (p, q) => p + q);
  return [y];
};

/** The linear-algebra, reduction, normalisation and loss ops, by ONNX op type. */
export const MATH_OPS: Record<string, OpImpl> = {
  MatMul: matmul,
  "com.microsoft.MatMulNBits": matMulNBits,
  Gemm: gemm,
  Einsum: einsum,
  Softmax: softmaxOp(false),
  LogSoftmax: softmaxOp(true),
  ReduceSum: reduceOp(REDUCTIONS.ReduceSum),
  ReduceMean: reduceOp(REDUCTIONS.ReduceMean),
  ReduceMax: reduceOp(REDUCTIONS.ReduceMax),
  ReduceMin: reduceOp(REDUCTIONS.ReduceMin),
  ReduceProd: reduceOp(REDUCTIONS.ReduceProd),
  ReduceSumSquare: reduceOp(REDUCTIONS.ReduceSumSquare),
  ReduceL2: reduceOp(REDUCTIONS.ReduceL2),
  ReduceLogSumExp: reduceOp(REDUCTIONS.ReduceLogSumExp, true),
  ArgMax: argReduce(true),
  ArgMin: argReduce(false),
  TopK: topK,
  CumSum: cumSum,
  LayerNormalization: layerNorm,
  SoftmaxCrossEntropyLoss: softmaxCrossEntropyLoss,
};
