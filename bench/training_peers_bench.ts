/**
 * Training against PyTorch on the same work, side by side in one run: LoRA rank 4 (alpha 8) on all 7
 * projections of every block, base frozen, AdamW (lr 1e-3, no weight decay, global gradient-norm clipping
 * at 1), next-token loss on rows of random token ids (labels = inputs, no padding), float32, CPU.
 *
 * - ours: {@linkcode AdapterTrainer} (LoRA on every site, `trainableGates: false`) on wasm, one step =
 *   `trainStep` + `applyGradients(1e-3)`, with `WEIGHTLORA_WASM_THREADS` = 1 or 2;
 * - PyTorch: `bench/_torch_train_peer.py`, an eager Llama of the same math (RMSNorm, rotate-half RoPE,
 *   grouped-query attention with the scores materialised as ours are, SwiGLU, tied lm_head), LoRA as
 *   `x·Aᵀ·Bᵀ·scale` beside each projection, only A and B requiring grad, `clip_grad_norm_` then
 *   `torch.optim.AdamW`, with `torch.set_num_threads(n)` and `OMP_NUM_THREADS=n`.
 *
 * Both sides load the same safetensors file (base weights and the initial A and B, written here) and
 * train on the same batches. A parity check runs first on small batches (2 × 32 tokens) with B ≠ 0: the
 * first step's loss must agree within 1e-3, and the second step's loss (after one clipped AdamW update)
 * and the first gradient norm are reported too.
 *
 * Shapes: stories260K (the real checkpoint, converted with {@linkcode convertLlama2c}) at 8 × 256 tokens,
 * stories15M's shape (random weights) at 8 × 256, SmolLM2-135M's shape (random weights: 30 layers, width
 * 576, GQA 9/3, vocab 49152, tied) at 4 × 256 and at 2 × 256 (ours exhausts the 4 GB wasm32 heap at
 * 4 × 256: the row records the error); one and two threads each. Every run is its own process
 * (threads are fixed per process); rounds alternate the engines (ours, torch, ours, torch …; the order
 * flips each round) and the ratio ours / torch is taken within each round, then the median over rounds.
 * Each process times its steps after warm-up steps (tokens/s = batch · seq / median step time) and reports
 * its peak RSS (ours: `VmHWM` of `/proc/self/status`; torch: `getrusage` `ru_maxrss`). Ours also reports the
 * share of the step spent inside onnxruntime's `session.run` (the rest is host work: feeds, outputs, JS).
 * A child prints a line when ready and after each step; one silent for longer than its model's stall time
 * is killed as hung (ours hung at 2 wasm threads until onnxruntime's heap was created at its full size: see
 * `docs/training_speed.md`), and that configuration is not run again for the model, nor at all once it hung
 * on two models.
 *
 *     deno task bench training_peers                         # or: deno run -A bench/training_peers_bench.ts --write
 *     deno run -A bench/training_peers_bench.ts --quick      # smoke run (1 round, 1 step, small shapes), writes nothing
 *
 * Options: `--rounds R` (default 3; 1 for the SmolLM2 shape), `--steps N` (timed steps per process,
 * default 4; 2 for the SmolLM2 shape), `--warmup W` (default 2; 1 for the SmolLM2 shape), `--only NAME`
 * (models whose name contains NAME; with `--write`, the other models' rows and parity are kept from the
 * previous `bench/results/training_peers.json`, and the header says from when), `--python PATH` (default: `python3`, else `/usr/bin/python3`), `--write` (write
 * `bench/results/training_peers.{json,md}` and the table of `docs/training_speed.md`), `--threads 1,2`
 * (thread counts), `--skip-parity`, `--render` (only rewrite the `.md` and the doc's table from the JSON).
 *
 * When `python3` cannot import torch the bench says how to install it and measures our side alone.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { convertLlama2c } from "../src/io/convert.ts";
import { loadModelFolder } from "../src/io/model_folder.ts";
import { readSafetensors, writeSafetensors } from "../src/io/safetensors.ts";
import { initAdapter } from "../src/lora/adapter.ts";
import type { LlamaConfig } from "../src/models/config.ts";
import { loraInputNames } from "../src/models/lora_inputs.ts";
import { randomLlamaWeights } from "../src/models/random_weights.ts";
import { listAdapterSites } from "../src/models/sites.ts";
import type { TensorData } from "../src/onnx/types.ts";
import { GraphBuilder } from "../src/onnx/builder.ts";
import { ort } from "../src/runtime/ort.ts";
import { OnnxSession } from "../src/runtime/session.ts";
import { AdapterTrainer } from "../src/train/adapter_trainer.ts";
import { makeBatch } from "../src/train/batches.ts";
import { STORIES15M_SHAPE, STORIES260K_DIR } from "./_models.ts";
import type { SideBySideEntry } from "./_side_by_side.ts";
import { figure, markdownTable } from "./_table.ts";

/** SmolLM2-135M's shape (HuggingFaceTB/SmolLM2-135M config.json), for random weights. */
export const SMOLLM2_135M_SHAPE: LlamaConfig = {
  architecture: "llama",
  vocabSize: 49152,
  hiddenSize: 576,
  intermediateSize: 1536,
  numHiddenLayers: 30,
  numAttentionHeads: 9,
  numKeyValueHeads: 3,
  headDim: 64,
  rmsNormEps: 1e-5,
  ropeTheta: 100000,
  maxPositionEmbeddings: 8192,
  tieWordEmbeddings: true,
  attentionBias: false,
  bosTokenId: 0,
  eosTokenIds: [0],
};

