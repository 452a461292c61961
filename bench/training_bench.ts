/**
 * Training-engine figures, side by side in one run (alternating A/B rounds, medians), for the tiny
 * transformer of `tests/autodiff/_models.ts` (one pre-norm block, every parameter trained with AdamW) at
 * two sizes:
 *
 * - one training step (forward + backward + AdamW: the step session then the optimizer session) against
 *   one forward of the same graph (the step session's evaluation branch) — the backward/forward cost ratio;
 * - wasm against WebGPU (lavapipe here, a real GPU elsewhere) step time;
 * - host↔device bytes per step on WebGPU (`TrainingSession.transfers`): after the first step only the batch
 *   and a few scalars go up and only the loss and the gradient norm come back.
 *
 * LoRA(all) against WeightLoRA phase-2 training tokens/s on stories260K is measured by
 * `bench/weightlora_bench.ts`; `deno task bench` prints both side by side.
 *
 *     deno run -A bench/training_bench.ts [--rounds=N]        # default 7 rounds (wasm), 3 (WebGPU)
 *
 * Prints a Markdown table and writes `bench/results/training.json`.
 *
 * @module
 */

import { TrainingSession } from "../src/autodiff/training_session.ts";
import { hasWebGpu } from "../src/runtime/execution_provider.ts";
import { ort } from "../src/runtime/ort.ts";
import type { OrtTensor } from "../src/runtime/session.ts";
import { buildTinyTransformer, type TinyTransformerOptions } from "../tests/autodiff/_models.ts";
import { markdownTable } from "./_table.ts";

/** The two sizes measured. */
const SIZES: { name: string; shape: TinyTransformerOptions }[] = [
  { name: "small", shape: { batch: 8, seq: 32, vocab: 64, dim: 32, heads: 2, hidden: 64 } },
  { name: "large", shape: { batch: 8, seq: 64, vocab: 256, dim: 128, heads: 4, hidden: 384 } },
];

