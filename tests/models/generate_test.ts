import assert from "node:assert/strict";
import { type GeneratedPiece, LlamaGenerator } from "../../src/models/generate.ts";
import { randomLlamaWeights } from "../../src/models/random_weights.ts";
import type { LoraSiteTensors } from "../../src/models/lora_inputs.ts";
import { hasWebGpu } from "../../src/runtime/mod.ts";
import { BYTE_TOKENIZER, chain, SCRIPTED_CONFIG, scriptedWeights } from "./_scripted.ts";
import { GQA_CONFIG } from "./_fixtures.ts";

// BOS → a, é (two byte tokens), b, " ", S, T, O, P, !, EOS
const SCRIPT = chain(1, 5, 3, 4, 6, 7, 8, 9, 10, 11, 13, 2);

async function scripted(): Promise<LlamaGenerator> {
  return await LlamaGenerator.create(
    { config: SCRIPTED_CONFIG, weights: scriptedWeights(SCRIPT), tokenizer: BYTE_TOKENIZER },
    { ep: "wasm" },
  );
}

async function collect(iterable: AsyncIterable<GeneratedPiece>): Promise<GeneratedPiece[]> {
  const pieces: GeneratedPiece[] = [];
  for await (const piece of iterable) pieces.push(piece);
  return pieces;
}

Deno.test("greedy generation from BOS streams whole characters across byte tokens and ends at EOS", async () => {
  const generator = await scripted();
  try {
    const pieces = await collect(generator.stream([""], { temperature: 0, maxTokens: 50 }));
    assert.deepEqual(pieces.map((p) => p.tokenId), [5, 3, 4, 6, 7, 8, 9, 10, 11, 13, 2]);
    assert.deepEqual(pieces.map((p) => p.text), ["a", "", "é", "b", " ", "S", "T", "O", "P", "!", ""]);
    assert.equal(pieces.at(-1)!.finishReason, "eos");
    const [result] = await generator.generate([""], { temperature: 0 });
    assert.deepEqual(result, {
      text: "aéb STOP!",
      tokenIds: [5, 3, 4, 6, 7, 8, 9, 10, 11, 13],
      promptTokenIds: [1],
      finishReason: "eos",
    });
  } finally {
    await generator.release();
  }
});

Deno.test("stop strings end a row before the match and are never emitted in part", async () => {
  const generator = await scripted();
  try {
    const pieces = await collect(generator.stream([""], { temperature: 0, stop: ["STOP"] }));
    assert.deepEqual(pieces.map((p) => p.text), ["a", "", "é", "b", " ", "", "", "", ""]);
    assert.equal(pieces.at(-1)!.finishReason, "stop");
    assert.equal(pieces.at(-1)!.tokenId, 11);
    // a near miss is released once it cannot match any more
    const [miss] = await generator.generate([""], { temperature: 0, stop: ["STx", "é!"] });
    assert.equal(miss.text, "aéb STOP!");
    assert.equal(miss.finishReason, "eos");
    const [early] = await generator.generate([""], { temperature: 0, stop: ["b", "a"] });
    assert.deepEqual([early.text, early.finishReason, early.tokenIds], ["", "stop", [5]]);
    await assert.rejects(collect(generator.stream([""], { stop: [""] })), /Invalid stop string ""/);
  } finally {
    await generator.release();
  }
});

Deno.test("max tokens, the context limit, prompts as ids and text", async () => {
  const generator = await scripted();
  try {
    const [three] = await generator.generate([""], { temperature: 0, maxTokens: 3 });
    assert.deepEqual([three.text, three.tokenIds, three.finishReason], ["aé", [5, 3, 4], "length"]);
    // stopping inside a character flushes it as U+FFFD
    const [two] = await generator.generate([""], { temperature: 0, maxTokens: 2 });
    assert.deepEqual([two.text, two.finishReason], ["a\uFFFD", "length"]);
    // a token-id prompt continues the chain; a text prompt is encoded with BOS
    const [fromIds] = await generator.generate([[1, 5, 3, 4]], { temperature: 0, maxTokens: 2 });
    assert.deepEqual(fromIds.tokenIds, [6, 7]);
    const [fromText] = await generator.generate(["ab "], { temperature: 0, maxTokens: 1 });
    assert.deepEqual([fromText.promptTokenIds, fromText.tokenIds], [[1, 5, 6, 7], [8]]);
  } finally {
    await generator.release();
  }
  const short = await LlamaGenerator.create({
    config: { ...SCRIPTED_CONFIG, maxPositionEmbeddings: 6 },
    weights: scriptedWeights(SCRIPT),
    tokenizer: BYTE_TOKENIZER,
  }, { ep: "wasm" });
  try {
    const [result] = await short.generate([[1, 5]], { temperature: 0, maxTokens: 100 });
    assert.deepEqual([result.tokenIds, result.finishReason], [[3, 4, 6, 7], "length"]);
    await assert.rejects(
      short.generate([[1, 5, 3, 4, 6, 7]]),
      /prompt 0: it has 6 tokens, the model's context is 6/,
    );
  } finally {
    await short.release();
  }
});

