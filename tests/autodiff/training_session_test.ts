// Training runs end to end on onnxruntime-web: small models fit synthetic tasks on wasm and WebGPU, the two
// providers agree step by step, gradient accumulation equals the full batch, checkpoints resume exactly.

import assert from "node:assert/strict";
import { TrainingSession } from "../../src/autodiff/training_session.ts";
import { loadTrainingState, saveTrainingState } from "../../src/autodiff/checkpoint.ts";
import type { ParameterGroup } from "../../src/autodiff/optimizer.ts";
import type { ExecutionProvider } from "../../src/runtime/execution_provider.ts";
import { ort } from "../../src/runtime/ort.ts";
import { requireWebGpu } from "../_util/fixtures.ts";
import { assertClose, seededRandom } from "./_numeric.ts";
import { buildMlp, buildTinyTransformer, type TrainableModel } from "./_models.ts";

function groupsOf(model: TrainableModel, weightDecay = 0, kind: "adamw" | "sgd" = "adamw"): ParameterGroup[] {
  return [{
    name: "all",
    kind,
    weightDecay,
    parameters: model.params.map((p) => ({ name: p.name, shape: p.shape })),
  }];
}

function initialOf(model: TrainableModel): Record<string, Float32Array> {
  return Object.fromEntries(model.params.map((p) => [p.name, p.init]));
}

/** Labels = argmax of a fixed random linear map of x (3 classes): linearly separable. */
function mlpBatch(rand: () => number, batch: number) {
  const x = Float32Array.from({ length: batch * 4 }, () => rand());
  const labels = new BigInt64Array(batch);
  for (let n = 0; n < batch; n++) {
    const r = x.slice(n * 4, n * 4 + 4);
    const scores = [r[0] + r[1] - r[2], r[2] - r[3] + 0.5 * r[0], r[3] - r[0] - r[1]];
    labels[n] = BigInt(scores.indexOf(Math.max(...scores)));
  }
  return { x: new ort.Tensor("float32", x, [batch, 4]), labels: new ort.Tensor("int64", labels, [batch]) };
}

/** Sequences of random tokens; the target at t is the token at t−1 (needs attention), −100 at t = 0. */
function copyBatch(rand: () => number, batch: number, seq: number, vocab: number) {
  const ids = BigInt64Array.from(
    { length: batch * seq },
    () => BigInt(Math.floor((rand() + 1) / 2 * vocab) % vocab),
  );
  const targets = ids.map((_, i) => (i % seq === 0 ? -100n : ids[i - 1]));
  return {
    input_ids: new ort.Tensor("int64", ids, [batch, seq]),
    targets: new ort.Tensor("int64", targets, [batch, seq]),
  };
}

async function fitMlp(ep: ExecutionProvider) {
  const model = buildMlp({ batch: 32, inputs: 4, hidden: 16, classes: 3 });
  const session = await TrainingSession.create({
    forward: model.graph,
    loss: "loss",
    groups: groupsOf(model, 0.01),
    initial: initialOf(model),
    maxGradNorm: 1,
    ep,
  });
  const rand = seededRandom(5);
  const evalBatch = mlpBatch(seededRandom(99), 32);
  const initial = await session.evalLoss(evalBatch);
  for (let step = 0; step < 150; step++) {
    await session.trainStep(mlpBatch(rand, 32));
    await session.optimizerStep(0.03);
  }
  const final = await session.evalLoss(evalBatch);
  await session.release();
  return { initial, final };
}

async function fitTransformer(ep: ExecutionProvider, steps: number) {
  const shape = { batch: 8, seq: 8, vocab: 12, dim: 16, heads: 2, hidden: 32 };
  const model = buildTinyTransformer(shape);
  const session = await TrainingSession.create({
    forward: model.graph,
    loss: "loss",
    groups: groupsOf(model),
    initial: initialOf(model),
    maxGradNorm: 1,
    ep,
  });
  const rand = seededRandom(8);
  const evalBatch = copyBatch(seededRandom(77), shape.batch, shape.seq, shape.vocab);
  const initial = await session.evalLoss(evalBatch);
  for (let step = 0; step < steps; step++) {
    await session.trainStep(copyBatch(rand, shape.batch, shape.seq, shape.vocab));
    await session.optimizerStep(0.01);
  }
  const final = await session.evalLoss(evalBatch);
  await session.release();
  return { initial, final };
}

