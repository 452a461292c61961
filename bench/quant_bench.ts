/**
 * Quantized base weights (`deno task convert --quantize`): what they cost in quality, what they save in
 * bytes, and what they do to decode speed.
 *
 * - Perplexity of stories260K (the real checkpoint) in float32, int8 and int4 on two held-out text sets:
 *   TinyStories-style stories written for this project (`_heldout_stories.ts`), and stories sampled from the
 *   float32 model at temperature 1 (seeded; text none of the variants was tuned on). Scored through the
 *   inference graph (prefill, every position's logits), so quantized variants run MatMulNBits as served.
 *   Weight bytes are the tensor bytes of the model folder (quantization scales stored as F16).
 * - Decode tokens/s of a random-weight model of stories15M's shape (dim 288, 6 layers, vocab 32000; tied
 *   embeddings, so the classifier stays float32) in float32, int8 and int4, on wasm and (when an adapter
 *   exists) WebGPU, one generator per variant, measured A/B alternating in rounds; ratios against float32
 *   from the same rounds.
 *
 *     deno task bench quant          # or: deno run -A bench/quant_bench.ts --write
 *
 * - Per op on wasm: one `[1, K] × [K, N]` product as float32 MatMul, MatMulNBits (8/4-bit) and
 *   DynamicQuantizeMatMul (per-channel int8), to show where quantized decode time goes on wasm.
 *
 * Prints Markdown tables; with `--write` also writes `bench/results/quant.json` and `bench/results/quant.md`
 * (the tables, generated from the JSON).
 *
 * @module
 */

import { convertLlama2c } from "../src/io/convert.ts";
import { loadModelFolder, type ModelFolder } from "../src/io/model_folder.ts";
import { quantizeModelWeights } from "../src/io/quantized_weights.ts";
import type { LlamaConfig, QuantizationConfig } from "../src/models/config.ts";
import { attr } from "../src/onnx/builder.ts";
import { modelFromGraph } from "../src/onnx/model.ts";
import type { Model, Node, TensorData } from "../src/onnx/types.ts";
import { quantizeNBits } from "../src/io/quantize.ts";
import { type GenerationTokenizer, LlamaGenerator } from "../src/models/generate.ts";
import type { LlamaWeights } from "../src/models/llama/forward.ts";
import { buildLlamaInferenceGraph } from "../src/models/llama/inference.ts";
import { randomLlamaWeights } from "../src/models/random_weights.ts";
import { hasWebGpu } from "../src/runtime/execution_provider.ts";
import { ort } from "../src/runtime/ort.ts";
import { OnnxSession } from "../src/runtime/session.ts";
import { type Cell, markdownTable } from "./_table.ts";
import { STORIES15M_SHAPE, STORIES260K_DIR } from "./_models.ts";
import { HELDOUT_STORIES } from "./_heldout_stories.ts";
import { sampleStories } from "./tasks/base_stories.ts";
import type { SideBySideEntry } from "./_side_by_side.ts";

/** A weight variant: float32, or a quantization. */
interface Variant {
  label: string;
  quantization?: QuantizationConfig;
}

/** The convert presets (int8, int4) plus the other 4-bit choices, to show why int4 has zero points. */
const QUALITY_VARIANTS: Variant[] = [
  { label: "f32" },
  { label: "int8 (8-bit sym, block 32)", quantization: { bits: 8, blockSize: 32, symmetric: true } },
  { label: "int4 (4-bit zero points, block 32)", quantization: { bits: 4, blockSize: 32, symmetric: false } },
  { label: "4-bit zero points, block 16", quantization: { bits: 4, blockSize: 16, symmetric: false } },
  { label: "4-bit sym (Q4_0-like), block 32", quantization: { bits: 4, blockSize: 32, symmetric: true } },
  { label: "4-bit sym, block 16", quantization: { bits: 4, blockSize: 16, symmetric: true } },
];

/** A quality row. */
interface QualityRow {
  variant: string;
  bits: number;
  blockSize: number | null;
  symmetric: boolean | null;
  weightBytes: number;
  linearBytes: number;
  heldoutPerplexity: number;
  heldoutTokens: number;
  sampledPerplexity: number;
  sampledTokens: number;
}

