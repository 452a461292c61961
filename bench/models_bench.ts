/**
 * Generation speed of the Llama graphs: prefill and decode tokens/s for stories260K (the real checkpoint,
 * converted from `../shared/models/stories260K/`) and for a random-weight model of stories15M's shape
 * (dim 288, 6 layers, 6 heads, hidden 768, vocab 32000), on wasm, and stories260K on WebGPU (lavapipe
 * here). Also the operators per decode step and where a decode step's time goes: inside `session.run`
 * (graph work) versus the rest (feeds, sampling, text, cache bookkeeping).
 *
 *     deno task bench models          # or: deno run -A bench/models_bench.ts
 *
 * Prints a Markdown table and writes `bench/results/models.json`. Each configuration is measured in a
 * fresh child process (`--measure SPEC`), because the number of wasm threads is fixed per process
 * (`WEIGHTLORA_WASM_THREADS`).
 *
 * Before/after in the same process: a decode loop over the **standard** decode graph (the one generation
 * used before the fused graphs: 288 ops per step on stories260K, one past/present tensor per layer) and the
 * same loop over the **fused** graph, alternating rounds, batch as the row says, greedy argmax on the host.
 *
 * Reference (DESIGN.md): llama2.c `run.c` decodes stories260K at ~3,400–7,100 tokens/s on this machine
 * (one thread), and a random model of stories15M's shape at ~115 tokens/s (one core, -O3).
 *
 * @module
 */

import { convertLlama2c } from "../src/io/convert.ts";
import { loadModelFolder } from "../src/io/model_folder.ts";
import type { LlamaConfig } from "../src/models/config.ts";
import { type GenerationTokenizer, LlamaGenerator } from "../src/models/generate.ts";
import type { LlamaWeights } from "../src/models/llama/forward.ts";
import { buildLlamaFusedGraph, FUSED_CACHE, FUSED_INPUTS } from "../src/models/llama/fused.ts";
import { buildLlamaInferenceGraph, kvCacheNames } from "../src/models/llama/inference.ts";
import { randomLlamaWeights } from "../src/models/random_weights.ts";
import { hasWebGpu, hostTensor, OnnxSession, type OrtTensor } from "../src/runtime/mod.ts";
import { markdownTable } from "./_table.ts";
import { STORIES15M_SHAPE } from "./_models.ts";

const SHARED = new URL("../../shared/models/stories260K/", import.meta.url);

/** Token ids are all a random model needs; text is not measured for it. */
const IDS_ONLY: GenerationTokenizer = {
  bosId: 1,
  eosIds: [2],
  encode: () => [1],
  createStreamDecoder: () => ({ push: () => "", flush: () => "" }),
};

async function stories260K(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const tmp = await Deno.makeTempDir({ prefix: "models_bench_" });
  await convertLlama2c({
    model: new URL("stories260K.bin", SHARED).pathname,
    tokenizer: new URL("tok512.bin", SHARED).pathname,
    out: `${tmp}/stories260K`,
  });
  return { dir: `${tmp}/stories260K`, cleanup: () => Deno.remove(tmp, { recursive: true }) };
}

