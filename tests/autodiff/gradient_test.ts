// Structure of gradient graphs: what gets differentiated, how repeated uses are summed, and the errors.

import assert from "node:assert/strict";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { buildGradientGraph } from "../../src/autodiff/gradient.ts";

function threeLayerMlp() {
  const b = new GraphBuilder("mlp3");
  let h = b.input("x", "float32", [2, 4]);
  for (let layer = 0; layer < 3; layer++) {
    const w = b.input(`w${layer}`, "float32", [4, 4]);
    h = b.withScope(`layer${layer}`, () => b.tanh(b.matmul(h, w)));
  }
  b.output(b.reduceSum(h, undefined, false), "loss");
  return b.toGraph();
}

Deno.test("only nodes between trainable inputs and the loss are differentiated", () => {
  const forward = threeLayerMlp();
  const { graph, differentiated } = buildGradientGraph(forward, { loss: "loss", trainable: ["w2"] });
  assert.ok(differentiated.length > 0);
  assert.ok(
    differentiated.every((name) => !name.startsWith("layer0") && !name.startsWith("layer1")),
    differentiated.join(),
  );
  const backward = graph.nodes.slice(forward.nodes.length);
  assert.ok(backward.length > 0);
  for (const node of backward) {
    assert.ok(!/layer[01]\//.test(node.name), `backward node ${node.name} belongs to a frozen layer`);
  }
  // With the first layer trainable, every layer is differentiated.
  const all = buildGradientGraph(forward, { loss: "loss", trainable: ["w0"] });
  assert.ok(
    all.differentiated.some((n) => n.startsWith("layer0")) && all.backwardNodeCount > backward.length,
  );
});

Deno.test("gradients of a value used several times are summed once", () => {
  const b = new GraphBuilder("reuse");
  const w = b.input("w", "float32", [3]);
  const y = b.add(b.add(b.mul(w, 2), b.exp(w)), b.sin(w));
  b.output(b.reduceSum(y, undefined, false), "loss");
  const { graph } = buildGradientGraph(b.toGraph(), { loss: "loss", trainable: ["w"] });
  const sums = graph.nodes.filter((n) => n.name.startsWith("grad_sum/w/"));
  // three contributions → one tree of two Adds
  assert.equal(sums.length, 2);
  assert.ok(sums.every((n) => n.opType === "Add"));
});

Deno.test("ops without a gradient rule fail at build time naming the op and node", () => {
  const b = new GraphBuilder("topk");
  const w = b.input("w", "float32", [5]);
  const [values] = b.topK(w, 2);
  b.output(b.reduceSum(values, undefined, false), "loss");
  assert.throws(
    () => buildGradientGraph(b.toGraph(), { loss: "loss", trainable: ["w"] }),
    (e: Error) =>
      e instanceof TypeError && /op TopK has no gradient rule/.test(e.message) && /"TopK"/.test(e.message),
  );
});

Deno.test("ops off the differentiated path need no rule", () => {
  const b = new GraphBuilder("frozen_topk");
  const frozen = b.input("frozen", "float32", [5]);
  const w = b.input("w", "float32", [2]);
  const [values] = b.topK(frozen, 2);
  b.output(b.reduceSum(b.mul(values, w), undefined, false), "loss");
  const { graph } = buildGradientGraph(b.toGraph(), { loss: "loss", trainable: ["w"] });
  assert.ok(graph.outputs.some((o) => o.name === "grad.w"));
});

Deno.test("bad requests give clear errors", () => {
  const b = new GraphBuilder("bad");
  const w = b.input("w", "float32", [3]);
  const ids = b.input("ids", "int64", [3]);
  b.output(b.mul(w, w), "not_scalar");
  b.output(b.reduceSum(w, undefined, false), "loss");
  const graph = b.toGraph();
  assert.throws(
    () => buildGradientGraph(graph, { loss: "not_scalar", trainable: ["w"] }),
    /must be a float scalar, got float32\[3\]/,
  );
  assert.throws(
    () => buildGradientGraph(graph, { loss: "missing", trainable: ["w"] }),
    /Unknown value "missing"/,
  );
  assert.throws(
    () => buildGradientGraph(graph, { loss: "loss", trainable: ["nope"] }),
    /trainable "nope" is not a graph input/,
  );
  assert.throws(
    () => buildGradientGraph(graph, { loss: "loss", trainable: [ids.name] }),
    /trainable "ids" is int64/,
  );
});

Deno.test("accumulation and loss-scale inputs are added on request", () => {
  const b = new GraphBuilder("acc");
  const w = b.input("w", "float32", [2, 2]);
  b.output(b.reduceSum(b.mul(w, w), undefined, false), "loss");
  const { graph } = buildGradientGraph(b.toGraph(), {
    loss: "loss",
    trainable: ["w"],
    accumulate: true,
    lossScale: true,
  });
  const inputs = graph.inputs.map((i) => i.name);
  assert.deepEqual(inputs.sort(), ["grad_acc.w", "loss_scale", "w"]);
  assert.deepEqual(graph.outputs.map((o) => o.name), ["loss", "grad.w"]);
});

Deno.test("a trainable input that does not reach the loss gets a zero gradient", () => {
  const b = new GraphBuilder("unused");
  const w = b.input("w", "float32", [2]);
  b.input("unused", "float32", [3]);
  b.output(b.reduceSum(w, undefined, false), "loss");
  const { graph } = buildGradientGraph(b.toGraph(), { loss: "loss", trainable: ["w", "unused"] });
  const out = graph.outputs.find((o) => o.name === "grad.unused");
  assert.deepEqual(out?.type?.shape, [3]);
});