const RESULTS = new URL("results/", import.meta.url);
const DOC = new URL("../docs/training_speed.md", import.meta.url);
const PY_SCRIPT = new URL("_torch_train_peer.py", import.meta.url).pathname;
const INSTALL_HINT = "apt-get install python3-torch libopenblas0-pthread";
const RANK = 4, ALPHA = 8, LR = 1e-3, MAX_GRAD_NORM = 1, WEIGHT_DECAY = 0;

type Engine = "weightlora" | "torch";

/** What one process is asked to do (written as JSON for the child, ours or torch). */
interface RunSpec {
  config: LlamaConfig;
  /** safetensors with the base weights and `<site>.lora_A` / `<site>.lora_B`. */
  weights: string;
  /** PEFT module paths of the adapted sites. */
  sites: string[];
  batch: number;
  seq: number;
  rank: number;
  alpha: number;
  lr: number;
  maxGradNorm: number;
  weightDecay: number;
  threads: number;
  warmup: number;
  steps: number;
  /** Token rows per batch, flattened `[batch · seq]`; steps cycle through them. */
  batches: number[][];
  attention: "eager" | "sdpa";
}

/** What one process reports. */
interface RunResult {
  engine: Engine;
  threads: number;
  stepMs: number[];
  losses: number[];
  gradNorms: number[];
  loadMs: number;
  /** Peak RSS once the model is loaded and the training session built, before the first step. */
  loadPeakRssBytes: number;
  peakRssBytes: number;
  /** Ours: the share of each timed step inside `session.run`. */
  sessionRunMs?: number[];
  /** Ours: trainStep and applyGradients per timed step. */
  trainMs?: number[];
  optimizerMs?: number[];
  /** Torch: forward of each timed step; ours: forwards alone (evalLoss) after the timed steps. */
  forwardMs?: number[];
  /** GFLOP/s of one MatMul of the model's MLP shape ([batch·seq, hidden] × [hidden, intermediate]) and of
   * its lm_head shape ([batch·seq, hidden] × [hidden, vocab]), measured after the steps. */
  gemmGflops?: { mlp: number; lmHead: number };
  /** Torch: backward, clip + AdamW per timed step. */
  backwardMs?: number[];
  version?: string;
}

type Outcome = { result: RunResult } | { error: string };

/** A model measured: name, weights, batch shape and per-model run counts. */
interface Workload {
  name: string;
  config: LlamaConfig;
  weights: () => Promise<Map<string, TensorData>>;
  batch: number;
  seq: number;
  rounds: number;
  warmup: number;
  steps: number;
  timeoutS: number;
  /** Seconds without a progress line after which a child is deemed hung. */
  stallS: number;
}

function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function decode(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/** The `error: …` lines of a child's stderr (Deno's uncaught-error report, Python's last line), else its tail. */
function tail(text: string, lines = 8): string {
  const all = text.trim().split("\n");
  const errors = all.filter((l) => l.startsWith("error: ") || /^\w*(Error|Exception)\b/.test(l));
  return (errors.length > 0 ? errors : all.slice(-lines)).join("\n").slice(0, 2000);
}

/** A float32 tensor. */
function f32(name: string, dims: number[], values: Float32Array): TensorData {
  return {
    name,
    dtype: "float32",
    dims,
    data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
  };
}

/** Seeded uniform numbers in [−scale, scale). */
function uniform(seed: number, n: number, scale: number): Float32Array {
  let x = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = (x / 2 ** 32 * 2 - 1) * scale;
  }
  return out;
}

/** `count` batches of `batch` rows: BOS then random ids in [3, vocab), the same rows for both engines. */
function tokenBatches(vocab: number, batch: number, seq: number, count: number, bos: number): number[][] {
  let x = 12345;
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % (vocab - 3) + 3;
  return Array.from({ length: count }, () => {
    const ids: number[] = [];
    for (let r = 0; r < batch; r++) {
      ids.push(bos);
      for (let t = 1; t < seq; t++) ids.push(next());
    }
    return ids;
  });
}

/**
 * Writes the base weights and the initial adapter (A Kaiming-uniform as ours initialises it; B zero, or
 * small random values for the parity check so the adapter path counts in the loss) into one file.
 */
async function writeWeights(
  path: string,
  config: LlamaConfig,
  base: Map<string, TensorData>,
  randomB: boolean,
): Promise<string[]> {
  const sites = initAdapter(listAdapterSites(config), { rank: RANK, alpha: ALPHA, rslora: false, seed: 1 });
  const tensors: TensorData[] = [...base.values()];
  sites.forEach((s, i) => {
    const names = loraInputNames(s.site.name);
    tensors.push(f32(names.a, [s.rank, s.site.inFeatures], s.a));
    const b = randomB ? uniform(1000 + i, s.b.length, 0.05) : s.b;
    tensors.push(f32(names.b, [s.site.outFeatures, s.rank], b));
  });
  await writeSafetensors(path, tensors);
  return sites.map((s) => s.site.name);
}

// ---------------------------------------------------------------------------------------------------------
// the child processes

/** Peak resident set of this process (`VmHWM`), bytes. */
function peakRss(): number {
  const m = /VmHWM:\s+(\d+)\s+kB/.exec(Deno.readTextFileSync("/proc/self/status"));
  return m ? Number(m[1]) * 1024 : NaN;
}

/**
 * GFLOP/s of one float32 MatMul `[m, k] × [k, n]` with a constant right side (as the model's projections),
 * median of 5 runs after one warm-up, on wasm.
 */
