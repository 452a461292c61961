// Optimizer graphs against a float64 TypeScript implementation of the same update rules
// (PyTorch's AdamW with decoupled weight decay; SGD with momentum and L2), with global-norm clipping.
// Tolerance: float32 graph vs float64 reference, |Δ| ≤ 1e-6 + 1e-5·|ref|.

import assert from "node:assert/strict";
import { buildOptimizerGraph } from "../../src/autodiff/optimizer.ts";
import { modelFromGraph } from "../../src/onnx/model.ts";
import { OnnxSession } from "../../src/runtime/session.ts";
import { ort } from "../../src/runtime/ort.ts";
import { assertClose, seededRandom } from "./_numeric.ts";
import { projectTopK } from "../../src/lora/top_k.ts";

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

/** One run of a gate-projection group over `gate` [n] (a float64 reference is written out in each test). */
async function gateRun(
  session: OnnxSession,
  feeds: { gate: number[]; grad: number[]; weight?: number[]; mode: number; k: number; lr: number },
  state: Record<string, number[]>,
) {
  const n = feeds.gate.length;
  const vec = (v: number[]) => new ort.Tensor("float32", Float32Array.from(v), [n]);
  const out = await session.run({
    step: scalar(1),
    grad_scale: scalar(1),
    "lr.gates": scalar(feeds.lr),
    "gate_mode.gates": scalar(feeds.mode),
    "gate_k.gates": new ort.Tensor("int64", new BigInt64Array([BigInt(feeds.k)]), [1]),
    gate: vec(feeds.gate),
    "grad.gate": vec(feeds.grad),
    "gate_weight.gate": vec(feeds.weight ?? new Array(n).fill(1)),
    ...Object.fromEntries(Object.entries(state).map(([name, v]) => [`${name}.gate`, vec(v)])),
  });
  const read = (name: string) => Array.from(out[name].data as Float32Array);
  return {
    gate: read("updated.gate"),
    kept: read("updated.gate_kept.gate"),
    scores: read("updated.gate_scores.gate"),
    movement: read("updated.gate_movement.gate"),
    taylor: read("updated.gate_taylor.gate"),
    projected: read("gate_projected.gate")[0],
  };
}

Deno.test("a gate-projection group steps and projects onto the top K like the host; mode 0 and zero gradients leave it", async () => {
  const graph = buildOptimizerGraph({
    groups: [{
      name: "gates",
      kind: "sgd",
      clip: false,
      gateProjection: true,
      parameters: [{ name: "gate", shape: [5] }],
    }],
  });
  const session = await OnnxSession.create(modelFromGraph(graph), { ep: "wasm" });
  const fresh = {
    gate_kept: [-1, -1, -1, -1, -1],
    gate_scores: [0, 0, 0, 0, 0],
    gate_movement: [0.5, 0, 0, 0, 0],
    gate_taylor: [0, 0, 0, 0, 0.25],
  };
  const gate = [1, 1, 1, 1, 1];
  // a step and a projection: values = g − lr·∂L/∂g / weight, the top 2 kept (ties to the lower index)
  const grad = [0.1, -0.2, 0.3, -0.2, 0];
  const weight = [1, 2, 1, 1, 0.5];
  const step = await gateRun(session, { gate, grad, weight, mode: 1, k: 2, lr: 0.5 }, fresh);
  const values = gate.map((g, i) => g - 0.5 * grad[i] / weight[i]); // 0.95, 1.05, 0.85, 1.1, 1
  assertClose(step.scores, values, TOL, "scores");
  assert.deepEqual(step.kept, [0, 1, 0, 1, 0]);
  assertClose(step.gate, [0, values[1], 0, values[3], 0], TOL, "gates");
  assertClose(step.movement, values.map((v, i) => fresh.gate_movement[i] + v - gate[i]), TOL, "movement");
  assertClose(step.taylor, grad.map((d, i) => fresh.gate_taylor[i] - gate[i] * d), TOL, "taylor");
  assert.equal(step.projected, 1);
  // the host rule on the graph's own scores keeps the same sites
  assert.deepEqual(projectTopK(Float32Array.from(step.scores), 2).kept, [1, 3]);
  // mode 0: nothing moves; mode 1 with every gradient 0: nothing either
  for (const [mode, g] of [[0, grad], [1, [0, 0, 0, 0, 0]]] as const) {
    const still = await gateRun(session, { gate, grad: [...g], mode, k: 2, lr: 0.5 }, fresh);
    assert.deepEqual(still.gate, gate, `mode ${mode}`);
    assert.deepEqual(still.kept, fresh.gate_kept);
    assert.deepEqual(still.movement, fresh.gate_movement);
    assert.deepEqual(still.taylor, fresh.gate_taylor);
    assert.equal(still.projected, 0);
  }
  // mode 2 (forced) with every gradient 0: no step, but the projection by site order (K = 3), and K = n keeps all
  const forced = await gateRun(session, { gate, grad: [0, 0, 0, 0, 0], mode: 2, k: 3, lr: 0.5 }, fresh);
  assert.deepEqual(forced.gate, [1, 1, 1, 0, 0]);
  assert.deepEqual(forced.kept, [1, 1, 1, 0, 0]);
  assert.deepEqual(forced.movement, fresh.gate_movement);
  assert.equal(forced.projected, 1);
  const all = await gateRun(session, { gate: [-1, 2, 0, -3, 1], grad, mode: 1, k: 5, lr: 0 }, fresh);
  assert.deepEqual(all.gate, [-1, 2, 0, -3, 1]);
  assert.deepEqual(all.kept, [1, 1, 1, 1, 1]);
  await session.release();
});

Deno.test("a gate-projection group must be plain unclipped SGD of vectors", () => {
  const parameters = [{ name: "gate", shape: [3] }];
  assert.throws(
    () =>
      buildOptimizerGraph({
        groups: [{ name: "g", kind: "adamw", clip: false, gateProjection: true, parameters }],
      }),
    /gate group "g" cannot project: its kind is "adamw"/,
  );
  assert.throws(
    () => buildOptimizerGraph({ groups: [{ name: "g", kind: "sgd", gateProjection: true, parameters }] }),
    /it is clipped/,
  );
  assert.throws(
    () =>
      buildOptimizerGraph({
        groups: [{
          name: "g",
          kind: "sgd",
          clip: false,
          gateProjection: true,
          parameters: [{ name: "m", shape: [2, 2] }],
        }],
      }),
    /parameter "m" is not of static rank 1/,
  );
});