Deno.test("ignoreEos: EOS and BOS are generated, emitted and counted; exactly maxTokens tokens", async () => {
  // BOS → a, é (two byte tokens), EOS, BOS, a, … (a loop through EOS)
  const loop = chain(1, 5, 3, 4, 2, 1);
  const generator = await LlamaGenerator.create(
    { config: SCRIPTED_CONFIG, weights: scriptedWeights(loop), tokenizer: BYTE_TOKENIZER },
    { ep: "wasm" },
  );
  try {
    const [plain] = await generator.generate([""], { temperature: 0, maxTokens: 12 });
    assert.deepEqual([plain.tokenIds, plain.finishReason], [[5, 3, 4], "eos"]);
    const pieces = await collect(generator.stream([""], { temperature: 0, maxTokens: 12, ignoreEos: true }));
    assert.deepEqual(pieces.map((p) => p.tokenId), [5, 3, 4, 2, 1, 5, 3, 4, 2, 1, 5, 3]);
    assert.deepEqual(pieces.map((p) => p.finishReason), [...Array(11).fill(undefined), "length"]);
    assert.equal(pieces.map((p) => p.text).join(""), "aéaéa\uFFFD");
    assert.equal(generator.stats!.decodeSteps, 11);
    // ignoreEos overrides explicit EOS ids too, and a batch runs every row to the end
    const rows = await generator.generate(["", [1, 5]], {
      temperature: 0,
      maxTokens: 5,
      ignoreEos: true,
      eosTokenIds: [2, 4],
    });
    assert.deepEqual(rows.map((r) => r.tokenIds), [[5, 3, 4, 2, 1], [3, 4, 2, 1, 5]]);
    // exactly maxTokens must fit the context (64)
    await assert.rejects(
      generator.generate([[1, 5]], { maxTokens: 63, ignoreEos: true }),
      /Cannot generate exactly 63 tokens \(ignoreEos\) for prompt 0: its 2 tokens plus 63 exceed the model's context of 64/,
    );
    const [full] = await generator.generate([[1, 5]], { temperature: 0, maxTokens: 62, ignoreEos: true });
    assert.equal(full.tokenIds.length, 62);
  } finally {
    await generator.release();
  }
});

Deno.test("bad generation options fail with the value named", async () => {
  const generator = await scripted();
  try {
    await assert.rejects(generator.generate([""], { temperature: -1 }), /Invalid temperature -1/);
    await assert.rejects(generator.generate([""], { topP: 0 }), /Invalid top-p 0/);
    await assert.rejects(generator.generate([""], { topK: 1.5 }), /Invalid top-k 1\.5/);
    await assert.rejects(generator.generate([""], { maxTokens: 0 }), /Invalid max tokens 0/);
    await assert.rejects(
      generator.generate([""], { seed: -3, temperature: 1 }),
      /seed must be a non-negative integer, got -3/,
    );
    await assert.rejects(
      generator.generate([[1, 99]]),
      /prompt token id 99 is outside the vocabulary \[0, 24\)/,
    );
  } finally {
    await generator.release();
  }
});

async function randomGenerator(
  ep: "wasm" | "webgpu" = "wasm",
  loraSites?: string[],
): Promise<LlamaGenerator> {
  const config = GQA_CONFIG;
  return await LlamaGenerator.create(
    { config, weights: randomLlamaWeights(config, { seed: 3, scale: 0.5 }), tokenizer: BYTE_TOKENIZER },
    { ep, loraSites },
  );
}

const PROMPTS = [[1, 5], [1, 30, 31, 7, 12, 40, 9], [1, 22, 23, 24]];

Deno.test("a batch of 3 prompts of different lengths gives the same tokens as each prompt alone", async () => {
  const generator = await randomGenerator();
  try {
    for (const sampling of [{ temperature: 0 }, { temperature: 1, topK: 20, topP: 0.95, seed: 11 }]) {
      const options = { ...sampling, maxTokens: 12, eosTokenIds: [] };
      const batched = await generator.generate(PROMPTS, options);
      assert.equal(generator.stats?.batch, 3);
      assert.equal(generator.stats?.prefillTokens, 7);
      for (const [i, prompt] of PROMPTS.entries()) {
        const [alone] = await generator.generate([prompt], options);
        assert.deepEqual(batched[i].tokenIds, alone.tokenIds, `row ${i} with ${JSON.stringify(sampling)}`);
        assert.equal(alone.tokenIds.length, 12);
      }
      // the rows really differ, so the test would catch rows mixing
      assert.notDeepEqual(batched[0].tokenIds, batched[1].tokenIds);
    }
  } finally {
    await generator.release();
  }
});

