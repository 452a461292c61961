/**
 * Vector-Jacobian rules, one per ONNX op, in one table. A rule receives the forward node, its input and
 * output values, and the incoming gradient of each output; it emits standard ONNX ops through the builder
 * and returns the gradient of each input (`undefined` where an input gets none). Only inputs listed in
 * `needs` must be differentiated: a rule may skip the others.
 *
 * @module
 */

import { attr, type GraphBuilder, type Value } from "../onnx/builder.ts";
import type { Node } from "../onnx/types.ts";
import { normAxis, reduceToShape, swapLastTwo, zerosAlong, zerosLike } from "./_util.ts";
import { dequantizedWeight, nbitsAttributes } from "./_nbits.ts";

/** What a rule sees of one forward node. */
export interface RuleContext {
  /** The builder that receives the gradient nodes. */
  b: GraphBuilder;
  /** The forward node. */
  node: Node;
  /** The forward node's inputs (`undefined` for omitted optional inputs). */
  inputs: (Value | undefined)[];
  /** The forward node's outputs. */
  outputs: Value[];
  /** Incoming gradient of each output (`undefined` where an output does not reach the loss). */
  grads: (Value | undefined)[];
  /** Which inputs need a gradient. */
  needs: boolean[];
}

/** A vector-Jacobian rule. */
export type GradientRule = (ctx: RuleContext) => (Value | undefined)[];

function intAttr(node: Node, name: string, fallback: number): number {
  const a = node.attributes[name];
  return a && a.type === "int" ? a.value : fallback;
}

function floatAttr(node: Node, name: string, fallback: number): number {
  const a = node.attributes[name];
  return a && a.type === "float" ? a.value : fallback;
}

/** The constant integer values of input `i` (axes, shapes), or an error naming the node. */
function constInts(ctx: RuleContext, i: number, what: string): number[] {
  const v = ctx.inputs[i];
  const values = v ? ctx.b.knownValues(v.name) : undefined;
  if (!values || values.some((d) => typeof d !== "number")) {
    throw new TypeError(
      `Cannot differentiate node "${ctx.node.name}" (${ctx.node.opType}): ${what} must be constant`,
    );
  }
  return values as number[];
}

function unsupported(ctx: RuleContext, why: string): never {
  throw new TypeError(`Cannot differentiate node "${ctx.node.name}" (${ctx.node.opType}): ${why}`);
}

/** The first output's incoming gradient (every rule with one differentiable output uses it). */
function g0(ctx: RuleContext): Value {
  return ctx.grads[0]!;
}

// ---- elementwise arithmetic ------------------------------------------------------------------------

const add: GradientRule = ({ b, inputs, grads, needs }) => [
  needs[0] ? reduceToShape(b, grads[0]!, inputs[0]!.shape) : undefined,
  needs[1] ? reduceToShape(b, grads[0]!, inputs[1]!.shape) : undefined,
];

const sub: GradientRule = ({ b, inputs, grads, needs }) => [
  needs[0] ? reduceToShape(b, grads[0]!, inputs[0]!.shape) : undefined,
  needs[1] ? reduceToShape(b, b.neg(grads[0]!), inputs[1]!.shape) : undefined,
];

const mul: GradientRule = ({ b, inputs, grads, needs }) => {
  const [x, y] = inputs as Value[];
  const g = grads[0]!;
  return [
    needs[0] ? reduceToShape(b, b.mul(g, y), x.shape) : undefined,
    needs[1] ? reduceToShape(b, b.mul(g, x), y.shape) : undefined,
  ];
};

const div: GradientRule = ({ b, inputs, outputs, grads, needs }) => {
  const [x, y] = inputs as Value[];
  const g = grads[0]!;
  return [
    needs[0] ? reduceToShape(b, b.div(g, y), x.shape) : undefined,
    // d(x/y)/dy = -x/y² = -out/y
    needs[1] ? reduceToShape(b, b.neg(b.div(b.mul(g, outputs[0]), y)), y.shape) : undefined,
  ];
};

