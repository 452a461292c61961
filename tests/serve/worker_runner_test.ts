import assert from "node:assert/strict";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import type { RowEvent, StepInfo } from "../../src/serve/runner_types.ts";
import { WorkerRunner } from "../../src/serve/worker_runner.ts";
import { requireStories260k } from "../_util/fixtures.ts";
import { stories260kHf } from "./_fixtures.ts";

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