function median(samples: readonly number[]): number {
  const s = [...samples].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A next-token batch: random ids, targets the ids shifted by one (first position ignored). */
function batch(shape: TinyTransformerOptions, seed: number): Record<string, OrtTensor> {
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
  const n = shape.batch * shape.seq;
  const ids = BigInt64Array.from({ length: n }, () => BigInt(next() % shape.vocab));
  const targets = ids.map((_, i) => (i % shape.seq === 0 ? -100n : ids[i - 1]));
  return {
    input_ids: new ort.Tensor("int64", ids, [shape.batch, shape.seq]),
    targets: new ort.Tensor("int64", targets, [shape.batch, shape.seq]),
  };
}

/** One measured configuration. */
export interface TrainingRow {
  /** Size name. */
  size: string;
  /** Execution provider. */
  ep: "wasm" | "webgpu";
  /** Trainable parameters. */
  parameters: number;
  /** Operators of the forward graph. */
  forwardOps: number;
  /** Median time of one forward (the step session's evaluation branch), ms. */
  forwardMs: number;
  /** Median time of one training step (train + optimizer sessions), ms. */
  stepMs: number;
  /** stepMs / forwardMs. */
  stepOverForward: number;
  /** Tokens per second of training steps. */
  trainTokensPerS: number;
  /** Bytes of host tensors fed to sessions per step (uploads on WebGPU; copies into the heap on wasm). */
  hostToDevicePerStep: number;
  /** Bytes read back per step. */
  deviceToHostPerStep: number;
}

async function measure(
  size: (typeof SIZES)[number],
  ep: "wasm" | "webgpu",
  rounds: number,
): Promise<TrainingRow> {
  const model = buildTinyTransformer(size.shape);
  const session = await TrainingSession.create({
    forward: model.graph,
    loss: "loss",
    maxGradNorm: 1,
    ep,
    groups: [{
      name: "all",
      kind: "adamw",
      parameters: model.params.map((p) => ({ name: p.name, shape: p.shape })),
    }],
    initial: Object.fromEntries(model.params.map((p) => [p.name, p.init])),
  });
  try {
    const feeds = batch(size.shape, 1);
    const step = async () => {
      await session.trainStep(feeds);
      await session.optimizerStep({ all: 1e-3 });
    };
    // warm-up: the first runs allocate, compile kernels and upload the parameters
    await step();
    await session.evalLoss(feeds);
    await step();
    const forward: number[] = [], steps: number[] = [];
    for (let r = 0; r < rounds; r++) {
      // alternate the two measurements so a change in machine load hits both
      let t0 = performance.now();
      await session.evalLoss(feeds);
      forward.push(performance.now() - t0);
      t0 = performance.now();
      await step();
      steps.push(performance.now() - t0);
    }
    // traffic of training steps alone (no forward in between)
    const before = { ...session.transfers };
    for (let r = 0; r < 2; r++) await step();
    const after = session.transfers;
    const forwardMs = median(forward), stepMs = median(steps);
    return {
      size: size.name,
      ep,
      parameters: model.params.reduce((n, p) => n + p.init.length, 0),
      forwardOps: model.graph.nodes.length,
      forwardMs,
      stepMs,
      stepOverForward: stepMs / forwardMs,
      trainTokensPerS: (size.shape.batch * size.shape.seq) / (stepMs / 1000),
      hostToDevicePerStep: (after.hostToDevice - before.hostToDevice) / 2,
      deviceToHostPerStep: (after.deviceToHost - before.deviceToHost) / 2,
    };
  } finally {
    await session.release();
  }
}

async function main(): Promise<void> {
  const roundsArg = Deno.args.find((a) => a.startsWith("--rounds="));
  const rounds = roundsArg ? Number(roundsArg.slice("--rounds=".length)) : 7;
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new Error(`Invalid ${roundsArg}: expected a positive integer number of rounds`);
  }
  const gpu = await hasWebGpu();
  const rows: TrainingRow[] = [];
  for (const size of SIZES) {
    rows.push(await measure(size, "wasm", rounds));
    if (gpu) rows.push(await measure(size, "webgpu", Math.max(1, Math.min(rounds, 3))));
  }
  if (!gpu) console.error("training_bench: no WebGPU adapter; WebGPU rows skipped");
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  console.log(markdownTable(
    [
      "size",
      "ep",
      "params",
      "forward ops",
      "forward ms",
      "train step ms",
      "step / forward",
      "train tok/s",
      "host→device /step",
      "device→host /step",
    ],
    rows.map((r) => [
      r.size,
      r.ep,
      r.parameters,
      r.forwardOps,
      r.forwardMs,
      r.stepMs,
      r.stepOverForward,
      r.trainTokensPerS,
      kb(r.hostToDevicePerStep),
      `${r.deviceToHostPerStep} B`,
    ]),
  ));
  const sideBySide = [];
  for (const size of SIZES) {
    const wasm = rows.find((r) => r.size === size.name && r.ep === "wasm")!;
    sideBySide.push({
      area: "training",
      metric: `tiny transformer (${size.name}) train step vs forward, wasm`,
      value: wasm.stepMs,
      baseline: "one forward",
      baselineValue: wasm.forwardMs,
      unit: "ms",
    });
    const webgpu = rows.find((r) => r.size === size.name && r.ep === "webgpu");
    if (webgpu) {
      sideBySide.push({
        area: "training",
        metric: `tiny transformer (${size.name}) train step, WebGPU`,
        value: webgpu.stepMs,
        baseline: "wasm",
        baselineValue: wasm.stepMs,
        unit: "ms",
        higherIsBetter: false,
      });
    }
  }
  const results = {
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    loadAverage: Deno.loadavg(),
    rounds,
    notes: "medians of alternating rounds after two warm-up steps; train step = step session (forward + " +
      "backward) + optimizer session (AdamW, clipping); forward = evaluation branch of the same session; bytes per step counted over " +
      "two steps without forwards in between (on wasm every host tensor fed counts, parameters included); " +
      "WebGPU here is lavapipe (software) unless a GPU is present",
    sizes: Object.fromEntries(SIZES.map((s) => [s.name, s.shape])),
    rows,
    sideBySide,
  };
  const dir = new URL("./results/", import.meta.url);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(new URL("training.json", dir), JSON.stringify(results, null, 2) + "\n");
  console.log("\nwrote bench/results/training.json");
}

if (import.meta.main) await main();
