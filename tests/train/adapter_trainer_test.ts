// Structural moves of WeightLoRA on a tiny random Llama: zero gate gradients do not prune unless forced, the
// gate-gradient normalisations, dropping unselected sites and rank doubling leave the loss unchanged, sizes
// shrink with the structure.

import assert from "node:assert/strict";
import { initAdapter } from "../../src/lora/adapter.ts";
import type { LlamaConfig } from "../../src/models/config.ts";
import { randomLlamaWeights } from "../../src/models/random_weights.ts";
import { listAdapterSites } from "../../src/models/sites.ts";
import {
  AdapterTrainer,
  type GateNorm,
  type GateUpdate,
  updateNorm,
} from "../../src/train/adapter_trainer.ts";
import { projectTopK } from "../../src/lora/top_k.ts";
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

async function makeTrainer(trainableGates = true, gateProjection: "graph" | "host" = "graph") {
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
    gateProjection,
  });
}

const batchOf = (rows: Example[]) => makeBatch(rows, { batchSize: 4, seqLen: 6 });

/** SGD on the gates at `lr`, projected onto the top K. */
function topK(k: number, lr = 5, norm: GateNorm = "none", force = false): GateUpdate {
  return { lr, norm, force, select: (gates) => projectTopK(gates, k).kept };
}

Deno.test("zero gate gradients (B = 0 at the first step) do not prune", async () => {
  const trainer = await makeTrainer();
  const n = trainer.activeSites.length;
  assert.equal(n, 14);
  await trainer.trainStep([batchOf(examples().slice(0, 4))]);
  const { projected } = await trainer.applyGradients(0.01, topK(3));
  assert.equal(projected, false);
  await trainer.sync();
  assert.ok(trainer.sites.every((s) => s.gate === 1), "all gates still 1");
  assert.equal(trainer.survivors().length, 14, "no projection yet: every site survives");
  // the second step has B ≠ 0: gates get gradients and the projection keeps exactly K
  await trainer.trainStep([batchOf(examples().slice(4, 8))]);
  assert.equal((await trainer.applyGradients(0.01, topK(3))).projected, true);
  await trainer.sync();
  assert.equal(trainer.sites.filter((s) => s.gate !== 0).length, 3);
  assert.equal(trainer.survivors().length, 3);
  await trainer.release();
});

Deno.test("a forced projection keeps exactly K even when every gate gradient is zero (ties by site order)", async () => {
  const trainer = await makeTrainer();
  await trainer.trainStep([batchOf(examples().slice(0, 4))]);
  assert.equal((await trainer.applyGradients(0.01, topK(3, 5, "none", true))).projected, true);
  assert.deepEqual(
    trainer.survivors().map((s) => s.site.name),
    trainer.activeSites.slice(0, 3).map((s) => s.site.name),
  );
  const dropped = await trainer.freezeGates({ reinitSurvivors: false, seed: 5 });
  assert.equal(dropped.length, 11);
  assert.equal(trainer.sizes.activeSites, 3);
  await trainer.release();
});

Deno.test("a gated-off site still gets a gate gradient, so it can come back", async () => {
  const trainer = await makeTrainer();
  await trainer.trainStep([batchOf(examples().slice(0, 4))]);
  await trainer.applyGradients(0.01, topK(14));
  await trainer.trainStep([batchOf(examples().slice(4, 8))]);
  await trainer.applyGradients(0.01, topK(3));
  await trainer.sync();
  const off = trainer.activeSites.flatMap((s, i) => (s.gate === 0 ? [i] : []));
  assert.equal(off.length, 11);
  // the next step keeps every gate: the gated-off ones moved away from 0
  await trainer.trainStep([batchOf(examples().slice(0, 4))]);
  await trainer.applyGradients(0.01, topK(14));
  await trainer.sync();
  assert.ok(off.every((i) => trainer.activeSites[i].gate !== 0));
  await trainer.release();
});

