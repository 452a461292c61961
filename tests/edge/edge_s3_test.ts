// `examples/edge/main.ts` with its adapters in object storage (`WEIGHTLORA_ADAPTERS=s3://…`), under an
// isolate's permissions plus network access to the store and its AWS_* variables: a tenant's adapter is
// served from the bucket, and a new version pushed to the bucket (as another replica or `deno task adapters
// push` would) is served without a redeploy, within the store's freshness window.

import assert from "node:assert/strict";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { openAdapterStore, S3_ENV_VARIABLES } from "../../src/store/open_adapter_store.ts";
import { requireStories260k } from "../_util/fixtures.ts";
import { startS3Server } from "../_util/s3_server.ts";
import { call, KEYS, KEYS_JSON } from "../http/_server.ts";
import { randomAdapterFiles, stories260kHf } from "../serve/_fixtures.ts";
import { spawnEdge } from "./_harness.ts";

Deno.test({
  name: "examples/edge/main.ts serves adapters from S3 under an isolate's permissions; new versions show up",
  ignore: !requireStories260k("edge harness with S3"),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const model = await stories260kHf();
    const config = (await loadModelFolder(model)).config;
    const s3 = await startS3Server({ buckets: ["edge-adapters"] });
    const location = "s3://edge-adapters/prod";
    const store = await openAdapterStore(location, { env: s3.env });
    await store.put("acme", "story", randomAdapterFiles(config, { seed: 4, scale: 0.15 }));
    const server = await spawnEdge({
      model,
      adapters: location,
      keys: KEYS_JSON,
      allowNet: [new URL(s3.endpoint).host],
      allowEnv: [...S3_ENV_VARIABLES],
      env: s3.env,
    });
    try {
      const prompt = { prompt: "Once upon a time", max_tokens: 12, temperature: 0 };
      const complete = async (name: string) => {
        const res = await call(`${server.url}/v1/completions`, {
          key: KEYS.acme,
          json: { model: name, ...prompt },
        });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        return res.body.choices[0].text as string;
      };
      const base = await complete("stories260K");
      const first = await complete("story");
      assert.notEqual(first, base, "the adapter from the bucket changes the output");
      // a new version, written to the bucket by someone else: served without a restart
      await store.put("acme", "story", randomAdapterFiles(config, { seed: 9, scale: 0.15 }));
      const pushed = performance.now();
      let second = first;
      while (second === first && performance.now() - pushed < 10_000) {
        await new Promise((r) => setTimeout(r, 100));
        second = await complete("story");
      }
      assert.notEqual(second, first, "the new version was served");
      console.log(`new version served ${(performance.now() - pushed).toFixed(0)} ms after the push`);
      // uploads through the edge handler stay refused: the isolate only reads
      const models = await call(`${server.url}/v1/models`, { key: KEYS.acme });
      assert.ok((models.body.data as { id: string }[]).some((m) => m.id === "story"));
      assert.equal(await server.close(), 0, server.output.join("\n"));
      assert.ok(
        !server.output.some((l) => /NotCapable|Requires .* access/.test(l)),
        `the server needed no other permission:\n${server.output.join("\n")}`,
      );
    } finally {
      await server.close();
      await s3.stop();
    }
  },
});
