// Structural moves of WeightLoRA on a tiny random Llama: zero gate gradients do not prune, dropping
// zero-gate sites and rank doubling leave the loss unchanged, sizes shrink with the structure.

import assert from "node:assert/strict";
import { initAdapter } from "../../src/lora/adapter.ts";
import type { LlamaConfig } from "../../src/models/config.ts";
import { randomLlamaWeights } from "../../src/models/random_weights.ts";
import { listAdapterSites } from "../../src/models/sites.ts";
import { AdapterTrainer } from "../../src/train/adapter_trainer.ts";
import { makeBatch } from "../../src/train/batches.ts";
import type { Example } from "../../src/train/data.ts";

const CONFIG: LlamaConfig = {
  architecture: "llama",
  vocabSize: 24,
  hiddenSize: 16,
  intermediateSize: 24,
  numHiddenLayers: 2,
  numAttentionHeads: 2,
  numKeyValueHeads: 2,
  headDim: 8,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  maxPositionEmbeddings: 32,
  tieWordEmbeddings: true,
  attentionBias: false,
  bosTokenId: 1,
  eosTokenIds: [2],
};

function examples(): Example[] {
  return Array.from({ length: 8 }, (_, i) => {
    const ids = [1, 3 + (i % 5), 4 + (i % 7), 5 + (i % 3), 6 + (i % 11), 7];
    return { inputIds: ids, labels: [...ids] };
  });
}

async function makeTrainer(trainableGates = true) {
  const sites = initAdapter(listAdapterSites(CONFIG), { rank: 2, alpha: 4, rslora: false, seed: 5 });
  return await AdapterTrainer.create({
    model: { config: CONFIG, weights: randomLlamaWeights(CONFIG, { seed: 2 }) },
    sites,
    trainableGates,
    batchSize: 4,
    seqLen: 6,
    optimizer: { kind: "adamw", weightDecay: 0, maxGradNorm: 1 },
    ep: "wasm",
    gradientAccumulation: false,
  });
}

const batchOf = (rows: Example[]) => makeBatch(rows, { batchSize: 4, seqLen: 6 });

Deno.test("zero gate gradients (B = 0 at the first step) do not prune", async () => {
  const trainer = await makeTrainer();
  const n = trainer.activeSites.length;
  assert.equal(n, 14);
  await trainer.trainStep([batchOf(examples().slice(0, 4))]);
  const { projected } = await trainer.applyGradients({ lr: 0.01, lrGates: 5 }, 3);
  assert.equal(projected, false);
  await trainer.sync();
  assert.ok(trainer.sites.every((s) => s.gate === 1), "all gates still 1");
  // the second step has B ≠ 0: gates get gradients and the projection keeps exactly K
  await trainer.trainStep([batchOf(examples().slice(4, 8))]);
  assert.equal((await trainer.applyGradients({ lr: 0.01, lrGates: 5 }, 3)).projected, true);
  await trainer.sync();
  assert.equal(trainer.sites.filter((s) => s.gate !== 0).length, 3);
  await trainer.release();
});

Deno.test("freezing drops zero-gate sites without changing the loss; sizes shrink", async () => {
  const trainer = await makeTrainer();
  const evalBatch = [batchOf(examples().slice(0, 4))];
  for (let i = 0; i < 4; i++) {
    await trainer.trainStep([batchOf(examples().slice(4 * (i % 2), 4 * (i % 2) + 4))]);
    await trainer.applyGradients({ lr: 0.02, lrGates: 5 }, 4);
  }
  const before = await trainer.evalLoss(evalBatch);
  const sizesBefore = trainer.sizes;
  const dropped = await trainer.freezeGates({ reinitSurvivors: false, seed: 5 });
  const after = await trainer.evalLoss(evalBatch);
  assert.equal(dropped.length, 10);
  assert.ok(Math.abs(after - before) < 1e-5, `loss ${before} → ${after}`);
  assert.equal(trainer.sizes.activeSites, 4);
  assert.ok(trainer.sizes.parameters < sizesBefore.parameters / 3);
  assert.equal(trainer.trainableGates, false);
  // training continues on the survivors
  await trainer.trainStep(evalBatch);
  await trainer.applyGradients({ lr: 0.02, lrGates: 0 }, 4);
  await trainer.release();
});

Deno.test("rank doubling keeps the loss (|Δ| < 1e-5) and doubles every active rank", async () => {
  const trainer = await makeTrainer(false);
  const evalBatch = [batchOf(examples().slice(0, 4))];
  for (let i = 0; i < 3; i++) {
    await trainer.trainStep([batchOf(examples().slice(4, 8))]);
    await trainer.applyGradients({ lr: 0.05, lrGates: 0 }, 14);
  }
  const before = await trainer.evalLoss(evalBatch);
  await trainer.doubleRanks(1, 5);
  const after = await trainer.evalLoss(evalBatch);
  assert.ok(Math.abs(after - before) < 1e-5, `loss ${before} → ${after}`);
  assert.ok(trainer.sites.every((s) => s.rank === 4));
  assert.equal(trainer.optimizerStep, 0, "optimizer restarted");
  await trainer.release();
});
