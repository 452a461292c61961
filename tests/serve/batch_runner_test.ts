import assert from "node:assert/strict";
import { loadModelFolder, type ModelFolder } from "../../src/io/model_folder.ts";
import { LlamaGenerator } from "../../src/models/generate.ts";
import type { ExecutionProvider } from "../../src/runtime/execution_provider.ts";
import { BatchRunner } from "../../src/serve/batch_runner.ts";
import { parseAdapterFiles, prepareAdapter, type PreparedAdapter } from "../../src/serve/prepared_adapter.ts";
import type { RowEvent, RowRequest, StepInfo } from "../../src/serve/runner_types.ts";
import type { VariantLayout } from "../../src/serve/variant_sessions.ts";
import { requireStories260k, requireWebGpu } from "../_util/fixtures.ts";
import { randomAdapterFiles, stories260kHf } from "./_fixtures.ts";

const GOLDEN = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";

/** A runner whose rows can be awaited one by one. */
async function harness(
  model: ModelFolder,
  ep: ExecutionProvider,
  maxBatch = 8,
  maxVariants = 8,
  variantLayout: VariantLayout = "separate",
) {
  const events = new Map<number, RowEvent[]>();
  const waiters = new Map<number, (e: RowEvent[]) => void>();
  const steps: StepInfo[] = [];
  const runner = await BatchRunner.create({
    model,
    tokenizer: model.tokenizer,
    ep,
    maxBatch,
    maxVariants,
    variantLayout,
    onStep: (s) => steps.push(s),
    onEvents: (list) => {
      for (const e of list) {
        events.get(e.id)!.push(e);
        if (e.finishReason) waiters.get(e.id)!(events.get(e.id)!);
      }
    },
  });
  let nextId = 1;
  const run = (prompt: number[], adapter: PreparedAdapter | null, options: Partial<RowRequest> = {}) => {
    const id = nextId++;
    events.set(id, []);
    const done = new Promise<RowEvent[]>((resolve) => waiters.set(id, resolve));
    runner.submit(
      [{ id, promptIds: prompt, maxTokens: 24, seed: 7, stop: [], temperature: 0, ...options }],
      adapter,
    );
    return { id, done };
  };
  const tokens = (list: RowEvent[]) => list.flatMap((e) => (e.tokenId === undefined ? [] : [e.tokenId]));
  const text = (list: RowEvent[]) => list.map((e) => e.text).join("");
  return { runner, run, steps, tokens, text };
}

function adapters(model: ModelFolder) {
  const peftA = parseAdapterFiles(randomAdapterFiles(model.config, { seed: 1, rank: 4, scale: 0.15 }), {
    model: model.config,
    source: "a",
  });
  const peftB = parseAdapterFiles(
    randomAdapterFiles(model.config, {
      seed: 2,
      rank: 8,
      modules: ["k_proj", "o_proj", "gate_proj", "up_proj"],
      scale: 0.15,
    }),
    { model: model.config, source: "b" },
  );
  return { peftA, peftB, a: prepareAdapter(peftA, { key: "a" }), b: prepareAdapter(peftB, { key: "b" }) };
}

