/**
 * Training on quantized bases (QLoRA-style) and logits only at counted targets, measured side by side in one
 * run: LoRA rank 4 (alpha 8) on all 7 projections of every block, AdamW (lr 1e-3), wasm, one thread, random
 * base weights of a model shape, rows of random token ids.
 *
 * - `base`: float32 base, int8 (symmetric, block 32) and int4 (zero points, block 32) bases, each quantized
 *   base both ways: `in graph` (the base stays quantized: MatMulNBits forward, each layer dequantized in the
 *   graph only during its backward) and `at build` (dequantized to float32 before the graph is built, as
 *   training did before). Reports the bytes of base weights the process holds, onnxruntime's wasm heap
 *   after the session is built and after the steps (it only grows: the latter is its peak), the process's
 *   peak RSS, tokens/s and the first step's loss. Shapes: stories15M (8 × 256) and SmolLM2-135M (2 × 256).
 * - `counted`: prompt/completion rows (the first `prompt` tokens of each 256-token row are prompt, not
 *   counted) with logits at every position (`all`, the former graph) against logits only at counted targets
 *   (`counted`), float32 base, stories15M shape 8 × 256.
 * - `layer`: one linear layer alone (SmolLM2-135M's gate/up shape, 576 → 1536), forward and input gradient,
 *   float32 MatMul against MatMulNBits with the in-graph dequantizing backward, int8 and int4, in one process
 *   alternating (7 rounds, medians): what keeping the base quantized costs per product.
 * - `largest`: single attempts (build, warm-up step, one timed step) at growing shapes and bases, to find what
 *   fits in wasm32's 4 GB heap; an attempt that fails records its error.
 *
 * Every run is its own process (peak RSS and the wasm heap are per process); rounds alternate the order of
 * the variants (reversed every other round) and ratios are taken within a round, then the median.
 *
 *     deno run -A bench/qlora_bench.ts [--write] [--parts base,counted,layer,largest] [--rounds N] [--quick]
 *     deno run -A bench/qlora_bench.ts --from-json      # regenerate the Markdown from bench/results/qlora.json
 *
 * `--write` writes `bench/results/qlora.{json,md}` and the generated region of `docs/training_speed.md`; the
 * parts not run keep their figures from the existing `qlora.json`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { initAdapter } from "../src/lora/adapter.ts";
import type { LlamaConfig } from "../src/models/config.ts";
import { randomLlamaWeights } from "../src/models/random_weights.ts";
import { listAdapterSites } from "../src/models/sites.ts";
import {
  dequantizeModelWeights,
  type ModelWeights,
  quantizeModelWeights,
} from "../src/io/quantized_weights.ts";
import { quantizationPreset } from "../src/io/convert.ts";
import { AdapterTrainer } from "../src/train/adapter_trainer.ts";
import { makeBatch } from "../src/train/batches.ts";
import { Prng } from "../src/models/sampling.ts";
import { STORIES15M_SHAPE } from "./_models.ts";
import { SMOLLM2_135M_SHAPE } from "./training_peers_bench.ts";
import { figure, markdownTable } from "./_table.ts";
import { attr, GraphBuilder } from "../src/onnx/builder.ts";
import { buildGradientGraph } from "../src/autodiff/gradient.ts";
import { modelFromGraph } from "../src/onnx/model.ts";
import { OnnxSession } from "../src/runtime/session.ts";
import { ort } from "../src/runtime/ort.ts";
import { quantizeNBits } from "../src/io/quantize.ts";

/** SmolLM2-360M's shape (HuggingFaceTB/SmolLM2-360M config.json), for random weights. */
const SMOLLM2_360M_SHAPE: LlamaConfig = {
  ...SMOLLM2_135M_SHAPE,
  hiddenSize: 960,
  intermediateSize: 2560,
  numHiddenLayers: 32,
  numAttentionHeads: 15,
  numKeyValueHeads: 5,
  headDim: 64,
};