async function oursGemmGflops(m: number, k: number, n: number): Promise<number> {
  const b = new GraphBuilder("gemm_probe");
  const x = b.input("x", "float32", [m, k]);
  const w = b.initializer("w", uniform(7, k * n, 0.02), [k, n]);
  b.output(b.matmul(x, w), "y");
  const session = await OnnxSession.create(b.toModel(), { ep: "wasm" });
  try {
    const feeds = { x: new ort.Tensor("float32", uniform(8, m * k, 1), [m, k]) };
    await session.run(feeds);
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await session.run(feeds);
      times.push(performance.now() - t0);
    }
    return (2 * m * k * n) / (median(times) / 1000) / 1e9;
  } finally {
    await session.release();
  }
}

/** Our side: runs in its own process (`--ours-child spec.json`), prints its {@linkcode RunResult}. */
async function oursChild(specPath: string): Promise<void> {
  // time spent inside onnxruntime's session.run, for the share of the step it takes
  let inRun = 0;
  const proto = (ort.InferenceSession as unknown as {
    prototype: { run: (...args: unknown[]) => Promise<unknown> };
  }).prototype;
  const run = proto.run;
  proto.run = async function (this: unknown, ...args: unknown[]) {
    const t0 = performance.now();
    try {
      return await run.apply(this, args);
    } finally {
      inRun += performance.now() - t0;
    }
  };
  const spec: RunSpec = JSON.parse(await Deno.readTextFile(specPath));
  const t0 = performance.now();
  const file = await readSafetensors(spec.weights);
  const weights = new Map<string, TensorData>();
  for (const [name, t] of file.tensors) if (!name.includes(".lora_")) weights.set(name, t);
  const sites = initAdapter(listAdapterSites(spec.config), {
    rank: spec.rank,
    alpha: spec.alpha,
    rslora: false,
    seed: 1,
  });
  for (const s of sites) {
    const names = loraInputNames(s.site.name);
    const read = (name: string) => {
      const t = file.tensors.get(name);
      if (!t) throw new Error(`${spec.weights} has no tensor ${name}`);
      return new Float32Array(t.data.slice().buffer);
    };
    s.a = read(names.a);
    s.b = read(names.b);
  }
  const trainer = await AdapterTrainer.create({
    model: { config: spec.config, weights },
    sites,
    trainableGates: false,
    batchSize: spec.batch,
    seqLen: spec.seq,
    optimizer: { kind: "adamw", weightDecay: spec.weightDecay, maxGradNorm: spec.maxGradNorm },
    ep: "wasm",
    gradientAccumulation: false,
  });
  const batches = spec.batches.map((ids) => {
    const rows = Array.from({ length: spec.batch }, (_, r) => {
      const row = ids.slice(r * spec.seq, (r + 1) * spec.seq);
      return { inputIds: row, labels: row };
    });
    return makeBatch(rows, { batchSize: spec.batch, seqLen: spec.seq });
  });
  const loadMs = performance.now() - t0;
  const loadPeakRssBytes = peakRss();
  console.error(`ready in ${loadMs.toFixed(0)} ms`);
  const result: Required<
    Pick<RunResult, "stepMs" | "losses" | "gradNorms" | "sessionRunMs" | "trainMs" | "optimizerMs">
  > = {
    stepMs: [],
    losses: [],
    gradNorms: [],
    sessionRunMs: [],
    trainMs: [],
    optimizerMs: [],
  };
  for (let i = 0; i < spec.warmup + spec.steps; i++) {
    inRun = 0;
    const t0 = performance.now();
    const loss = await trainer.trainStep([batches[i % batches.length]]);
    const t1 = performance.now();
    const { gradNorm } = await trainer.applyGradients(spec.lr);
    const t2 = performance.now();
    result.losses.push(loss);
    result.gradNorms.push(gradNorm);
    console.error(`step ${i}: ${(t2 - t0).toFixed(0)} ms, loss ${loss}`);
    if (i < spec.warmup) continue;
    result.stepMs.push(t2 - t0);
    result.trainMs.push(t1 - t0);
    result.optimizerMs.push(t2 - t1);
    result.sessionRunMs.push(inRun);
  }
  // one forward alone (the eval branch: loss only), to split the step into forward and the rest
  const forwardMs: number[] = [];
  for (let i = 0; i < Math.min(2, spec.steps); i++) {
    const t0 = performance.now();
    await trainer.evalLoss([batches[i % batches.length]]);
    forwardMs.push(performance.now() - t0);
  }
  await trainer.release();
  const peakRssBytes = peakRss(); // before the GEMM probe, which allocates its own tensors
  const m = spec.batch * spec.seq, k = spec.config.hiddenSize;
  const gemmGflops = {
    mlp: await oursGemmGflops(m, k, spec.config.intermediateSize),
    lmHead: await oursGemmGflops(m, k, spec.config.vocabSize),
  };
  const out: RunResult = {
    gemmGflops,
    forwardMs,
    engine: "weightlora",
    threads: spec.threads,
    loadMs,
    loadPeakRssBytes,
    peakRssBytes,
    ...result,
  };
  console.log(JSON.stringify(out));
  // onnxruntime's wasm threads keep the process alive after the work is done
  Deno.exit(0);
}

// ---------------------------------------------------------------------------------------------------------
// the parent

/**
 * Runs one process and parses the last line of its stdout as its result. The children write a line to
 * stderr when ready and after each step; one that writes nothing for `stallS` seconds (a hang) or runs past
 * `timeoutS` is killed.
 */
