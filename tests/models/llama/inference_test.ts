import assert from "node:assert/strict";
import { buildLlamaInferenceGraph, kvCacheNames } from "../../../src/models/llama/inference.ts";
import { loraInputNames } from "../../../src/models/lora_inputs.ts";
import { randomLlamaWeights } from "../../../src/models/random_weights.ts";
import { ropeInverseFrequencies } from "../../../src/models/rope.ts";
import type { LlamaConfig } from "../../../src/models/config.ts";
import { hostTensor, OnnxSession, type OrtTensor } from "../../../src/runtime/mod.ts";
import { referenceLogits, type ReferenceLora } from "../_llama_reference.ts";
import { GQA_CONFIG, int64Rows, LLAMA3_CONFIG, maxAbsDiff, QWEN2_CONFIG, runPrefill } from "../_fixtures.ts";

const IDS = [1, 7, 30, 4, 22, 9, 13, 5, 17, 3, 11];

async function checkAgainstReference(config: LlamaConfig, seed: number): Promise<number> {
  const weights = randomLlamaWeights(config, { seed, scale: 0.3 });
  const model = buildLlamaInferenceGraph({ config, weights }, { kind: "prefill", logits: "all" });
  const session = await OnnxSession.create(model, { ep: "wasm" });
  try {
    const out = await runPrefill(session, [IDS]);
    assert.deepEqual(out.logits.dims, [1, IDS.length, config.vocabSize]);
    assert.deepEqual(out[kvCacheNames(0).key].dims, [1, config.numKeyValueHeads, IDS.length, config.headDim]);
    const got = out.logits.data as Float32Array;
    const want = referenceLogits(config, weights, IDS, { invFreq: ropeInverseFrequencies(config) });
    return maxAbsDiff(got, want.flatMap((row) => [...row]));
  } finally {
    await session.release();
  }
}

// Tolerance: float32 graph vs a float64 loop reference on logits of size ~1: 1e-4 absolute.
Deno.test("prefill logits match a float64 reference: GQA Llama, untied lm_head", async () => {
  assert.ok((await checkAgainstReference(GQA_CONFIG, 1)) < 1e-4);
});

Deno.test("prefill logits match a float64 reference: Qwen2 style (q/k/v bias, tied, head_dim 8)", async () => {
  assert.ok((await checkAgainstReference(QWEN2_CONFIG, 2)) < 1e-4);
});

Deno.test("prefill logits match a float64 reference: llama3 RoPE scaling", async () => {
  assert.ok((await checkAgainstReference(LLAMA3_CONFIG, 3)) < 1e-4);
});

Deno.test("the reference check can fail: a wrong RoPE theta is detected", async () => {
  const config = { ...GQA_CONFIG };
  const weights = randomLlamaWeights(config, { seed: 1, scale: 0.3 });
  const model = buildLlamaInferenceGraph({ config: { ...config, ropeTheta: 500 }, weights }, {
    kind: "prefill",
    logits: "all",
  });
  const session = await OnnxSession.create(model, { ep: "wasm" });
  const out = await runPrefill(session, [IDS]);
  await session.release();
  const want = referenceLogits(config, weights, IDS);
  assert.ok(maxAbsDiff(out.logits.data as Float32Array, want.flatMap((r) => [...r])) > 1e-3);
});

/** Tolerance of KV-cache decoding vs recomputing the whole sequence (both float32 on wasm): 2e-5. */
const KV_TOLERANCE = 2e-5;

