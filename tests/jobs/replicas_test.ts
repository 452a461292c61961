// Two server processes (`deno task serve --db postgres://…`) on one Postgres server: every job is claimed
// by exactly one of them (none runs twice), a job's adapter is served by both, and an adapter uploaded to
// replica A is served by replica B within a second.

import assert from "node:assert/strict";
import { DbAdapterStore, openDatabase } from "../../src/store/db/mod.ts";
import { dogRows, stories260k } from "../train/_stories.ts";
import { freshPostgresDatabase, requirePostgres } from "./_db.ts";
import { quickMethod } from "./_jobs.ts";
import { api, spawnServer, writeKeys } from "./_process.ts";

Deno.test({
  name: "two server replicas on one Postgres: no job runs twice; adapters are served by both",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const model = await stories260k(t);
    if (!model) return;
    const adminUrl = requirePostgres(t);
    if (!adminUrl) return;
    const { location, remove } = await freshPostgresDatabase(adminUrl);
    const dir = await Deno.makeTempDir({ prefix: "weightlora-replicas-" });
    const args = ["--model", model.dir, "--db", location, "--keys", await writeKeys(dir)];
    // started together: their migrations serialise on the advisory lock
    const [a, b] = await Promise.all([spawnServer(args), spawnServer(args)]);
    try {
      const baseId = (await (await fetch(`${a.url}/health`)).json()).model as string;
      const form = new FormData();
      form.append("purpose", "fine-tune");
      form.append("file", new File([dogRows(8)], "train.jsonl"));
      const file = (await api(a.url, "/v1/files", { form })).body;
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) {
        const job = await api(i % 2 ? b.url : a.url, "/v1/fine_tuning/jobs", {
          json: { model: baseId, training_file: file.id, method: quickMethod(3, { seed: i }) },
        });
        assert.equal(job.status, 200, JSON.stringify(job.body));
        ids.push(job.body.id as string);
      }

      const owners = new Set<string>();
      const fineTuned: string[] = [];
      for (const id of ids) {
        let job: Record<string, unknown>;
        const end = Date.now() + 180_000;
        for (;;) {
          job = (await api(b.url, `/v1/fine_tuning/jobs/${id}`)).body;
          if (job.status === "succeeded" || job.status === "failed" || Date.now() > end) break;
          await new Promise((r) => setTimeout(r, 200));
        }
        assert.equal(job.status, "succeeded", JSON.stringify(job));
        assert.equal((job.progress as { attempts: number }).attempts, 1, `${id} was claimed more than once`);
        const events = (await api(a.url, `/v1/fine_tuning/jobs/${id}/events?limit=100`)).body.data as {
          message: string;
          type: string;
          data: Record<string, unknown>;
        }[];
        const starts = events.filter((e) => e.message.startsWith("Fine-tuning job started on"));
        assert.equal(starts.length, 1, `${id} started ${starts.length} times`);
        owners.add(String(starts[0].data.worker));
        const steps = events.filter((e) => e.type === "metrics").map((e) => e.data.step);
        assert.deepEqual(steps, [...new Set(steps)], "no step trained twice");
        fineTuned.push(job.fine_tuned_model as string);
      }
      console.log(`4 jobs trained by ${owners.size} replica(s): ${[...owners].join(", ")}`);

      await t.step("a job's adapter is served by both replicas", async () => {
        for (const url of [a.url, b.url]) {
          const completion = await api(url, "/v1/completions", {
            json: { model: fineTuned[0], prompt: "Once upon a time", max_tokens: 4, temperature: 0 },
          });
          assert.equal(completion.status, 200, JSON.stringify(completion.body));
        }
      });

      await t.step("an adapter uploaded to A is served by B within a second", async () => {
        const db = await openDatabase(location);
        let files;
        try {
          const store = new DbAdapterStore(db);
          files = await store.read((await store.get("acme", fineTuned[1]))!);
        } finally {
          await db.close();
        }
        const upload = new FormData();
        upload.append("name", "uploaded");
        upload.append(
          "adapter_config.json",
          new File([files.config as Uint8Array<ArrayBuffer>], "adapter_config.json"),
        );
        upload.append(
          "adapter_model.safetensors",
          new File([files.weights as Uint8Array<ArrayBuffer>], "adapter_model.safetensors"),
        );
        assert.equal((await api(b.url, "/v1/models/uploaded")).status, 404);
        const up = await api(a.url, "/v1/adapters", { form: upload });
        assert.equal(up.status, 201, JSON.stringify(up.body));
        const uploaded = performance.now();
        const completion = await api(b.url, "/v1/completions", {
          json: { model: "uploaded", prompt: "Once upon a time", max_tokens: 4, temperature: 0 },
        });
        const seconds = (performance.now() - uploaded) / 1000;
        assert.equal(completion.status, 200, JSON.stringify(completion.body));
        assert.ok(seconds < 1, `served by B ${seconds} s after the upload to A`);
        console.log(`adapter uploaded to A, completion on B answered ${seconds.toFixed(3)} s later`);
      });
    } finally {
      const statuses = await Promise.all([a.server.stop("SIGTERM"), b.server.stop("SIGTERM")]);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await remove();
      assert.deepEqual(statuses.map((s) => s.code), [0, 0]);
    }
  },
});