Deno.test("gate-gradient normalisation divides each site's gradient by its relative size", async () => {
  // the same two steps with lr_gates small enough that the projection keeps every site: the gates' change
  // under params/rms is the raw change divided by each site's relative parameter count / update norm
  const moved: Record<GateNorm, Float32Array> = {} as Record<GateNorm, Float32Array>;
  let weights: { params: number[]; rms: number[] } | undefined;
  for (const norm of ["none", "params", "rms"] as GateNorm[]) {
    const trainer = await makeTrainer();
    await trainer.trainStep([batchOf(examples().slice(0, 4))]);
    await trainer.applyGradients(0.01, topK(14, 1e-3, norm));
    await trainer.trainStep([batchOf(examples().slice(4, 8))]);
    if (norm === "none") {
      // the divisors, from the state before the gates' step
      await trainer.sync();
      const active = trainer.activeSites;
      const params = active.map((s) => s.rank * (s.site.inFeatures + s.site.outFeatures));
      const rms = active.map((s) =>
        s.scale * updateNorm(s.a, s.b, s.rank, s.site.inFeatures, s.site.outFeatures)
      );
      const rel = (v: number[]) => v.map((x) => x / (v.reduce((a, b) => a + b, 0) / v.length));
      weights = { params: rel(params), rms: rel(rms) };
    }
    await trainer.applyGradients(0.01, topK(14, 1e-3, norm));
    await trainer.sync();
    moved[norm] = Float32Array.from(trainer.activeSites.map((s) => s.gate - 1));
    await trainer.release();
  }
  assert.ok(moved.none.some((d) => Math.abs(d) > 1e-7), "the gates moved");
  assert.ok(new Set(weights!.params.map((w) => w.toFixed(6))).size > 1, "sites differ in size");
  for (const norm of ["params", "rms"] as const) {
    for (let i = 0; i < 14; i++) {
      const want = moved.none[i] / weights![norm][i];
      assert.ok(
        Math.abs(moved[norm][i] - want) <= 1e-6 + 1e-3 * Math.abs(want),
        `${norm} site ${i}: ${moved[norm][i]} vs ${want}`,
      );
    }
  }
});

Deno.test("bounded gates stay in {w ≥ 0, Σw ≤ K} under a large gate rate; unbounded ones leave it", async () => {
  const sums: Record<string, number> = {};
  for (const bound of [false, true]) {
    const trainer = await makeTrainer();
    for (let i = 0; i < 5; i++) {
      await trainer.trainStep([batchOf(examples().slice(4 * (i % 2), 4 * (i % 2) + 4))]);
      const { projected } = await trainer.applyGradients(0.02, { ...topK(4, 500), bound });
      if (!projected) continue; // step 1: B = 0, no gate gradient
      await trainer.sync();
      const kept = trainer.activeSites.filter((s) => s.gate !== 0).map((s) => s.gate);
      assert.ok(kept.length <= 4);
      if (bound) {
        assert.ok(kept.every((g) => g >= 0), `gates ${kept}`);
        assert.ok(kept.reduce((s, g) => s + g, 0) <= 4 + 1e-5, `gates ${kept}`);
      }
      sums[String(bound)] = Math.max(sums[String(bound)] ?? 0, kept.reduce((s, g) => s + Math.abs(g), 0));
    }
    await trainer.release();
  }
  assert.ok(sums.false > 4, `without the bound the kept gates total ${sums.false}: the test would not fail`);
});

Deno.test("holdGatedOff: a gated-off site's A and B stay where they were; without it AdamW moves them on", async () => {
  const drift: Record<string, number> = {};
  for (const hold of [false, true]) {
    const trainer = await makeTrainer();
    // two steps with every site kept (B ≠ 0, AdamW moments built up), then K = 3
    for (let i = 0; i < 2; i++) {
      await trainer.trainStep([batchOf(examples().slice(4 * i, 4 * i + 4))]);
      await trainer.applyGradients(0.02, topK(14, 1e-3));
    }
    await trainer.trainStep([batchOf(examples().slice(0, 4))]);
    await trainer.applyGradients(0.02, { ...topK(3, 1e-3), holdGatedOff: hold });
    await trainer.sync();
    const off = trainer.activeSites.flatMap((s, i) => (s.gate === 0 ? [i] : []));
    assert.equal(off.length, 11);
    const b0 = off.map((i) => Float32Array.from(trainer.activeSites[i].b));
    // two more steps keeping the same 3 (a tiny gate rate: the gated-off ones stay below the kept ones)
    for (let i = 0; i < 2; i++) {
      await trainer.trainStep([batchOf(examples().slice(4 * i, 4 * i + 4))]);
      await trainer.applyGradients(0.02, { ...topK(3, 1e-6), holdGatedOff: hold });
    }
    await trainer.sync();
    drift[String(hold)] = Math.max(
      ...off.flatMap((i, j) => Array.from(trainer.activeSites[i].b, (x, k) => Math.abs(x - b0[j][k]))),
    );
    await trainer.release();
  }
  assert.ok(drift.false > 1e-4, `without holding, AdamW moved gated-off B by ${drift.false}`);
  assert.equal(drift.true, 0, "held: gated-off B did not move");
});