const pow: GradientRule = (ctx) => {
  const { b, inputs, needs } = ctx;
  const [x, p] = inputs as Value[];
  if (needs[1]) unsupported(ctx, "the exponent must not depend on trainable inputs");
  const exponent = p.dtype === x.dtype ? p : b.cast(p, x.dtype);
  // d(x^p)/dx = p · x^(p-1)
  const local = b.mul(exponent, b.pow(x, b.sub(exponent, 1)));
  return [reduceToShape(b, b.mul(g0(ctx), local), x.shape), undefined];
};

const neg: GradientRule = (ctx) => [ctx.b.neg(g0(ctx))];

const identity: GradientRule = (ctx) => [g0(ctx)];

const sqrt: GradientRule = (ctx) => [ctx.b.div(ctx.b.mul(g0(ctx), 0.5), ctx.outputs[0])];

const reciprocal: GradientRule = (ctx) => {
  const y = ctx.outputs[0];
  return [ctx.b.neg(ctx.b.mul(g0(ctx), ctx.b.mul(y, y)))];
};

const exp: GradientRule = (ctx) => [ctx.b.mul(g0(ctx), ctx.outputs[0])];

const log: GradientRule = (ctx) => [ctx.b.div(g0(ctx), ctx.inputs[0]!)];

const tanh: GradientRule = (ctx) => {
  const { b, outputs } = ctx;
  return [b.mul(g0(ctx), b.sub(1, b.mul(outputs[0], outputs[0])))];
};

const sigmoid: GradientRule = (ctx) => {
  const { b, outputs } = ctx;
  return [b.mul(g0(ctx), b.mul(outputs[0], b.sub(1, outputs[0])))];
};

const erf: GradientRule = (ctx) => {
  const { b, inputs } = ctx;
  const x = inputs[0]!;
  // d erf(x)/dx = 2/√π · e^(−x²)
  return [b.mul(g0(ctx), b.mul(b.exp(b.neg(b.mul(x, x))), 2 / Math.sqrt(Math.PI)))];
};

const relu: GradientRule = (ctx) => {
  const { b, inputs } = ctx;
  return [b.where(b.greater(inputs[0]!, 0), g0(ctx), 0)];
};

const abs: GradientRule = (ctx) => {
  const { b, inputs } = ctx;
  const x = inputs[0]!;
  return [b.mul(g0(ctx), b.sub(b.cast(b.greater(x, 0), x.dtype), b.cast(b.less(x, 0), x.dtype)))];
};

const sin: GradientRule = (ctx) => [ctx.b.mul(g0(ctx), ctx.b.cos(ctx.inputs[0]!))];

const cos: GradientRule = (ctx) => [ctx.b.neg(ctx.b.mul(g0(ctx), ctx.b.sin(ctx.inputs[0]!)))];

const maxMin = (pickFirst: (b: GraphBuilder, x: Value, y: Value) => Value): GradientRule => (ctx) => {
  const { b, inputs, needs } = ctx;
  const [x, y] = inputs as Value[];
  const first = pickFirst(b, x, y);
  const g = g0(ctx);
  return [
    needs[0] ? reduceToShape(b, b.where(first, g, 0), x.shape) : undefined,
    needs[1] ? reduceToShape(b, b.where(first, 0, g), y.shape) : undefined,
  ];
};

const clip: GradientRule = (ctx) => {
  const { b, inputs } = ctx;
  const [x, lo, hi] = inputs;
  let inside: Value | undefined;
  if (lo) inside = b.not(b.less(x!, lo));
  if (hi) {
    const below = b.not(b.greater(x!, hi));
    inside = inside ? b.and(inside, below) : below;
  }
  return [inside ? b.where(inside, g0(ctx), 0) : g0(ctx)];
};

const where: GradientRule = ({ b, inputs, grads, needs }) => {
  const [condition, x, y] = inputs as Value[];
  const g = grads[0]!;
  return [
    undefined,
    needs[1] ? reduceToShape(b, b.where(condition, g, 0), x.shape) : undefined,
    needs[2] ? reduceToShape(b, b.where(condition, 0, g), y.shape) : undefined,
  ];
};

const cast: GradientRule = (ctx) => {
  const x = ctx.inputs[0]!;
  if (!x.dtype.startsWith("float") && x.dtype !== "bfloat16") {
    unsupported(ctx, `cannot differentiate a cast from ${x.dtype}`);
  }
  return [ctx.b.cast(g0(ctx), x.dtype)];
};

// ---- softmax family ----------------------------------------------------------------------------------