async function runChild(
  engine: Engine,
  spec: RunSpec,
  specPath: string,
  options: { python: string; timeoutS: number; stallS: number },
): Promise<Outcome> {
  await Deno.writeTextFile(specPath, JSON.stringify(spec));
  const threads = String(spec.threads);
  const command = engine === "weightlora"
    ? new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(import.meta.url).pathname, "--ours-child", specPath],
      env: { WEIGHTLORA_WASM_THREADS: threads, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    })
    : new Deno.Command(options.python, {
      args: [PY_SCRIPT, specPath],
      env: { OMP_NUM_THREADS: threads, MKL_NUM_THREADS: threads, OPENBLAS_NUM_THREADS: threads },
      stdout: "piped",
      stderr: "piped",
    });
  const child = command.spawn();
  const start = performance.now();
  let last = start, killedFor: string | undefined, stderr = "";
  const readErr = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      stderr += decoder.decode(chunk, { stream: true });
      last = performance.now();
    }
  })();
  const readOut = new Response(child.stdout).text();
  const watchdog = setInterval(() => {
    const now = performance.now();
    if (now - last > options.stallS * 1000) {
      killedFor = `no progress for ${options.stallS} s (hung; the last line: ${
        JSON.stringify(stderr.trim().split("\n").at(-1) ?? "")
      })`;
    } else if (now - start > options.timeoutS * 1000) killedFor = `no result within ${options.timeoutS} s`;
    else return;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, 1000);
  try {
    const status = await child.status;
    const [stdout] = await Promise.all([readOut, readErr]);
    if (killedFor) return { error: `killed: ${killedFor}` };
    if (!status.success) {
      const why = status.signal ? `killed by ${status.signal}` : `exit ${status.code}`;
      return { error: `${why}: ${tail(stderr)}` };
    }
    return { result: JSON.parse(stdout.trim().split("\n").at(-1)!) };
  } catch (e) {
    return { error: (e as Error).message };
  } finally {
    clearInterval(watchdog);
  }
}