Deno.test({
  name: "continuous batching: rows get the same tokens alone, in a mixed-adapter batch and when joining late",
  ignore: !requireStories260k("continuous batching"),
  fn: async () => {
    const model = await loadModelFolder(await stories260kHf());
    const { peftA, a, b } = adapters(model);
    const h = await harness(model, "wasm");
    try {
      const story = model.tokenizer.encode("Once upon a time, there was a");
      // base model from BOS: the published golden text
      const golden = await h.run([1], null, { maxTokens: 40 }).done;
      assert.ok(h.text(golden).startsWith(GOLDEN), h.text(golden));
      assert.equal(golden.at(-1)!.finishReason, "length");
      const alone = [
        h.tokens(await h.run([1], null).done),
        h.tokens(await h.run(story, a).done),
        h.tokens(await h.run([1], b).done),
      ];
      assert.notDeepEqual(alone[1], alone[0].slice(0, alone[1].length), "adapter a changes the output");
      assert.notDeepEqual(alone[2], alone[0], "adapter b changes the output");
      // the same rows at once: one mixed pass per step
      h.steps.length = 0;
      const together = await Promise.all([h.run([1], null).done, h.run(story, a).done, h.run([1], b).done]);
      assert.deepEqual(together.map(h.tokens), alone);
      assert.ok(
        h.steps.some((s) => s.kind === "decode" && s.rows === 3 && s.slots === 3),
        "a 3-adapter pass ran",
      );
      // rows that join a running batch, and a row cancelled meanwhile
      const first = h.run([1], null);
      await new Promise((r) => setTimeout(r, 5));
      const cancelled = h.run([1], a, { maxTokens: 200 });
      const second = h.run(story, a);
      await new Promise((r) => setTimeout(r, 5));
      h.runner.cancel([cancelled.id]);
      const third = h.run([1], b);
      const late = await Promise.all([first.done, second.done, third.done]);
      assert.deepEqual(late.map(h.tokens), alone);
      const stopped = await cancelled.done;
      assert.equal(stopped.at(-1)!.finishReason, "cancelled");
      assert.ok(h.tokens(stopped).length < 200);
      // LlamaGenerator with the same adapter as LoRA inputs agrees
      const generator = await LlamaGenerator.create(model, {
        ep: "wasm",
        loraSites: [...peftA.sites.keys()],
      });
      try {
        const [ref] = await generator.generate([story], {
          temperature: 0,
          maxTokens: 24,
          adapter: peftA.sites,
        });
        assert.deepEqual(ref.tokenIds, alone[1].filter((t) => !model.config.eosTokenIds.includes(t)));
      } finally {
        await generator.release();
      }
    } finally {
      await h.runner.close();
    }
  },
});

Deno.test({
  name: "rows keep their own sampling, stop strings, seeds and log-probabilities",
  ignore: !requireStories260k("rows keep their own options"),
  fn: async () => {
    const model = await loadModelFolder(await stories260kHf());
    const h = await harness(model, "wasm", 2);
    try {
      const [stop, sampled, sampledAgain, withLogprobs] = await Promise.all([
        h.run([1], null, { stop: ["Lily"], maxTokens: 40 }).done,
        h.run([1], null, { temperature: 1, seed: 3 }).done,
        h.run([1], null, { temperature: 1, seed: 3 }).done,
        h.run([1], null, { logprobs: 3, maxTokens: 5 }).done,
      ]);
      assert.equal(h.text(stop), "Once upon a time, there was a little girl named ");
      assert.equal(stop.at(-1)!.finishReason, "stop");
      assert.deepEqual(h.tokens(sampled), h.tokens(sampledAgain), "the same seed gives the same tokens");
      assert.equal(withLogprobs.length, 5);
      for (const e of withLogprobs) {
        const lp = e.logprob!;
        assert.equal(lp.tokenId, e.tokenId);
        assert.equal(lp.top.length, 3);
        assert.equal(lp.top[0].tokenId, e.tokenId, "greedy picks the most likely token");
        assert.ok(lp.logprob <= 0 && lp.top[0].logprob >= lp.top[1].logprob);
      }
      assert.ok(h.steps.every((s) => s.rows <= 2), "max batch is respected");
      assert.throws(() => h.run(new Array(512).fill(1), null), /prompt has 512 tokens, expected 1 to 511/);
    } finally {
      await h.runner.close();
    }
  },
});

for (const layout of ["separate", "shared"] as const) {
  Deno.test({
    name:
      `WebGPU (${layout}): mixed-adapter batches and late joins match rows run alone (adapter banks on the GPU)`,
    ignore: !requireStories260k("WebGPU batching"),
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async (t) => {
      if (!(await requireWebGpu(t))) return;
      const model = await loadModelFolder(await stories260kHf());
      const { a, b } = adapters(model);
      const h = await harness(model, "webgpu", 8, 8, layout);
      try {
        const alone = [
          h.tokens(await h.run([1], null, { maxTokens: 12 }).done),
          h.tokens(await h.run([1], a, { maxTokens: 12 }).done),
          h.tokens(await h.run([1], b, { maxTokens: 12 }).done),
        ];
        const first = h.run([1], a, { maxTokens: 12 });
        await new Promise((r) => setTimeout(r, 20));
        const rest = [h.run([1], null, { maxTokens: 12 }), h.run([1], b, { maxTokens: 12 })];
        const together = await Promise.all([first.done, ...rest.map((r) => r.done)]);
        assert.deepEqual(together.map(h.tokens), [alone[1], alone[0], alone[2]]);
        assert.ok(h.steps.some((s) => s.slots > 1));
      } finally {
        await h.runner.close();
      }
    },
  });
}

