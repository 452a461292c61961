// Hostile and malformed input over HTTP (issue 12): each answered 4xx in OpenAI's shape, quickly, without
// internal text; the server keeps answering /health meanwhile.

import assert from "node:assert/strict";
import { createApp } from "../../src/http/app.ts";
import { KeyTable } from "../../src/http/auth.ts";
import { filesRoutes, jsonlValidator } from "../../src/http/files_routes.ts";
import { fineTuningRoutes } from "../../src/http/fine_tuning_routes.ts";
import { ServeEngine } from "../../src/serve/engine.ts";
import { DbAdapterStore, FileStore, JobStore, migrate, openDatabase } from "../../src/store/db/mod.ts";
import { randomAdapterFiles } from "../serve/_fixtures.ts";
import { dogRows, stories260k } from "../train/_stories.ts";
import { jobModels, quickMethod } from "../jobs/_jobs.ts";
import { adapterForm } from "./_server.ts";

const ACME = { authorization: "Bearer sk-acme-0123456789" };
const JSON_TYPE = { "content-type": "application/json" };

Deno.test({
  name: "hostile input over HTTP: 4xx in OpenAI's shape, no internal text, /health unblocked",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const model = await stories260k(t);
    if (!model) return;
    const dir = await Deno.makeTempDir({ prefix: "hardening_" });
    const db = await openDatabase(`${dir}/db`);
    await migrate(db);
    const adapters = new DbAdapterStore(db);
    const files = new FileStore(db);
    const jobs = new JobStore(db);
    const engine = await ServeEngine.create({ model, store: adapters, ep: "wasm", workers: 0 });
    const keys = await KeyTable.fromJson(
      { tenants: { acme: { keys: ["sk-acme-0123456789"] } } },
      "keys.json",
    );
    const { app } = createApp({
      engine,
      keys,
      limits: { requestTimeoutMs: 1500 },
      routes: [
        filesRoutes({ files, validate: jsonlValidator(model) }),
        fineTuningRoutes({ jobs, files, models: jobModels(model), streamPollSeconds: 0.2 }),
      ],
    });
    const request = (path: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
      app.request(path, { ...init, headers: { ...ACME, ...init.headers } });
    const postJson = (path: string, body: unknown) =>
      request(path, { method: "POST", body: JSON.stringify(body), headers: JSON_TYPE });
    const errorOf = async (res: Response) => (await res.json()).error;
    try {
      await t.step("a hostile target_modules regex is handled in well under 100 ms", async () => {
        const files = randomAdapterFiles(engine.config, { seed: 1, scale: 0.1 });
        const config = JSON.parse(new TextDecoder().decode(files.config));
        const hostile = { ...config, target_modules: ".{7}(.*)*!", rank_pattern: { "(.*a){25}": 4 } };
        const timed = async (name: string, json: unknown) => {
          const started = performance.now();
          const res = await request("/v1/adapters", {
            method: "POST",
            body: adapterForm(name, { ...files, config: new TextEncoder().encode(JSON.stringify(json)) }),
          });
          await res.body?.cancel();
          return { status: res.status, ms: performance.now() - started };
        };
        await timed("warm-up", config);
        const plain = await timed("plain", config);
        const health = (async () => {
          await new Promise((r) => setTimeout(r, 1));
          const t0 = performance.now();
          await app.request("/health");
          return performance.now() - t0;
        })();
        const attack = await timed("hostile", hostile);
        assert.equal(plain.status, 201);
        assert.ok(attack.status === 201 || attack.status === 400, `${attack.status}`);
        // the same upload with plain module names is the yardstick: the pattern adds well under 100 ms
        assert.ok(
          attack.ms < plain.ms + 100,
          `hostile ${attack.ms.toFixed(1)} ms vs plain ${plain.ms.toFixed(1)} ms`,
        );
        assert.ok((await health) < 100, "/health answered meanwhile");
        const backref = await request("/v1/adapters", {
          method: "POST",
          body: adapterForm("backref", {
            ...files,
            config: new TextEncoder().encode(JSON.stringify({ ...config, target_modules: "(q)_proj\\1" })),
          }),
        });
        assert.equal(backref.status, 400);
        assert.match(
          (await errorOf(backref)).message,
          /target_modules" has the pattern .* refused: backreferences/,
        );
      });

      await t.step("NaN weights and an absurd lora_alpha are refused with 400", async () => {
        const good = randomAdapterFiles(engine.config, { seed: 2, scale: 0.1 });
        const alpha = randomAdapterFiles(engine.config, { seed: 2, scale: 0.1, alpha: 1e308 });
        const res = await request("/v1/adapters", { method: "POST", body: adapterForm("alpha", alpha) });
        assert.equal(res.status, 400);
        assert.match(
          (await errorOf(res)).message,
          /"lora_alpha" is 1e\+308, expected a positive number up to 65536/,
        );
        const weights = good.weights.slice();
        // the first tensor's data starts after the 8-byte header length and the header
        const headerLength = Number(new DataView(weights.buffer).getBigUint64(0, true));
        new DataView(weights.buffer).setFloat32(8 + headerLength + 4, NaN, true);
        const nan = await request("/v1/adapters", {
          method: "POST",
          body: adapterForm("nan", { ...good, weights }),
        });
        assert.equal(nan.status, 400);
        assert.match((await errorOf(nan)).message, /holds NaN at index 1: weights must be finite/);
      });

      await t.step("a stored adapter that cannot be used is a 500 without its details", async () => {
        // stored before validation existed: the store itself does not validate
        const bad = randomAdapterFiles(engine.config, { seed: 3, scale: 0.1, alpha: 1e308 });
        await adapters.put("acme", "legacy", bad);
        const res = await postJson("/v1/completions", { model: "legacy", prompt: "Once", max_tokens: 2 });
        assert.equal(res.status, 500);
        const error = await errorOf(res);
        assert.match(
          error.message,
          /^Internal error while serving POST \/v1\/completions \(error id err_[0-9a-f]{16}\)/,
        );
        assert.doesNotMatch(
          error.message,
          /lora_alpha|Cannot load|\//.source.length ? /lora_alpha|Cannot load/ : /x/,
        );
        assert.equal(error.type, "server_error");
      });

      await t.step("a request larger than the queue can ever hold is a 400, not a 503", async () => {
        const res = await postJson("/v1/completions", {
          model: model.id,
          prompt: Array.from({ length: 300 }, () => "Once"),
          max_tokens: 1,
        });
        assert.equal(res.status, 400, JSON.stringify(await res.clone().json()));
        const error = await errorOf(res);
        assert.equal(error.param, "n");
        assert.match(error.message, /Cannot generate 300 rows in one request: the server holds at most 256/);
      });

      await t.step("a JSON body without Content-Type names the header, not a field", async () => {
        const res = await request("/v1/completions", {
          method: "POST",
          body: JSON.stringify({ model: model.id, prompt: "Once", max_tokens: 2 }),
          headers: { "content-type": "" },
        });
        assert.equal(res.status, 400);
        assert.match(
          (await errorOf(res)).message,
          /^Content-Type must be application\/json for POST \/v1\/completions, got (none|"")/,
        );
        const text = await request("/v1/chat/completions", {
          method: "POST",
          body: "{}",
          headers: { "content-type": "text/plain" },
        });
        assert.equal(text.status, 400);
        assert.match((await errorOf(text)).message, /got "text\/plain"/);
      });

      let jobId = "";
      await t.step("events?after= out of range is a 400, not a 500", async () => {
        const form = new FormData();
        form.append("purpose", "fine-tune");
        form.append("file", new File([dogRows(200)], "train.jsonl"));
        const up = await request("/v1/files", { method: "POST", body: form });
        assert.equal(up.status, 200, await up.clone().text());
        const created = await postJson("/v1/fine_tuning/jobs", {
          model: model.id,
          training_file: (await up.json()).id,
          method: quickMethod(4),
        });
        assert.equal(created.status, 200, await created.clone().text());
        jobId = (await created.json()).id;
        for (const after of ["99999999999", "ftevent-99999999999", "-1"]) {
          const res = await request(`/v1/fine_tuning/jobs/${jobId}/events?after=${after}`);
          assert.equal(res.status, 400, after);
          assert.equal((await errorOf(res)).param, "after");
        }
        const huge = await postJson("/v1/fine_tuning/jobs", {
          model: model.id,
          training_file: (await (await request("/v1/files")).json()).data[0].id,
          method: { type: "lora", lora: { hyperparameters: { n_epochs: 10_000, batch_size: 1 } } },
        });
        assert.equal(huge.status, 400);
        assert.equal((await errorOf(huge)).param, "method.lora.hyperparameters.n_epochs");
      });

      await t.step("the event stream of a job that never ends stops at the request deadline", async () => {
        const started = performance.now();
        const res = await request(`/v1/fine_tuning/jobs/${jobId}/events?stream=true`);
        assert.equal(res.status, 200);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const text = await Promise.race([
          res.text(),
          new Promise<string>((_, reject) => {
            timer = setTimeout(() => reject(new Error("the stream outlived the deadline by 10 s")), 11_500);
          }),
        ]);
        clearTimeout(timer);
        const seconds = (performance.now() - started) / 1000;
        assert.ok(seconds < 5, `ended after ${seconds.toFixed(1)} s`);
        assert.match(text, /"code":"request_timeout"/);
        assert.match(text, /Created fine-tuning job/);
      });
    } finally {
      await engine.close();
      await db.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