Deno.test("a seed makes sampling deterministic; other seeds give other tokens", async () => {
  const generator = await randomGenerator();
  try {
    const options = { temperature: 1.5, maxTokens: 20, eosTokenIds: [] };
    const a = await generator.generate([[1]], { ...options, seed: 123 });
    const b = await generator.generate([[1]], { ...options, seed: 123 });
    const c = await generator.generate([[1]], { ...options, seed: 124 });
    assert.deepEqual(a[0].tokenIds, b[0].tokenIds);
    assert.notDeepEqual(a[0].tokenIds, c[0].tokenIds);
    const greedy = await generator.generate([[1]], { temperature: 0, maxTokens: 20, eosTokenIds: [] });
    assert.notDeepEqual(a[0].tokenIds, greedy[0].tokenIds);
  } finally {
    await generator.release();
  }
});

Deno.test("LoRA tensors are fed per request: a zero adapter keeps the base output, another changes it", async () => {
  const site = "model.layers.0.mlp.down_proj";
  const generator = await randomGenerator("wasm", [site]);
  const adapter = (b: number) =>
    new Map<string, LoraSiteTensors>([[site, {
      a: Float32Array.from({ length: 4 * 40 }, (_, i) => Math.sin(i)),
      b: Float32Array.from({ length: 32 * 4 }, (_, i) => b * Math.cos(i)),
      rank: 4,
      inFeatures: 40,
      outFeatures: 32,
      scale: 2,
    }]]);
  const base = await randomGenerator();
  try {
    const options = { temperature: 0, maxTokens: 10, eosTokenIds: [] };
    const [plain] = await base.generate([PROMPTS[1]], options);
    const [zero] = await generator.generate([PROMPTS[1]], { ...options, adapter: adapter(0) });
    const [tuned] = await generator.generate([PROMPTS[1]], { ...options, adapter: adapter(1) });
    assert.deepEqual(zero.tokenIds, plain.tokenIds);
    assert.notDeepEqual(tuned.tokenIds, plain.tokenIds);
    await assert.rejects(
      generator.generate([PROMPTS[1]], options),
      /takes LoRA inputs for 1 sites, but no adapter/,
    );
  } finally {
    await Promise.all([generator.release(), base.release()]);
  }
});

const gpu = await hasWebGpu();
Deno.test({
  name: "WebGPU generation (KV cache kept on the GPU) gives the wasm tokens",
  ignore: !gpu && Deno.env.get("CI") !== "true",
  fn: async () => {
    const onGpu = await randomGenerator("webgpu");
    const onCpu = await randomGenerator("wasm");
    try {
      assert.equal(onGpu.ep, "webgpu");
      const options = { temperature: 0, maxTokens: 8, eosTokenIds: [] };
      const gpuOut = await onGpu.generate(PROMPTS, options);
      const cpuOut = await onCpu.generate(PROMPTS, options);
      assert.deepEqual(gpuOut.map((r) => r.tokenIds), cpuOut.map((r) => r.tokenIds));
    } finally {
      await Promise.all([onGpu.release(), onCpu.release()]);
    }
  },
});
if (!gpu && Deno.env.get("CI") !== "true") {
  console.warn(
    "skipping the WebGPU generation test: no WebGPU adapter (install mesa-vulkan-drivers for lavapipe)",
  );
}

Deno.test("ids past the tokenizer's vocabulary (a padded embedding) are never sampled", async () => {
  const weights = scriptedWeights(chain(1, 20, 5));
  const padded = await LlamaGenerator.create(
    { config: SCRIPTED_CONFIG, weights, tokenizer: { ...BYTE_TOKENIZER, vocabSize: 16 } },
    { ep: "wasm" },
  );
  const full = await LlamaGenerator.create({ config: SCRIPTED_CONFIG, weights, tokenizer: BYTE_TOKENIZER }, {
    ep: "wasm",
  });
  try {
    const [clamped] = await padded.generate([[1]], { temperature: 0, maxTokens: 1 });
    const [free] = await full.generate([[1]], { temperature: 0, maxTokens: 1 });
    assert.deepEqual([clamped.tokenIds, free.tokenIds], [[0], [20]]);
  } finally {
    await Promise.all([padded.release(), full.release()]);
  }
});
