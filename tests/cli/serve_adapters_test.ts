// `deno task serve --adapters s3://BUCKET/PREFIX`: uploads land in the bucket (files and jobs stay in the
// database), a fine-tuning job's adapter is published there, generation uses the stored adapter, and an
// edge handler reading the same bucket (another replica, no database) serves the same text.

import assert from "node:assert/strict";
import { parseServeArgs, type ServeArgs } from "../../src/cli/serve.ts";
import { UsageError } from "../../src/cli/_args.ts";
import { createEdgeHandler } from "../../src/http/edge.ts";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { openAdapterStore } from "../../src/store/open_adapter_store.ts";
import { requireStories260k } from "../_util/fixtures.ts";
import { startS3Server } from "../_util/s3_server.ts";
import { adapterForm } from "../http/_server.ts";
import { ACME_KEY, api, spawnServer, writeKeys } from "../jobs/_process.ts";
import { quickMethod } from "../jobs/_jobs.ts";
import { randomAdapterFiles, stories260kHf } from "../serve/_fixtures.ts";
import { dogRows } from "../train/_stories.ts";

Deno.test("serve flags: --adapters keeps the database for files and jobs, or serves alone with --read-only", () => {
  const parse = (args: string[]) => parseServeArgs(["--model", "m", ...args]) as ServeArgs;
  const shared = parse(["--adapters", "s3://b/p", "--db", "state/db"]);
  assert.equal(shared.adapters, "s3://b/p");
  assert.equal(shared.db, "state/db");
  assert.equal(shared.readOnly, false);
  const edge = parse(["--adapters", "s3://b/p", "--read-only"]);
  assert.equal(edge.db, undefined, "no database in the read-only mode");
  assert.equal(edge.readOnly, true);
  assert.equal(parse(["--store", "s"]).adapters, undefined, "the database keeps adapters by default");
  assert.throws(() => parse(["--store", "s", "--adapters", "a", "--read-only"]), /not both/);
  assert.throws(() => parse(["--adapters", "a", "--read-only", "--db", "x"]), /--adapters location/);
  assert.throws(() => parse(["--read-only"]), UsageError);
  assert.throws(() => parse(["--adapters", ""]), /Invalid --adapters/);
});

Deno.test({
  name:
    "serve --adapters s3://: upload, fine-tune and generate through the bucket; an edge replica serves it",
  ignore: !requireStories260k("serve --adapters s3://"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const model = await stories260kHf();
    const { config } = await loadModelFolder(model);
    const dir = await Deno.makeTempDir({ prefix: "serve_s3_" });
    const s3 = await startS3Server({ buckets: ["adapters"] });
    const location = "s3://adapters/prod";
    const bucket = await openAdapterStore(location, { env: s3.env, readOnly: true });
    const keys = await writeKeys(dir);
    const { server, url } = await spawnServer(
      ["--model", model, "--store", dir, "--adapters", location, "--keys", keys],
      { env: s3.env },
    );
    try {
      await server.waitFor(/State: .*; adapters: s3:\/\/adapters\/prod; fine-tuning: 1 training worker/);
      // an upload is written to the bucket, not to the database
      const files = randomAdapterFiles(config, { seed: 9, scale: 0.3 });
      const created = await api(url, "/v1/adapters", { form: adapterForm("story", files) });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const stored = await bucket.get("acme", "story");
      assert.equal(stored?.version, created.body.version);
      assert.deepEqual((await bucket.read(stored!)).weights, files.weights);
      const listed = await api(url, "/v1/adapters");
      assert.deepEqual((listed.body.data as { id: string }[]).map((a) => a.id), ["story"]);
      const completion = await api(url, "/v1/completions", {
        json: { model: "story", prompt: "Once upon a time", max_tokens: 16, temperature: 0 },
      });
      assert.equal(completion.status, 200, JSON.stringify(completion.body));
      const text = (completion.body.choices as { text: string }[])[0].text;
      const base = await api(url, "/v1/completions", {
        json: { model: "stories260K", prompt: "Once upon a time", max_tokens: 16, temperature: 0 },
      });
      assert.notEqual(
        (base.body.choices as { text: string }[])[0].text,
        text,
        "the adapter changes the text",
      );

      // an edge replica on the same bucket (no database, read-only) serves the same adapter
      for (const [k, v] of Object.entries(s3.env)) Deno.env.set(k, v);
      const edge = await createEdgeHandler({
        model,
        adapters: location,
        keys: { tenants: { acme: { keys: [ACME_KEY] } } },
      });
      const edgeReply = await edge(
        new Request("http://edge/v1/completions", {
          method: "POST",
          headers: { authorization: `Bearer ${ACME_KEY}`, "content-type": "application/json" },
          body: JSON.stringify({
            model: "story",
            prompt: "Once upon a time",
            max_tokens: 16,
            temperature: 0,
          }),
        }),
      );
      assert.equal(edgeReply.status, 200);
      assert.equal((await edgeReply.json()).choices[0].text, text);
      const refused = await edge(
        new Request("http://edge/v1/adapters", {
          method: "POST",
          headers: { authorization: `Bearer ${ACME_KEY}` },
          body: adapterForm("other", files),
        }),
      );
      assert.equal(refused.status, 403, "the edge replica is read-only");
      await refused.body?.cancel();

      // a fine-tuning job's adapter is published to the bucket
      const form = new FormData();
      form.append("purpose", "fine-tune");
      form.append("file", new File([dogRows(8)], "train.jsonl", { type: "application/jsonl" }));
      const file = await api(url, "/v1/files", { form });
      assert.equal(file.status, 200, JSON.stringify(file.body));
      const job = await api(url, "/v1/fine_tuning/jobs", {
        json: { model: "stories260K", training_file: file.body.id, suffix: "dog", method: quickMethod(4) },
      });
      assert.equal(job.status, 200, JSON.stringify(job.body));
      let done = job.body;
      const end = Date.now() + 180_000;
      while (done.status !== "succeeded") {
        assert.ok(!["failed", "cancelled"].includes(done.status as string), JSON.stringify(done));
        assert.ok(Date.now() < end, `the job did not finish: ${JSON.stringify(done)}`);
        await new Promise((r) => setTimeout(r, 250));
        done = (await api(url, `/v1/fine_tuning/jobs/${job.body.id}`)).body;
      }
      const tuned = done.fine_tuned_model as string;
      const published = await bucket.get("acme", tuned);
      assert.ok(published, `${tuned} is in the bucket`);
      const names = (await bucket.list("acme")).map((r) => r.name);
      assert.deepEqual(names, [tuned, "story"].sort());
      const withTuned = await api(url, "/v1/completions", {
        json: { model: tuned, prompt: "Once upon a time", max_tokens: 4, temperature: 0 },
      });
      assert.equal(withTuned.status, 200, JSON.stringify(withTuned.body));

      // a deletion through the API removes it from the bucket
      const deleted = await api(url, "/v1/adapters/story", { method: "DELETE" });
      assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
      const deletedAt = performance.now();
      while (await bucket.get("acme", "story")) {
        assert.ok(performance.now() - deletedAt < 2_000, "the deletion is seen within 2 s");
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(
        await openAdapterStore(location, { env: s3.env }).then((s) => s.get("acme", "story")),
        undefined,
      );
    } finally {
      await server.stop("SIGTERM");
      await s3.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