/** A speed row. */
interface SpeedRow {
  ep: string;
  variant: string;
  weightBytes: number;
  decodeTokensPerS: number;
  ratioToF32: number;
  rounds: number;
  decodeTokens: number;
}

/** Sum of tensor bytes as the folder stores them (scales F16), and of the linear layers alone. */
function bytesOf(config: LlamaConfig, weights: LlamaWeights): { total: number; linear: number } {
  let total = 0, linear = 0;
  for (const [name, t] of weights) {
    const stored = name.endsWith(".scales") && t.dtype === "float32"
      ? t.data.byteLength / 2
      : t.data.byteLength;
    total += stored;
    const isLinear = /_proj\.(weight|qweight|scales|qzeros)$/.test(name) ||
      (!config.tieWordEmbeddings && name.startsWith("lm_head."));
    if (isLinear) linear += stored;
  }
  return { total, linear };
}

/**
 * Mean next-token negative log-likelihood of each text (BOS first) through the prefill graph.
 *
 * @returns Summed NLL (nats) and scored tokens.
 */
async function scoreTexts(
  model: { config: LlamaConfig; weights: LlamaWeights },
  texts: readonly number[][],
): Promise<{ nll: number; tokens: number }> {
  const graph = buildLlamaInferenceGraph(model, { kind: "prefill", logits: "all" });
  const session = await OnnxSession.create(graph, { ep: "wasm" });
  const vocab = model.config.vocabSize;
  let nll = 0, tokens = 0;
  try {
    for (const ids of texts) {
      const n = ids.length;
      const dims = [1, n];
      const out = await session.run({
        input_ids: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), dims),
        position_ids: new ort.Tensor("int64", BigInt64Array.from(ids, (_, i) => BigInt(i)), dims),
        attention_mask: new ort.Tensor("int64", new BigInt64Array(n).fill(1n), dims),
      }, ["logits"]);
      const logits = (await out.logits.getData()) as Float32Array;
      for (let p = 0; p + 1 < n; p++) {
        const row = logits.subarray(p * vocab, (p + 1) * vocab);
        let max = -Infinity;
        for (const v of row) max = Math.max(max, v);
        let sum = 0;
        for (const v of row) sum += Math.exp(v - max);
        nll += Math.log(sum) + max - row[ids[p + 1]];
        tokens++;
      }
    }
  } finally {
    await session.release();
  }
  return { nll, tokens };
}

async function stories260K(): Promise<{ model: ModelFolder; cleanup: () => Promise<void> }> {
  const tmp = await Deno.makeTempDir({ prefix: "quant_bench_" });
  await convertLlama2c({
    model: `${STORIES260K_DIR}stories260K.bin`,
    tokenizer: `${STORIES260K_DIR}tok512.bin`,
    out: `${tmp}/stories260K`,
  });
  const model = await loadModelFolder(`${tmp}/stories260K`);
  return { model, cleanup: () => Deno.remove(tmp, { recursive: true }) };
}

async function quality(): Promise<QualityRow[]> {
  const { model, cleanup } = await stories260K();
  try {
    const base = { config: model.config, weights: model.weights };
    const generator = await LlamaGenerator.create(model, { ep: "wasm" });
    let sampled: string[];
    try {
      const openings = ["Once upon a time", "One day", "Tom and Lily", "There was a little dog", "The sun"];
      sampled = await sampleStories(generator, [...openings, ...openings, ...openings], {
        seed: 4242,
        maxTokens: 160,
        temperature: 1,
      });
    } finally {
      await generator.release();
    }
    const encode = (texts: readonly string[]) =>
      texts.map((t) => model.tokenizer.encode(t, { addBos: true }));
    const heldout = encode(HELDOUT_STORIES), samples = encode(sampled);
    const rows: QualityRow[] = [];
    for (const variant of QUALITY_VARIANTS) {
      const m = variant.quantization ? quantizeModelWeights(base, variant.quantization) : base;
      const h = await scoreTexts(m, heldout), s = await scoreTexts(m, samples);
      const bytes = bytesOf(m.config, m.weights);
      rows.push({
        variant: variant.label,
        bits: variant.quantization?.bits ?? 32,
        blockSize: variant.quantization?.blockSize ?? null,
        symmetric: variant.quantization?.symmetric ?? null,
        weightBytes: bytes.total,
        linearBytes: bytes.linear,
        heldoutPerplexity: Math.exp(h.nll / h.tokens),
        heldoutTokens: h.tokens,
        sampledPerplexity: Math.exp(s.nll / s.tokens),
        sampledTokens: s.tokens,
      });
      console.error(`quality: ${variant.label} done`);
    }
    return rows;
  } finally {
    await cleanup();
  }
}

