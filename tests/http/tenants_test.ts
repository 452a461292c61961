// Two tenants on one server: interleaved concurrent requests get their own adapters' tokens, exactly as
// when alone, and neither tenant can see, use, read or delete the other's adapters.

import assert from "node:assert/strict";
import { requireStories260k } from "../_util/fixtures.ts";
import { randomAdapterFiles } from "../serve/_fixtures.ts";
import { call, complete, KEYS, startTestServer, upload } from "./_server.ts";

Deno.test({
  name: "two tenants with different adapters get exactly their tokens alone and interleaved (two workers)",
  ignore: !requireStories260k("two tenants"),
  fn: async () => {
    const t = await startTestServer({ workers: 2 });
    try {
      const config = t.server.engine.config;
      // both tenants call their adapter "story"; they are different adapters
      assert.equal(
        (await upload(t.url, KEYS.acme, "story", randomAdapterFiles(config, { seed: 1, scale: 0.15 })))
          .status,
        201,
      );
      assert.equal(
        (await upload(t.url, KEYS.beta, "story", randomAdapterFiles(config, { seed: 2, scale: 0.15 })))
          .status,
        201,
      );
      const alone = {
        acme: await complete(t.url, KEYS.acme, "story", 32),
        beta: await complete(t.url, KEYS.beta, "story", 32),
        base: await complete(t.url, KEYS.acme, "stories260K", 32),
      };
      assert.notEqual(alone.acme, alone.beta);
      assert.notEqual(alone.acme, alone.base);
      const order = [
        "acme",
        "beta",
        "base",
        "beta",
        "acme",
        "acme",
        "beta",
        "base",
        "beta",
        "acme",
        "base",
        "acme",
      ];
      const results = await Promise.all(
        order.map((who) =>
          who === "base"
            ? complete(t.url, KEYS.beta, "stories260K", 32)
            : complete(t.url, KEYS[who as "acme" | "beta"], "story", 32)
        ),
      );
      results.forEach((text, i) =>
        assert.equal(text, alone[order[i] as keyof typeof alone], `request ${i} (${order[i]})`)
      );
      const metrics = await (await fetch(`${t.url}/metrics`)).text();
      const mixed = /weightlora_batch_adapters_bucket\{le="1",kind="decode"\} (\d+)/.exec(metrics);
      const all = /weightlora_batch_adapters_count\{kind="decode"\} (\d+)/.exec(metrics);
      assert.ok(mixed && all && Number(all[1]) > Number(mixed[1]), "some decode passes mixed adapters");
      // where the time went: passes split into session.run and feeds, requests' adapter lookups and queue waits
      const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1]);
      const pass = (part: string) =>
        value(`weightlora_forward_pass_seconds_total\\{kind="decode",part="${part}"\\}`);
      assert.ok(pass("run") > 0 && pass("feeds") > 0 && pass("run") + pass("feeds") <= pass("all"));
      assert.ok(
        value("weightlora_adapter_resolves_total") >= 5,
        "every adapter request resolved its adapter",
      );
      assert.ok(value("weightlora_adapter_resolve_seconds_total") > 0);
      assert.ok(value("weightlora_queued_rows_total") >= order.length);
      assert.ok(value("weightlora_row_queue_seconds_total") >= 0);
    } finally {
      await t.close();
    }
  },
});

Deno.test({
  name: "a tenant cannot list, use, read or delete another tenant's adapters",
  ignore: !requireStories260k("tenant isolation"),
  fn: async () => {
    const t = await startTestServer();
    try {
      const config = t.server.engine.config;
      assert.equal(
        (await upload(t.url, KEYS.beta, "secret", randomAdapterFiles(config, { seed: 3 }))).status,
        201,
      );
      const v1 = `${t.url}/v1`;
      const completion = (key?: string) => ({ key, json: { model: "secret", prompt: "x", max_tokens: 2 } });
      const table: [string, Promise<{ status: number }>, number][] = [
        ["beta lists its adapter", call(`${v1}/adapters`, { key: KEYS.beta }), 200],
        ["beta uses it", call(`${v1}/completions`, completion(KEYS.beta)), 200],
        ["acme uses it", call(`${v1}/completions`, completion(KEYS.acme)), 404],
        ["acme reads it", call(`${v1}/adapters/secret`, { key: KEYS.acme }), 404],
        ["acme reads it as a model", call(`${v1}/models/secret`, { key: KEYS.acme }), 404],
        ["acme deletes it", call(`${v1}/adapters/secret`, { key: KEYS.acme, method: "DELETE" }), 404],
        ["no key", call(`${v1}/adapters`), 401],
        ["unknown key", call(`${v1}/adapters`, { key: "sk-nobody-000000000" }), 401],
      ];
      for (const [what, reply, status] of table) assert.equal((await reply).status, status, what);
      const acmeList = await call(`${v1}/adapters`, { key: KEYS.acme });
      assert.deepEqual(acmeList.body.data, []);
      const acmeModels = await call(`${v1}/models`, { key: KEYS.acme });
      assert.deepEqual(acmeModels.body.data.map((m: { id: string }) => m.id), ["stories260K"]);
      const betaModels = await call(`${v1}/models`, { key: KEYS.beta });
      assert.deepEqual(betaModels.body.data.map((m: { id: string }) => m.id), ["stories260K", "secret"]);
      const denied = await call(`${v1}/completions`, completion(KEYS.acme));
      assert.deepEqual(denied.body.error, {
        message: 'The model "secret" does not exist or you do not have access to it',
        type: "not_found_error",
        param: "model",
        code: "model_not_found",
      });
      const unauth = await call(`${v1}/models`);
      assert.equal(unauth.body.error.type, "authentication_error");
      // beta's adapter survived acme's delete attempt
      assert.equal((await call(`${v1}/adapters/secret`, { key: KEYS.beta })).status, 200);
      assert.equal((await call(`${t.url}/health`)).status, 200, "health needs no key");
    } finally {
      await t.close();
    }
  },
});
