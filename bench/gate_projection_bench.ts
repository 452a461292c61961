/**
 * WeightLoRA's selection phase: the gates' SGD step and top-K projection in the optimizer graph (`graph`, what
 * the trainer does) against the same on the host (`host`: the gate gradient and the gates read back, stepped,
 * projected with `projectTopK` and written back every step). One step = `trainStep` + `applyGradients` with a
 * top-K gate update (K = 5, lr 5, no normalisation), LoRA r 4 on every site, AdamW, one wasm thread. Every run
 * is its own process; rounds alternate which goes first; the ratio graph / host is taken per round, then the
 * median.
 *
 *     deno run -A bench/gate_projection_bench.ts --write [--rounds 3]
 *
 * Writes `bench/results/gate_projection.{json,md}`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseLlama2cCheckpoint } from "../src/io/llama2c.ts";
import { initAdapter } from "../src/lora/adapter.ts";
import { projectTopK } from "../src/lora/top_k.ts";
import type { LlamaConfig } from "../src/models/config.ts";
import { randomLlamaWeights } from "../src/models/random_weights.ts";
import { listAdapterSites } from "../src/models/sites.ts";
import type { TensorData } from "../src/onnx/types.ts";
import { AdapterTrainer } from "../src/train/adapter_trainer.ts";
import { makeBatch } from "../src/train/batches.ts";
import { STORIES15M_SHAPE, STORIES260K_DIR } from "./_models.ts";
import { markdownTable } from "./_table.ts";

const RESULTS = new URL("results/", import.meta.url);
const K = 5;
type Mode = "graph" | "host";

interface Workload {
  name: string;
  batch: number;
  seq: number;
  warmup: number;
  steps: number;
}

const WORKLOADS: Workload[] = [
  { name: "stories260K", batch: 8, seq: 256, warmup: 2, steps: 6 },
  { name: "stories15M shape (random)", batch: 8, seq: 256, warmup: 1, steps: 3 },
];

/** What one child measured. */
interface ChildResult {
  stepMs: number;
  applyMs: number;
  kept: string[];
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function model(name: string): Promise<{ config: LlamaConfig; weights: Map<string, TensorData> }> {
  if (name === "stories260K") {
    return parseLlama2cCheckpoint(await Deno.readFile(`${STORIES260K_DIR}stories260K.bin`));
  }
  return {
    config: STORIES15M_SHAPE,
    weights: randomLlamaWeights(STORIES15M_SHAPE, { seed: 1, scale: 0.02 }),
  };
}

async function child(mode: Mode, w: Workload): Promise<void> {
  const { config, weights } = await model(w.name);
  const sites = initAdapter(listAdapterSites(config), { rank: 4, alpha: 8, rslora: false, seed: 1 });
  for (const s of sites) s.b = s.b.map((_, i) => ((i % 7) - 3) * 1e-3); // B ≠ 0: the gates get gradients
  const trainer = await AdapterTrainer.create({
    model: { config, weights },
    sites,
    trainableGates: true,
    batchSize: w.batch,
    seqLen: w.seq,
    optimizer: { kind: "adamw", weightDecay: 0, maxGradNorm: 1 },
    ep: "wasm",
    gradientAccumulation: false,
    gateProjection: mode,
  });
  const batches = [0, 1].map((b) =>
    makeBatch(
      Array.from({ length: w.batch }, (_, r) => {
        const ids = Array.from({ length: w.seq }, (_, t) =>
          3 + ((b * 977 + r * 131 + t * 17) % (config.vocabSize - 3)));
        return { inputIds: ids, labels: ids };
      }),
      { batchSize: w.batch, seqLen: w.seq },
    )
  );
  const update = {
    lr: 5,
    norm: "none" as const,
    select: (gates: Float32Array) => projectTopK(gates, K).kept,
    topK: K,
    force: false,
  };
  const stepMs: number[] = [], applyMs: number[] = [];
  for (let i = 0; i < w.warmup + w.steps; i++) {
    const t0 = performance.now();
    await trainer.trainStep([batches[i % 2]]);
    const t1 = performance.now();
    await trainer.applyGradients(1e-3, update);
    const t2 = performance.now();
    console.error(`${mode} step ${i}: ${(t2 - t0).toFixed(0)} ms`);
    if (i < w.warmup) continue;
    stepMs.push(t2 - t0);
    applyMs.push(t2 - t1);
  }
  await trainer.syncGates();
  const kept = trainer.kept ?? [];
  await trainer.release();
  const result: ChildResult = { stepMs: median(stepMs), applyMs: median(applyMs), kept };
  console.log(JSON.stringify(result));
}

async function runChild(mode: Mode, w: Workload): Promise<ChildResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--child", mode, w.name],
    env: { WEIGHTLORA_WASM_THREADS: "1", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    throw new Error(`gate_projection_bench: ${mode} ${w.name} failed (exit ${out.code}): ${text}`);
  }
  return JSON.parse(text.split("\n").at(-1)!);
}