/** One measured configuration. */
interface Row {
  model: string;
  ep: string;
  batch: number;
  decodeOps: number;
  prefillTokens: number;
  prefillTokensPerS: number;
  decodeTokens: number;
  decodeTokensPerS: number;
  decodeWallMsPerStep: number;
  decodeRunMsPerStep: number;
  hostShare: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function measure(
  generator: LlamaGenerator,
  label: { model: string; batch: number },
  sizes: { prompt: number; decode: number; repeats: number },
): Promise<Row> {
  const vocab = generator.config.vocabSize;
  const prompt = Array.from(
    { length: sizes.prompt },
    (_, i) => (i === 0 ? 1 : 3 + ((i * 7919) % (vocab - 3))),
  );
  const prompts = Array.from({ length: label.batch }, () => prompt);
  const options = { temperature: 0, eosTokenIds: [] as number[] };
  // warm-up (first runs allocate and JIT)
  await generator.generate(prompts, { ...options, maxTokens: 4 });
  const prefill: number[] = [], wall: number[] = [], run: number[] = [];
  for (let i = 0; i < sizes.repeats; i++) {
    await generator.generate(prompts, { ...options, maxTokens: 1 });
    prefill.push(generator.stats!.prefillMs);
    await generator.generate([[1]].concat(prompts.slice(1).map(() => [1])), {
      ...options,
      maxTokens: sizes.decode,
    });
    const s = generator.stats!;
    wall.push(s.decodeMs / s.decodeSteps);
    run.push(s.decodeRunMs / s.decodeSteps);
  }
  const wallMs = median(wall), runMs = median(run);
  return {
    model: label.model,
    ep: generator.ep,
    batch: label.batch,
    decodeOps: generator.decodeOps,
    prefillTokens: sizes.prompt,
    prefillTokensPerS: (label.batch * sizes.prompt) / (median(prefill) / 1000),
    decodeTokens: sizes.decode,
    decodeTokensPerS: label.batch / (wallMs / 1000),
    decodeWallMsPerStep: wallMs,
    decodeRunMsPerStep: runMs,
    hostShare: 1 - runMs / wallMs,
  };
}

/** Decode tokens/s of a bare loop (greedy argmax on the host) over the standard or the fused graph. */
async function rawLoops(
  model: { config: LlamaConfig; weights: LlamaWeights },
  options: { batch: number; steps: number; rounds: number },
): Promise<{ standardOps: number; fusedOps: number; standardTokensPerS: number; fusedTokensPerS: number }> {
  const { config } = model;
  const { numHiddenLayers: layers, numKeyValueHeads: heads, headDim } = config;
  const batch = options.batch;
  const standardGraph = buildLlamaInferenceGraph(model, { kind: "decode", logits: "last" });
  const fusedGraph = buildLlamaFusedGraph(model, { kind: "decode" });
  const standard = await OnnxSession.create(standardGraph, { ep: "wasm" });
  const fused = await OnnxSession.create(fusedGraph, { ep: "wasm" });
  const fusedInputs = new Set(fused.inputNames);
  const argmax = async (logits: OrtTensor) => {
    const data = (await logits.getData()) as Float32Array;
    const vocab = data.length / batch;
    return Array.from({ length: batch }, (_, r) => {
      let best = 0;
      for (let i = 1; i < vocab; i++) if (data[r * vocab + i] > data[r * vocab + best]) best = i;
      return best;
    });
  };
  const ids = (tokens: number[]) => hostTensor(BigInt64Array.from(tokens, BigInt), [batch, 1]);
  const runStandard = async (steps: number) => {
    let past: OrtTensor[] = [];
    for (let l = 0; l < 2 * layers; l++) {
      past.push(hostTensor(new Float32Array(0), [batch, heads, 0, headDim]));
    }
    let tokens = new Array(batch).fill(1);
    const t0 = performance.now();
    for (let t = 0; t < steps; t++) {
      const feeds: Record<string, OrtTensor> = {
        input_ids: ids(tokens),
        position_ids: hostTensor(new BigInt64Array(batch).fill(BigInt(t)), [batch, 1]),
        attention_mask: hostTensor(new BigInt64Array(batch * (t + 1)).fill(1n), [batch, t + 1]),
      };
      for (let l = 0; l < layers; l++) {
        const n = kvCacheNames(l);
        feeds[n.pastKey] = past[2 * l];
        feeds[n.pastValue] = past[2 * l + 1];
      }
      const out = await standard.run(feeds);
      past = [];
      for (let l = 0; l < layers; l++) past.push(out[kvCacheNames(l).key], out[kvCacheNames(l).value]);
      tokens = await argmax(out.logits);
    }
    return (steps * batch) / ((performance.now() - t0) / 1000);
  };
  const runFused = async (steps: number) => {
    let past = hostTensor(new Float32Array(0), [2 * layers * batch, heads, 0, headDim]);
    let tokens = new Array(batch).fill(1);
    const t0 = performance.now();
    for (let t = 0; t < steps; t++) {
      const feeds: Record<string, OrtTensor> = {
        input_ids: ids(tokens),
        [FUSED_INPUTS.seqlensK]: hostTensor(new Int32Array(batch).fill(t), [batch]),
        [FUSED_INPUTS.totalSequenceLength]: hostTensor(new Int32Array([t + 1]), []),
        [FUSED_INPUTS.logitsIndex]: hostTensor(BigInt64Array.from({ length: batch }, (_, r) => BigInt(r)), [
          batch,
        ]),
        [FUSED_CACHE.past]: past,
      };
      if (fusedInputs.has(FUSED_INPUTS.positionIds)) {
        feeds[FUSED_INPUTS.positionIds] = hostTensor(new BigInt64Array(batch).fill(BigInt(t)), [batch, 1]);
      }
      const out = await fused.run(feeds);
      past = out[FUSED_CACHE.present];
      tokens = await argmax(out.logits);
    }
    return (steps * batch) / ((performance.now() - t0) / 1000);
  };
  await runStandard(16);
  await runFused(16);
  const a: number[] = [], b: number[] = [];
  for (let r = 0; r < options.rounds; r++) {
    a.push(await runStandard(options.steps));
    b.push(await runFused(options.steps));
  }
  await standard.release();
  await fused.release();
  return {
    standardOps: standardGraph.graph.nodes.length,
    fusedOps: fusedGraph.graph.nodes.length,
    standardTokensPerS: median(a),
    fusedTokensPerS: median(b),
  };
}

/** One configuration to measure, in its own process (wasm threads are fixed per process). */
interface Spec {
  model: "stories260K" | "stories15M";
  ep: "wasm" | "webgpu";
  batch: number;
  threads: number;
}

const SPECS: Spec[] = [
  { model: "stories260K", ep: "wasm", batch: 1, threads: 1 },
  { model: "stories260K", ep: "wasm", batch: 8, threads: 1 },
  { model: "stories260K", ep: "webgpu", batch: 1, threads: 1 },
  { model: "stories15M", ep: "wasm", batch: 1, threads: 1 },
  { model: "stories15M", ep: "wasm", batch: 1, threads: 2 },
];

/** Figures of one spec: the generator's, and the bare standard/fused loops' (wasm only). */
type Measured = Row & { threads: number; raw?: Awaited<ReturnType<typeof rawLoops>> };

/** Measures one spec in this process and prints its row as JSON. */
async function measureSpec(spec: Spec): Promise<Measured> {
  if (spec.model === "stories15M") {
    const weights = randomLlamaWeights(STORIES15M_SHAPE, { seed: 1 });
    const generator = await LlamaGenerator.create(
      { config: STORIES15M_SHAPE, weights, tokenizer: IDS_ONLY },
      { ep: spec.ep },
    );
    try {
      const row = await measure(generator, { model: "stories15M shape (random)", batch: spec.batch }, {
        prompt: 64,
        decode: 128,
        repeats: 3,
      });
      const raw = await rawLoops({ config: STORIES15M_SHAPE, weights }, {
        batch: spec.batch,
        steps: 64,
        rounds: 3,
      });
      return { ...row, threads: spec.threads, raw };
    } finally {
      await generator.release();
    }
  }
  const { dir, cleanup } = await stories260K();
  try {
    const folder = await loadModelFolder(dir);
    const generator = await LlamaGenerator.create(folder, { ep: spec.ep });
    try {
      const gpu = spec.ep === "webgpu";
      const row = await measure(generator, { model: "stories260K", batch: spec.batch }, {
        prompt: 64,
        decode: gpu ? 64 : 256,
        repeats: gpu ? 3 : 5,
      });
      const raw = gpu ? undefined : await rawLoops(folder, { batch: spec.batch, steps: 256, rounds: 5 });
      return { ...row, threads: spec.threads, raw };
    } finally {
      await generator.release();
    }
  } finally {
    await cleanup();
  }
}

async function report(): Promise<void> {
  const lines: string[] = [];
  const out = (text: string) => {
    console.log(text);
    lines.push(text);
  };
  const rows: Measured[] = [];
  const gpu = await hasWebGpu();
  for (const spec of SPECS) {
    if (spec.ep === "webgpu" && !gpu) {
      console.error("no WebGPU adapter: skipping stories260K on webgpu");
      continue;
    }
    const child = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(import.meta.url).pathname, "--measure", JSON.stringify(spec)],
      env: { WEIGHTLORA_WASM_THREADS: String(spec.threads) },
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!child.success) throw new Error(`Cannot measure ${JSON.stringify(spec)}: the child process failed`);
    rows.push(JSON.parse(new TextDecoder().decode(child.stdout).trim().split("\n").at(-1)!));
  }
  const load = Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
  out(`\nload average after the run: ${load} (2 cores, shared machine)\n`);
  out(markdownTable(
    [
      "model",
      "ep",
      "wasm threads",
      "batch",
      "ops/decode step",
      "prefill tok/s (64-token prompt)",
      "decode tok/s",
      "wall ms/step",
      "session.run ms/step",
      "host share %",
    ],
    rows.map((r) => [
      r.model,
      r.ep,
      r.ep === "wasm" ? String(r.threads) : "-",
      r.batch,
      r.decodeOps,
      r.prefillTokensPerS,
      r.decodeTokensPerS,
      r.decodeWallMsPerStep,
      r.decodeRunMsPerStep,
      100 * r.hostShare,
    ]),
  ));
  const json = {
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    onnxruntimeWeb: "1.30.0",
    loadAverageAfter: Deno.loadavg(),
    reference: "llama2.c run.c: stories260K ~6,000–7,100 tok/s (1 thread); stories15M shape ~115 tok/s " +
      "(1 core, -O3), ~570 tok/s (2 cores, -Ofast -fopenmp)",
    notes: "one process per row; decode tok/s = batch / wall time per decode step (sampling and host work " +
      "included); session.run ms/step is the time inside onnxruntime-web's run as the caller sees it; " +
      "host share = 1 − run/wall; medians of repeated runs after a warm-up; webgpu here is lavapipe (software)",
    rows,
  };
  await Deno.mkdir(new URL("results/", import.meta.url), { recursive: true });
  await Deno.writeTextFile(
    new URL("results/models.json", import.meta.url),
    JSON.stringify(json, null, 2) + "\n",
  );
  out("\n## Decode loop before/after: standard graph vs fused graph (same process, alternating)\n");
  out(markdownTable(
    [
      "model",
      "wasm threads",
      "batch",
      "ops/step standard",
      "ops/step fused",
      "standard tok/s",
      "fused tok/s",
      "fused / standard",
    ],
    rows.filter((r) => r.raw).map((r) => [
      r.model,
      String(r.threads),
      r.batch,
      r.raw!.standardOps,
      r.raw!.fusedOps,
      r.raw!.standardTokensPerS,
      r.raw!.fusedTokensPerS,
      r.raw!.fusedTokensPerS / r.raw!.standardTokensPerS,
    ]),
  ));
  await Deno.writeTextFile(
    new URL("results/models.md", import.meta.url),
    `# Generation speed (generated by bench/models_bench.ts from results/models.json)\n${lines.join("\n")}\n`,
  );
  console.log("\nwrote bench/results/models.json and models.md");
}

if (import.meta.main) {
  const measureAt = Deno.args.indexOf("--measure");
  if (measureAt >= 0) console.log(JSON.stringify(await measureSpec(JSON.parse(Deno.args[measureAt + 1]))));
  else await report();
}