/** Token ids are all a random model needs. */
const IDS_ONLY: GenerationTokenizer = {
  bosId: 1,
  eosIds: [2],
  encode: () => [1],
  createStreamDecoder: () => ({ push: () => "", flush: () => "" }),
};

async function speed(
  options: { ep: "wasm" | "webgpu"; rounds: number; decode: number },
): Promise<SpeedRow[]> {
  const weights = randomLlamaWeights(STORIES15M_SHAPE, { seed: 1 });
  const base = { config: STORIES15M_SHAPE, weights };
  const variants: Variant[] = [
    { label: "f32" },
    { label: "int8", quantization: { bits: 8, blockSize: 32, symmetric: true } },
    { label: "int4", quantization: { bits: 4, blockSize: 32, symmetric: false } },
  ];
  const generators: { variant: Variant; generator: LlamaGenerator; bytes: number; perStep: number[] }[] = [];
  try {
    for (const variant of variants) {
      const m = variant.quantization ? quantizeModelWeights(base, variant.quantization) : base;
      const generator = await LlamaGenerator.create({ ...m, tokenizer: IDS_ONLY }, { ep: options.ep });
      await generator.generate([[1]], { maxTokens: 4, temperature: 0, eosTokenIds: [] }); // warm-up
      generators.push({ variant, generator, bytes: bytesOf(m.config, m.weights).total, perStep: [] });
    }
    // A/B alternating: every round runs each variant once, in a rotated order
    for (let round = 0; round < options.rounds; round++) {
      for (let i = 0; i < generators.length; i++) {
        const g = generators[(i + round) % generators.length];
        await g.generator.generate([[1]], { maxTokens: options.decode, temperature: 0, eosTokenIds: [] });
        const s = g.generator.stats!;
        g.perStep.push(s.decodeMs / s.decodeSteps);
      }
    }
  } finally {
    for (const g of generators) await g.generator.release();
  }
  // the ratio is the median of per-round ratios (each round's variants ran side by side)
  const f32 = generators[0].perStep;
  return generators.map((g) => ({
    ep: options.ep,
    variant: g.variant.label,
    weightBytes: g.bytes,
    decodeTokensPerS: 1000 / median(g.perStep),
    ratioToF32: median(g.perStep.map((ms, r) => f32[r] / ms)),
    rounds: options.rounds,
    decodeTokens: options.decode,
  }));
}

/** One per-op row: a `[1, K] × [K, N]` product in one form. */
interface OpRow {
  shape: string;
  form: string;
  microsPerProduct: number;
  ratioToF32: number;
}

/**
 * Why quantized decode is slow on wasm: one `[1, K] × [K, N]` product as float32 MatMul, MatMulNBits (8 and
 * 4 bits) and DynamicQuantizeMatMul (per-channel int8, MLAS's integer GEMM), each a graph of 8 independent
 * products (so weights do not stay in cache), run A/B alternating on wasm.
 */
