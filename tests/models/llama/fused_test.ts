import assert from "node:assert/strict";
import { parseLlama2cCheckpoint } from "../../../src/io/llama2c.ts";
import type { LlamaConfig } from "../../../src/models/config.ts";
import { buildLlamaFusedGraph, FUSED_CACHE, fusedAttentionKind } from "../../../src/models/llama/fused.ts";
import { buildLlamaInferenceGraph } from "../../../src/models/llama/inference.ts";
import { loraFeeds, type LoraSiteTensors } from "../../../src/models/lora_inputs.ts";
import { randomLlamaWeights } from "../../../src/models/random_weights.ts";
import { ropeInverseFrequencies } from "../../../src/models/rope.ts";
import { listAdapterSites } from "../../../src/models/sites.ts";
import type { TensorData } from "../../../src/onnx/types.ts";
import type { ExecutionProvider } from "../../../src/runtime/execution_provider.ts";
import { hostTensor, OnnxSession, type OrtTensor } from "../../../src/runtime/mod.ts";
import { requireStories260k, requireWebGpu, stories260kDir } from "../../_util/fixtures.ts";
import { referenceLogits } from "../_llama_reference.ts";
import { GQA_CONFIG, int64Rows, maxAbsDiff, QWEN2_CONFIG } from "../_fixtures.ts";

/** Every attention kind: standard ops (head 4), GQA + RotaryEmbedding (8), GQA with RoPE inside (16). */
const CONFIGS: LlamaConfig[] = [
  GQA_CONFIG,
  { ...GQA_CONFIG, headDim: 8 },
  { ...GQA_CONFIG, headDim: 16, hiddenSize: 64 },
  QWEN2_CONFIG,
];

type Weights = ReadonlyMap<string, TensorData>;

/** Runs a fused decode graph over ragged rows: a batch prefill, then `steps` decode steps; returns logits per call. */
async function runFused(
  session: OnnxSession,
  config: LlamaConfig,
  rows: number[][],
  continuations: number[][],
  extra: Record<string, OrtTensor> = {},
): Promise<Float32Array[]> {
  const names = new Set(session.inputNames);
  const feed = (f: Record<string, OrtTensor>) =>
    session.run(Object.fromEntries(Object.entries({ ...f, ...extra }).filter(([k]) => names.has(k))));
  const { numHiddenLayers: layers, numKeyValueHeads: heads, headDim } = config;
  const batch = rows.length;
  const width = Math.max(...rows.map((r) => r.length));
  const padded = rows.map((r) => [...r, ...new Array(width - r.length).fill(0)]);
  let out = await feed({
    [FUSED_CACHE.past]: hostTensor(new Float32Array(0), [2 * layers * batch, heads, 0, headDim]),
    input_ids: int64Rows(padded),
    position_ids: int64Rows(padded.map((r) => r.map((_, i) => i))),
    seqlens_k: hostTensor(Int32Array.from(rows, (r) => r.length - 1), [batch]),
    total_sequence_length: hostTensor(new Int32Array([width]), []),
    logits_index: hostTensor(BigInt64Array.from(rows, (r, i) => BigInt(i * width + r.length - 1)), [batch]),
  });
  const logits = [out.logits.data as Float32Array];
  const lens = rows.map((r) => r.length);
  for (let step = 0; step < continuations[0].length; step++) {
    out = await feed({
      [FUSED_CACHE.past]: out[FUSED_CACHE.present],
      input_ids: int64Rows(continuations.map((c) => [c[step]])),
      position_ids: int64Rows(lens.map((l) => [l])),
      seqlens_k: hostTensor(Int32Array.from(lens), [batch]),
      total_sequence_length: hostTensor(new Int32Array([Math.max(...lens) + 1]), []),
      logits_index: hostTensor(BigInt64Array.from(lens, (_, i) => BigInt(i)), [batch]),
    });
    lens.forEach((_, i) => lens[i]++);
    logits.push(out.logits.data as Float32Array);
  }
  return logits;
}

