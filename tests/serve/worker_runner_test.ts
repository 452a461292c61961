import assert from "node:assert/strict";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { parseAdapterFiles, prepareAdapter } from "../../src/serve/prepared_adapter.ts";
import type { RowEvent, StepInfo } from "../../src/serve/runner_types.ts";
import { WorkerRunner } from "../../src/serve/worker_runner.ts";
import { requireStories260k } from "../_util/fixtures.ts";
import { randomAdapterFiles, stories260kHf } from "./_fixtures.ts";

Deno.test({
  name: "an inference worker sends one message per forward pass: its events with its figures",
  ignore: !requireStories260k("inference worker messages"),
  fn: async () => {
    const model = await loadModelFolder(await stories260kHf());
    const steps: StepInfo[] = [];
    const events: RowEvent[] = [];
    let done: () => void = () => {};
    const finished = new Promise<void>((resolve) => (done = resolve));
    const runner = await WorkerRunner.create({
      init: { dir: model.dir, config: model.config, maxBatch: 4, variantLayout: "separate" },
      onStep: (info) => steps.push(info),
      onEvents: (list) => {
        events.push(...list);
        if (list.some((e) => e.finishReason)) done();
      },
    });
    try {
      runner.submit([{ id: 1, promptIds: [1], maxTokens: 8, seed: 0, stop: [], temperature: 0 }], null);
      await finished;
      assert.equal(events.filter((e) => e.tokenId !== undefined).length, 8);
      assert.deepEqual(steps.map((s) => s.kind), ["prefill", ...Array(7).fill("decode")]);
      assert.equal(runner.messages, steps.length, "one message per pass");
      for (const s of steps) {
        assert.ok(
          s.runMs > 0 && s.runMs <= s.ms,
          `session.run time within the pass: ${s.runMs} of ${s.ms} ms`,
        );
        assert.ok(s.feedMs >= 0 && s.feedMs + s.runMs <= s.ms + 1e-9);
      }
    } finally {
      await runner.close();
    }
  },
});

Deno.test({
  name: "an adapter is posted to a worker once; later rows name it by key, until it is evicted",
  ignore: !requireStories260k("inference worker adapters"),
  fn: async () => {
    const model = await loadModelFolder(await stories260kHf());
    const files = randomAdapterFiles(model.config, { seed: 5, rank: 4, scale: 0.3 });
    const adapter = prepareAdapter(parseAdapterFiles(files, { model: model.config, source: "a" }), {
      key: "acme/a@v1",
      shared: true,
    });
    const waiting = new Map<number, { tokens: number[]; done: (tokens: number[]) => void }>();
    const runner = await WorkerRunner.create({
      init: { dir: model.dir, config: model.config, maxBatch: 4, variantLayout: "separate" },
      onEvents: (list) => {
        for (const e of list) {
          const w = waiting.get(e.id)!;
          if (e.tokenId !== undefined) w.tokens.push(e.tokenId);
          if (e.error) throw new Error(e.error);
          if (e.finishReason) w.done(w.tokens);
        }
      },
    });
    let id = 0;
    const run = (a: typeof adapter | null) => {
      const row = ++id;
      const done = new Promise<number[]>((resolve) => waiting.set(row, { tokens: [], done: resolve }));
      runner.submit([{ id: row, promptIds: [1], maxTokens: 6, seed: 0, stop: [], temperature: 0 }], a);
      return done;
    };
    try {
      const base = await run(null);
      const first = await run(adapter);
      assert.notDeepEqual(first, base, "the adapter changes the tokens");
      assert.deepEqual(await run(adapter), first, "named by key: the same adapter");
      assert.deepEqual(await Promise.all([run(adapter), run(adapter)]), [first, first]);
      assert.equal(runner.adaptersSent, 1);
      runner.evict(adapter.key);
      assert.deepEqual(await run(adapter), first, "sent again after eviction");
      assert.equal(runner.adaptersSent, 2);
    } finally {
      await runner.close();
    }
  },
});