Deno.test("the gate evidence sums each step's gate movement, also for gated-off sites", async () => {
  const trainer = await makeTrainer();
  let last: Float32Array | undefined;
  const spy: GateUpdate = {
    ...topK(3, 1e-3),
    select: (gates, _sites, evidence) => {
      last = Float32Array.from(evidence.movement);
      return projectTopK(gates, 3).kept;
    },
  };
  for (let i = 0; i < 3; i++) {
    await trainer.trainStep([batchOf(examples().slice(4 * (i % 2), 4 * (i % 2) + 4))]);
    await trainer.applyGradients(0.01, spy);
  }
  await trainer.sync();
  const evidence = trainer.gateEvidence;
  const names = trainer.activeSites.map((s) => s.site.name);
  assert.deepEqual(Object.keys(evidence).sort(), [...names].sort());
  // the kept gates moved from 1 by exactly their accumulated movement (no projection touched them)
  for (const [i, s] of trainer.activeSites.entries()) {
    assert.ok(Math.abs(evidence[s.site.name].movement - last![i]) < 1e-6);
    if (s.gate !== 0) assert.ok(Math.abs(s.gate - 1 - evidence[s.site.name].movement) < 1e-5);
  }
  // sites gated off at step 2 still moved at step 3
  assert.ok(names.every((n) => evidence[n].movement !== 0));
  await trainer.release();
});

Deno.test("a batch padded to its longest row trains exactly as the same rows padded to the full length", async () => {
  const rows = examples().slice(0, 4).map((e, i) => ({
    inputIds: e.inputIds.slice(0, 3 + (i % 2)),
    labels: e.labels.slice(0, 3 + (i % 2)),
  }));
  const full = makeBatch(rows, { batchSize: 4, seqLen: 6 });
  const fitted = makeBatch(rows, { batchSize: 4, seqLen: 6, padTo: "longest" });
  assert.equal(fitted.seqLen, 4);
  const results = [];
  for (const batch of [full, fitted]) {
    const trainer = await makeTrainer(false);
    const loss = await trainer.trainStep([batch]);
    await trainer.applyGradients(0.05);
    await trainer.sync();
    results.push({ loss, a: trainer.activeSites[0].a, evalLoss: await trainer.evalLoss([batch]) });
    await trainer.release();
  }
  assert.ok(Math.abs(results[0].loss - results[1].loss) < 1e-5, `${results[0].loss} vs ${results[1].loss}`);
  assert.ok(Math.abs(results[0].evalLoss - results[1].evalLoss) < 1e-5);
  for (let i = 0; i < results[0].a.length; i++) assert.ok(Math.abs(results[0].a[i] - results[1].a[i]) < 1e-5);
});

Deno.test("updateNorm is the Frobenius norm of B·A", () => {
  const rank = 2, inF = 3, outF = 4;
  const a = Float32Array.from([1, -2, 0.5, 3, 0, -1]);
  const b = Float32Array.from([0.1, 0.2, -0.3, 0.4, 0.5, -0.6, 0.7, 0.8]);
  let sum = 0;
  for (let o = 0; o < outF; o++) {
    for (let c = 0; c < inF; c++) {
      let v = 0;
      for (let r = 0; r < rank; r++) v += b[o * rank + r] * a[r * inF + c];
      sum += v * v;
    }
  }
  assert.ok(Math.abs(updateNorm(a, b, rank, inF, outF) - Math.sqrt(sum)) < 1e-9);
});