/** The standard graph's last-position logits of each row's whole sequence (prefill, one row at a time). */
async function standardLogits(
  config: LlamaConfig,
  weights: Weights,
  sequence: number[],
  lora?: { sites: string[]; tensors: Map<string, LoraSiteTensors> },
): Promise<Float32Array> {
  const model = buildLlamaInferenceGraph({ config, weights }, { kind: "prefill", loraSites: lora?.sites });
  const session = await OnnxSession.create(model, { ep: "wasm" });
  try {
    const out = await session.run({
      input_ids: int64Rows([sequence]),
      position_ids: int64Rows([sequence.map((_, i) => i)]),
      attention_mask: int64Rows([sequence.map(() => 1)]),
      ...(lora ? loraFeeds(lora.sites, lora.tensors) : {}),
    });
    return out.logits.data as Float32Array;
  } finally {
    await session.release();
  }
}

const ROWS = [[1, 7, 30], [1, 4, 22, 9, 13], [1, 5]];
const CONTINUATIONS = [[3, 8, 9], [10, 11, 12], [20, 21, 22]];

for (const config of CONFIGS) {
  Deno.test(
    `fused graph (${
      fusedAttentionKind(config)
    }, head ${config.headDim}): ragged batch prefill and decode match a float64 reference`,
    async () => {
      const weights = randomLlamaWeights(config, { seed: 1, scale: 0.3 });
      const model = buildLlamaFusedGraph({ config, weights }, { kind: "decode" });
      const session = await OnnxSession.create(model, { ep: "wasm" });
      let worst = 0;
      try {
        const calls = await runFused(session, config, ROWS, CONTINUATIONS);
        const vocab = config.vocabSize;
        calls.forEach((logits, step) => {
          ROWS.forEach((row, r) => {
            const sequence = [...row, ...CONTINUATIONS[r].slice(0, step)];
            const want = referenceLogits(config, weights, sequence, {
              invFreq: ropeInverseFrequencies(config),
            });
            worst = Math.max(worst, maxAbsDiff(logits.subarray(r * vocab, (r + 1) * vocab), want.at(-1)!));
          });
        });
      } finally {
        await session.release();
      }
      // float32 graph vs a float64 loop reference on logits of size ~1
      assert.ok(worst < 1e-4, `max |Δ| ${worst}`);
    },
  );
}

Deno.test("fused graph: the reference check can fail (a wrong RoPE theta is detected)", async () => {
  const config = { ...GQA_CONFIG, headDim: 16, hiddenSize: 64 };
  const weights = randomLlamaWeights(config, { seed: 1, scale: 0.3 });
  const model = buildLlamaFusedGraph({ config: { ...config, ropeTheta: 500 }, weights }, { kind: "decode" });
  const session = await OnnxSession.create(model, { ep: "wasm" });
  const [logits] = await runFused(session, config, [ROWS[1]], [[]]);
  await session.release();
  const want = referenceLogits(config, weights, ROWS[1]);
  assert.ok(maxAbsDiff(logits, want.at(-1)!) > 1e-3);
});

