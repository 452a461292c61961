// The job runner end to end on stories260K (a few steps, wasm): queue → Worker → events → checkpoints →
// adapter registered for the tenant, byte-identical to the same run through train() directly; cancel
// stops within seconds and keeps the last checkpoint. Run on PGlite and on a Postgres server.

import assert from "node:assert/strict";
import { JobRunner } from "../../src/jobs/job_runner.ts";
import type { JobTrainOptions } from "../../src/jobs/hyperparameters.ts";
import { DbAdapterStore, FileStore, JobStore } from "../../src/store/db/mod.ts";
import { parseJsonl } from "../../src/train/data.ts";
import { train } from "../../src/train/trainer.ts";
import { dogRows, stories260k } from "../train/_stories.ts";
import { BACKENDS } from "./_db.ts";
import { queueJob, quickMethod, waitForJob } from "./_jobs.ts";

for (const backend of BACKENDS) {
  Deno.test({
    name: `job runner trains, registers the adapter, cancels (${backend.name})`,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn(t) {
      const model = await stories260k(t);
      if (!model) return;
      const test = await backend.create(t);
      if (!test) return;
      const { db } = test;
      const jobs = new JobStore(db);
      const runner = new JobRunner({
        jobs,
        files: new FileStore(db),
        models: new Map([[model.id, { id: model.id, dir: model.dir }]]),
        ep: "wasm",
        trainNice: 7,
        heartbeatSeconds: 0.2,
        pollSeconds: 0.5,
        metricsEverySeconds: 0,
        log: () => {},
      });
      try {
        const rows = dogRows(12);
        const job = await queueJob(db, {
          tenant: "acme",
          model,
          rows,
          method: quickMethod(6),
          suffix: "dog",
        });
        const created = performance.now();
        await runner.start();

        await t.step("the job succeeds and its adapter is the tenant's", async () => {
          const done = await waitForJob(
            jobs,
            job.id,
            (j) => j.status === "succeeded" || j.status === "failed",
          );
          assert.equal(done.status, "succeeded", JSON.stringify(done.error));
          assert.match(done.fineTunedModel!, /^ft-dog-[0-9a-f]{8}$/);
          assert.equal(done.step, 6);
          assert.equal(done.lockedBy, null);
          assert.ok(done.trainedTokens! > 0);
          // the training thread lowered its own priority (the test task grants --allow-sys=setPriority)
          assert.equal(runner.trainingNice, 7);
          const store = new DbAdapterStore(db);
          const record = await store.get("acme", done.fineTunedModel!);
          assert.ok(record, "adapter registered");
          assert.equal(await store.get("other", done.fineTunedModel!), undefined);
          const files = await store.read(record);
          const config = JSON.parse(new TextDecoder().decode(files.config));
          assert.equal(config.peft_type, "LORA");
          assert.equal(config.r, 2);

          const { events } = await jobs.events(job.id, { order: "asc", after: 0, limit: 100 });
          const metrics = events.filter((e) => e.type === "metrics");
          assert.deepEqual(metrics.map((e) => e.data!.step), [1, 2, 3, 4, 5, 6]);
          for (const key of ["train_loss", "tokens_per_s", "phase", "active_adapters"]) {
            assert.ok(key in metrics[0].data!, key);
          }
          assert.equal(metrics[0].data!.phase, "select");
          assert.equal(metrics[5].data!.active_adapters, 3);
          assert.match(events.at(-1)!.message, /successfully completed/);
          assert.equal((await jobs.checkpoint(job.id))?.step, 6);
          const firstStep = metrics[0].createdAt;
          console.log(
            `queue latency (create → first step event): ${(firstStep - done.createdAt).toFixed(0)} s ` +
              `(job done ${((performance.now() - created) / 1000).toFixed(1)} s after creation)`,
          );

          // the same run through train() directly gives the same bytes
          const options = done.options as unknown as JobTrainOptions;
          const out = await Deno.makeTempDir({ prefix: "weightlora-direct-" });
          try {
            await train({
              model: { id: model.id, config: model.config, weights: model.weights },
              train: parseJsonl(rows, "train.jsonl", { tokenizer: model.tokenizer, seqLen: options.seqLen }),
            }, { ...options, ep: "wasm", out });
            assert.deepEqual(files.weights, await Deno.readFile(`${out}/adapter_model.safetensors`));
            assert.deepEqual(files.config, await Deno.readFile(`${out}/adapter_config.json`));
          } finally {
            await Deno.remove(out, { recursive: true });
          }
        });

        await t.step("completion_eos: false trains as the CLI's --no-completion-eos does", async () => {
          const noEos = await queueJob(db, {
            tenant: "acme",
            model,
            rows,
            method: quickMethod(6, { completion_eos: false }),
            suffix: "noeos",
          });
          const done = await waitForJob(
            jobs,
            noEos.id,
            (j) => j.status === "succeeded" || j.status === "failed",
          );
          assert.equal(done.status, "succeeded", JSON.stringify(done.error));
          const options = done.options as unknown as JobTrainOptions;
          assert.equal(options.completionEos, false);
          const store = new DbAdapterStore(db);
          const files = await store.read((await store.get("acme", done.fineTunedModel!))!);
          const withEos = await store.read(
            (await store.get("acme", (await jobs.get(undefined, job.id))!.fineTunedModel!))!,
          );
          assert.notDeepEqual(files.weights, withEos.weights, "EOS targets change the adapter");
          const out = await Deno.makeTempDir({ prefix: "weightlora-direct-" });
          try {
            const data = parseJsonl(rows, "train.jsonl", {
              tokenizer: model.tokenizer,
              seqLen: options.seqLen,
              completionEos: false,
            });
            await train({
              model: { id: model.id, config: model.config, weights: model.weights },
              train: data,
            }, {
              ...options,
              ep: "wasm",
              out,
            });
            assert.deepEqual(files.weights, await Deno.readFile(`${out}/adapter_model.safetensors`));
          } finally {
            await Deno.remove(out, { recursive: true });
          }
        });

        await t.step("cancel stops within seconds and keeps the last checkpoint", async () => {
          const long = await queueJob(db, { tenant: "acme", model, rows, method: quickMethod(100_000) });
          await waitForJob(jobs, long.id, (j) => j.status === "running" && j.step >= 3, 60_000);
          const asked = performance.now();
          const cancelled = await jobs.cancel("acme", long.id);
          assert.equal(cancelled?.status, "cancelled");
          const released = await waitForJob(jobs, long.id, (j) => j.lockedBy === null, 30_000);
          const seconds = (performance.now() - asked) / 1000;
          assert.ok(seconds < 10, `stopped in ${seconds} s`);
          assert.equal(released.status, "cancelled");
          assert.equal(released.fineTunedModel, null);
          const checkpoint = await jobs.checkpoint(long.id);
          assert.ok(
            checkpoint && checkpoint.step >= 3 && checkpoint.step < 100_000,
            `checkpoint ${checkpoint?.step}`,
          );
          const { events } = await jobs.events(long.id, { limit: 1 });
          assert.match(events[0].message, /checkpoint of that step is kept/);
          for (let i = 0; i < 100 && runner.running.length; i++) await new Promise((r) => setTimeout(r, 20));
          assert.deepEqual(runner.running, []);
          console.log(`cancel → worker stopped and checkpoint stored: ${seconds.toFixed(2)} s`);
        });
      } finally {
        await runner.stop();
        await test.dispose();
      }
    },
  });
}