for (const layout of ["separate", "shared"] as const) {
  Deno.test({
    name:
      `graph variants (${layout}): adapter cost follows the adapter's sites; a tiny variant cache still ` +
      "gives the same tokens",
    ignore: !requireStories260k("graph variants"),
    fn: async () => {
      const model = await loadModelFolder(await stories260kHf());
      const { a, b } = adapters(model);
      const h = await harness(model, "wasm", 8, 1, layout);
      try {
        assert.equal(h.runner.variantLayout, layout);
        const base = h.tokens(await h.run([1], null).done);
        const withA = h.tokens(await h.run([1], a).done);
        const mixed = await Promise.all([h.run([1], b).done, h.run([1], null).done]);
        assert.deepEqual(h.tokens(mixed[1]), base);
        assert.deepEqual(h.tokens(await h.run([1], a).done), withA, "rebuilt after eviction: same tokens");
        assert.equal(h.runner.variants.length, 1, "max variants is respected");
        assert.match(h.runner.variants[0].key, /^single:/);
        if (layout === "shared") assert.equal(h.runner.sharedSession!.branches, 1);
      } finally {
        await h.runner.close();
      }
      // the variants' sizes: none < single (a's 35 sites) and single < bank at the same sites
      const h2 = await harness(model, "wasm", 8, 8, layout);
      try {
        await h2.run([1], null, { maxTokens: 2 }).done;
        await h2.run([1], b, { maxTokens: 2 }).done;
        await Promise.all([h2.run([1], b, { maxTokens: 2 }).done, h2.run([1], null, { maxTokens: 2 }).done]);
        const ops = Object.fromEntries(h2.runner.variants.map((v) => [v.key.split(":")[0], v.ops]));
        const bSites = b.sites.length;
        // Splits unpack the two packed inputs (in groups of at most 16 parts, for WebGPU's binding limit)
        const groups = Math.ceil(bSites / 16);
        const splits = 2 * (groups > 1 ? 1 + groups : 1);
        assert.equal(
          ops.single - ops.none,
          3 * bSites + splits,
          "three nodes per adapted site with one adapter",
        );
        // on wasm a mixed batch is laid out per row by the host: no Gathers, three nodes per site as well
        assert.equal(ops.bank, undefined, "no gathering bank on wasm");
        assert.equal(ops.rows - ops.none, 3 * bSites + splits, "three nodes per site in a mixed batch");
        if (layout === "shared") {
          assert.equal(h2.runner.sharedSession!.branches, 3, "one session, three branches");
        }
      } finally {
        await h2.runner.close();
      }
    },
  });
}

Deno.test({
  name:
    "gated layout: one session serves every site set; rows get the same tokens alone and in mixed batches",
  ignore: !requireStories260k("gated layout"),
  fn: async () => {
    const model = await loadModelFolder(await stories260kHf());
    const { a, b } = adapters(model);
    const reference = await harness(model, "wasm");
    const h = await harness(model, "wasm", 8, 8, "gated");
    try {
      const prompts = [[1], [1, 403], [1, 407, 261]];
      const alone = [];
      for (const [i, adapter] of [null, a, b].entries()) {
        alone.push(reference.tokens(await reference.run(prompts[i], adapter).done));
        assert.deepEqual(h.tokens(await h.run(prompts[i], adapter).done), alone[i], `row ${i} alone`);
      }
      const together = await Promise.all([null, a, b].map((adapter, i) => h.run(prompts[i], adapter).done));
      assert.deepEqual(together.map(h.tokens), alone);
      assert.ok(h.steps.some((s) => s.kind === "decode" && s.slots === 3), "a 3-adapter pass ran");
      assert.deepEqual(h.runner.variants.map((v) => v.key), ["gated"], "nothing built per site set");
    } finally {
      await h.runner.close();
      await reference.runner.close();
    }
  },
});