async function perOp(options: { rounds: number; runs: number }): Promise<OpRow[]> {
  const shapes: [number, number][] = [[288, 768], [1024, 1024]];
  const products = 8;
  const rows: OpRow[] = [];
  for (const [k, n] of shapes) {
    let seed = 7;
    const next = () => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed / 2 ** 32 - 0.5;
    };
    const w = Float32Array.from({ length: n * k }, next);
    const forms: Record<string, Model> = {};
    const graph = (nodes: Node[], initializers: TensorData[]): Model =>
      modelFromGraph({
        name: "per_op",
        nodes: [...nodes, {
          opType: "Concat",
          name: "concat",
          inputs: nodes.map((x) => x.outputs[0]),
          outputs: ["y"],
          attributes: { axis: attr.int(1) },
        }],
        inputs: [{ name: "a", type: { dtype: "float32", shape: [1, k] } }],
        outputs: [{ name: "y", type: { dtype: "float32", shape: [1, n * products] } }],
        initializers,
        valueInfo: [],
      });
    const tensor = (name: string, dtype: TensorData["dtype"], dims: number[], data: ArrayBufferView) => ({
      name,
      dtype,
      dims,
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    const wt = new Float32Array(k * n);
    for (let o = 0; o < n; o++) for (let i = 0; i < k; i++) wt[i * n + o] = w[o * k + i];
    const ids = Array.from({ length: products }, (_, p) => p);
    forms["f32 MatMul"] = graph(
      ids.map((p) => ({
        opType: "MatMul",
        name: `m${p}`,
        inputs: ["a", `w${p}`],
        outputs: [`y${p}`],
        attributes: {},
      })),
      ids.map((p) => tensor(`w${p}`, "float32", [k, n], wt)),
    );
    for (const bits of [8, 4] as const) {
      const q = quantizeNBits(w, { rows: n, cols: k }, { bits, blockSize: 32, symmetric: bits === 8 });
      const kBlocks = Math.ceil(k / 32);
      forms[`MatMulNBits ${bits}-bit`] = graph(
        ids.map((p) => ({
          opType: "MatMulNBits",
          domain: "com.microsoft",
          name: `q${p}`,
          inputs: ["a", `b${p}`, `s${p}`],
          outputs: [`y${p}`],
          attributes: { K: attr.int(k), N: attr.int(n), bits: attr.int(bits), block_size: attr.int(32) },
        })),
        ids.flatMap((p) => [
          tensor(`b${p}`, "uint8", [n, kBlocks, 4 * bits], q.qweight),
          tensor(`s${p}`, "float32", [n, kBlocks], q.scales),
        ]),
      );
    }
    const int8 = Int8Array.from(wt, (v) => Math.round(v * 254));
    forms["DynamicQuantizeMatMul int8"] = graph(
      ids.map((p) => ({
        opType: "DynamicQuantizeMatMul",
        domain: "com.microsoft",
        name: `d${p}`,
        inputs: ["a", `i${p}`, `c${p}`],
        outputs: [`y${p}`],
        attributes: {},
      })),
      ids.flatMap((p) => [
        tensor(`i${p}`, "int8", [k, n], int8),
        tensor(`c${p}`, "float32", [n], new Float32Array(n).fill(1 / 254)),
      ]),
    );
    const sessions = new Map<string, OnnxSession>();
    try {
      for (const [form, model] of Object.entries(forms)) {
        sessions.set(form, await OnnxSession.create(model, { ep: "wasm" }));
      }
      const a = { a: new ort.Tensor("float32", Float32Array.from({ length: k }, next), [1, k]) };
      const times = new Map<string, number[]>([...sessions.keys()].map((f) => [f, []]));
      for (let r = 0; r < options.rounds; r++) {
        for (const [form, session] of sessions) {
          await session.run(a);
          const t0 = performance.now();
          for (let i = 0; i < options.runs; i++) await session.run(a);
          times.get(form)!.push(((performance.now() - t0) * 1000) / (options.runs * products));
        }
      }
      const f32 = times.get("f32 MatMul")!;
      for (const [form, t] of times) {
        rows.push({
          shape: `[1, ${k}] × [${k}, ${n}]`,
          form,
          microsPerProduct: median(t),
          ratioToF32: median(t.map((x, r) => x / f32[r])),
        });
      }
    } finally {
      for (const session of sessions.values()) await session.release();
    }
  }
  return rows;
}

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}

