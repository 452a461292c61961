// Fine-tuning over HTTP end to end on stories260K (a few steps, wasm), against embedded PGlite and a
// Postgres server: upload a file → create a job → stream its events → the job succeeds → its adapter
// answers a completion. Then bad input: each refused with the right 4xx, nothing half-written.

import assert from "node:assert/strict";
import { createApp } from "../../src/http/app.ts";
import { KeyTable } from "../../src/http/auth.ts";
import { filesRoutes, jsonlValidator } from "../../src/http/files_routes.ts";
import { fineTuningRoutes } from "../../src/http/fine_tuning_routes.ts";
import { JobRunner } from "../../src/jobs/job_runner.ts";
import { ServeEngine } from "../../src/serve/engine.ts";
import { DbAdapterStore, FileStore, JobStore } from "../../src/store/db/mod.ts";
import { dogRows, stories260k } from "../train/_stories.ts";
import { BACKENDS } from "../jobs/_db.ts";
import { jobModels, quickMethod } from "../jobs/_jobs.ts";
import { readTar } from "../_util/tar.ts";

const ACME = { authorization: "Bearer sk-acme-0123456789" };
const BETA = { authorization: "Bearer sk-beta-0123456789" };

/** Reads an SSE body to the end: the `data:` payloads. */
async function readSse(response: Response): Promise<string[]> {
  const text = await response.text();
  return text.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim());
}