async function atomicWrite(url: URL, text: string): Promise<void> {
  const tmp = `${url.pathname}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, url.pathname);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      child: { type: "string" },
      rounds: { type: "string", default: "3" },
      write: { type: "boolean", default: false },
    },
  });
  if (values.child) {
    const w = WORKLOADS.find((x) => x.name === positionals[0]);
    if (!w) throw new Error(`gate_projection_bench: unknown workload "${positionals[0]}"`);
    return await child(values.child as Mode, w);
  }
  const rounds = Number(values.rounds);
  const loadStart = Deno.loadavg()[0];
  const results = [];
  for (const w of WORKLOADS) {
    const runs: { round: number; graph: ChildResult; host: ChildResult }[] = [];
    for (let r = 0; r < rounds; r++) {
      const order: Mode[] = r % 2 ? ["host", "graph"] : ["graph", "host"];
      const got = {} as Record<Mode, ChildResult>;
      for (const mode of order) got[mode] = await runChild(mode, w);
      if (got.graph.kept.join() !== got.host.kept.join()) {
        throw new Error(
          `gate_projection_bench: ${w.name}: graph kept ${got.graph.kept}, host ${got.host.kept}`,
        );
      }
      runs.push({ round: r + 1, ...got });
      console.error(
        `${w.name} round ${r + 1}: graph ${got.graph.stepMs.toFixed(1)} ms, host ${
          got.host.stepMs.toFixed(1)
        } ms`,
      );
    }
    results.push({
      ...w,
      runs,
      graphStepMs: median(runs.map((x) => x.graph.stepMs)),
      hostStepMs: median(runs.map((x) => x.host.stepMs)),
      graphApplyMs: median(runs.map((x) => x.graph.applyMs)),
      hostApplyMs: median(runs.map((x) => x.host.applyMs)),
      stepRatio: median(runs.map((x) => x.graph.stepMs / x.host.stepMs)),
      applyRatio: median(runs.map((x) => x.graph.applyMs / x.host.applyMs)),
    });
  }
  const date = new Date().toISOString();
  const md =
    `${date}. WeightLoRA selection phase: LoRA r 4 on every site, trainable gates, top-K projection ` +
    `(K = ${K}, lr_gates 5) after every step, AdamW, one wasm thread. graph: the gates' step and projection in ` +
    "the optimizer graph (the trainer); host: gate gradient and gates read back, projected with projectTopK, " +
    "written back. Medians over alternating rounds (one process per run; the ratio taken per round). " +
    `Load average ${loadStart.toFixed(1)} at the start, ${Deno.loadavg()[0].toFixed(1)} at the end.\n\n` +
    markdownTable(
      [
        "model",
        "batch × seq",
        "rounds × steps",
        "step ms graph / host",
        "graph / host",
        "applyGradients ms graph / host",
        "graph / host",
      ],
      results.map((r) => [
        r.name,
        `${r.batch} × ${r.seq}`,
        `${rounds} × ${r.steps}`,
        `${r.graphStepMs.toFixed(1)} / ${r.hostStepMs.toFixed(1)}`,
        `${r.stepRatio.toFixed(3)}×`,
        `${r.graphApplyMs.toFixed(2)} / ${r.hostApplyMs.toFixed(2)}`,
        `${r.applyRatio.toFixed(2)}×`,
      ]),
    ) + "\n";
  console.log(md);
  if (values.write) {
    await atomicWrite(
      new URL("gate_projection.json", RESULTS),
      JSON.stringify({ date, k: K, results }, null, 2) + "\n",
    );
    await atomicWrite(new URL("gate_projection.md", RESULTS), md);
  }
}

if (import.meta.main) await main();