Deno.test("fused graph with LoRA inputs equals the standard graph with the same adapter", async () => {
  for (const config of [{ ...GQA_CONFIG, headDim: 8 }, QWEN2_CONFIG]) {
    const weights = randomLlamaWeights(config, { seed: 5, scale: 0.3 });
    const sites = listAdapterSites(config).filter((s) => /(q_proj|v_proj|up_proj|o_proj)$/.test(s.name));
    const tensors = new Map<string, LoraSiteTensors>();
    sites.forEach((s, i) => {
      const rank = 2;
      const values = (n: number, seed: number) =>
        Float32Array.from({ length: n }, (_, k) => Math.sin(seed * 31 + k) * 0.3);
      tensors.set(s.name, {
        a: values(rank * s.inFeatures, i),
        b: values(s.outFeatures * rank, i + 100),
        rank,
        inFeatures: s.inFeatures,
        outFeatures: s.outFeatures,
        scale: 2,
      });
    });
    const names = sites.map((s) => s.name);
    const model = buildLlamaFusedGraph({ config, weights }, { kind: "decode", loraSites: names });
    const session = await OnnxSession.create(model, { ep: "wasm" });
    const [logits] = await runFused(session, config, [ROWS[1]], [[]], loraFeeds(names, tensors));
    await session.release();
    const want = await standardLogits(config, weights, ROWS[1], { sites: names, tensors });
    const base = await standardLogits(config, weights, ROWS[1]);
    const vocab = config.vocabSize;
    assert.ok(maxAbsDiff(logits, want.subarray(want.length - vocab)) < 1e-4);
    assert.ok(
      maxAbsDiff(logits, base.subarray(base.length - vocab)) > 1e-3,
      "the adapter changes the logits",
    );
  }
});

async function stories260k() {
  const bytes = await Deno.readFile(`${stories260kDir()}/stories260K.bin`);
  return parseLlama2cCheckpoint(bytes);
}

async function fusedVsStandard(
  ep: ExecutionProvider,
): Promise<{ diff: number; fusedOps: number; standardOps: number }> {
  const { config, weights } = await stories260k();
  const sequence = [1, 403, 407, 261, 378, 275, 262, 370, 404, 266];
  const prefill = ep === "webgpu";
  const fused = buildLlamaFusedGraph({ config, weights }, { kind: prefill ? "prefill" : "decode" });
  const standard = buildLlamaInferenceGraph({ config, weights }, { kind: "decode", logits: "last" });
  const session = await OnnxSession.create(fused, { ep });
  let diff: number;
  try {
    const names = new Set(session.inputNames);
    const feeds: Record<string, OrtTensor> = {
      input_ids: int64Rows([sequence]),
      position_ids: int64Rows([sequence.map((_, i) => i)]),
      seqlens_k: hostTensor(new Int32Array([sequence.length - 1]), [1]),
      total_sequence_length: hostTensor(new Int32Array([sequence.length]), []),
      logits_index: hostTensor(new BigInt64Array([BigInt(sequence.length - 1)]), [1]),
      [FUSED_CACHE.past]: hostTensor(new Float32Array(0), [
        2 * config.numHiddenLayers,
        config.numKeyValueHeads,
        0,
        8,
      ]),
    };
    const out = await session.run(Object.fromEntries(Object.entries(feeds).filter(([k]) => names.has(k))));
    const logits = (await out.logits.getData()) as Float32Array;
    assert.equal(out[FUSED_CACHE.present].dims[0], 2 * config.numHiddenLayers); // one key and one value part per layer
    const want = await standardLogits(config, weights, sequence);
    diff = maxAbsDiff(logits, want.subarray(want.length - config.vocabSize));
  } finally {
    await session.release();
  }
  return { diff, fusedOps: fused.graph.nodes.length, standardOps: standard.graph.nodes.length };
}

Deno.test({
  name: "stories260K: fused logits equal the standard graph's; a decode step is far fewer ops",
  ignore: !requireStories260k("fused stories260K"),
  fn: async () => {
    const { diff, fusedOps, standardOps } = await fusedVsStandard("wasm");
    assert.ok(diff < 1e-4, `max |Δ| ${diff}`);
    assert.equal(standardOps, 288);
    assert.ok(fusedOps <= 75, `${fusedOps} fused ops`);
  },
});

Deno.test({
  name: "stories260K on WebGPU: fused logits equal the standard graph's",
  ignore: !requireStories260k("fused stories260K WebGPU"),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    if (!(await requireWebGpu(t))) return;
    const { diff } = await fusedVsStandard("webgpu");
    assert.ok(diff < 1e-4, `max |Δ| ${diff}`);
  },
});