const SHAPES: Record<string, LlamaConfig> = {
  "stories15M": STORIES15M_SHAPE,
  "SmolLM2-135M": SMOLLM2_135M_SHAPE,
  "SmolLM2-360M": SMOLLM2_360M_SHAPE,
};

/** How the base is held. */
type Base =
  | "f32"
  | "int8 in graph"
  | "int8 at build"
  | "int4 in graph"
  | "int4 at build";

/** One child process's work. */
interface RunSpec {
  part: "base" | "counted" | "largest";
  shape: string;
  batch: number;
  seq: number;
  base: Base;
  logitsAt: "all" | "counted";
  /** Prompt tokens per row (targets not counted); 0: every target counts. */
  prompt: number;
  warmup: number;
  steps: number;
}

/** What a child reports. */
interface RunResult extends RunSpec {
  /** Bytes of the base weights held in JavaScript (the tensors the graph is built from). */
  baseBytes?: number;
  /** onnxruntime's wasm heap once the sessions are built, bytes. */
  heapAfterBuildBytes?: number;
  /** onnxruntime's wasm heap after the steps (its peak: it never shrinks), bytes. */
  heapPeakBytes?: number;
  /** Peak RSS of the process (`VmHWM`), bytes. */
  peakRssBytes?: number;
  /** Timed steps (trainStep + applyGradients), ms. */
  stepMs?: number[];
  /** Tokens (batch · seq) per second, from the median step. */
  tokensPerS?: number;
  /** First step's loss. */
  firstLoss?: number;
  /** The failure, when the run failed. */
  error?: string;
}

// ---------------------------------------------------------------------------------------------------------
// the child

const heaps: WebAssembly.Memory[] = [];

/** Records every wasm memory created from now on (onnxruntime creates its heap with the first session). */
function watchWasmHeaps(): void {
  const Native = WebAssembly.Memory;
  (WebAssembly as { Memory: typeof WebAssembly.Memory }).Memory = class extends Native {
    constructor(descriptor: WebAssembly.MemoryDescriptor) {
      super(descriptor);
      heaps.push(this);
    }
  };
}

function heapBytes(): number {
  return heaps.reduce((n, m) => n + m.buffer.byteLength, 0);
}