const softmax: GradientRule = (ctx) => {
  const { b, node, outputs } = ctx;
  const y = outputs[0];
  const axis = normAxis(intAttr(node, "axis", -1), y.shape.length);
  const gy = b.mul(g0(ctx), y);
  // dx = y ⊙ (g − Σ_axis g ⊙ y)
  return [b.sub(gy, b.mul(y, b.reduceSum(gy, [axis], true)))];
};

const logSoftmax: GradientRule = (ctx) => {
  const { b, node, outputs } = ctx;
  const y = outputs[0];
  const axis = normAxis(intAttr(node, "axis", -1), y.shape.length);
  // dx = g − softmax(x) · Σ_axis g
  return [b.sub(g0(ctx), b.mul(b.exp(y), b.reduceSum(g0(ctx), [axis], true)))];
};

// ---- linear algebra ------------------------------------------------------------------------------------

const matmul: GradientRule = (ctx) => {
  const { b, inputs, needs } = ctx;
  let [x, y] = inputs as Value[];
  let g = g0(ctx);
  const xVector = x.shape.length === 1, yVector = y.shape.length === 1;
  // Promote 1-D operands as MatMul does, so that both gradients are ordinary batched products.
  if (xVector) {
    x = b.unsqueeze(x, [0]);
    g = b.unsqueeze(g, [g.shape.length - (yVector ? 0 : 1)]);
  }
  if (yVector) {
    y = b.unsqueeze(y, [1]);
    g = b.unsqueeze(g, [g.shape.length]);
  }
  let gx: Value | undefined, gy: Value | undefined;
  if (needs[0]) {
    gx = b.matmul(g, b.transpose(y, swapLastTwo(y.shape.length)));
    if (xVector) gx = b.reshape(gx, inputs[0]!.shape.map((d) => (typeof d === "number" ? d : -1)));
    gx = reduceToShape(b, gx, xVector ? inputs[0]!.shape : x.shape);
    if (xVector && gx.shape.length !== 1) gx = b.reshape(gx, [-1]);
  }
  if (needs[1]) {
    gy = b.matmul(b.transpose(x, swapLastTwo(x.shape.length)), g);
    gy = reduceToShape(b, gy, y.shape);
    if (yVector) gy = b.reshape(gy, [-1]);
  }
  return [gx, gy];
};

const gemm: GradientRule = (ctx) => {
  const { b, node, inputs, needs } = ctx;
  const [x, y, c] = inputs;
  const g = g0(ctx);
  const transA = intAttr(node, "transA", 0) === 1, transB = intAttr(node, "transB", 0) === 1;
  const alpha = floatAttr(node, "alpha", 1), beta = floatAttr(node, "beta", 1);
  let gx: Value | undefined, gy: Value | undefined, gc: Value | undefined;
  // Y = α·op(A)·op(B) + β·C; each case below is dA and dB for one combination of transposes.
  if (needs[0]) {
    gx = transA
      ? b.gemm(y!, g, undefined, { transA: transB, transB: true, alpha })
      : b.gemm(g, y!, undefined, { transB: !transB, alpha });
  }
  if (needs[1]) {
    gy = transB
      ? b.gemm(g, x!, undefined, { transA: true, transB: transA, alpha })
      : b.gemm(x!, g, undefined, { transA: !transA, alpha });
  }
  if (c && needs[2]) gc = reduceToShape(b, beta === 1 ? g : b.mul(g, beta), c.shape);
  return [gx, gy, gc];
};

/**
 * onnxruntime's `com.microsoft` MatMulNBits, `Y = A · Wᵀ + bias` with W `[N, K]` blockwise quantized: a
 * frozen base weight (QLoRA), so only A and the bias get gradients; `dA = dY · W` with W dequantized in the
 * graph from the node's own codes (`src/autodiff/_nbits.ts`), which exists only while this backward runs.
 */
