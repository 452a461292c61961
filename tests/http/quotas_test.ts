// Per-tenant quotas from the keys file: adapters, files, bytes, concurrent jobs and concurrent rows, each
// refused with an OpenAI-shaped 403/429 naming the quota; keys files without quotas stay valid.

import assert from "node:assert/strict";
import { createApp } from "../../src/http/app.ts";
import { KeyTable } from "../../src/http/auth.ts";
import { filesRoutes, jsonlValidator } from "../../src/http/files_routes.ts";
import { fineTuningRoutes } from "../../src/http/fine_tuning_routes.ts";
import { databaseUsage } from "../../src/http/quotas.ts";
import { ServeEngine } from "../../src/serve/engine.ts";
import { DbAdapterStore, FileStore, JobStore } from "../../src/store/db/mod.ts";
import { BACKENDS } from "../jobs/_db.ts";
import { jobModels, quickMethod } from "../jobs/_jobs.ts";
import { randomAdapterFiles } from "../serve/_fixtures.ts";
import { dogRows, stories260k } from "../train/_stories.ts";
import { adapterForm } from "./_server.ts";

Deno.test("keys file: quotas parse (tenant over defaults), bad ones are refused, old files stay valid", async () => {
  const plain = await KeyTable.fromJson({ tenants: { acme: { keys: ["sk-acme-0123456789"] } } }, "k.json");
  assert.deepEqual(plain.quotasOf("acme"), {});
  const keys = await KeyTable.fromJson({
    default_quotas: { adapters: 5, bytes: 1000, concurrent_rows: 8 },
    tenants: {
      acme: { keys: ["sk-acme-0123456789"], quotas: { adapters: 1, concurrent_jobs: 2 } },
      beta: { keys: ["sk-beta-0123456789"] },
    },
  }, "k.json");
  assert.deepEqual(keys.quotasOf("acme"), { adapters: 1, bytes: 1000, concurrentRows: 8, concurrentJobs: 2 });
  assert.deepEqual(keys.quotasOf("beta"), { adapters: 5, bytes: 1000, concurrentRows: 8 });
  const bad = async (quotas: unknown, pattern: RegExp) =>
    await assert.rejects(
      KeyTable.fromJson({ tenants: { acme: { keys: ["sk-acme-0123456789"], quotas } } }, "k.json"),
      pattern,
    );
  await bad({ adaptors: 1 }, /k\.json: "quotas" of tenant "acme" has an unknown quota "adaptors"/);
  await bad({ files: -1 }, /files is -1, expected an integer ≥ 0/);
  await bad({ bytes: 1.5 }, /bytes is 1.5/);
  await bad([1], /must be an object/);
});

const ACME = { authorization: "Bearer sk-acme-0123456789" };
const BETA = { authorization: "Bearer sk-beta-0123456789" };