function peakRss(): number {
  const m = /VmHWM:\s+(\d+)\s+kB/.exec(
    Deno.readTextFileSync("/proc/self/status"),
  );
  return m ? Number(m[1]) * 1024 : NaN;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function child(specJson: string): Promise<void> {
  watchWasmHeaps();
  const spec: RunSpec = JSON.parse(specJson);
  const result: RunResult = { ...spec };
  try {
    const config = SHAPES[spec.shape];
    let model: ModelWeights = {
      config,
      weights: randomLlamaWeights(config, { seed: 1, scale: 0.05 }),
    };
    if (spec.base !== "f32") {
      const quantized = quantizeModelWeights(
        model,
        quantizationPreset(spec.base.slice(0, 4)),
      );
      model = spec.base.endsWith("at build") ? dequantizeModelWeights(quantized) : quantized;
    }
    result.baseBytes = [...model.weights.values()].reduce(
      (n, t) => n + t.data.byteLength,
      0,
    );
    const sites = initAdapter(listAdapterSites(config), {
      rank: 4,
      alpha: 8,
      rslora: false,
      seed: 1,
    });
    const trainer = await AdapterTrainer.create({
      model,
      sites,
      trainableGates: false,
      batchSize: spec.batch,
      seqLen: spec.seq,
      optimizer: { kind: "adamw", weightDecay: 0, maxGradNorm: 1 },
      ep: "wasm",
      gradientAccumulation: false,
      logitsAt: spec.logitsAt,
    });
    result.heapAfterBuildBytes = heapBytes();
    const rng = new Prng(7);
    const batches = [0, 1].map(() =>
      makeBatch(
        Array.from({ length: spec.batch }, () => {
          const ids = Array.from({ length: spec.seq }, () => 3 + (rng.nextUint32() % (config.vocabSize - 3)));
          return {
            inputIds: ids,
            labels: ids.map((id, i) => (i < spec.prompt ? -100 : id)),
          };
        }),
        { batchSize: spec.batch, seqLen: spec.seq },
      )
    );
    result.stepMs = [];
    for (let i = 0; i < spec.warmup + spec.steps; i++) {
      const t0 = performance.now();
      const loss = await trainer.trainStep([batches[i % 2]]);
      await trainer.applyGradients(1e-3);
      const ms = performance.now() - t0;
      if (i === 0) result.firstLoss = loss;
      if (i >= spec.warmup) result.stepMs.push(ms);
      console.error(
        `${spec.shape} ${spec.base} ${spec.logitsAt}: step ${i} ${ms.toFixed(0)} ms, loss ${loss}`,
      );
    }
    result.tokensPerS = (spec.batch * spec.seq) /
      (median(result.stepMs) / 1000);
    result.heapPeakBytes = heapBytes();
    await trainer.release();
  } catch (e) {
    result.error = String(e instanceof Error ? e.message : e).slice(0, 300);
    result.heapPeakBytes = heapBytes();
  }
  result.peakRssBytes = peakRss();
  console.log(JSON.stringify(result));
  Deno.exit(0);
}

// ---------------------------------------------------------------------------------------------------------
// one layer: float32 MatMul against MatMulNBits (+ the dequantizing backward)

/** One linear layer's forward + input gradient, per base kind. */
interface LayerRow {
  /** Rows of the input (batch · seq). */
  m: number;
  /** Input features. */
  k: number;
  /** Output features. */
  n: number;
  /** Median ms per kind. */
  ms: Record<"f32" | "int8" | "int4", number>;
}

async function layerSession(
  kind: "f32" | "int8" | "int4",
  m: number,
  k: number,
  n: number,
): Promise<OnnxSession> {
  const w = Float32Array.from(
    { length: n * k },
    (_, i) => Math.sin(i * 0.37) * 0.05,
  );
  const b = new GraphBuilder(`layer_${kind}`);
  const x = b.input("x", "float32", [m, k]);
  let y;
  if (kind === "f32") {
    const t = new Float32Array(k * n);
    for (let o = 0; o < n; o++) {
      for (let i = 0; i < k; i++) t[i * n + o] = w[o * k + i];
    }
    y = b.matmul(x, b.initializer("w", t, [k, n]));
  } else {
    const q = quantizeNBits(w, { rows: n, cols: k }, quantizationPreset(kind));
    const blocks = Math.ceil(k / 32);
    const zeros = q.zeroPoints
      ? b.initializer(
        "zeros",
        q.zeroPoints,
        [n, q.zeroPoints.length / n],
        "uint8",
      )
      : undefined;
    y = b.node("MatMulNBits", [
      x,
      b.initializer("codes", q.qweight, [
        n,
        blocks,
        q.qweight.length / (n * blocks),
      ], "uint8"),
      b.initializer("scales", q.scales, [n, blocks]),
      zeros,
    ], {
      K: attr.int(k),
      N: attr.int(n),
      bits: attr.int(q.bits),
      block_size: attr.int(32),
    }, {
      domain: "com.microsoft",
    })[0];
  }
  b.output(b.reduceSum(b.mul(y, y), undefined, false), "loss");
  const { graph } = buildGradientGraph(b.toGraph(), {
    loss: "loss",
    trainable: ["x"],
  });
  return await OnnxSession.create(modelFromGraph(graph), { ep: "wasm" });
}

async function measureLayer(
  m: number,
  k: number,
  n: number,
  rounds: number,
): Promise<LayerRow> {
  const kinds = ["f32", "int8", "int4"] as const;
  const sessions = await Promise.all(
    kinds.map((kind) => layerSession(kind, m, k, n)),
  );
  const feeds = {
    x: new ort.Tensor(
      "float32",
      Float32Array.from({ length: m * k }, (_, i) => Math.cos(i)),
      [m, k],
    ),
  };
  const times = kinds.map(() => [] as number[]);
  for (const s of sessions) await s.run(feeds);
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? [0, 1, 2] : [2, 1, 0];
    for (const i of order) {
      const t0 = performance.now();
      await sessions[i].run(feeds);
      times[i].push(performance.now() - t0);
    }
  }
  await Promise.all(sessions.map((s) => s.release()));
  return {
    m,
    k,
    n,
    ms: {
      f32: median(times[0]),
      int8: median(times[1]),
      int4: median(times[2]),
    },
  };
}