Deno.test("a 2-layer MLP fits a synthetic classification task on wasm", async () => {
  const { initial, final } = await fitMlp("wasm");
  assert.ok(initial > 0.9, `initial loss ${initial}`);
  assert.ok(final < 0.35, `final loss ${final} (initial ${initial})`);
});

Deno.test("a one-block transformer learns to copy the previous token on wasm", async () => {
  const { initial, final } = await fitTransformer("wasm", 100);
  assert.ok(initial > 2.2, `initial loss ${initial}`); // ≈ ln 12 = 2.48
  assert.ok(final < 0.3, `final loss ${final} (initial ${initial})`);
});

Deno.test("training on WebGPU: fits, agrees with wasm step by step, keeps state on the device", async (t) => {
  if (!(await requireWebGpu(t))) return;
  await t.step("the MLP fits on WebGPU", async () => {
    const { initial, final } = await fitMlp("webgpu");
    assert.ok(final < 0.35, `final loss ${final} (initial ${initial})`);
  });
  await t.step("the transformer learns on WebGPU", async () => {
    const { initial, final } = await fitTransformer("webgpu", 60);
    assert.ok(final < initial - 1, `final loss ${final} (initial ${initial})`);
  });
  // SGD here: Adam's first steps move every weight by ≈ ±lr whatever the gradient's size, so float32
  // rounding of near-zero gradients would flip signs; SGD compares the gradients themselves.
  await t.step("the same 5 SGD steps on wasm and WebGPU agree (|Δ| ≤ 1e-4 + 1e-3·|x|)", async () => {
    const shape = { batch: 2, seq: 4, vocab: 8, dim: 8, heads: 2, hidden: 16 };
    const model = buildTinyTransformer(shape);
    const results: { losses: number[]; params: Float32Array }[] = [];
    for (const ep of ["wasm", "webgpu"] as const) {
      const session = await TrainingSession.create({
        forward: model.graph,
        loss: "loss",
        groups: groupsOf(model, 0, "sgd"),
        initial: initialOf(model),
        ep,
      });
      assert.equal(session.ep, ep);
      const rand = seededRandom(21);
      const losses: number[] = [];
      for (let i = 0; i < 5; i++) {
        losses.push(await session.trainStep(copyBatch(rand, shape.batch, shape.seq, shape.vocab)));
        await session.optimizerStep(0.1);
      }
      const params = await session.parameter("q_proj");
      if (ep === "webgpu") {
        // after the first steps only the batch and scalars travel: far less than the parameters
        const before = session.transfers.hostToDevice;
        await session.trainStep(copyBatch(rand, shape.batch, shape.seq, shape.vocab));
        await session.optimizerStep(0.01);
        const perStep = session.transfers.hostToDevice - before;
        const paramBytes = model.params.reduce((s, p) => s + p.init.byteLength, 0);
        assert.ok(perStep < paramBytes / 4, `${perStep} bytes uploaded per step (parameters: ${paramBytes})`);
      }
      results.push({ losses, params });
      await session.release();
    }
    assertClose(results[1].losses, results[0].losses, { atol: 1e-4, rtol: 1e-3 }, "losses");
    assertClose(results[1].params, results[0].params, { atol: 1e-4, rtol: 1e-3 }, "q_proj after 5 steps");
  });
});