Deno.test("freezing drops unselected sites without changing the loss; sizes shrink", async () => {
  const trainer = await makeTrainer();
  const evalBatch = [batchOf(examples().slice(0, 4))];
  for (let i = 0; i < 4; i++) {
    await trainer.trainStep([batchOf(examples().slice(4 * (i % 2), 4 * (i % 2) + 4))]);
    await trainer.applyGradients(0.02, topK(4));
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
  await trainer.applyGradients(0.02);
  await trainer.release();
});

Deno.test("rank doubling keeps the loss (|Δ| < 1e-5) and doubles every active rank", async () => {
  const trainer = await makeTrainer(false);
  const evalBatch = [batchOf(examples().slice(0, 4))];
  for (let i = 0; i < 3; i++) {
    await trainer.trainStep([batchOf(examples().slice(4, 8))]);
    await trainer.applyGradients(0.05);
  }
  const before = await trainer.evalLoss(evalBatch);
  await trainer.doubleRanks(1, 5);
  const after = await trainer.evalLoss(evalBatch);
  assert.ok(Math.abs(after - before) < 1e-5, `loss ${before} → ${after}`);
  assert.ok(trainer.sites.every((s) => s.rank === 4));
  assert.equal(trainer.optimizerStep, 0, "optimizer restarted");
  await trainer.release();
});

Deno.test("top K in the optimizer graph = the host rule: zero gradients, K = n, ties, params norm, forced", async () => {
  const graph = await makeTrainer(true, "graph");
  const host = await makeTrainer(true, "host");
  const inGraph = (k: number, lr = 5, norm: GateNorm = "none", force = false) => ({
    ...topK(k, lr, norm, force),
    topK: k,
  });
  // step 1: B = 0, every gate gradient 0: no projection; then K = n, K = 3 (params norm), K = 5, forced K = 4
  const updates = [
    inGraph(3),
    inGraph(14),
    inGraph(3, 5, "params"),
    inGraph(5, 50),
    inGraph(4, 5, "none", true),
  ];
  for (const [i, update] of updates.entries()) {
    const rows = examples().slice(4 * (i % 2), 4 * (i % 2) + 4);
    const projected: boolean[] = [];
    for (const trainer of [graph, host]) {
      await trainer.trainStep([batchOf(rows)]);
      projected.push((await trainer.applyGradients(0.01, update)).projected);
    }
    assert.deepEqual(projected, [i > 0, i > 0], `step ${i + 1}: projected`);
    if (i > 0 && !update.force) {
      assert.throws(() => graph.kept, /last gate steps ran in the optimizer graph.*syncGates/);
      assert.throws(() => graph.survivors(), /syncGates/);
    }
    await graph.syncGates();
    await host.sync();
    await graph.sync();
    const gates = (t: AdapterTrainer) => t.activeSites.map((s) => s.gate);
    for (const [j, g] of gates(graph).entries()) {
      const want = gates(host)[j];
      assert.ok(
        Math.abs(g - want) <= 1e-6 * (1 + Math.abs(want)),
        `step ${i + 1}, site ${j}: gate ${g} vs ${want}`,
      );
    }
    assert.deepEqual(graph.kept, host.kept, `step ${i + 1}: kept`);
    assert.deepEqual(graph.survivors().map((s) => s.site.name), host.survivors().map((s) => s.site.name));
    const scores = graph.gateScores, hostScores = host.gateScores;
    assert.equal(scores === undefined, hostScores === undefined);
    for (const [name, v] of Object.entries(hostScores ?? {})) {
      assert.ok(Math.abs(scores![name] - v) <= 1e-6 * (1 + Math.abs(v)), `step ${i + 1}: score of ${name}`);
    }
    const evidence = graph.gateEvidence;
    for (const [name, e] of Object.entries(host.gateEvidence)) {
      for (const key of ["movement", "taylor"] as const) {
        const [got, want] = [evidence[name][key], e[key]];
        assert.ok(
          Math.abs(got - want) <= 1e-6 + 1e-5 * Math.abs(want),
          `step ${i + 1}: ${key} of ${name}: ${got} vs ${want}`,
        );
      }
    }
  }
  assert.equal(graph.survivors().length, 4);
  // the kept set came from the gate gradients, not site order
  assert.notDeepEqual(graph.kept, graph.activeSites.slice(0, 4).map((s) => s.site.name));
  // a host projection after graph steps starts from the device's gates; the trainers still agree
  for (const trainer of [graph, host]) await trainer.projectGates((g) => projectTopK(g, 2).kept);
  assert.deepEqual(graph.kept, host.kept);
  await graph.release();
  await host.release();
});

Deno.test("a trainer resumed mid-selection from state(), kept and evidence continues as the straight one (graph top K)", async () => {
  const update = { ...topK(4), topK: 4 };
  const rows = (i: number) => batchOf(examples().slice(4 * (i % 2), 4 * (i % 2) + 4));
  const straight = await makeTrainer();
  const first = await makeTrainer();
  for (let i = 0; i < 3; i++) {
    for (const trainer of [straight, first]) {
      await trainer.trainStep([rows(i)]);
      await trainer.applyGradients(0.01, update);
    }
  }
  // what a checkpoint saves: the sites, the kept set, the evidence and the session state (gate state included)
  await first.syncGates();
  const state = await first.state();
  assert.ok(state.tensors["gate_kept.lora_gates"], "the gate state is in the checkpoint tensors");
  const sites = first.sites.map((s) => ({ ...s, a: Float32Array.from(s.a), b: Float32Array.from(s.b) }));
  const kept = first.kept, evidence = first.gateEvidence;
  await first.release();
  const resumed = await AdapterTrainer.create({
    model: { config: CONFIG, weights: randomLlamaWeights(CONFIG, { seed: 2 }) },
    sites,
    trainableGates: true,
    batchSize: 4,
    seqLen: 6,
    optimizer: { kind: "adamw", weightDecay: 0, maxGradNorm: 1 },
    ep: "wasm",
    gradientAccumulation: false,
    kept,
    evidence,
  });
  await resumed.loadState(state);
  for (let i = 3; i < 5; i++) {
    for (const trainer of [straight, resumed]) {
      await trainer.trainStep([rows(i)]);
      await trainer.applyGradients(0.01, update);
    }
  }
  for (const trainer of [straight, resumed]) await trainer.sync();
  assert.deepEqual(resumed.activeSites.map((s) => s.gate), straight.activeSites.map((s) => s.gate));
  assert.deepEqual(resumed.kept, straight.kept);
  assert.deepEqual(resumed.gateEvidence, straight.gateEvidence);
  await straight.release();
  await resumed.release();
});