for (const backend of BACKENDS) {
  Deno.test({
    name: `fine-tuning over HTTP end to end (${backend.name})`,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn(t) {
      const model = await stories260k(t);
      if (!model) return;
      const test = await backend.create(t);
      if (!test) return;
      const { db } = test;
      const adapters = new DbAdapterStore(db);
      const files = new FileStore(db);
      const jobs = new JobStore(db);
      const models = jobModels(model);
      const engine = await ServeEngine.create({ model, store: adapters, ep: "wasm", workers: 0 });
      const keys = await KeyTable.fromJson({
        tenants: { acme: { keys: ["sk-acme-0123456789"] }, beta: { keys: ["sk-beta-0123456789"] } },
      }, "keys.json");
      const { app } = createApp({ engine, keys });
      app.route("/", filesRoutes({ files, validate: jsonlValidator(model) }));
      app.route("/", fineTuningRoutes({ jobs, files, models, streamPollSeconds: 0.2 }));
      const runner = new JobRunner({
        jobs,
        files,
        models,
        ep: "wasm",
        heartbeatSeconds: 0.2,
        pollSeconds: 0.2,
        log: () => {},
      });
      await runner.start();
      const request = (path: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
        app.request(path, { ...init, headers: { ...ACME, ...init.headers } });
      const upload = (text: string, headers = ACME, purpose = "fine-tune") => {
        const form = new FormData();
        form.append("purpose", purpose);
        form.append("file", new File([text], "train.jsonl", { type: "application/jsonl" }));
        return app.request("/v1/files", { method: "POST", body: form, headers });
      };
      const postJson = (path: string, body: unknown, headers = ACME) =>
        app.request(path, {
          method: "POST",
          body: JSON.stringify(body),
          headers: { ...headers, "content-type": "application/json" },
        });
      try {
        let fileId = "";
        let jobId = "";
        let fineTuned = "";

        await t.step("upload, create, stream events, succeed, complete with the adapter", async () => {
          const up = await upload(dogRows(12));
          assert.equal(up.status, 200, await up.clone().text());
          const file = await up.json();
          assert.equal(file.object, "file");
          assert.equal(file.purpose, "fine-tune");
          fileId = file.id;
          const listed = await (await request("/v1/files")).json();
          assert.deepEqual(listed.data.map((f: { id: string }) => f.id), [fileId]);

          const created = await postJson("/v1/fine_tuning/jobs", {
            model: model.id,
            training_file: fileId,
            suffix: "dog",
            method: quickMethod(6, { select_steps: "all", gate_norm: "params" }),
          });
          assert.equal(created.status, 200, await created.clone().text());
          const job = await created.json();
          assert.equal(job.object, "fine_tuning.job");
          assert.equal(job.status, "queued");
          assert.equal(job.hyperparameters.steps, 6);
          assert.equal(job.hyperparameters.learning_rate, 1e-3, "defaults filled in");
          assert.equal(job.hyperparameters.completion_eos, true, "the CLI's default");
          assert.equal(job.hyperparameters.select_steps, "all", "the authors' schedule");
          assert.equal(job.hyperparameters.gate_norm, "params");
          assert.deepEqual(job.result_files, []);
          jobId = job.id;

          const stream = await request(`/v1/fine_tuning/jobs/${jobId}/events?stream=true`);
          assert.equal(stream.status, 200);
          assert.match(stream.headers.get("content-type") ?? "", /text\/event-stream/);
          const data = await readSse(stream);
          assert.equal(data.at(-1), "[DONE]");
          const events = data.slice(0, -1).map((d) => JSON.parse(d));
          assert.ok(events.every((e) => e.object === "fine_tuning.job.event"));
          assert.match(events[0].message, /^Created fine-tuning job/);
          const metrics = events.filter((e) => e.type === "metrics");
          assert.ok(metrics.length >= 2, `${metrics.length} metrics events`);
          assert.equal(metrics.at(-1).data.step, 6);
          assert.ok(metrics.at(-1).data.tokens_per_s > 0);
          assert.match(events.at(-1).message, /successfully completed/);

          const done = await (await request(`/v1/fine_tuning/jobs/${jobId}`)).json();
          assert.equal(done.status, "succeeded");
          assert.match(done.fine_tuned_model, /^ft-dog-/);
          assert.ok(done.trained_tokens > 0);
          fineTuned = done.fine_tuned_model;
          // result_files names the finished adapter's download: a tar of the two PEFT files
          assert.deepEqual(done.result_files, [`/v1/adapters/${fineTuned}/content`]);
          const download = await request(done.result_files[0]);
          assert.equal(download.status, 200);
          const archived = readTar(new Uint8Array(await download.arrayBuffer()));
          const stored = await adapters.read((await adapters.get("acme", fineTuned))!);
          assert.deepEqual(archived.get("adapter_config.json"), stored.config);
          const config = JSON.parse(new TextDecoder().decode(stored.config));
          assert.equal(config.target_modules.length, 3, "exactly K = 3 survivors");
          assert.deepEqual(archived.get("adapter_model.safetensors"), stored.weights);
          assert.equal((await app.request(done.result_files[0], { headers: BETA })).status, 404);
          const page = await (await request(`/v1/fine_tuning/jobs/${jobId}/events?limit=2`)).json();
          assert.equal(page.data.length, 2);
          assert.equal(page.has_more, true);
          assert.match(page.data[0].message, /successfully completed/, "newest first");

          const completion = await postJson("/v1/completions", {
            model: fineTuned,
            prompt: "Once upon a time, there was a dog named",
            max_tokens: 8,
            temperature: 0,
          });
          assert.equal(completion.status, 200, await completion.clone().text());
          const body = await completion.json();
          assert.equal(body.model, fineTuned);
          assert.ok(body.choices[0].text.length > 0);
          const models = await (await request("/v1/models")).json();
          assert.ok(models.data.some((m: { id: string }) => m.id === fineTuned), "listed as a model");
        });

        await t.step("tenants see only their own files, jobs and adapters", async () => {
          assert.equal((await app.request(`/v1/files/${fileId}`, { headers: BETA })).status, 404);
          assert.equal((await app.request(`/v1/fine_tuning/jobs/${jobId}`, { headers: BETA })).status, 404);
          assert.equal(
            (await app.request(`/v1/fine_tuning/jobs/${jobId}/events`, { headers: BETA })).status,
            404,
          );
          const list = await (await app.request("/v1/fine_tuning/jobs", { headers: BETA })).json();
          assert.deepEqual(list.data, []);
          const other = await postJson(
            "/v1/completions",
            { model: fineTuned, prompt: "Once", max_tokens: 2 },
            BETA,
          );
          assert.equal(other.status, 404);
        });

        await t.step("bad input: the right 4xx, nothing half-written", async () => {
          const jobsBefore = (await jobs.list("acme", { limit: 100 })).jobs.length;
          const filesBefore = (await files.list("acme")).length;

          const badLine = await upload('{"text": "fine"}\n{"text": oops}\n');
          assert.equal(badLine.status, 400);
          const badBody = await badLine.json();
          assert.equal(badBody.error.type, "invalid_request_error");
          assert.equal(badBody.error.param, "file");
          assert.match(badBody.error.message, /train\.jsonl:2: invalid JSON/);
          const badShape = await upload('{"text": "fine"}\n{"prompt": "no completion"}\n');
          assert.equal(badShape.status, 400);
          assert.match((await badShape.json()).error.message, /train\.jsonl:2: /);
          assert.equal((await upload(dogRows(2), ACME, "assistants")).status, 400);

          const create = (body: Record<string, unknown>, headers = ACME) =>
            postJson("/v1/fine_tuning/jobs", { model: model.id, training_file: fileId, ...body }, headers);
          const unknownFile = await create({ training_file: "file-000000000000000000000000" });
          assert.equal(unknownFile.status, 404);
          assert.equal((await unknownFile.json()).error.param, "training_file");
          const othersFile = await create({}, BETA);
          assert.equal(othersFile.status, 404, "another tenant's file is not found");
          const unknownModel = await create({ model: "gpt-4o" });
          assert.equal(unknownModel.status, 404);
          assert.equal((await unknownModel.json()).error.code, "model_not_found");
          const outOfRange = await create({
            method: { type: "lora", lora: { hyperparameters: { rank: 0 } } },
          });
          assert.equal(outOfRange.status, 400);
          const oor = (await outOfRange.json()).error;
          assert.equal(oor.param, "method.lora.hyperparameters.rank");
          assert.match(oor.message, /rank 0/);
          const tooManyK = await create({ method: quickMethod(6, { k: 1000 }) });
          assert.equal(tooManyK.status, 400);
          assert.match((await tooManyK.json()).error.message, /k 1000: K must be an integer in 1\.\.35/);
          const tinyBudget = await create({ method: quickMethod(6, { k: undefined, budget: 10 }) });
          assert.equal(tinyBudget.status, 400);
          const tiny = (await tinyBudget.json()).error;
          assert.equal(tiny.param, "method.weightlora.hyperparameters.budget");
          assert.match(
            tiny.message,
            /budget 10: the smallest candidate adapter has 192 parameters at rank 2/,
          );
          const unknownName = await create({
            method: { type: "lora", lora: { hyperparameters: { epochs: 3 } } },
          });
          assert.equal(unknownName.status, 400);
          assert.match((await unknownName.json()).error.message, /Unknown hyperparameter "epochs"/);
          const badMethod = await create({ method: { type: "supervised" } });
          assert.equal(badMethod.status, 400);
          assert.equal((await create({ suffix: "no spaces allowed" })).status, 400);
          assert.equal((await create({ colour: "blue" })).status, 400);

          const cancelDone = await request(`/v1/fine_tuning/jobs/${jobId}/cancel`, { method: "POST" });
          assert.equal(cancelDone.status, 409);
          assert.match((await cancelDone.json()).error.message, /has already succeeded/);
          const cancelMissing = await request("/v1/fine_tuning/jobs/ftjob-nope/cancel", { method: "POST" });
          assert.equal(cancelMissing.status, 404);
          assert.equal((await request("/v1/fine_tuning/jobs?limit=0")).status, 400);

          assert.equal((await jobs.list("acme", { limit: 100 })).jobs.length, jobsBefore);
          assert.equal((await files.list("acme")).length, filesBefore);
          assert.equal((await jobs.list("beta")).jobs.length, 0);
        });

        await t.step("cancel a queued job; delete files", async () => {
          await runner.stop();
          const created = await (await postJson("/v1/fine_tuning/jobs", {
            model: model.id,
            training_file: fileId,
            method: quickMethod(6),
          })).json();
          const inUse = await request(`/v1/files/${fileId}`, { method: "DELETE" });
          assert.equal(inUse.status, 409);
          const cancelled =
            await (await request(`/v1/fine_tuning/jobs/${created.id}/cancel`, { method: "POST" }))
              .json();
          assert.equal(cancelled.status, "cancelled");
          const deleted = await request(`/v1/files/${fileId}`, { method: "DELETE" });
          assert.deepEqual(await deleted.json(), { id: fileId, object: "file", deleted: true });
          assert.equal((await request(`/v1/files/${fileId}`, { method: "DELETE" })).status, 404);
        });
      } finally {
        await runner.stop();
        await engine.close(0);
        await test.dispose();
      }
    },
  });
}