Deno.test("two weighted micro-batches give the full batch's gradients", async () => {
  const full = buildMlp({ batch: 8, inputs: 4, hidden: 6, classes: 3 });
  const half = buildMlp({ batch: 4, inputs: 4, hidden: 6, classes: 3 });
  const batch = mlpBatch(seededRandom(4), 8);
  const x = batch.x.data as Float32Array, labels = batch.labels.data as BigInt64Array;
  const a = await TrainingSession.create({
    forward: full.graph,
    loss: "loss",
    groups: groupsOf(full),
    initial: initialOf(full),
    ep: "wasm",
  });
  const b = await TrainingSession.create({
    forward: half.graph,
    loss: "loss",
    groups: groupsOf(half),
    initial: initialOf(full),
    ep: "wasm",
    gradientAccumulation: true,
  });
  const fullLoss = await a.trainStep(batch);
  let accumulated = 0;
  for (const k of [0, 1]) {
    accumulated += 0.5 * await b.trainStep({
      x: new ort.Tensor("float32", x.slice(k * 16, k * 16 + 16), [4, 4]),
      labels: new ort.Tensor("int64", labels.slice(k * 4, k * 4 + 4), [4]),
    }, 0.5);
  }
  assert.equal(b.pendingMicroBatches, 2);
  assertClose([accumulated], [fullLoss], { atol: 1e-6, rtol: 1e-5 }, "loss");
  const ga = await a.gradients(), gb = await b.gradients();
  for (const name of Object.keys(ga)) {
    assertClose(gb[name], ga[name], { atol: 1e-6, rtol: 1e-5 }, `grad.${name}`);
  }
  await a.release();
  await b.release();
});

Deno.test("a checkpoint saved mid-run resumes to the same parameters as an uninterrupted run", async () => {
  const model = buildMlp({ batch: 8, inputs: 4, hidden: 6, classes: 3 });
  const options = {
    forward: model.graph,
    loss: "loss",
    groups: groupsOf(model, 0.1),
    initial: initialOf(model),
    ep: "wasm" as const,
  };
  const batches = Array.from({ length: 6 }, (_, i) => mlpBatch(seededRandom(100 + i), 8));
  const straight = await TrainingSession.create(options);
  for (const batch of batches) {
    await straight.trainStep(batch);
    await straight.optimizerStep(0.05);
  }
  const first = await TrainingSession.create(options);
  for (const batch of batches.slice(0, 3)) {
    await first.trainStep(batch);
    await first.optimizerStep(0.05);
  }
  const dir = await Deno.makeTempDir();
  await saveTrainingState(`${dir}/state.safetensors`, await first.state());
  await first.release();
  const resumed = await TrainingSession.create(options);
  const { state } = await loadTrainingState(`${dir}/state.safetensors`);
  assert.equal(state.step, 3);
  resumed.loadState(state);
  for (const batch of batches.slice(3)) {
    await resumed.trainStep(batch);
    await resumed.optimizerStep(0.05);
  }
  for (const p of model.params) {
    assert.deepEqual(await resumed.parameter(p.name), await straight.parameter(p.name), p.name);
    assert.deepEqual(
      await resumed.parameter(`adam_v.${p.name}`),
      await straight.parameter(`adam_v.${p.name}`),
    );
  }
  await Promise.all([straight.release(), resumed.release(), Deno.remove(dir, { recursive: true })]);
});

Deno.test("bad training requests give clear errors", async () => {
  const model = buildMlp({ batch: 2, inputs: 2, hidden: 2, classes: 3 });
  await assert.rejects(
    TrainingSession.create({
      forward: model.graph,
      loss: "loss",
      groups: groupsOf(model),
      initial: {},
      ep: "wasm",
    }),
    /parameter "w1" has no initial value/,
  );
  const session = await TrainingSession.create({
    forward: model.graph,
    loss: "loss",
    groups: groupsOf(model),
    initial: initialOf(model),
    ep: "wasm",
  });
  await assert.rejects(session.optimizerStep(0.1), /no gradients/);
  const batch = mlpBatch(seededRandom(1), 2);
  await session.trainStep({
    x: new ort.Tensor("float32", (batch.x.data as Float32Array).slice(0, 4), [2, 2]),
    labels: batch.labels,
  });
  await assert.rejects(
    session.trainStep({ x: new ort.Tensor("float32", new Float32Array(4), [2, 2]), labels: batch.labels }),
    /gradientAccumulation: true/,
  );
  await assert.rejects(session.optimizerStep({ other: 1 }), /no learning rate for group "all"/);
  await session.release();
});