Deno.test({
  name: "quotas over HTTP: adapters, bytes, files, concurrent jobs and rows (pglite)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const model = await stories260k(t);
    if (!model) return;
    const test = await BACKENDS[0].create(t);
    if (!test) return;
    const adapters = new DbAdapterStore(test.db);
    const files = new FileStore(test.db);
    const jobs = new JobStore(test.db);
    const engine = await ServeEngine.create({
      model,
      store: adapters,
      ep: "wasm",
      workers: 0,
      tenantRowQuota: (tenant) => keys.quotasOf(tenant).concurrentRows,
    });
    const keys = await KeyTable.fromJson({
      tenants: {
        acme: {
          keys: ["sk-acme-0123456789"],
          quotas: { adapters: 1, files: 1, concurrent_jobs: 1, concurrent_rows: 2 },
        },
        beta: { keys: ["sk-beta-0123456789"], quotas: { bytes: 30_000 } },
      },
    }, "keys.json");
    const { app } = createApp({ engine, keys, usage: databaseUsage({ files, jobs }) });
    app.route("/", filesRoutes({ files, validate: jsonlValidator(model) }));
    app.route("/", fineTuningRoutes({ jobs, files, models: jobModels(model) }));
    const uploadAdapter = (name: string, headers: Record<string, string>, seed = 1, rank = 4) =>
      app.request("/v1/adapters", {
        method: "POST",
        headers,
        body: adapterForm(name, randomAdapterFiles(engine.config, { seed, rank, scale: 0.1 })),
      });
    const uploadFile = (headers = ACME) => {
      const form = new FormData();
      form.append("purpose", "fine-tune");
      form.append("file", new File([dogRows(4)], "train.jsonl"));
      return app.request("/v1/files", { method: "POST", body: form, headers });
    };
    const postJson = (path: string, body: unknown, headers = ACME) =>
      app.request(path, {
        method: "POST",
        body: JSON.stringify(body),
        headers: { ...headers, "content-type": "application/json" },
      });
    const refused = async (res: Response, status: number, param: string) => {
      const body = await res.json();
      assert.equal(res.status, status, JSON.stringify(body));
      assert.equal(body.error.code, "quota_exceeded");
      assert.equal(body.error.param, param);
      assert.match(body.error.message, new RegExp(`Quota ${param} exceeded`));
    };
    try {
      await t.step(
        "adapters: two concurrent uploads under a quota of one: exactly one is stored",
        async () => {
          const both = await Promise.all([uploadAdapter("a", ACME), uploadAdapter("b", ACME)]);
          assert.deepEqual(both.map((r) => r.status).sort(), [201, 403]);
          await refused(both.find((r) => r.status === 403)!, 403, "adapters");
          assert.equal((await adapters.list("acme")).length, 1);
          const kept = (await adapters.list("acme"))[0].name;
          const replaced = await uploadAdapter(kept, ACME, 2);
          assert.equal(replaced.status, 200, "replacing an adapter is not one more");
        },
      );

      await t.step("bytes: adapters and files together", async () => {
        const first = await uploadAdapter("small", BETA, 1, 2);
        assert.equal(first.status, 201, await first.clone().text());
        const stored = (await adapters.list("beta"))[0].bytes;
        assert.ok(stored < 30_000 && 2 * stored > 30_000, `one adapter is ${stored} bytes`);
        await refused(await uploadAdapter("other", BETA, 3, 2), 403, "bytes");
        assert.equal((await uploadAdapter("small", BETA, 4, 2)).status, 200, "a replacement frees its bytes");
        // a file streamed without a declared length is stopped at the bytes left, not stored whole
        const stored2 = (await adapters.list("beta"))[0].bytes;
        const boundary = "quota-boundary";
        const head = new TextEncoder().encode(
          `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n` +
            `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n\r\n`,
        );
        const row = new TextEncoder().encode(dogRows(1).trim() + "\n");
        let sent = 0;
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (sent === 0) controller.enqueue(head);
            else if (sent > 4 * 30_000) {
              controller.enqueue(new TextEncoder().encode(`\r\n--${boundary}--\r\n`));
              return controller.close();
            } else controller.enqueue(row);
            sent += sent === 0 ? head.length : row.length;
          },
        });
        const chunked = await app.request("/v1/files", {
          method: "POST",
          body,
          duplex: "half",
          headers: { ...BETA, "content-type": `multipart/form-data; boundary=${boundary}` },
        } as RequestInit);
        const error = (await chunked.clone().json()).error;
        await refused(chunked, 403, "bytes");
        assert.match(
          error.message,
          new RegExp(`larger than the ${30_000 - stored2} bytes it may still store`),
        );
        assert.ok(sent < 4 * 30_000, `read ${sent} bytes of a 120 kB upload`);
        assert.deepEqual(await files.list("beta"), []);
      });

      await t.step("files and concurrent jobs", async () => {
        const first = await uploadFile();
        assert.equal(first.status, 200, await first.clone().text());
        const fileId = (await first.json()).id;
        await refused(await uploadFile(), 403, "files");
        assert.equal((await files.list("acme")).length, 1);
        const job = { model: model.id, training_file: fileId, method: quickMethod(6) };
        const created = await postJson("/v1/fine_tuning/jobs", job);
        assert.equal(created.status, 200, await created.clone().text());
        await refused(await postJson("/v1/fine_tuning/jobs", job), 429, "concurrent_jobs");
        const id = (await created.json()).id;
        assert.equal((await postJson(`/v1/fine_tuning/jobs/${id}/cancel`, {})).status, 200);
        assert.equal(
          (await postJson("/v1/fine_tuning/jobs", job)).status,
          200,
          "a cancelled job frees its seat",
        );
      });

      await t.step("concurrent rows: n beyond the quota is a 429", async () => {
        const ask = (n: number) =>
          postJson("/v1/completions", { model: model.id, prompt: "Once", max_tokens: 2, n, temperature: 0 });
        await refused(await ask(3), 429, "concurrent_rows");
        assert.equal((await ask(2)).status, 200);
        assert.equal(
          (await postJson("/v1/completions", { model: model.id, prompt: "Once", max_tokens: 2, n: 3 }, BETA))
            .status,
          200,
        );
      });
    } finally {
      await engine.close();
      await test.dispose();
    }
  },
});