function tables(json: { quality: QualityRow[]; speed: SpeedRow[]; perOp: OpRow[]; load: string }): string {
  const f32 = json.quality.find((r) => r.bits === 32)!;
  const pct = (x: number, ref: number) => `${x >= ref ? "+" : ""}${((x / ref - 1) * 100).toFixed(1)}%`;
  const q: Cell[][] = json.quality.map((r) => [
    r.variant,
    r.weightBytes,
    r.linearBytes,
    r.heldoutPerplexity,
    pct(r.heldoutPerplexity, f32.heldoutPerplexity),
    r.sampledPerplexity,
    pct(r.sampledPerplexity, f32.sampledPerplexity),
  ]);
  const s: Cell[][] = json.speed.map((r) => [
    r.ep,
    `${r.rounds} × ${r.decodeTokens}`,
    r.variant,
    r.weightBytes,
    r.decodeTokensPerS,
    `${r.ratioToF32.toFixed(2)}×`,
  ]);
  return [
    `stories260K perplexity (held-out stories: ${f32.heldoutTokens} tokens; sampled from f32 at T=1: ${f32.sampledTokens} tokens)`,
    "",
    markdownTable([
      "variant",
      "weight bytes",
      "linear-layer bytes",
      "held-out ppl",
      "vs f32",
      "sampled ppl",
      "vs f32",
    ], q),
    "",
    `stories15M shape (random weights), decode at batch 1, A/B rounds (load average ${json.load}; WebGPU here is lavapipe, a CPU renderer)`,
    "",
    markdownTable([
      "ep",
      "rounds × tokens",
      "variant",
      "weight bytes",
      "decode tok/s (median)",
      "vs f32 (median of per-round ratios)",
    ], s),
    "",
    "One `[1, K] × [K, N]` product on wasm (8 independent products per graph, A/B rounds): onnxruntime-web 1.30's wasm build has no n-bit kernels, so MatMulNBits dequantizes the whole weight on every call",
    "",
    markdownTable(
      ["product", "form", "µs per product (median)", "vs f32 MatMul"],
      json.perOp.map((r) => [r.shape, r.form, r.microsPerProduct, `${r.ratioToF32.toFixed(2)}×`]),
    ),
  ].join("\n");
}

async function main(): Promise<void> {
  const write = Deno.args.includes("--write");
  const qualityRows = await quality();
  const speedRows = await speed({ ep: "wasm", rounds: 5, decode: 48 });
  const opRows = await perOp({ rounds: 5, runs: 10 });
  if (await hasWebGpu()) speedRows.push(...await speed({ ep: "webgpu", rounds: 3, decode: 16 }));
  else console.error("no WebGPU adapter: skipping the WebGPU decode rows");
  const load = Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
  const f32 = qualityRows[0];
  const sideBySide: SideBySideEntry[] = [];
  for (const r of qualityRows.slice(1, 3)) {
    sideBySide.push({
      area: "quantization",
      metric: `stories260K ${r.variant}: held-out perplexity`,
      value: r.heldoutPerplexity,
      baseline: "f32",
      baselineValue: f32.heldoutPerplexity,
      unit: "ppl",
      higherIsBetter: false,
    });
  }
  for (const r of speedRows.filter((x) => x.variant !== "f32")) {
    const base = speedRows.find((x) => x.ep === r.ep && x.variant === "f32")!;
    sideBySide.push({
      area: "quantization",
      metric: `stories15M shape ${r.variant}: decode tokens/s (${r.ep})`,
      value: base.decodeTokensPerS * r.ratioToF32,
      baseline: "f32, same rounds",
      baselineValue: base.decodeTokensPerS,
      unit: "tok/s",
      higherIsBetter: true,
    });
  }
  const json = {
    date: new Date().toISOString(),
    load,
    quality: qualityRows,
    speed: speedRows,
    perOp: opRows,
    sideBySide,
  };
  const text = tables(json);
  console.log(text);
  if (write) {
    const dir = new URL("./results/", import.meta.url);
    await Deno.mkdir(dir, { recursive: true });
    await writeAtomic(new URL("quant.json", dir), JSON.stringify(json, null, 2) + "\n");
    await writeAtomic(
      new URL("quant.md", dir),
      `# Quantized base weights (generated by bench/quant_bench.ts from quant.json)\n\n${text}\n`,
    );
  }
}

/** Writes a file through a temporary sibling and a rename. */
async function writeAtomic(url: URL, text: string): Promise<void> {
  const tmp = new URL(`${url.pathname.split("/").at(-1)}.tmp-${crypto.randomUUID()}`, url);
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, url);
}

if (import.meta.main) await main();