function layerTable(rows: LayerRow[]): string {
  return markdownTable(
    [
      "input rows",
      "K → N",
      "f32 ms",
      "int8 ms",
      "int4 ms",
      "int8 × f32",
      "int4 × f32",
    ],
    rows.map((r) => [
      r.m,
      `${r.k} → ${r.n}`,
      figure(r.ms.f32),
      figure(r.ms.int8),
      figure(r.ms.int4),
      figure(r.ms.int8 / r.ms.f32),
      figure(r.ms.int4 / r.ms.f32),
    ]),
  );
}

// ---------------------------------------------------------------------------------------------------------
// the parent

async function runChild(spec: RunSpec): Promise<RunResult> {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--child",
      JSON.stringify(spec),
    ],
    env: { WEIGHTLORA_WASM_THREADS: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  let result: RunResult;
  try {
    result = JSON.parse(lines[lines.length - 1]);
  } catch {
    result = {
      ...spec,
      error: `the child exited with code ${out.code} and no result`,
    };
  }
  console.error(
    `  ${spec.part} ${spec.shape} ${spec.batch}×${spec.seq} ${spec.base} ${spec.logitsAt}: ` +
      (result.error ?? `${figure(result.tokensPerS!)} tok/s`) +
      ` (${((performance.now() - t0) / 1000).toFixed(0)} s)`,
  );
  return result;
}

/** Runs the variants `rounds` times, alternating their order; returns the results per round. */
async function alternate(
  variants: RunSpec[],
  rounds: number,
): Promise<RunResult[][]> {
  const out: RunResult[][] = [];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? variants : [...variants].reverse();
    const results = new Map<RunSpec, RunResult>();
    for (const v of order) results.set(v, await runChild(v));
    out.push(variants.map((v) => results.get(v)!));
  }
  return out;
}

const mb = (
  bytes: number | undefined,
) => (bytes === undefined ? "—" : figure(bytes / 2 ** 20));

interface Summary {
  spec: RunSpec;
  rounds: RunResult[];
  tokensPerS: number;
  /** tokens/s over the first variant's, per round, median. */
  ratio: number;
}

function summarise(rounds: RunResult[][]): Summary[] {
  return rounds[0].map((_, i) => {
    const runs = rounds.map((r) => r[i]);
    const ok = runs.filter((r) => r.tokensPerS !== undefined);
    const ratios = rounds.filter((r) => r[0].tokensPerS && r[i].tokensPerS).map(
      (r) => r[i].tokensPerS! / r[0].tokensPerS!,
    );
    const { part, shape, batch, seq, base, logitsAt, prompt, warmup, steps } = runs[0];
    return {
      spec: { part, shape, batch, seq, base, logitsAt, prompt, warmup, steps },
      rounds: runs,
      tokensPerS: ok.length ? median(ok.map((r) => r.tokensPerS!)) : NaN,
      ratio: ratios.length ? median(ratios) : NaN,
    };
  });
}

function baseTable(rows: Summary[]): string {
  return markdownTable(
    [
      "shape",
      "batch",
      "base",
      "base weights (MB)",
      "wasm heap built / peak (MB)",
      "peak RSS (MB)",
      "tokens/s",
      "× f32",
      "first loss",
    ],
    rows.map((s) => {
      const r = s.rounds.find((x) => !x.error) ?? s.rounds[0];
      const med = (f: (x: RunResult) => number | undefined) => {
        const v = s.rounds.map(f).filter((x): x is number => x !== undefined);
        return v.length ? median(v) : undefined;
      };
      return [
        s.spec.shape,
        `${s.spec.batch} × ${s.spec.seq}`,
        s.spec.base,
        mb(r.baseBytes),
        `${mb(med((x) => x.heapAfterBuildBytes))} / ${mb(med((x) => x.heapPeakBytes))}`,
        mb(med((x) => x.peakRssBytes)),
        r.error ? `fails: ${r.error.slice(0, 60)}` : figure(s.tokensPerS),
        s.spec.base === "f32" ? "1" : figure(s.ratio),
        r.firstLoss === undefined ? "—" : r.firstLoss.toFixed(4),
      ];
    }),
  );
}