/** The torch version `python` imports, or undefined (with the reason). */
async function torchVersion(python: string): Promise<{ version?: string; why?: string }> {
  try {
    const out = await new Deno.Command(python, {
      args: ["-c", "import torch; print(torch.__version__)"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (out.success) return { version: decode(out.stdout).trim() };
    return { why: tail(decode(out.stderr), 1) };
  } catch (e) {
    return { why: (e as Error).message };
  }
}

/** One model × thread count, summarised over rounds. */
interface Row {
  model: string;
  batch: number;
  seq: number;
  threads: number;
  rounds: number;
  steps: number;
  oursTokensPerS: number;
  torchTokensPerS: number;
  /** Median over rounds of (ours tokens/s) / (torch tokens/s) in the same round. */
  ratio: number;
  oursPeakRssBytes: number;
  torchPeakRssBytes: number;
  /** Peak RSS before the first step (model loaded, session built). */
  oursLoadPeakRssBytes: number;
  torchLoadPeakRssBytes: number;
  /** Ours: share of the step inside session.run, and of the step in applyGradients. */
  oursSessionRunShare: number;
  oursOptimizerShare: number;
  /** Median step and forward times, ms (ours' forward: evalLoss alone; torch's: the step's forward). */
  oursStepMs: number;
  torchStepMs: number;
  /** Matrix-product GFLOP of one step ({@linkcode stepMatmulFlops}). */
  stepGflop: number;
  oursForwardMs: number;
  torchForwardMs: number;
  oursLoadMs: number;
  torchLoadMs: number;
  /** GFLOP/s of one MatMul of the MLP shape and of the lm_head shape, each side (see RunResult). */
  oursGemmGflops: { mlp: number; lmHead: number };
  torchGemmGflops: { mlp: number; lmHead: number };
  oursError?: string;
  torchError?: string;
  /** The date of the run that measured this row, when it was kept from an earlier run (`--only`). */
  from?: string;
}

/** The parity check on one model: first-step loss and grad norm, and the second step's loss. */
interface Parity {
  model: string;
  batch: number;
  seq: number;
  oursLosses: number[];
  torchLosses: number[];
  oursGradNorm: number;
  torchGradNorm: number;
  firstLossDiff: number;
  secondLossDiff: number;
  ok: boolean;
  error?: string;
}

/**
 * Matrix-product FLOPs of one step with a frozen base: the projections and lm_head forward and their input
 * gradients (2 · tokens · in · out each), attention's two products over the full T × T scores forward and
 * twice that backward (LoRA's rank-4 products are left out: under 1%).
 */
export function stepMatmulFlops(config: LlamaConfig, batch: number, seq: number): number {
  const tokens = batch * seq;
  const sites = listAdapterSites(config);
  const weights = sites.reduce((n, s) => n + s.inFeatures * s.outFeatures, 0) +
    config.vocabSize * config.hiddenSize;
  const attention = 2 * 2 * batch * config.numAttentionHeads * seq * seq * config.headDim *
    config.numHiddenLayers;
  return 2 * (2 * tokens * weights) + 3 * attention;
}

function summarise(w: Workload, threads: number, runs: { ours: Outcome; torch?: Outcome }[]): Row {
  const tokens = w.batch * w.seq;
  const tps = (o: Outcome | undefined) =>
    o && "result" in o ? tokens / (median(o.result.stepMs) / 1000) : NaN;
  const ok = (o: Outcome | undefined): o is { result: RunResult } => o !== undefined && "result" in o;
  const ours = runs.map((r) => r.ours).filter(ok).map((o) => o.result);
  const torch = runs.map((r) => r.torch).filter(ok).map((o) => o.result);
  const firstError = (list: (Outcome | undefined)[]) => {
    const e = list.find((o) => o && "error" in o);
    return e && "error" in e ? e.error : undefined;
  };
  const share = (num: (r: RunResult) => number[] | undefined) =>
    median(ours.flatMap((r) => (num(r) ?? []).map((v, i) => v / r.stepMs[i])));
  return {
    model: w.name,
    batch: w.batch,
    seq: w.seq,
    threads,
    rounds: runs.length,
    steps: w.steps,
    oursTokensPerS: median(runs.map((r) => tps(r.ours)).filter(Number.isFinite)),
    torchTokensPerS: median(runs.map((r) => tps(r.torch)).filter(Number.isFinite)),
    ratio: median(runs.map((r) => tps(r.ours) / tps(r.torch)).filter(Number.isFinite)),
    oursPeakRssBytes: median(ours.map((r) => r.peakRssBytes)),
    torchPeakRssBytes: median(torch.map((r) => r.peakRssBytes)),
    oursLoadPeakRssBytes: median(ours.map((r) => r.loadPeakRssBytes)),
    torchLoadPeakRssBytes: median(torch.map((r) => r.loadPeakRssBytes)),
    oursSessionRunShare: share((r) => r.sessionRunMs),
    oursOptimizerShare: share((r) => r.optimizerMs),
    stepGflop: stepMatmulFlops(w.config, w.batch, w.seq) / 1e9,
    oursStepMs: median(ours.map((r) => median(r.stepMs))),
    torchStepMs: median(torch.map((r) => median(r.stepMs))),
    oursForwardMs: median(ours.map((r) => median(r.forwardMs ?? []))),
    torchForwardMs: median(torch.map((r) => median(r.forwardMs ?? []))),
    oursLoadMs: median(ours.map((r) => r.loadMs)),
    oursGemmGflops: {
      mlp: median(ours.map((r) => r.gemmGflops?.mlp ?? NaN)),
      lmHead: median(ours.map((r) => r.gemmGflops?.lmHead ?? NaN)),
    },
    torchGemmGflops: {
      mlp: median(torch.map((r) => r.gemmGflops?.mlp ?? NaN)),
      lmHead: median(torch.map((r) => r.gemmGflops?.lmHead ?? NaN)),
    },
    torchLoadMs: median(torch.map((r) => r.loadMs)),
    oursError: firstError(runs.map((r) => r.ours)),
    torchError: firstError(runs.map((r) => r.torch)),
  };
}

function mb(bytes: number): string {
  return Number.isFinite(bytes) ? `${Math.round(bytes / 2 ** 20)} MB` : "—";
}

function pct(x: number): string {
  return Number.isFinite(x) ? `${(100 * x).toFixed(0)}%` : "—";
}

/** The Markdown of the results (the figures table, parity, failures). */
function markdown(json: {
  date: string;
  torch: string;
  header: string;
  rows: Row[];
  parity: Parity[];
}): string {
  const table = markdownTable(
    [
      "model",
      "batch × seq",
      "threads",
      "ours tok/s",
      "torch tok/s",
      "ours / torch",
      "peak RSS ours (at load)",
      "peak RSS torch (at load)",
      "step ms ours / torch",
      "forward ms ours / torch",
      "ours in session.run",
      "ours in applyGradients",
      "step GFLOP/s ours / torch",
      "MatMul GFLOP/s ours / torch (MLP; lm_head)",
    ],
    json.rows.map((r) => [
      r.model,
      `${r.batch} × ${r.seq}`,
      r.threads,
      figure(r.oursTokensPerS),
      figure(r.torchTokensPerS),
      Number.isFinite(r.ratio) ? `${r.ratio.toFixed(2)}×` : "—",
      `${mb(r.oursPeakRssBytes)} (${mb(r.oursLoadPeakRssBytes)})`,
      `${mb(r.torchPeakRssBytes)} (${mb(r.torchLoadPeakRssBytes)})`,
      `${figure(r.oursStepMs)} / ${figure(r.torchStepMs)}`,
      `${figure(r.oursForwardMs)} / ${figure(r.torchForwardMs)}`,
      pct(r.oursSessionRunShare),
      pct(r.oursOptimizerShare),
      `${figure(r.stepGflop / (r.oursStepMs / 1000))} / ${figure(r.stepGflop / (r.torchStepMs / 1000))}`,
      `${figure(r.oursGemmGflops.mlp)} / ${figure(r.torchGemmGflops.mlp)}; ` +
      `${figure(r.oursGemmGflops.lmHead)} / ${figure(r.torchGemmGflops.lmHead)}`,
    ]),
  );
  const parity = markdownTable(
    [
      "model",
      "batch × seq",
      "loss step 1 ours",
      "torch",
      "diff",
      "loss step 2 ours",
      "torch",
      "diff",
      "grad norm ours",
      "torch",
      "ok",
    ],
    json.parity.map((p) => [
      p.model,
      `${p.batch} × ${p.seq}`,
      p.oursLosses[0]?.toFixed(6) ?? "—",
      p.torchLosses[0]?.toFixed(6) ?? "—",
      Number.isFinite(p.firstLossDiff) ? p.firstLossDiff.toExponential(1) : "—",
      p.oursLosses[1]?.toFixed(6) ?? "—",
      p.torchLosses[1]?.toFixed(6) ?? "—",
      Number.isFinite(p.secondLossDiff) ? p.secondLossDiff.toExponential(1) : "—",
      Number.isFinite(p.oursGradNorm) ? p.oursGradNorm.toFixed(5) : "—",
      Number.isFinite(p.torchGradNorm) ? p.torchGradNorm.toFixed(5) : "—",
      p.error ? `no: ${p.error.split("\n")[0]}` : p.ok ? "yes" : "no",
    ]),
  );
  const why = (e: string) =>
    e.includes("bad_alloc") ? `${e} (onnxruntime-web's wasm32 heap holds at most 4 GB)` : e;
  const failures = json.rows.flatMap((r) => [
    ...(r.oursError
      ? [
        `- ${r.model} ${r.batch} × ${r.seq}, ours, ${r.threads} thread(s): ${
          why(r.oursError).replaceAll("\n", " ")
        }`,
      ]
      : []),
    ...(r.torchError
      ? [
        `- ${r.model} ${r.batch} × ${r.seq}, torch, ${r.threads} thread(s): ${
          why(r.torchError).replaceAll("\n", " ")
        }`,
      ]
      : []),
  ]);
  const legend =
    "Columns: tokens/s = batch · seq / median step time (forward, backward, clipping and AdamW); " +
    "peak RSS of each process, and in parentheses its peak before the first step (model loaded, session " +
    "built); forward ms: ours `evalLoss` alone, torch the step's forward; in session.run / in applyGradients: " +
    "shares of our step; step GFLOP/s: the step's matrix-product FLOPs (projections and lm_head forward and " +
    "their input gradients, attention's products; the frozen base has no weight gradients) / step time; " +
    "MatMul GFLOP/s: one product of the MLP shape [batch·seq, hidden] × [hidden, intermediate] and of the " +
    "lm_head shape [batch·seq, hidden] × [hidden, vocab] alone, in the same process after the steps (ours: " +
    "onnxruntime-web MatMul with a constant weight; torch: F.linear).";
  return [
    json.header,
    "",
    table,
    "",
    legend,
    ...(json.parity.length
      ? ["", "Parity (same weights and batches, B ≠ 0, one process each, 1 thread):", "", parity]
      : []),
    ...(failures.length ? ["", "Failures:", "", ...failures] : []),
    "",
  ].join("\n");
}

/** The results JSON as written (JSON has no NaN: the figures a run lacks were written as null). */
async function readResults(): Promise<
  { date: string; quick: boolean; torch: string; header: string; rows: Row[]; parity: Parity[] }
> {
  const text = await Deno.readTextFile(new URL("training_peers.json", RESULTS));
  return JSON.parse(text, (_key, value) => (value === null ? NaN : value));
}

/** Replaces the generated region of `docs/training_speed.md`. */
async function writeDocTable(text: string): Promise<void> {
  const doc = await Deno.readTextFile(DOC);
  const begin = "<!-- bench:training_peers -->", end = "<!-- /bench:training_peers -->";
  const i = doc.indexOf(begin), j = doc.indexOf(end);
  if (i < 0 || j < i) throw new Error(`${DOC.pathname} has no ${begin} … ${end} region`);
  await atomicWrite(DOC, doc.slice(0, i + begin.length) + "\n\n" + text.trim() + "\n\n" + doc.slice(j));
  // the docs are formatted (`deno task check` runs `deno fmt --check`): wrap the prose as the formatter does
  const fmt = await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", DOC.pathname], stderr: "piped" })
    .output();
  if (!fmt.success) throw new Error(`deno fmt ${DOC.pathname} failed: ${decode(fmt.stderr)}`);
}

async function atomicWrite(url: URL, text: string): Promise<void> {
  const tmp = `${url.pathname}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, url.pathname);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      write: { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
      rounds: { type: "string" },
      steps: { type: "string" },
      warmup: { type: "string" },
      only: { type: "string" },
      python: { type: "string" },
      "skip-parity": { type: "boolean", default: false },
      threads: { type: "string", default: "1,2" },
      batch: { type: "string" },
      "ours-child": { type: "string" },
      render: { type: "boolean", default: false },
    },
  });
  if (values["ours-child"]) return await oursChild(values["ours-child"]);
  if (values.render) {
    // the tables again from the JSON (after a change to their layout), nothing measured
    const md = markdown(await readResults());
    await atomicWrite(new URL("training_peers.md", RESULTS), md);
    await writeDocTable(md.split("\n").slice(2).join("\n"));
    return;
  }
  const int = (v: string | undefined, name: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < (name === "warmup" ? 0 : 1)) {
      throw new RangeError(
        `--${name} must be a ${name === "warmup" ? "non-negative" : "positive"} integer, got "${v}"`,
      );
    }
    return n;
  };
  const quick = values.quick;
  const threadCounts = values.threads.split(",").map((t) => int(t, "threads")!);
  const rounds = int(values.rounds, "rounds"), steps = int(values.steps, "steps");
  const warmup = int(values.warmup, "warmup");

  // the first Python that imports torch (PATH's python3 may be a virtual environment without it)
  let torch: { version?: string; why?: string } = {};
  let python = values.python ?? "python3";
  for (const candidate of values.python ? [values.python] : ["python3", "/usr/bin/python3"]) {
    torch = await torchVersion(candidate);
    python = candidate;
    if (torch.version) break;
  }
  if (!torch.version) {
    console.error(
      `training_peers_bench: ${python} cannot import torch (${torch.why}); measuring our side only.\n` +
        `Install PyTorch for the peer: ${INSTALL_HINT} (Debian), or pip install torch.`,
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "training_peers_" });
  try {
    await convertLlama2c({
      model: `${STORIES260K_DIR}stories260K.bin`,
      tokenizer: `${STORIES260K_DIR}tok512.bin`,
      out: `${dir}/s260`,
    });
    const stories = await loadModelFolder(`${dir}/s260`);
    const random = (config: LlamaConfig) => () =>
      Promise.resolve(randomLlamaWeights(config, { seed: 1, scale: 0.02 }));
    const workloads: Workload[] = [
      {
        name: "stories260K",
        config: stories.config,
        weights: () => Promise.resolve(new Map(stories.weights)),
        batch: 8,
        seq: quick ? 64 : 256,
        rounds: rounds ?? (quick ? 1 : 3),
        warmup: warmup ?? (quick ? 1 : 2),
        steps: steps ?? (quick ? 1 : 6),
        timeoutS: 300,
        stallS: 45,
      },
      {
        name: "stories15M shape (random)",
        config: STORIES15M_SHAPE,
        weights: random(STORIES15M_SHAPE),
        batch: 8,
        seq: quick ? 32 : 256,
        rounds: rounds ?? (quick ? 1 : 3),
        warmup: warmup ?? 1,
        steps: steps ?? (quick ? 1 : 3),
        timeoutS: 600,
        stallS: 90,
      },
      {
        name: "SmolLM2-135M shape (random)",
        config: SMOLLM2_135M_SHAPE,
        weights: random(SMOLLM2_135M_SHAPE),
        batch: 4,
        seq: quick ? 32 : 256,
        rounds: rounds === undefined ? 1 : Math.min(rounds, 1),
        warmup: warmup ?? 1,
        steps: steps === undefined ? (quick ? 1 : 2) : Math.min(steps, 2),
        timeoutS: 900,
        stallS: 150,
      },
      {
        name: "SmolLM2-135M shape (random)",
        config: SMOLLM2_135M_SHAPE,
        weights: random(SMOLLM2_135M_SHAPE),
        batch: 2,
        seq: quick ? 32 : 256,
        rounds: rounds === undefined ? 1 : Math.min(rounds, 1),
        warmup: warmup ?? 1,
        steps: steps === undefined ? (quick ? 1 : 2) : Math.min(steps, 2),
        timeoutS: 900,
        stallS: 150,
      },
    ].filter((w) => !values.only || w.name.includes(values.only));
    if (workloads.length === 0) throw new Error(`--only ${values.only} matches no model`);
    const batchOverride = int(values.batch, "batch");
    if (batchOverride) { for (const w of workloads) w.batch = batchOverride; }
    const loadBefore = Deno.loadavg()[0];
    const base = (w: Workload, weights: string, sites: string[]): Omit<RunSpec, "threads" | "batches"> => ({
      config: w.config,
      weights,
      sites,
      batch: w.batch,
      seq: w.seq,
      rank: RANK,
      alpha: ALPHA,
      lr: LR,
      maxGradNorm: MAX_GRAD_NORM,
      weightDecay: WEIGHT_DECAY,
      warmup: w.warmup,
      steps: w.steps,
      attention: "eager",
    });

    // parity first, on small batches (the SmolLM2 shape is left out: its cost is the timed runs')
    const parity: Parity[] = [];
    if (torch.version && !values["skip-parity"]) {
      for (const w of workloads.filter((w) => !w.name.startsWith("SmolLM2"))) {
        const path = `${dir}/parity.safetensors`;
        const sites = await writeWeights(path, w.config, await w.weights(), true);
        const spec: RunSpec = {
          ...base(w, path, sites),
          batch: 2,
          seq: 32,
          warmup: 0,
          steps: 2,
          threads: 1,
          batches: tokenBatches(w.config.vocabSize, 2, 32, 1, w.config.bosTokenId ?? 1),
        };
        const ours = await runChild("weightlora", spec, `${dir}/spec.json`, {
          python,
          timeoutS: 300,
          stallS: 60,
        });
        const peer = await runChild("torch", spec, `${dir}/spec.json`, {
          python,
          timeoutS: 300,
          stallS: 60,
        });
        const o = "result" in ours ? ours.result : undefined, t = "result" in peer ? peer.result : undefined;
        const diff = (i: number) => Math.abs((o?.losses[i] ?? NaN) - (t?.losses[i] ?? NaN));
        const p: Parity = {
          model: w.name,
          batch: 2,
          seq: 32,
          oursLosses: o?.losses ?? [],
          torchLosses: t?.losses ?? [],
          oursGradNorm: o?.gradNorms[0] ?? NaN,
          torchGradNorm: t?.gradNorms[0] ?? NaN,
          firstLossDiff: diff(0),
          secondLossDiff: diff(1),
          ok: diff(0) <= 1e-3,
          error: "error" in ours
            ? `ours: ${ours.error}`
            : "error" in peer
            ? `torch: ${peer.error}`
            : undefined,
        };
        parity.push(p);
        console.error(
          `parity ${w.name}: loss ${p.oursLosses[0]} vs ${p.torchLosses[0]} (|diff| ${p.firstLossDiff}), ` +
            `step 2 ${p.oursLosses[1]} vs ${
              p.torchLosses[1]
            }, grad norm ${p.oursGradNorm} vs ${p.torchGradNorm}` +
            (p.error ? ` — ${p.error}` : ""),
        );
      }
      await Deno.remove(`${dir}/parity.safetensors`).catch(() => {});
    }

    const rows: Row[] = [];
    // configurations (engine/threads) that hung: where and when; one that hung in an earlier round of this
    // model, or on two earlier models, is not run again (each hang costs the stall time)
    const hung = new Map<string, string[]>();
    for (const w of workloads) {
      const path = `${dir}/weights.safetensors`;
      const sites = await writeWeights(path, w.config, await w.weights(), false);
      const batches = tokenBatches(w.config.vocabSize, w.batch, w.seq, 2, w.config.bosTokenId ?? 1);
      const perThreads = new Map<number, { ours: Outcome; torch?: Outcome }[]>(
        threadCounts.map((t) => [t, []]),
      );
      for (let r = 0; r < w.rounds; r++) {
        for (const threads of threadCounts) {
          const spec: RunSpec = { ...base(w, path, sites), threads, batches };
          const run = (engine: Engine) =>
            runChild(engine, spec, `${dir}/spec.json`, { python, timeoutS: w.timeoutS, stallS: w.stallS });
          // alternate which engine goes first, so a drift in machine load hits both
          const order: Engine[] = torch.version
            ? (r % 2 === 0 ? ["weightlora", "torch"] : ["torch", "weightlora"])
            : ["weightlora"];
          const got: Partial<Record<Engine, Outcome>> = {};
          for (const engine of order) {
            const earlier = hung.get(`${engine}/${threads}`) ?? [];
            const here = earlier.filter((h) => h.startsWith(`${w.name} ${w.batch}×${w.seq} `));
            got[engine] = here.length > 0 || earlier.length >= 2
              ? { error: `not run: it hung before (${earlier.join("; ")})` }
              : await run(engine);
            const o = got[engine]!;
            if ("error" in o && o.error.startsWith("killed: no progress")) {
              const key = `${engine}/${threads}`;
              hung.set(key, [...hung.get(key) ?? [], `${w.name} ${w.batch}×${w.seq} round ${r + 1}`]);
            }
            console.error(
              `${w.name} ${w.batch}×${w.seq} ${threads}t round ${r + 1}/${w.rounds} ${engine}: ` +
                ("result" in o
                  ? `${figure((w.batch * w.seq) / (median(o.result.stepMs) / 1000))} tok/s, ` +
                    `step ${figure(median(o.result.stepMs))} ms, peak RSS ${mb(o.result.peakRssBytes)}`
                  : `failed: ${o.error}`),
            );
          }
          perThreads.get(threads)!.push({ ours: got.weightlora!, torch: got.torch });
        }
      }
      for (const [threads, runs] of perThreads) rows.push(summarise(w, threads, runs));
      await Deno.remove(path);
    }

    const date = new Date().toISOString();
    const header = "# Training against PyTorch: LoRA tokens/s on the same work " +
      "(generated by bench/training_peers_bench.ts; do not edit)\n\n" +
      `${date}. LoRA r ${RANK} (alpha ${ALPHA}) on all 7 projections of every block, base frozen, AdamW ` +
      `(lr ${LR}, weight decay ${WEIGHT_DECAY}, gradient-norm clipping ${MAX_GRAD_NORM}), random token rows ` +
      "(labels = inputs, no padding), float32, CPU. Ours: AdapterTrainer on onnxruntime-web 1.30 wasm " +
      "(`WEIGHTLORA_WASM_THREADS`); torch: " +
      (torch.version ? `PyTorch ${torch.version}` : "not installed") +
      " eager Llama (`bench/_torch_train_peer.py`, attention scores materialised as ours). One step = " +
      "forward + backward + clipped AdamW update; tokens/s = batch · seq / median step time of one process " +
      "(after its warm-up steps); ours / torch is taken per round (each run its own process, the order " +
      `alternating), then the median. Rounds × timed steps: ${
        workloads.map((w) =>
          `${w.name} ${w.batch} × ${w.seq}: ${w.rounds} × ${w.steps} (warm-up ${w.warmup})`
        ).join(", ")
      }. ${navigator.hardwareConcurrency} CPUs; load average ${loadBefore.toFixed(1)} at the start, ` +
      `${Deno.loadavg()[0].toFixed(1)} at the end.`;
    let merged = header;
    if (values.only && values.write && !quick) {
      // keep the rows of the models not run now from the last full run, in their order
      const previous = await readResults().catch(() => undefined);
      const ran = new Set(workloads.map((w) => w.name));
      const kept = previous?.rows.filter((r) => !ran.has(r.model)).map((r) => ({
        ...r,
        from: r.from ?? previous.date,
      })) ?? [];
      if (kept.length > 0) {
        rows.push(...kept);
        parity.push(...previous!.parity.filter((p) => !ran.has(p.model)));
        for (const from of new Set(kept.map((r) => r.from))) {
          const models = [...new Set(kept.filter((r) => r.from === from).map((r) => r.model))].join(", ");
          merged += ` Rows of ${models}: from the run of ${from} (not rerun).`;
        }
      }
    }
    const json = { date, quick, torch: torch.version ?? "", header: merged, rows, parity };
    const md = markdown(json);
    console.log(md);
    if (parity.some((p) => !p.ok)) console.error("training_peers_bench: PARITY FAILED (see the table)");
    // `bench/mod.ts` passes "--write" to scripts that name it so
    if (values.write && !quick) {
      const sideBySide: SideBySideEntry[] = rows
        .filter((r) => Number.isFinite(r.oursTokensPerS) && Number.isFinite(r.torchTokensPerS))
        .map((r) => ({
          area: "training",
          metric: `${r.model} ${r.batch}×${r.seq} LoRA train tokens/s, wasm ${r.threads}t`,
          value: r.oursTokensPerS,
          baseline: `PyTorch ${torch.version} (${r.threads}t)`,
          baselineValue: r.torchTokensPerS,
          unit: "tok/s",
          higherIsBetter: true,
        }));
      await Deno.mkdir(RESULTS, { recursive: true });
      await atomicWrite(
        new URL("training_peers.json", RESULTS),
        JSON.stringify({ ...json, sideBySide }, null, 2) + "\n",
      );
      await atomicWrite(new URL("training_peers.md", RESULTS), md);
      await writeDocTable(md.split("\n").slice(2).join("\n"));
      console.error(
        "training_peers_bench: wrote bench/results/training_peers.{json,md} and docs/training_speed.md",
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main();