const matMulNBits: GradientRule = (ctx) => {
  const { b, node, inputs, needs } = ctx;
  if (needs.slice(1, 4).some(Boolean) || needs[4]) {
    unsupported(ctx, "the quantized weight, its scales and zero points are frozen (no gradient)");
  }
  if (inputs[4]) unsupported(ctx, "g_idx (act-order) weights are not supported");
  const attrs = nbitsAttributes(node);
  const g = g0(ctx);
  let gx: Value | undefined;
  if (needs[0]) {
    const w = dequantizedWeight(b, inputs, { ...attrs, anchor: g });
    gx = b.matmul(g, w);
  }
  const bias = inputs[5];
  const gBias = bias && needs[5] ? reduceToShape(b, g, bias.shape) : undefined;
  return [gx, undefined, undefined, undefined, undefined, gBias];
};

// ---- reductions ------------------------------------------------------------------------------------------

function reducedAxes(ctx: RuleContext): number[] {
  const { node, inputs } = ctx;
  const rank = inputs[0]!.shape.length;
  const a = node.attributes.axes;
  let axes = a && a.type === "ints" ? a.value : inputs[1] ? constInts(ctx, 1, "axes") : [];
  if (axes.length === 0) {
    if (intAttr(node, "noop_with_empty_axes", 0)) return [];
    axes = Array.from({ length: rank }, (_, i) => i);
  }
  return axes.map((x) => normAxis(x, rank)).sort((p, q) => p - q);
}

/** Broadcasts a reduction's output gradient back over the reduced axes of the input. */
function expandReduced(ctx: RuleContext, g: Value, axes: number[]): Value {
  const { b, node, inputs } = ctx;
  const keep = intAttr(node, "keepdims", 1) === 1;
  const kept = keep || axes.length === 0 ? g : b.unsqueeze(g, axes);
  return b.expand(kept, b.shapeOf(inputs[0]!));
}

const reduceSum: GradientRule = (ctx) => [expandReduced(ctx, g0(ctx), reducedAxes(ctx)), undefined];

const reduceMean: GradientRule = (ctx) => {
  const { b, inputs } = ctx;
  const x = inputs[0]!;
  const axes = reducedAxes(ctx);
  const dims = axes.map((a) => x.shape[a]);
  let g = g0(ctx);
  if (dims.every((d) => typeof d === "number")) {
    g = b.div(g, (dims as number[]).reduce((p, q) => p * q, 1));
  } else {
    const count = b.cast(b.reduceSum(b.gather(b.shapeOf(x), b.ints(axes)), undefined, false), x.dtype);
    g = b.div(g, count);
  }
  return [expandReduced(ctx, g, axes), undefined];
};

const reduceSumSquare: GradientRule = (ctx) => {
  const { b, inputs } = ctx;
  return [b.mul(expandReduced(ctx, g0(ctx), reducedAxes(ctx)), b.mul(inputs[0]!, 2)), undefined];
};

// ---- shape manipulation ------------------------------------------------------------------------------

const reshapeBack: GradientRule = (ctx) => {
  const { b, inputs } = ctx;
  const x = inputs[0]!;
  const g = g0(ctx);
  const target = x.shape.every((d) => typeof d === "number") ? (x.shape as number[]) : b.shapeOf(x);
  return [b.reshape(g, target), ...inputs.slice(1).map(() => undefined)];
};

const transpose: GradientRule = (ctx) => {
  const { b, node, inputs } = ctx;
  const rank = inputs[0]!.shape.length;
  const a = node.attributes.perm;
  const perm = a && a.type === "ints" ? a.value : Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const inverse = new Array<number>(rank);
  perm.forEach((p, i) => (inverse[p] = i));
  return [b.transpose(g0(ctx), inverse)];
};