for (const config of [GQA_CONFIG, QWEN2_CONFIG]) {
  Deno.test(`KV-cache decoding gives the logits of a full recompute (${config.architecture})`, async () => {
    const weights = randomLlamaWeights(config, { seed: 5, scale: 0.3 });
    const full = await OnnxSession.create(
      buildLlamaInferenceGraph({ config, weights }, { kind: "prefill", logits: "all" }),
      { ep: "wasm" },
    );
    const prefill = await OnnxSession.create(
      buildLlamaInferenceGraph({ config, weights }, { kind: "prefill", logits: "last" }),
      { ep: "wasm" },
    );
    const decode = await OnnxSession.create(
      buildLlamaInferenceGraph({ config, weights }, { kind: "decode", logits: "all" }),
      { ep: "wasm" },
    );
    try {
      const vocab = config.vocabSize;
      const whole = (await runPrefill(full, [IDS])).logits.data as Float32Array;
      // prefill the first 3 tokens: its last logits are position 2's
      let out = await runPrefill(prefill, [IDS.slice(0, 3)]);
      assert.deepEqual(out.logits.dims, [1, 1, vocab]);
      let worst = maxAbsDiff(out.logits.data as Float32Array, whole.subarray(2 * vocab, 3 * vocab));
      // then one token per step, and finally a chunk of 3 tokens with past
      const steps = [[3], [4], [5], [6, 7, 8], [9], [10]];
      let pos = 3;
      for (const chunk of steps) {
        const feeds: Record<string, OrtTensor> = {
          input_ids: int64Rows([chunk.map((i) => IDS[i])]),
          position_ids: int64Rows([chunk.map((_, j) => pos + j)]),
          attention_mask: int64Rows([Array(pos + chunk.length).fill(1)]),
        };
        for (let l = 0; l < config.numHiddenLayers; l++) {
          const n = kvCacheNames(l);
          feeds[n.pastKey] = out[n.key];
          feeds[n.pastValue] = out[n.value];
        }
        out = await decode.run(feeds);
        assert.deepEqual(out.logits.dims, [1, chunk.length, vocab]);
        assert.deepEqual(out[kvCacheNames(1).value].dims, [
          1,
          config.numKeyValueHeads,
          pos + chunk.length,
          config.headDim,
        ]);
        worst = Math.max(
          worst,
          maxAbsDiff(
            out.logits.data as Float32Array,
            whole.subarray(pos * vocab, (pos + chunk.length) * vocab),
          ),
        );
        pos += chunk.length;
      }
      assert.ok(worst < KV_TOLERANCE, `max |Δlogit| ${worst}`);
    } finally {
      await Promise.all([full.release(), prefill.release(), decode.release()]);
    }
  });
}

Deno.test("left-padded rows with attention masks and per-row positions match each row alone", async () => {
  const config = GQA_CONFIG;
  const weights = randomLlamaWeights(config, { seed: 9, scale: 0.3 });
  const session = await OnnxSession.create(
    buildLlamaInferenceGraph({ config, weights }, { kind: "prefill", logits: "all" }),
    { ep: "wasm" },
  );
  try {
    const rows = [[1, 5, 9, 12, 7], [1, 40], [1, 3, 3]];
    const width = 5;
    const padded = rows.map((r) => [...Array(width - r.length).fill(0), ...r]);
    const mask = rows.map((r) => [...Array(width - r.length).fill(0), ...r.map(() => 1)]);
    const positions = rows.map((r) => [...Array(width - r.length).fill(1), ...r.map((_, i) => i)]);
    const out = await session.run({
      input_ids: int64Rows(padded),
      position_ids: int64Rows(positions),
      attention_mask: int64Rows(mask),
    });
    const logits = out.logits.data as Float32Array;
    const vocab = config.vocabSize;
    for (const [i, row] of rows.entries()) {
      const alone = (await runPrefill(session, [row])).logits.data as Float32Array;
      const offset = (i * width + width - row.length) * vocab;
      const diff = maxAbsDiff(logits.subarray(offset, offset + row.length * vocab), alone);
      assert.ok(diff < 1e-5, `row ${i}: max |Δlogit| ${diff}`);
      assert.ok(logits.every(Number.isFinite), "padding positions must not produce NaN");
    }
  } finally {
    await session.release();
  }
});

function randomMatrix(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 30 - 1;
  });
}

