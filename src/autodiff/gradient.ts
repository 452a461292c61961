/**
 * Reverse-mode differentiation of ONNX graphs: {@linkcode buildGradientGraph} extends a forward graph with
 * the gradient of a scalar loss with respect to chosen graph inputs, using only standard ONNX ops.
 *
 * Only nodes on a path from a trainable input to the loss are differentiated, so frozen branches (layers
 * below the lowest trainable tensor) get no backward nodes. Gradients of a value used several times are
 * summed once, after all their contributions are known.
 *
 * @module
 */

import { GraphBuilder, type Value } from "../onnx/builder.ts";
import type { Graph, ValueInfo } from "../onnx/types.ts";
import { GRADIENT_RULES } from "./rules.ts";
import { sumAll, zerosLike } from "./_util.ts";

/** Options for {@linkcode buildGradientGraph}. */
export interface GradientGraphOptions {
  /** Name of the scalar loss output of the forward graph. */
  loss: string;
  /** Graph inputs to differentiate with respect to. */
  trainable: readonly string[];
  /**
   * Forward outputs to keep as outputs of the gradient graph besides the loss (e.g. logits).
   * @default {[]}
   */
  keepOutputs?: readonly string[];
  /**
   * Adds a scalar input `loss_scale` that multiplies the seed gradient (for weighting micro-batches).
   * @default {false}
   */
  lossScale?: boolean;
  /**
   * Adds an input `grad_acc.<name>` per trainable tensor and outputs `grad.<name>` = that input + the new
   * gradient, for gradient accumulation over micro-batches.
   * @default {false}
   */
  accumulate?: boolean;
}

/** The result of {@linkcode buildGradientGraph}. */
export interface GradientGraph {
  /** Forward + backward graph: outputs the loss, kept outputs and `grad.<name>` per trainable input. */
  graph: Graph;
  /** Gradient output name per trainable input. */
  gradientNames: Record<string, string>;
  /** Names of forward nodes that were differentiated, in forward order. */
  differentiated: string[];
  /** Number of nodes added for the backward pass. */
  backwardNodeCount: number;
}

/** Integer- or bool-valued ops: their outputs carry no gradient. */
const NON_DIFFERENTIABLE = new Set([
  "Shape",
  "Size",
  "Equal",
  "Less",
  "LessOrEqual",
  "Greater",
  "GreaterOrEqual",
  "Not",
  "And",
  "Or",
  "Xor",
  "ArgMax",
  "ArgMin",
  "IsNaN",
  "IsInf",
  "Sign",
  "Floor",
  "Ceil",
  "Round",
  "ConstantOfShape",
  "Range",
]);

function isFloat(dtype: string): boolean {
  return dtype === "float32" || dtype === "float16" || dtype === "float64" || dtype === "bfloat16";
}

/**
 * Builds the training graph of `forward`: the loss and the gradient of every trainable input.
 *
 * @param forward A graph with a scalar float loss output.
 * @param options Loss name, trainable inputs, accumulation settings.
 * @returns The gradient graph and bookkeeping.
 * @throws {TypeError} When the loss is not a scalar, a trainable name is not a float graph input, or an op
 *   on a differentiated path has no gradient rule (the message names the op and node).
 * @example
 * ```ts
 * import { GraphBuilder } from "../onnx/builder.ts";
 * import { buildGradientGraph } from "./gradient.ts";
 * const b = new GraphBuilder("square");
 * const w = b.input("w", "float32", [3]);
 * b.output(b.reduceSum(b.mul(w, w), undefined, false), "loss");
 * const { graph, gradientNames } = buildGradientGraph(b.toGraph(), { loss: "loss", trainable: ["w"] });
 * console.assert(gradientNames.w === "grad.w" && graph.outputs.length === 2);
 * ```
 */