const slice: GradientRule = (ctx) => {
  const { b, inputs } = ctx;
  const x = inputs[0]!;
  const rank = x.shape.length;
  const starts = constInts(ctx, 1, "starts");
  const ends = constInts(ctx, 2, "ends");
  const axes = inputs[3] ? constInts(ctx, 3, "axes") : starts.map((_, i) => i);
  const steps = inputs[4] ? constInts(ctx, 4, "steps") : starts.map(() => 1);
  let g = g0(ctx);
  axes.forEach((axis, i) => {
    const a = normAxis(axis, rank);
    const dim = x.shape[a];
    if (steps[i] !== 1) unsupported(ctx, `slices with step ${steps[i]} are not supported`);
    // the zeros to pad before and after the slice along this axis
    let before: number, after: number;
    if (typeof dim === "number") {
      const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
      const start = clamp(starts[i]);
      const end = Math.max(start, clamp(ends[i]));
      [before, after] = [start, dim - end];
    } else if (starts[i] >= 0 && (ends[i] < 0 || ends[i] >= 2 ** 31 - 1)) {
      // a symbolic length: a slice that keeps a fixed count off each end (x[:, a:-c], x[:, a:]) still pads
      // by fixed counts (the axis is assumed long enough, as the forward requires)
      [before, after] = [starts[i], ends[i] < 0 ? -ends[i] : 0];
    } else {
      unsupported(
        ctx,
        `sliced axis ${a} has symbolic size "${dim}": only x[a:-c] and x[a:] slices are supported`,
      );
    }
    // Pad the gradient with zeros before and after the slice along this axis (no zero-sized pieces).
    const pieces: Value[] = [];
    if (before > 0) pieces.push(zerosAlong(b, g, a, before));
    pieces.push(g);
    if (after > 0) pieces.push(zerosAlong(b, g, a, after));
    if (pieces.length > 1) g = b.concat(pieces, a);
  });
  return [g, undefined, undefined, undefined, undefined];
};

const concat: GradientRule = (ctx) => {
  const { b, node, inputs, needs } = ctx;
  const rank = inputs[0]!.shape.length;
  const axis = normAxis(intAttr(node, "axis", 0), rank);
  const sizes = inputs.map((v) => v!.shape[axis]);
  if (sizes.some((s) => typeof s !== "number")) unsupported(ctx, "concatenated sizes must be fixed");
  if (inputs.length === 1) return [g0(ctx)];
  const parts = b.split(g0(ctx), sizes as number[], axis);
  return parts.map((p, i) => (needs[i] ? p : undefined));
};

const split: GradientRule = (ctx) => {
  const { b, node, inputs, outputs, grads } = ctx;
  const axis = normAxis(intAttr(node, "axis", 0), inputs[0]!.shape.length);
  const parts = grads.map((g, i) => g ?? zerosLike(b, outputs[i]));
  return [parts.length === 1 ? parts[0] : b.concat(parts, axis), undefined];
};

const gather: GradientRule = (ctx) => {
  const { b, node, inputs, needs } = ctx;
  const [data, indices] = inputs as Value[];
  if (!needs[0]) return [undefined, undefined];
  const axis = normAxis(intAttr(node, "axis", 0), data.shape.length);
  if (axis !== 0) unsupported(ctx, `only axis 0 (embedding lookup) is supported, got axis ${axis}`);
  // Scatter-add each gathered row's gradient back to its row: ScatterND with indices [N, 1].
  const rowShape = data.shape.slice(1);
  if (rowShape.some((d) => typeof d !== "number")) unsupported(ctx, "gathered rows must have a fixed shape");
  const rows = b.reshape(b.cast(indices, "int64"), [-1, 1]);
  const updates = b.reshape(g0(ctx), [-1, ...(rowShape as number[])]);
  return [b.scatterND(zerosLike(b, data), rows, updates, "add"), undefined];
};

const gatherElements: GradientRule = (ctx) => {
  const { b, node, inputs } = ctx;
  const [data, indices] = inputs as Value[];
  const axis = intAttr(node, "axis", 0);
  return [b.scatterElements(zerosLike(b, data), indices, g0(ctx), axis, "add"), undefined];
};

const expand: GradientRule = (ctx) => [reduceToShape(ctx.b, g0(ctx), ctx.inputs[0]!.shape), undefined];

// ---- normalisation and losses -----------------------------------------------------------------------------

const layerNorm: GradientRule = (ctx) => {
  const { b, node, inputs, needs } = ctx;
  const [x, scale, bias] = inputs;
  const rank = x!.shape.length;
  const axis = normAxis(intAttr(node, "axis", -1), rank);
  const epsilon = floatAttr(node, "epsilon", 1e-5);
  const normAxes = Array.from({ length: rank - axis }, (_, i) => axis + i);
  const g = g0(ctx);
  // Recompute x̂ = (x − μ) / σ, then dx = (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)) / σ with ĝ = g ⊙ scale.
  const centered = b.sub(x!, b.reduceMean(x!, normAxes, true));
  const variance = b.reduceMean(b.mul(centered, centered), normAxes, true);
  const invStd = b.reciprocal(b.sqrt(b.add(variance, epsilon)));
  const xHat = b.mul(centered, invStd);
  const gHat = b.mul(g, scale!);
  let gx: Value | undefined;
  if (needs[0]) {
    const meanG = b.reduceMean(gHat, normAxes, true);
    const meanGx = b.reduceMean(b.mul(gHat, xHat), normAxes, true);
    gx = b.mul(b.sub(b.sub(gHat, meanG), b.mul(xHat, meanGx)), invStd);
  }
  const gScale = needs[1] ? reduceToShape(b, b.mul(g, xHat), scale!.shape) : undefined;
  const gBias = bias && needs[2] ? reduceToShape(b, g, bias.shape) : undefined;
  return [gx, gScale, gBias];
};

