// Optimizer graphs against a float64 TypeScript implementation of the same update rules
// (PyTorch's AdamW with decoupled weight decay; SGD with momentum and L2), with global-norm clipping.
// Tolerance: float32 graph vs float64 reference, |Δ| ≤ 1e-6 + 1e-5·|ref|.

import assert from "node:assert/strict";
import { buildOptimizerGraph } from "../../src/autodiff/optimizer.ts";
import { modelFromGraph } from "../../src/onnx/model.ts";
import { OnnxSession } from "../../src/runtime/session.ts";
import { ort } from "../../src/runtime/ort.ts";
import { assertClose, seededRandom } from "./_numeric.ts";

const TOL = { atol: 1e-6, rtol: 1e-5 };

function scalar(v: number) {
  return new ort.Tensor("float32", new Float32Array([v]), []);
}

Deno.test("AdamW step matches the reference, with clipping, over three steps", async () => {
  const rand = seededRandom(3);
  const shapes: Record<string, number[]> = { a: [2, 3], b: [4] };
  const graph = buildOptimizerGraph({
    groups: [{
      name: "main",
      kind: "adamw",
      weightDecay: 0.1,
      beta1: 0.8,
      beta2: 0.95,
      epsilon: 1e-6,
      parameters: [
        { name: "a", shape: shapes.a },
        { name: "b", shape: shapes.b },
      ],
    }],
    maxGradNorm: 0.5,
  });
  const session = await OnnxSession.create(modelFromGraph(graph), { ep: "wasm" });
  const ref: Record<string, { p: number[]; m: number[]; v: number[] }> = {};
  const state: Record<string, ort.Tensor> = {};
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((x, y) => x * y, 1);
    const p = Array.from({ length: n }, () => rand());
    ref[name] = { p, m: new Array(n).fill(0), v: new Array(n).fill(0) };
    state[name] = new ort.Tensor("float32", Float32Array.from(p), shape);
    state[`adam_m.${name}`] = new ort.Tensor("float32", new Float32Array(n), shape);
    state[`adam_v.${name}`] = new ort.Tensor("float32", new Float32Array(n), shape);
  }
  const lr = 0.01, scale = 0.5;
  for (let step = 1; step <= 3; step++) {
    const grads: Record<string, number[]> = {};
    const feeds: Record<string, ort.Tensor> = {
      ...state,
      step: scalar(step),
      grad_scale: scalar(scale),
      "lr.main": scalar(lr),
    };
    for (const [name, shape] of Object.entries(shapes)) {
      grads[name] = ref[name].p.map(() => Math.fround(rand() * 2));
      feeds[`grad.${name}`] = new ort.Tensor("float32", Float32Array.from(grads[name]), shape);
    }
    // reference: scale, global norm, clip, AdamW
    for (const name in grads) grads[name] = grads[name].map((g) => g * scale);
    const norm = Math.sqrt(Object.values(grads).flat().reduce((s, g) => s + g * g, 0));
    const coef = Math.min(1, 0.5 / (norm + 1e-6));
    for (const name in grads) {
      const r = ref[name];
      grads[name].forEach((g0, i) => {
        const g = g0 * coef;
        r.m[i] = 0.8 * r.m[i] + 0.2 * g;
        r.v[i] = 0.95 * r.v[i] + 0.05 * g * g;
        const mHat = r.m[i] / (1 - 0.8 ** step), vHat = r.v[i] / (1 - 0.95 ** step);
        r.p[i] = r.p[i] * (1 - lr * 0.1) - lr * mHat / (Math.sqrt(vHat) + 1e-6);
      });
    }
    const out = await session.run(feeds);
    assertClose([(out.grad_norm.data as Float32Array)[0]], [norm], TOL, `grad_norm at step ${step}`);
    for (const name of Object.keys(shapes)) {
      for (const key of [name, `adam_m.${name}`, `adam_v.${name}`]) state[key] = out[`updated.${key}`];
      assertClose(out[`updated.${name}`].data as Float32Array, ref[name].p, TOL, `${name} at step ${step}`);
      assertClose(
        out[`updated.adam_v.${name}`].data as Float32Array,
        ref[name].v,
        TOL,
        `adam_v.${name} at step ${step}`,
      );
    }
  }
  await session.release();
});

Deno.test("SGD with momentum and weight decay matches the reference; groups keep their own rates", async () => {
  const graph = buildOptimizerGraph({
    groups: [
      { name: "gates", kind: "sgd", clip: false, parameters: [{ name: "gate", shape: [3] }] },
      {
        name: "body",
        kind: "sgd",
        momentum: 0.9,
        weightDecay: 0.01,
        parameters: [{ name: "w", shape: [2] }],
      },
    ],
    maxGradNorm: 1,
  });
  const session = await OnnxSession.create(modelFromGraph(graph), { ep: "wasm" });
  const out = await session.run({
    step: scalar(1),
    grad_scale: scalar(1),
    "lr.gates": scalar(5),
    "lr.body": scalar(0.1),
    gate: new ort.Tensor("float32", Float32Array.from([1, 1, 1]), [3]),
    "grad.gate": new ort.Tensor("float32", Float32Array.from([0.1, -0.2, 0.3]), [3]),
    w: new ort.Tensor("float32", Float32Array.from([1, -1]), [2]),
    "grad.w": new ort.Tensor("float32", Float32Array.from([3, 4]), [2]),
    "momentum.w": new ort.Tensor("float32", Float32Array.from([0.5, 0.5]), [2]),
  });
  // gates: not clipped, lr 5
  assertClose(out["updated.gate"].data as Float32Array, [1 - 0.5, 1 + 1, 1 - 1.5], TOL, "gate");
  // body: norm 5 (only clipped groups count) → coef 1/(5+1e-6); g += wd·w; buf = 0.9·buf + g; w -= lr·buf
  const coef = 1 / (5 + 1e-6);
  const g = [3 * coef + 0.01 * 1, 4 * coef - 0.01 * 1];
  const buf = [0.45 + g[0], 0.45 + g[1]];
  assertClose(out["updated.momentum.w"].data as Float32Array, buf, TOL, "momentum");
  assertClose(out["updated.w"].data as Float32Array, [1 - 0.1 * buf[0], -1 - 0.1 * buf[1]], TOL, "w");
  assertClose([(out.grad_norm.data as Float32Array)[0]], [5], TOL, "grad_norm");
  await session.release();
});

Deno.test("optimizer graph rejects duplicate and empty groups", () => {
  assert.throws(
    () => buildOptimizerGraph({ groups: [{ name: "g", kind: "sgd", parameters: [] }] }),
    /group "g" is empty/,
  );
  assert.throws(
    () =>
      buildOptimizerGraph({
        groups: [
          { name: "a", kind: "sgd", parameters: [{ name: "w", shape: [1] }] },
          { name: "b", kind: "adamw", parameters: [{ name: "w", shape: [1] }] },
        ],
      }),
    /parameter "w" is in two groups/,
  );
});
