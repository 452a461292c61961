// kill -9 mid-job: the process that trains is killed once the job's first checkpoint is in the database;
// a new process resumes the job from that checkpoint and finishes it, and the adapter is byte-identical
// to an uninterrupted run's. The server (`deno task serve`, embedded PGlite: the restarted server takes the
// job at once) and a trainer without HTTP (`deno task worker` on a Postgres server: after the dead
// trainer's lease expires).

import assert from "node:assert/strict";
import type { JobTrainOptions } from "../../src/jobs/hyperparameters.ts";
import { DbAdapterStore, JobStore, openDatabase } from "../../src/store/db/mod.ts";
import { parseJsonl } from "../../src/train/data.ts";
import { train } from "../../src/train/trainer.ts";
import { dogRows, stories260k } from "../train/_stories.ts";
import { BACKENDS } from "./_db.ts";
import { queueJob, quickMethod } from "./_jobs.ts";
import { api, spawnDeno, spawnServer, writeKeys } from "./_process.ts";
import type { ModelFolder } from "../../src/io/model_folder.ts";

/** Trains the job's stored options directly, uninterrupted; returns the adapter's safetensors bytes. */
async function uninterrupted(
  model: ModelFolder,
  rows: string,
  options: JobTrainOptions & { modelId?: string },
): Promise<Uint8Array> {
  const out = await Deno.makeTempDir({ prefix: "weightlora-uninterrupted-" });
  try {
    await train({
      model: { id: options.modelId ?? model.id, config: model.config, weights: model.weights },
      train: parseJsonl(rows, "train.jsonl", { tokenizer: model.tokenizer, seqLen: options.seqLen }),
    }, { ...options, ep: "wasm", out });
    return await Deno.readFile(`${out}/adapter_model.safetensors`);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

Deno.test({
  name: "kill -9 the server mid-job, restart: the job resumes and equals an uninterrupted run (pglite)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const model = await stories260k(t);
    if (!model) return;
    const dir = await Deno.makeTempDir({ prefix: "weightlora-kill-" });
    const args = ["--model", model.dir, "--db", `${dir}/db`, "--keys", await writeKeys(dir)];
    const rows = dogRows(12);
    const steps = 40;
    try {
      const first = await spawnServer(args);
      let jobId: string;
      let baseId: string;
      try {
        const form = new FormData();
        form.append("purpose", "fine-tune");
        form.append("file", new File([rows], "train.jsonl"));
        const file = await api(first.url, "/v1/files", { form });
        assert.equal(file.status, 200, JSON.stringify(file.body));
        // the server names the model after its folder
        baseId = (await (await fetch(`${first.url}/health`)).json()).model;
        const job = await api(first.url, "/v1/fine_tuning/jobs", {
          json: {
            model: baseId,
            training_file: file.body.id,
            method: quickMethod(steps, { save_every: 4 }),
          },
        });
        assert.equal(job.status, 200, JSON.stringify(job.body));
        jobId = job.body.id as string;
        const m = await first.server.waitFor(new RegExp(`jobs: ${jobId} checkpoint at step (\\d+)`));
        assert.equal((await first.server.stop("SIGKILL")).signal, "SIGKILL");
        assert.ok(Number(m[1]) < steps, `killed after the checkpoint at step ${m[1]}`);
      } finally {
        await first.server.stop("SIGKILL");
      }

      const restarted = performance.now();
      const second = await spawnServer(args);
      let fineTuned: string;
      try {
        await second.server.waitFor(new RegExp(`jobs: ${jobId} \\(acme\\) resumed at step (\\d+)`));
        console.log(
          `restart → job resumed: ${((performance.now() - restarted) / 1000).toFixed(1)} s (server, pglite)`,
        );
        let job: Record<string, unknown>;
        for (;;) {
          job = (await api(second.url, `/v1/fine_tuning/jobs/${jobId}`)).body;
          if (job.status !== "running" && job.status !== "queued") break;
          await new Promise((r) => setTimeout(r, 200));
        }
        assert.equal(job.status, "succeeded", JSON.stringify(job.error));
        assert.equal((job.progress as { attempts: number }).attempts, 2);
        fineTuned = job.fine_tuned_model as string;
        const events = (await api(second.url, `/v1/fine_tuning/jobs/${jobId}/events?limit=100`)).body;
        assert.ok(
          (events.data as { message: string }[]).some((e) =>
            /^Resuming fine-tuning job from its checkpoint at step \d+ \(attempt 2\)$/.test(e.message)
          ),
        );
        // the adapter is served at once
        const completion = await api(second.url, "/v1/completions", {
          json: { model: fineTuned, prompt: "Once upon a time", max_tokens: 4, temperature: 0 },
        });
        assert.equal(completion.status, 200, JSON.stringify(completion.body));
      } finally {
        const status = await second.server.stop("SIGTERM");
        assert.equal(status.code, 0, second.server.lines.join("\n"));
      }

      const db = await openDatabase(`${dir}/db`);
      try {
        const done = await new JobStore(db).get("acme", jobId);
        const adapters = new DbAdapterStore(db);
        const files = await adapters.read((await adapters.get("acme", fineTuned))!);
        assert.deepEqual(
          files.weights,
          await uninterrupted(model, rows, {
            ...done!.options as unknown as JobTrainOptions,
            modelId: baseId,
          }),
        );
      } finally {
        await db.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

for (const backend of BACKENDS.filter((b) => b.name === "postgres")) {
  Deno.test({
    name: `kill -9 a trainer (deno task worker) mid-job: another resumes it, same adapter (${backend.name})`,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn(t) {
      const model = await stories260k(t);
      if (!model) return;
      const test = await backend.create(t);
      if (!test) return;
      const rows = dogRows(12);
      const steps = 40;
      const job = await queueJob(test.db, {
        tenant: "acme",
        model,
        rows,
        method: quickMethod(steps, { save_every: 4 }),
      });
      // an embedded folder is opened by one process at a time
      if (test.db.exclusive) await test.db.close();
      const args = [
        "--db",
        test.location,
        "--model",
        `${model.id}=${model.dir}`,
        "--ep",
        "wasm",
        "--lease",
        "2",
      ];
      try {
        const first = spawnDeno("src/cli/worker.ts", args);
        try {
          const m = await first.waitFor(new RegExp(`jobs: ${job.id} checkpoint at step (\\d+)`));
          const status = await first.stop("SIGKILL");
          assert.equal(status.signal, "SIGKILL");
          assert.ok(Number(m[1]) < steps, `killed after the checkpoint at step ${m[1]}`);
          assert.ok(!first.lines.some((l) => l.includes("succeeded")), "killed before the end");
        } finally {
          await first.stop("SIGKILL");
        }

        const restarted = performance.now();
        const second = spawnDeno("src/cli/worker.ts", args);
        let resumeSeconds = 0;
        try {
          const resumed = await second.waitFor(
            new RegExp(`jobs: ${job.id} \\(acme\\) resumed at step (\\d+)`),
          );
          resumeSeconds = (performance.now() - restarted) / 1000;
          assert.ok(Number(resumed[1]) >= 4);
          await second.waitFor(new RegExp(`jobs: ${job.id} succeeded: adapter (\\S+)`));
        } finally {
          const status = await second.stop("SIGTERM");
          assert.equal(status.code, 0, second.lines.join("\n"));
        }
        console.log(`restart → job resumed: ${resumeSeconds.toFixed(1)} s (${backend.name})`);

        const db = test.db.exclusive ? await openDatabase(test.location) : test.db;
        try {
          const jobs = new JobStore(db);
          const done = await jobs.get("acme", job.id);
          assert.equal(done?.status, "succeeded");
          assert.equal(done?.attempts, 2);
          assert.equal(done?.step, steps);
          const { events } = await jobs.events(job.id, { order: "asc", after: 0, limit: 500 });
          assert.ok(
            events.some((e) =>
              /^Resuming fine-tuning job from its checkpoint at step \d+ \(attempt 2\)$/.test(e.message)
            ),
          );
          const adapters = new DbAdapterStore(db);
          const files = await adapters.read((await adapters.get("acme", done!.fineTunedModel!))!);

          assert.deepEqual(
            files.weights,
            await uninterrupted(model, rows, done!.options as unknown as JobTrainOptions),
          );
        } finally {
          if (db !== test.db) await db.close();
        }
      } finally {
        await test.dispose();
      }
    },
  });
}