const softmaxCrossEntropy: GradientRule = (ctx) => {
  const { b, node, inputs, grads } = ctx;
  const [scores, labels, weights] = inputs;
  if (weights) unsupported(ctx, "class weights are not supported");
  if (grads[1]) unsupported(ctx, "the log_prob output must not reach the loss");
  const reduction = node.attributes.reduction?.type === "string" ? node.attributes.reduction.value : "mean";
  const ignore = node.attributes.ignore_index?.type === "int"
    ? node.attributes.ignore_index.value
    : undefined;
  // d loss / d scores = w · (softmax(scores) − one_hot(labels)), with w the per-row weight of the
  // reduction (0 on ignored rows). The one-hot term touches one class per row: it is scattered into the
  // scaled softmax instead of built as a [N, C, …] tensor (one pass over the scores instead of six).
  const labels64 = b.cast(labels!, "int64");
  const ignored = ignore === undefined ? undefined : b.equal(labels64, b.constant([ignore], "int64", []));
  const kept = ignored
    ? b.cast(b.not(ignored), scores!.dtype)
    : b.cast(b.equal(labels64, labels64), scores!.dtype);
  let g = grads[0]!;
  if (reduction === "mean") {
    const count = ignored
      ? b.reduceSum(kept, undefined, false)
      : b.cast(b.node("Size", [labels64])[0], scores!.dtype);
    g = b.div(g, b.max(count, 1));
  }
  const weight = b.mul(kept, g); // [N, …]: per-row factor (g is a scalar, or per row for "none")
  const scaled = b.mul(b.softmax(scores!, 1), b.unsqueeze(weight, [1]));
  const safeLabels = ignored ? b.where(ignored, b.constant([0], "int64", []), labels64) : labels64;
  const delta =
    b.node("ScatterElements", [scaled, b.unsqueeze(safeLabels, [1]), b.unsqueeze(b.neg(weight), [1])], {
      axis: attr.int(1),
      reduction: attr.string("add"),
    })[0];
  return [delta, undefined, undefined];
};

/**
 * The gradient rule of every differentiable op, by ONNX op type. Ops absent from the table fail at build
 * time with an error naming the op and node.
 */
export const GRADIENT_RULES: Readonly<Record<string, GradientRule>> = {
  Add: add,
  Sub: sub,
  Mul: mul,
  Div: div,
  Pow: pow,
  Neg: neg,
  Identity: identity,
  Sqrt: sqrt,
  Reciprocal: reciprocal,
  Exp: exp,
  Log: log,
  Tanh: tanh,
  Sigmoid: sigmoid,
  Erf: erf,
  Relu: relu,
  Abs: abs,
  Sin: sin,
  Cos: cos,
  Max: maxMin((b, x, y) => b.not(b.less(x, y))),
  Min: maxMin((b, x, y) => b.not(b.greater(x, y))),
  Clip: clip,
  Where: where,
  Cast: cast,
  Softmax: softmax,
  LogSoftmax: logSoftmax,
  MatMul: matmul,
  MatMulNBits: matMulNBits,
  Gemm: gemm,
  ReduceSum: reduceSum,
  ReduceMean: reduceMean,
  ReduceSumSquare: reduceSumSquare,
  Reshape: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Flatten: reshapeBack,
  Transpose: transpose,
  Slice: slice,
  Concat: concat,
  Split: split,
  Gather: gather,
  GatherElements: gatherElements,
  Expand: expand,
  LayerNormalization: layerNorm,
  SoftmaxCrossEntropyLoss: softmaxCrossEntropy,
};