function countedTable(rows: Summary[]): string {
  return markdownTable(
    [
      "shape",
      "batch",
      "prompt tokens / row",
      "logits at",
      "tokens/s",
      "× all",
      "first loss",
      "peak RSS (MB)",
    ],
    rows.map((s) => [
      s.spec.shape,
      `${s.spec.batch} × ${s.spec.seq}`,
      `${s.spec.prompt} of ${s.spec.seq}`,
      s.spec.logitsAt,
      figure(s.tokensPerS),
      s.spec.logitsAt === "all" ? "1" : figure(s.ratio),
      s.rounds[0].firstLoss?.toFixed(6) ?? "—",
      mb(median(s.rounds.map((x) => x.peakRssBytes ?? NaN))),
    ]),
  );
}

function largestTable(rows: RunResult[]): string {
  return markdownTable(
    [
      "shape",
      "batch",
      "base",
      "logits at",
      "base weights (MB)",
      "wasm heap built / peak (MB)",
      "peak RSS (MB)",
      "result",
    ],
    rows.map((r) => [
      r.shape,
      `${r.batch} × ${r.seq}`,
      r.base,
      r.logitsAt,
      mb(r.baseBytes),
      `${mb(r.heapAfterBuildBytes)} / ${mb(r.heapPeakBytes)}`,
      mb(r.peakRssBytes),
      r.error ? `fails: ${r.error.slice(0, 80)}` : `trains: ${figure(r.tokensPerS!)} tokens/s`,
    ]),
  );
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

/** Renders the Markdown of a result file (also used to regenerate the tables from the JSON alone). */
export function renderQloraMarkdown(json: QloraResults): string {
  const parts: string[] = [];
  if (json.base?.length) {
    parts.push(
      "Quantized bases (LoRA r 4 on all sites, AdamW, one wasm thread; `in graph`: the base stays quantized, " +
        "`at build`: dequantized to float32 before the graph is built):",
      "",
      baseTable(json.base),
      "",
    );
  }
  if (json.counted?.length) {
    parts.push(
      "Logits only at counted targets (prompt/completion rows, float32 base):",
      "",
      countedTable(json.counted),
      "",
    );
  }
  if (json.layer?.length) {
    parts.push(
      "One linear layer, forward + input gradient (ms per run, medians of alternating rounds):",
      "",
      layerTable(json.layer),
      "",
    );
  }
  if (json.largest?.length) {
    parts.push(
      "Largest shapes (single attempts):",
      "",
      largestTable(json.largest),
      "",
    );
  }
  return `${
    parts.join("\n").trim()
  }\n\n_Generated by bench/qlora_bench.ts from bench/results/qlora.json (${json.date})._\n`;
}

/** The result file. */
export interface QloraResults {
  date: string;
  base?: Summary[];
  counted?: Summary[];
  largest?: RunResult[];
  layer?: LayerRow[];
}

async function writeDocRegion(markdown: string): Promise<void> {
  const path = new URL("../docs/training_speed.md", import.meta.url).pathname;
  const doc = await Deno.readTextFile(path);
  const begin = "<!-- bench:qlora -->", end = "<!-- /bench:qlora -->";
  const i = doc.indexOf(begin), j = doc.indexOf(end);
  if (i < 0 || j < i) {
    throw new Error(`${path} has no ${begin} … ${end} region`);
  }
  await writeAtomic(
    path,
    doc.slice(0, i + begin.length) + "\n\n" + markdown.trim() + "\n\n" +
      doc.slice(j),
  );
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", path] })
    .output();
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      child: { type: "string" },
      write: { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
      parts: { type: "string", default: "base,counted,layer,largest" },
      rounds: { type: "string", default: "2" },
      "from-json": { type: "boolean", default: false },
    },
  });
  if (values.child) return await child(values.child);
  const resultsDir = new URL("./results/", import.meta.url).pathname;
  if (values["from-json"]) {
    const json: QloraResults = JSON.parse(
      await Deno.readTextFile(`${resultsDir}qlora.json`),
    );
    const markdown = renderQloraMarkdown(json);
    await writeAtomic(`${resultsDir}qlora.md`, markdown);
    await writeDocRegion(markdown);
    return;
  }
  const parts = new Set(values.parts.split(","));
  const rounds = values.quick ? 1 : Number(values.rounds);
  const quick = values.quick;
  const spec = (over: Partial<RunSpec>): RunSpec => ({
    part: "base",
    shape: "stories15M",
    batch: quick ? 2 : 8,
    seq: quick ? 32 : 256,
    base: "f32",
    logitsAt: "counted",
    prompt: 0,
    warmup: 1,
    steps: quick ? 1 : 3,
    ...over,
  });
  const bases: Base[] = [
    "f32",
    "int8 in graph",
    "int8 at build",
    "int4 in graph",
    "int4 at build",
  ];
  const json: QloraResults = { date: new Date().toISOString() };
  if (parts.has("base")) {
    json.base = summarise(
      await alternate(bases.map((base) => spec({ base })), rounds),
    );
    if (!quick) {
      const smol = bases.map((base) => spec({ base, shape: "SmolLM2-135M", batch: 2, steps: 2 }));
      json.base.push(...summarise(await alternate(smol, 1)));
    }
  }
  if (parts.has("counted")) {
    const prompt = quick ? 24 : 224;
    json.counted = summarise(
      await alternate(
        (["all", "counted"] as const).map((logitsAt) => spec({ part: "counted", logitsAt, prompt })),
        rounds,
      ),
    );
  }
  if (parts.has("largest")) {
    const attempt = (shape: string, batch: number, base: Base, logitsAt: "all" | "counted" = "counted") =>
      spec({ part: "largest", shape, batch, base, logitsAt, steps: 1 });
    const attempts: RunSpec[] = quick ? [attempt("stories15M", 2, "int4 in graph")] : [
      attempt("SmolLM2-135M", 4, "f32", "all"),
      attempt("SmolLM2-135M", 4, "f32"),
      attempt("SmolLM2-135M", 4, "int4 in graph"),
      attempt("SmolLM2-360M", 1, "f32"),
      attempt("SmolLM2-360M", 1, "int4 in graph"),
      attempt("SmolLM2-360M", 2, "int4 in graph"),
      attempt("SmolLM2-360M", 4, "int4 in graph"),
    ];
    json.largest = [];
    for (const a of attempts) json.largest.push(await runChild(a));
  }
  if (parts.has("layer")) {
    const sizes = quick ? [64] : [512, 2048];
    json.layer = [];
    for (const m of sizes) {
      json.layer.push(await measureLayer(m, 576, 1536, quick ? 2 : 7));
    }
  }
  if (values.write && !quick) {
    // parts not run this time keep their figures
    try {
      const old: QloraResults = JSON.parse(
        await Deno.readTextFile(`${resultsDir}qlora.json`),
      );
      for (const key of ["base", "counted", "largest", "layer"] as const) {
        if (!parts.has(key) && old[key]) {
          (json as unknown as Record<string, unknown>)[key] = old[key];
        }
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  const markdown = renderQloraMarkdown(json);
  console.log(markdown);
  if (values.write && !quick) {
    await writeAtomic(
      `${resultsDir}qlora.json`,
      JSON.stringify(json, null, 2) + "\n",
    );
    await writeAtomic(`${resultsDir}qlora.md`, markdown);
    await writeDocRegion(markdown);
    console.error(
      "qlora_bench: wrote bench/results/qlora.{json,md} and docs/training_speed.md",
    );
  }
}

if (import.meta.main) await main();
