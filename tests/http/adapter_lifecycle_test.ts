// An adapter's life over HTTP: upload, use, replace while a stream uses it, delete; and a cache too small
// for the working set that still answers correctly.

import assert from "node:assert/strict";
import { requireStories260k } from "../_util/fixtures.ts";
import { randomAdapterFiles } from "../serve/_fixtures.ts";
import { call, complete, KEYS, readSse, startTestServer, upload } from "./_server.ts";
import { readTar } from "../_util/tar.ts";

Deno.test({
  name: "upload, use, replace while streaming, delete",
  ignore: !requireStories260k("adapter lifecycle"),
  fn: async () => {
    const t = await startTestServer();
    try {
      const config = t.server.engine.config;
      const v1 = randomAdapterFiles(config, { seed: 10, scale: 0.15 });
      const v2 = randomAdapterFiles(config, { seed: 11, scale: 0.15 });
      const created = await upload(t.url, KEYS.acme, "story", v1);
      assert.equal(created.status, 201);
      assert.equal(created.body.id, "story");
      assert.equal(created.body.replaced, false);
      assert.equal(created.body.sites, 15);
      assert.equal(created.body.rank, 4);
      const info = await call(`${t.url}/v1/adapters/story`, { key: KEYS.acme });
      assert.equal(info.body.version, created.body.version);
      // the adapter comes back out as a tar of its two PEFT files, for its tenant only
      const download = await fetch(`${t.url}/v1/adapters/story/content`, {
        headers: { authorization: `Bearer ${KEYS.acme}` },
      });
      assert.equal(download.status, 200);
      assert.equal(download.headers.get("content-type"), "application/x-tar");
      assert.match(download.headers.get("content-disposition") ?? "", /filename="story\.tar"/);
      const archived = readTar(new Uint8Array(await download.arrayBuffer()));
      assert.deepEqual([...archived.keys()], ["adapter_config.json", "adapter_model.safetensors"]);
      assert.deepEqual(archived.get("adapter_config.json"), v1.config);
      assert.deepEqual(archived.get("adapter_model.safetensors"), v1.weights);
      const foreign = await fetch(`${t.url}/v1/adapters/story/content`, {
        headers: { authorization: `Bearer ${KEYS.beta}` },
      });
      assert.equal(foreign.status, 404);
      await foreign.body?.cancel();
      const textV1 = await complete(t.url, KEYS.acme, "story", 200);

      // a long stream on v1; v2 is uploaded once the first chunk arrived
      const res = await fetch(`${t.url}/v1/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEYS.acme}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: "story",
          prompt: "Once upon a time",
          max_tokens: 200,
          temperature: 0,
          stream: true,
        }),
      });
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
      const reader = res.body!.getReader();
      const first = await reader.read();
      assert.ok(!first.done);
      const replaced = await upload(t.url, KEYS.acme, "story", v2);
      assert.equal(replaced.status, 200);
      assert.equal(replaced.body.replaced, true);
      assert.notEqual(replaced.body.version, created.body.version);
      const textV2 = await complete(t.url, KEYS.acme, "story", 200);
      assert.notEqual(textV2, textV1, "new requests use the new version");
      const rest = new Response(
        new ReadableStream({
          start(controller) {
            controller.enqueue(first.value);
          },
          async pull(controller) {
            const { done, value } = await reader.read();
            if (done) controller.close();
            else controller.enqueue(value);
          },
        }),
      );
      const chunks = await readSse(rest);
      assert.equal(chunks.at(-1), "[DONE]");
      const streamed = chunks.slice(0, -1).map((c) => (c as { choices: { text: string }[] }).choices[0].text)
        .join("");
      assert.equal(streamed, textV1, "the stream in flight finished on the old version");

      const deleted = await call(`${t.url}/v1/adapters/story`, { key: KEYS.acme, method: "DELETE" });
      assert.deepEqual(deleted, {
        status: 200,
        body: { id: "story", object: "adapter.deleted", deleted: true },
      });
      const gone = await call(`${t.url}/v1/completions`, {
        key: KEYS.acme,
        json: { model: "story", prompt: "x", max_tokens: 2 },
      });
      assert.equal(gone.status, 404);
      assert.equal((await call(`${t.url}/v1/adapters/story`, { key: KEYS.acme })).status, 404);
      assert.equal(
        (await call(`${t.url}/v1/adapters/story`, { key: KEYS.acme, method: "DELETE" })).status,
        404,
      );
    } finally {
      await t.close();
    }
  },
});

Deno.test({
  name: "a cache smaller than the working set evicts and still answers correctly",
  ignore: !requireStories260k("cache eviction"),
  fn: async () => {
    // each adapter prepares to 36,800 bytes: the cache holds one of the three
    const t = await startTestServer({ cacheBytes: 50_000 });
    try {
      const config = t.server.engine.config;
      const names = ["a", "b", "c"];
      for (const [i, name] of names.entries()) {
        assert.equal(
          (await upload(t.url, KEYS.acme, name, randomAdapterFiles(config, { seed: 20 + i, scale: 0.15 })))
            .status,
          201,
        );
      }
      const first = Object.fromEntries(
        await Promise.all(names.map(async (n) => [n, await complete(t.url, KEYS.acme, n)])),
      );
      assert.equal(new Set(Object.values(first)).size, 3);
      for (let round = 0; round < 3; round++) {
        for (const n of names) {
          assert.equal(await complete(t.url, KEYS.acme, n), first[n], `round ${round}, ${n}`);
        }
      }
      const metrics = await (await fetch(`${t.url}/metrics`)).text();
      const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1]);
      assert.ok(value("weightlora_adapter_cache_evictions_total") >= 8, metrics);
      assert.ok(value("weightlora_adapter_cache_misses_total") >= 9);
      assert.ok(value("weightlora_adapter_cache_bytes") <= 50_000);
      assert.equal(value("weightlora_adapter_cache_entries"), 1);
    } finally {
      await t.close();
    }
  },
});
