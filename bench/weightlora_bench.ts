/**
 * WeightLoRA training figures, side by side in one run: step time and training tokens/s of phase 1 (all
 * 35 sites with gates), phase 2 (the K = 5 survivors, gates frozen and dropped sites removed) and LoRA on
 * every site, with trainable parameters and optimizer-state bytes — on stories260K (wasm, and WebGPU on
 * whatever adapter exists) and on a random-weight model of stories15M's shape (wasm).
 *
 *     deno run -A bench/weightlora_bench.ts [--quick]
 *
 * Writes `bench/results/weightlora.json`.
 *
 * @module
 */

import { convertLlama2c } from "../src/io/convert.ts";
import { loadModelFolder } from "../src/io/model_folder.ts";
import { initAdapter } from "../src/lora/adapter.ts";
import type { LlamaConfig } from "../src/models/config.ts";
import type { LlamaWeights } from "../src/models/llama/forward.ts";
import { randomLlamaWeights } from "../src/models/random_weights.ts";
import { listAdapterSites } from "../src/models/sites.ts";
import { hasWebGpu } from "../src/runtime/execution_provider.ts";
import { AdapterTrainer, type GateUpdate } from "../src/train/adapter_trainer.ts";
import { projectTopK } from "../src/lora/top_k.ts";
import { type Batch, makeBatch } from "../src/train/batches.ts";
import type { ExecutionProvider } from "../src/runtime/execution_provider.ts";
import { figure, markdownTable } from "./_table.ts";
import { STORIES15M_SHAPE, STORIES260K_DIR } from "./_models.ts";

const QUICK = Deno.args.includes("--quick");

interface Row {
  model: string;
  ep: ExecutionProvider;
  variant: string;
  activeSites: number;
  parameters: number;
  optimizerStateBytes: number;
  msPerStep: number;
  tokensPerSecond: number;
}

function batches(vocab: number, batch: number, seq: number, count: number): Batch[] {
  let x = 12345;
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % (vocab - 3) + 3;
  return Array.from({ length: count }, () => {
    const rows = Array.from({ length: batch }, () => {
      const ids = [1, ...Array.from({ length: seq - 1 }, next)];
      return { inputIds: ids, labels: [...ids] };
    });
    return makeBatch(rows, { batchSize: batch, seqLen: seq });
  });
}

/** The gates' SGD step at lr 5 and the projection onto the top K (as WeightLoRA's selection does). */
function gates(k: number): GateUpdate {
  return { lr: 5, norm: "none", force: false, select: (g) => projectTopK(g, Math.min(k, g.length)).kept };
}

async function timeSteps(trainer: AdapterTrainer, data: Batch[], steps: number, k: number): Promise<number> {
  // one untimed step warms the session up
  await trainer.trainStep([data[0]]);
  await trainer.applyGradients(1e-3, gates(k));
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    await trainer.trainStep([data[(i + 1) % data.length]]);
    await trainer.applyGradients(1e-3, gates(k));
  }
  return (performance.now() - t0) / steps;
}

async function measure(
  name: string,
  model: { config: LlamaConfig; weights: LlamaWeights },
  shape: { batch: number; seq: number; steps: number },
  ep: ExecutionProvider,
): Promise<Row[]> {
  const data = batches(model.config.vocabSize, shape.batch, shape.seq, 4);
  const tokens = shape.batch * shape.seq;
  const base = { model, batchSize: shape.batch, seqLen: shape.seq, ep, gradientAccumulation: false };
  const optimizer = { kind: "adamw" as const, weightDecay: 0, maxGradNorm: 1 };
  const rows: Row[] = [];
  const record = (variant: string, trainer: AdapterTrainer, ms: number) =>
    rows.push({
      model: name,
      ep,
      variant,
      ...trainer.sizes,
      msPerStep: ms,
      tokensPerSecond: tokens / (ms / 1000),
    });

  // LoRA on every site (no gates)
  const sites = () =>
    initAdapter(listAdapterSites(model.config), { rank: 4, alpha: 8, rslora: false, seed: 1 });
  const lora = await AdapterTrainer.create({ ...base, sites: sites(), trainableGates: false, optimizer });
  record("LoRA (all sites)", lora, await timeSteps(lora, data, shape.steps, 35));
  await lora.release();

  // WeightLoRA: phase 1 (gates + all sites), then freeze at K = 5 and time phase 2
  const weightlora = await AdapterTrainer.create({
    ...base,
    sites: sites(),
    trainableGates: true,
    optimizer,
  });
  record(
    `WeightLoRA phase 1 (${weightlora.sizes.activeSites} sites + gates)`,
    weightlora,
    await timeSteps(weightlora, data, shape.steps, 5),
  );
  await weightlora.freezeGates({ reinitSurvivors: false, seed: 1 });
  record("WeightLoRA phase 2 (K = 5)", weightlora, await timeSteps(weightlora, data, shape.steps, 5));
  await weightlora.release();
  return rows;
}

const rows: Row[] = [];
const dir = await Deno.makeTempDir();
try {
  await convertLlama2c({
    model: `${STORIES260K_DIR}stories260K.bin`,
    tokenizer: `${STORIES260K_DIR}tok512.bin`,
    out: `${dir}/s260`,
  });
  const stories = await loadModelFolder(`${dir}/s260`);
  const steps = QUICK ? 3 : 20;
  rows.push(...await measure("stories260K", stories, { batch: 8, seq: 64, steps }, "wasm"));
  if (await hasWebGpu()) {
    rows.push(
      ...await measure("stories260K", stories, { batch: 8, seq: 64, steps: QUICK ? 2 : 5 }, "webgpu"),
    );
  }
  const s15 = {
    config: STORIES15M_SHAPE,
    weights: randomLlamaWeights(STORIES15M_SHAPE, { seed: 1, scale: 0.02 }),
  };
  rows.push(
    ...await measure("stories15M shape (random)", s15, { batch: 4, seq: 64, steps: QUICK ? 2 : 5 }, "wasm"),
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}

console.log(markdownTable(
  ["model", "EP", "variant", "active sites", "trainable params", "optimizer bytes", "ms/step", "tokens/s"],
  rows.map((
    r,
  ) => [
    r.model,
    r.ep,
    r.variant,
    r.activeSites,
    r.parameters,
    r.optimizerStateBytes,
    figure(r.msPerStep),
    figure(r.tokensPerSecond),
  ]),
));
console.log("\nRatios (same model and EP, same run):");
for (const model of new Set(rows.map((r) => `${r.model}|${r.ep}`))) {
  const [m, ep] = model.split("|");
  const pick = (v: string) => rows.find((r) => r.model === m && r.ep === ep && r.variant.startsWith(v))!;
  const lora = pick("LoRA"), p1 = pick("WeightLoRA phase 1"), p2 = pick("WeightLoRA phase 2");
  console.log(
    `- ${m} on ${ep}: phase-2 step is ${figure(p1.msPerStep / p2.msPerStep)}× faster than phase 1 and ` +
      `${figure(lora.msPerStep / p2.msPerStep)}× faster than LoRA(all); trainable parameters ` +
      `${figure(lora.parameters / p2.parameters)}× fewer, optimizer state ${
        figure(lora.optimizerStateBytes / p2.optimizerStateBytes)
      }× smaller`,
  );
}
await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("./results/weightlora.json", import.meta.url),
  JSON.stringify({ date: new Date().toISOString(), quick: QUICK, rows }, null, 2) + "\n",
);
