// The step graph holds the base weights once (outer scope) and answers a training step and an evaluation
// from one session: the evaluation's loss equals the training step's on the same batch and parameters.

import assert from "node:assert/strict";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { buildGradientGraph } from "../../src/autodiff/gradient.ts";
import { buildStepGraph, COMPUTE_GRADIENTS } from "../../src/autodiff/step_graph.ts";
import { TrainingSession } from "../../src/autodiff/training_session.ts";
import { ort } from "../../src/runtime/ort.ts";

function forwardGraph() {
  const b = new GraphBuilder("fit");
  const x = b.input("x", "float32", [4, 3]);
  const w = b.input("w", "float32", [3, 2]);
  const base = b.initializer("base", Float32Array.from([1, -1, 0.5, 2, -0.5, 0.25]), [3, 2]);
  const y = b.matmul(x, b.add(base, w));
  b.output(b.reduceSum(b.mul(y, y), undefined, false), "loss");
  return b.toGraph();
}

Deno.test("buildStepGraph: one If over outer-scope base weights; branches hold no copy", () => {
  const forward = forwardGraph();
  const { graph, gradientNames } = buildGradientGraph(forward, {
    loss: "loss",
    trainable: ["w"],
    lossScale: true,
  });
  const step = buildStepGraph({
    forward,
    gradient: graph,
    loss: "loss",
    gradients: Object.values(gradientNames),
  });
  assert.equal(step.nodes.length, 1);
  assert.equal(step.nodes[0].opType, "If");
  assert.deepEqual(step.initializers.map((t) => t.name), ["base"]);
  for (const name of ["then_branch", "else_branch"]) {
    const branch = step.nodes[0].attributes[name];
    assert.equal(branch.type, "graph");
    const g = (branch as { value: { initializers: { name: string }[]; outputs: unknown[] } }).value;
    assert.ok(!g.initializers.some((t) => t.name.endsWith("base")), `${name} holds no copy of the base`);
    assert.equal(g.outputs.length, 2);
  }
  assert.ok(step.inputs.some((i) => i.name === COMPUTE_GRADIENTS));
  assert.deepEqual(step.outputs.map((o) => o.name), ["loss", "grad.w"]);
});

Deno.test("a TrainingSession's evaluation equals its training step's loss (one session for both)", async () => {
  for (const gradientAccumulation of [false, true]) {
    const session = await TrainingSession.create({
      forward: forwardGraph(),
      loss: "loss",
      groups: [{ name: "all", kind: "sgd", parameters: [{ name: "w", shape: [3, 2] }] }],
      initial: { w: Float32Array.from([0.1, 0.2, 0.3, -0.1, 0, 0.05]) },
      ep: "wasm",
      gradientAccumulation,
    });
    const x = {
      x: new ort.Tensor("float32", Float32Array.from([1, 2, 3, 0, 1, 0, -1, 0.5, 2, 1, 1, 1]), [4, 3]),
    };
    const evaluated = await session.evalLoss(x);
    const trained = await session.trainStep(x);
    assert.ok(Math.abs(evaluated - trained) < 1e-5 * Math.abs(trained), `${evaluated} vs ${trained}`);
    assert.equal((await session.gradient("w")).length, 6);
    await session.release();
  }
});
