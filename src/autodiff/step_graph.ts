/**
 * {@linkcode buildStepGraph}: one graph for a training step and an evaluation, so that a training session holds
 * one copy of the base weights instead of one per session.
 *
 * onnxruntime-web gives every session its own copy of its initializers, and its API offers no way to share
 * them; a gradient graph and a forward-only graph as two sessions therefore hold the base twice (three times
 * with a gradient-accumulating variant). Here both become the branches of one `If` on a boolean input
 * `compute_gradients`, over outer-scope initializers: `then` runs forward and backward and outputs the loss and
 * the gradients; `else` runs the forward graph alone and outputs the loss and empty gradients.
 *
 * @module
 */

import type { Graph, Node, TensorData, ValueInfo } from "../onnx/types.ts";

/** The boolean input that chooses a training step (true) or an evaluation (false). */
export const COMPUTE_GRADIENTS = "compute_gradients";

/** Inputs for {@linkcode buildStepGraph}. */
export interface StepGraphParts {
  /** The forward graph (it outputs the loss). */
  forward: Graph;
  /** The gradient graph built from it (outputs the loss and `gradients`). */
  gradient: Graph;
  /** The loss output's name. */
  loss: string;
  /** Gradient output names, in order. */
  gradients: readonly string[];
}

/** Renames a graph's values and nodes with a prefix, except the names visible from the outer scope. */
function branch(g: Graph, prefix: string, outer: ReadonlySet<string>, keep: ReadonlySet<string>): Graph {
  const rename = (n: string) => (n === "" || outer.has(n) ? n : `${prefix}${n}`);
  const nodes: Node[] = g.nodes.map((n) => ({
    ...n,
    name: `${prefix}${n.name}`,
    inputs: n.inputs.map(rename),
    outputs: n.outputs.map(rename),
  }));
  return {
    name: `${prefix}${g.name}`,
    nodes,
    inputs: [],
    outputs: g.outputs.filter((o) => keep.has(o.name)).map((o) => ({ ...o, name: rename(o.name) })),
    initializers: g.initializers.filter((t) => !outer.has(t.name)).map((t) => ({
      ...t,
      name: rename(t.name),
    })),
    valueInfo: [],
  };
}

/**
 * Composes a gradient graph and its forward graph into one step graph: the inputs of the gradient graph plus
 * {@linkcode COMPUTE_GRADIENTS}; the forward graph's initializers in the outer scope (one copy); outputs the
 * loss and the gradients (empty tensors when `compute_gradients` is false).
 *
 * @param parts The forward and gradient graphs, the loss and the gradient names.
 * @returns The step graph.
 * @throws {TypeError} When the gradient graph lacks an output.
 */
export function buildStepGraph(parts: StepGraphParts): Graph {
  const { forward, gradient, loss, gradients } = parts;
  const outputs = [loss, ...gradients];
  for (const name of outputs) {
    if (!gradient.outputs.some((o) => o.name === name)) {
      throw new TypeError(`Cannot build the step graph: the gradient graph has no output "${name}"`);
    }
  }
  const shared: TensorData[] = forward.initializers;
  const outer = new Set<string>([...gradient.inputs.map((i) => i.name), ...shared.map((t) => t.name)]);
  const then = branch(gradient, "train/", outer, new Set(outputs));
  const forwardOnly = branch(forward, "eval/", outer, new Set([loss]));
  // the else branch's gradients: empty float tensors (If's branches must have the same outputs)
  for (const [i, name] of gradients.entries()) {
    const empty = `eval/empty.${name}`;
    forwardOnly.nodes.push({
      opType: "Constant",
      name: `eval/empty_${i}`,
      inputs: [],
      outputs: [empty],
      attributes: {
        value: { type: "tensor", value: { name: "", dtype: "float32", dims: [0], data: new Uint8Array() } },
      },
    });
    forwardOnly.outputs.push({ name: empty, type: { dtype: "float32", shape: [0] } });
  }
  const condition: ValueInfo = { name: COMPUTE_GRADIENTS, type: { dtype: "bool", shape: [] } };
  return {
    name: `${forward.name}_step`,
    nodes: [{
      opType: "If",
      name: "train_or_eval",
      inputs: [COMPUTE_GRADIENTS],
      outputs,
      attributes: {
        then_branch: { type: "graph", value: then },
        else_branch: { type: "graph", value: forwardOnly },
      },
    }],
    inputs: [...gradient.inputs, condition],
    outputs: outputs.map((name) => {
      const info = gradient.outputs.find((o) => o.name === name)!;
      return name === loss ? info : { name, type: { dtype: info.type?.dtype ?? "float32" } };
    }),
    initializers: shared,
    valueInfo: [],
  };
}