Deno.test("LoRA inputs: zero B gives the base logits, real A/B give W + scale·BA", async () => {
  const config = GQA_CONFIG;
  const weights = randomLlamaWeights(config, { seed: 4, scale: 0.3 });
  const sites = ["model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj"];
  const model = buildLlamaInferenceGraph({ config, weights }, {
    kind: "prefill",
    logits: "all",
    loraSites: sites,
  });
  const names = model.graph.inputs.map((i) => i.name);
  assert.ok(names.includes(loraInputNames(sites[0]).a) && names.includes(loraInputNames(sites[1]).scale));
  const session = await OnnxSession.create(model, { ep: "wasm" });
  const shapes: Record<string, [number, number]> = { [sites[0]]: [32, 32], [sites[1]]: [40, 32] };
  const rank = { [sites[0]]: 2, [sites[1]]: 3 };
  const feed = (zeroB: boolean) => {
    const feeds: Record<string, OrtTensor> = {
      input_ids: int64Rows([IDS]),
      position_ids: int64Rows([IDS.map((_, i) => i)]),
      attention_mask: int64Rows([IDS.map(() => 1)]),
    };
    const lora = new Map<string, ReferenceLora>();
    sites.forEach((site, k) => {
      const [inF, outF] = shapes[site];
      const r = rank[site];
      const a = randomMatrix(r * inF, 11 + k);
      const b = zeroB ? new Float32Array(outF * r) : randomMatrix(outF * r, 21 + k);
      const n = loraInputNames(site);
      feeds[n.a] = hostTensor(a, [r, inF]);
      feeds[n.b] = hostTensor(b, [outF, r]);
      feeds[n.scale] = hostTensor(new Float32Array([0.5]), []);
      lora.set(site, { a, b, rank: r, scale: 0.5 });
    });
    return { feeds, lora };
  };
  try {
    const base = referenceLogits(config, weights, IDS).flatMap((r) => [...r]);
    const zero = await session.run(feed(true).feeds);
    assert.ok(maxAbsDiff(zero.logits.data as Float32Array, base) < 1e-4);
    const { feeds, lora } = feed(false);
    const adapted = await session.run(feeds);
    const want = referenceLogits(config, weights, IDS, { lora }).flatMap((r) => [...r]);
    assert.ok(maxAbsDiff(adapted.logits.data as Float32Array, want) < 1e-4);
    assert.ok(maxAbsDiff(want, base) > 1e-2, "the adapter must change the logits");
  } finally {
    await session.release();
  }
});

Deno.test("a missing or misshapen weight fails the build, naming the tensor and shapes", () => {
  const weights = randomLlamaWeights(GQA_CONFIG);
  const missing = new Map(weights);
  missing.delete("model.layers.1.mlp.up_proj.weight");
  assert.throws(
    () => buildLlamaInferenceGraph({ config: GQA_CONFIG, weights: missing }, { kind: "prefill" }),
    /weight "model\.layers\.1\.mlp\.up_proj\.weight" is missing/,
  );
  const wrong = new Map(weights);
  const k = weights.get("model.layers.0.self_attn.k_proj.weight")!;
  wrong.set(k.name, { ...k, dims: [32, 8], data: k.data });
  assert.throws(
    () => buildLlamaInferenceGraph({ config: GQA_CONFIG, weights: wrong }, { kind: "decode" }),
    /weight "model\.layers\.0\.self_attn\.k_proj\.weight" has shape \[32, 8\], expected \[8, 32\]/,
  );
  assert.throws(
    () =>
      buildLlamaInferenceGraph({ config: GQA_CONFIG, weights }, {
        kind: "prefill",
        loraSites: ["model.layers.7.self_attn.q_proj"],
      }),
    /LoRA site "model\.layers\.7\.self_attn\.q_proj" is not a linear layer/,
  );
});

Deno.test("graph inputs and outputs have symbolic batch, sequence and past dims", () => {
  const weights = randomLlamaWeights(GQA_CONFIG);
  const decode = buildLlamaInferenceGraph({ config: GQA_CONFIG, weights }, { kind: "decode" });
  const shapes = Object.fromEntries(decode.graph.inputs.map((i) => [i.name, i.type?.shape]));
  assert.deepEqual(shapes["input_ids"], ["batch", "seq"]);
  assert.deepEqual(shapes["attention_mask"], ["batch", "total"]);
  assert.deepEqual(shapes["past.1.value"], ["batch", 2, "past", 4]);
  assert.deepEqual(decode.graph.outputs[0].type?.shape, ["batch", 1, 48]);
  const prefill = buildLlamaInferenceGraph({ config: GQA_CONFIG, weights }, { kind: "prefill" });
  assert.ok(!prefill.graph.inputs.some((i) => i.name.startsWith("past.")));
  assert.equal(prefill.graph.outputs.length, 1 + 2 * GQA_CONFIG.numHiddenLayers);
});