export function buildGradientGraph(forward: Graph, options: GradientGraphOptions): GradientGraph {
  const b = GraphBuilder.fromGraph(forward);
  const lossInfo = b.type(options.loss);
  if (!forward.outputs.some((o) => o.name === options.loss)) {
    throw new TypeError(
      `Cannot differentiate graph "${forward.name}": "${options.loss}" is not a graph output`,
    );
  }
  if ((lossInfo.shape ?? []).length !== 0 || !isFloat(lossInfo.dtype)) {
    throw new TypeError(
      `Cannot differentiate graph "${forward.name}": loss "${options.loss}" must be a float scalar, ` +
        `got ${lossInfo.dtype}[${(lossInfo.shape ?? []).join(", ")}]`,
    );
  }
  const inputNames = new Set(forward.inputs.map((i) => i.name));
  for (const name of options.trainable) {
    if (!inputNames.has(name)) {
      throw new TypeError(
        `Cannot differentiate graph "${forward.name}": trainable "${name}" is not a graph input`,
      );
    }
    if (!isFloat(b.type(name).dtype)) {
      throw new TypeError(
        `Cannot differentiate graph "${forward.name}": trainable "${name}" is ${b.type(name).dtype}`,
      );
    }
  }

  // 1. Values that depend on a trainable input (forward sweep).
  const active = new Set(options.trainable);
  for (const node of forward.nodes) {
    if (NON_DIFFERENTIABLE.has(node.opType)) continue;
    if (!node.inputs.some((i) => active.has(i))) continue;
    for (const out of node.outputs) if (out && isFloat(b.type(out).dtype)) active.add(out);
  }
  // 2. Values the loss depends on (backward sweep).
  const needed = new Set([options.loss]);
  for (let i = forward.nodes.length - 1; i >= 0; i--) {
    const node = forward.nodes[i];
    if (node.outputs.some((o) => needed.has(o))) {
      for (const input of node.inputs) if (input) needed.add(input);
    }
  }
  const onPath = (name: string) => active.has(name) && needed.has(name);
  const nodes = forward.nodes.filter((n) => n.outputs.some(onPath));

  // 3. Reverse sweep: seed d(loss) and apply one rule per node, last node first.
  const contributions = new Map<string, Value[]>();
  const contribute = (name: string, grad: Value) => {
    const list = contributions.get(name);
    if (list) list.push(grad);
    else contributions.set(name, [grad]);
  };
  const takeGradient = (name: string): Value | undefined => {
    const list = contributions.get(name);
    if (!list) return undefined;
    const total = b.withScope(`grad_sum/${name}`, () => sumAll(b, list));
    contributions.set(name, [total]);
    return total;
  };
  const before = b.toGraph().nodes.length;
  const seed = options.lossScale
    ? b.input("loss_scale", lossInfo.dtype, [])
    : b.constant([1], lossInfo.dtype, []);
  contribute(options.loss, seed);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    const grads = node.outputs.map((o) => (o && onPath(o) ? takeGradient(o) : undefined));
    if (grads.every((g) => g === undefined)) continue;
    const rule = GRADIENT_RULES[node.opType];
    if (!rule) {
      throw new TypeError(
        `Cannot differentiate node "${node.name}": op ${node.opType} has no gradient rule ` +
          `(supported: ${Object.keys(GRADIENT_RULES).join(", ")})`,
      );
    }
    const inputs = node.inputs.map((name) => (name ? b.value(name) : undefined));
    const outputs = node.outputs.map((name) => b.value(name));
    const needs = node.inputs.map((name) => Boolean(name) && onPath(name));
    const inputGrads = b.withScope(
      `grad/${node.name}`,
      () => rule({ b, node, inputs, outputs, grads, needs }),
    );
    inputGrads.forEach((g, k) => {
      if (g && needs[k]) contribute(node.inputs[k], g);
    });
  }

  // 4. Outputs: loss, kept forward outputs, one gradient per trainable input.
  const gradientNames: Record<string, string> = {};
  const outputs: ValueInfo[] = [];
  const declare = (v: Value) => outputs.push({ name: v.name, type: { dtype: v.dtype, shape: [...v.shape] } });
  declare(b.value(options.loss));
  for (const name of options.keepOutputs ?? []) declare(b.value(name));
  for (const name of options.trainable) {
    const outName = `grad.${name}`;
    let grad = takeGradient(name) ?? b.withScope(`grad_zero/${name}`, () => zerosLike(b, b.value(name)));
    if (options.accumulate) {
      const acc = b.input(`grad_acc.${name}`, b.type(name).dtype, b.type(name).shape!);
      grad = b.add(acc, grad);
    }
    declare(b.output(grad, outName));
    gradientNames[name] = outName;
  }
  const graph = b.toGraph();
  return {
    graph: { ...graph, name: `${forward.name}_training`, outputs },
    gradientNames,
    differentiated: nodes.map((n) => n.name),
    backwardNodeCount: graph.nodes.length - before,
  };
}
