// Gradient checking: analytic gradients of our gradient graphs, evaluated in float64 by the independent
// reference interpreter (tests/_reference), against central finite differences of the forward graph, also
// evaluated in float64 by the reference interpreter. The same gradient graphs then run on onnxruntime-web
// (float32) and must agree with the float64 gradients.

import { GraphBuilder, type Value } from "../../src/onnx/builder.ts";
import { modelFromGraph } from "../../src/onnx/model.ts";
import type { DType, Graph, Shape } from "../../src/onnx/types.ts";
import { buildGradientGraph } from "../../src/autodiff/gradient.ts";
import { OnnxSession } from "../../src/runtime/session.ts";
import { ort } from "../../src/runtime/ort.ts";
import type { ExecutionProvider } from "../../src/runtime/execution_provider.ts";
import { evaluate, type RefTensor } from "../_reference/mod.ts";
import { assertClose, seededRandom } from "./_numeric.ts";

export { assertClose, seededRandom };

/** How to fill one input of a gradient-check case. */
export interface InputSpec {
  shape: number[];
  dtype?: DType;
  /** Keep values in (0.5, 1.5) (for Log, Sqrt, Pow with fractional exponents). */
  positive?: boolean;
  /** Fixed values (integer inputs such as indices and labels). */
  values?: number[];
  /** Differentiate with respect to this input. @default true for float inputs */
  trainable?: boolean;
}

/** One op under test: its inputs and a function building the output from them. */
export interface GradCase {
  name: string;
  inputs: Record<string, InputSpec>;
  build: (b: GraphBuilder, inputs: Record<string, Value>) => Value;
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The forward graph of a case: its output y, then loss = Σ y ⊙ R with a fixed random R (so dL/dy = R). */
export function caseGraph(
  c: GradCase,
  seed = 1,
): { graph: Graph; feeds: Record<string, RefTensor>; trainable: string[] } {
  const rand = seededRandom(seed);
  const b = new GraphBuilder(c.name);
  const inputs: Record<string, Value> = {};
  const feeds: Record<string, RefTensor> = {};
  const trainable: string[] = [];
  for (const [name, spec] of Object.entries(c.inputs)) {
    const dtype = spec.dtype ?? "float32";
    inputs[name] = b.input(name, dtype, spec.shape);
    const n = size(spec.shape);
    const values = spec.values ??
      Array.from({ length: n }, () => (spec.positive ? 1 + 0.5 * rand() : rand()));
    if (dtype === "int64") {
      feeds[name] = { dtype, dims: spec.shape, data: BigInt64Array.from(values.map(BigInt)) };
    } else if (dtype === "bool") feeds[name] = { dtype, dims: spec.shape, data: Uint8Array.from(values) };
    else feeds[name] = { dtype, dims: spec.shape, data: Float64Array.from(values) };
    if (dtype === "float32" && spec.trainable !== false) trainable.push(name);
  }
  const y = c.build(b, inputs);
  const shape = y.shape as number[];
  const weights = b.initializer(
    "loss_weights",
    Float32Array.from({ length: size(shape) }, () => rand()),
    shape,
  );
  b.output(b.reduceSum(b.mul(y, weights), undefined, false), "loss");
  return { graph: b.toGraph(), feeds, trainable };
}

function lossOf(graph: Graph, feeds: Record<string, RefTensor>): number {
  return (evaluate(graph, feeds).loss.data as Float64Array)[0];
}

/** Central finite differences of the loss in float64 (reference interpreter), per trainable input. */
export function finiteDifferences(
  graph: Graph,
  feeds: Record<string, RefTensor>,
  trainable: string[],
  eps = 1e-5,
): Record<string, Float64Array> {
  const out: Record<string, Float64Array> = {};
  for (const name of trainable) {
    const base = feeds[name].data as Float64Array;
    const grad = new Float64Array(base.length);
    for (let i = 0; i < base.length; i++) {
      const plus = Float64Array.from(base), minus = Float64Array.from(base);
      plus[i] += eps;
      minus[i] -= eps;
      const lp = lossOf(graph, { ...feeds, [name]: { ...feeds[name], data: plus } });
      const lm = lossOf(graph, { ...feeds, [name]: { ...feeds[name], data: minus } });
      grad[i] = (lp - lm) / (2 * eps);
    }
    out[name] = grad;
  }
  return out;
}

/** Float64 tolerance of analytic vs finite-difference gradients. */
export const FD_TOLERANCE = { atol: 1e-6, rtol: 1e-5 };
/** Tolerance of float32 onnxruntime gradients vs float64 reference gradients. */
export const F32_TOLERANCE = { atol: 2e-5, rtol: 2e-4 };

function toOrt(t: RefTensor): ort.Tensor {
  if (t.dtype === "int64") return new ort.Tensor("int64", t.data as BigInt64Array, t.dims);
  if (t.dtype === "bool") return new ort.Tensor("bool", t.data as Uint8Array, t.dims);
  return new ort.Tensor("float32", Float32Array.from(t.data as Float64Array), t.dims);
}

/**
 * Checks one case: reference analytic gradients vs finite differences (float64), then onnxruntime's
 * gradients on each execution provider vs the reference.
 */
export async function checkCase(c: GradCase, eps: ExecutionProvider[]): Promise<void> {
  const { graph, feeds, trainable } = caseGraph(c);
  const { graph: gradGraph, gradientNames } = buildGradientGraph(graph, { loss: "loss", trainable });
  const analytic = evaluate(gradGraph, feeds);
  const numeric = finiteDifferences(graph, feeds, trainable);
  for (const name of trainable) {
    assertClose(
      analytic[gradientNames[name]].data as Float64Array,
      numeric[name],
      FD_TOLERANCE,
      `${c.name}: d/d${name}`,
    );
  }
  for (const ep of eps) {
    const session = await OnnxSession.create(modelFromGraph(gradGraph), { ep });
    try {
      const out = await session.run(Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, toOrt(v)])));
      for (const name of trainable) {
        const got = (await out[gradientNames[name]].getData()) as Float32Array;
        assertClose(
          got,
          analytic[gradientNames[name]].data as Float64Array,
          F32_TOLERANCE,
          `${c.name} on ${ep}: d/d${name}`,
        );
      }
    } finally {
      await session.release();
    }
  }
}

/** Shape helper for readable cases. */
export function shape(...dims: number[]): Shape {
  return dims;
}
