// Replicas sharing an S3 bucket and a database: writes are announced on the database's adapter channel, a
// replica that hears one drops its pointer (the new version is read at once, whatever its freshness
// window), and with `revalidateInBackground` a stale pointer is answered at once and refreshed behind.

import assert from "node:assert/strict";
import { AnnouncedAdapterStore } from "../../src/store/announced_adapter_store.ts";
import type { AdapterChange } from "../../src/store/db/db_adapter_store.ts";
import { migrate, openDatabase } from "../../src/store/db/mod.ts";
import { S3AdapterStore, type S3AdapterStoreOptions } from "../../src/store/s3_adapter_store.ts";
import { startS3Server } from "../_util/s3_server.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const files = (tag: string) => ({
  config: enc(`{"tag":"${tag}"}`),
  weights: enc(`weights of ${tag}`.repeat(40)),
});

Deno.test({
  name: "announced writes reach the other replica at once; stale pointers are revalidated behind the answer",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const s3 = await startS3Server({ buckets: ["adapters"] });
    const dir = await Deno.makeTempDir({ prefix: "announced_" });
    const db = await openDatabase(`${dir}/db`);
    let pointerGets = 0;
    let slowPointers = false;
    const open = (options: Partial<S3AdapterStoreOptions>) =>
      new S3AdapterStore({
        bucket: "adapters",
        prefix: "replicas",
        endpoint: s3.endpoint,
        accessKeyId: s3.accessKeyId,
        secretAccessKey: s3.secretAccessKey,
        fetch: async (request: Request) => {
          if (request.method === "GET" && new URL(request.url).pathname.endsWith("/CURRENT")) {
            pointerGets++;
            if (slowPointers) await new Promise((r) => setTimeout(r, 400));
          }
          return await fetch(request);
        },
        ...options,
      });
    try {
      await migrate(db);
      // replica A writes; replica B trusts its pointers for a minute, and revalidates in the background
      const a = new AnnouncedAdapterStore(open({}), db);
      const b = new AnnouncedAdapterStore(open({ freshnessMs: 60_000, revalidateInBackground: true }), db);
      const heard: AdapterChange[] = [];
      const stop = await b.watch((change) => heard.push(change));
      try {
        const v1 = (await a.put("acme", "story", files("v1"))).record;
        assert.equal((await b.get("acme", "story"))?.version, v1.version);
        const v2 = (await a.put("acme", "story", files("v2"))).record;
        for (let i = 0; i < 50 && !heard.some((c) => c.version === v2.version); i++) {
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.deepEqual(heard.at(-1), { tenant: "acme", name: "story", version: v2.version });
        assert.equal((await b.get("acme", "story"))?.version, v2.version, "heard: read at once");
        assert.equal(
          new TextDecoder().decode((await b.read((await b.get("acme", "story"))!)).config),
          '{"tag":"v2"}',
        );
        await a.delete("acme", "story");
        for (let i = 0; i < 50 && heard.at(-1)?.version !== null; i++) {
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(await b.get("acme", "story"), undefined, "a deletion is heard too");

        // a version written to the bucket without an announcement (e.g. `deno task adapters push`): a
        // background-revalidating store answers from the pointer it holds at once, then has the new one
        const quiet = open({});
        const c = open({ freshnessMs: 0, revalidateInBackground: true });
        const w1 = (await quiet.put("acme", "poem", files("w1"))).record;
        assert.equal(
          (await c.get("acme", "poem"))?.version,
          w1.version,
          "a pointer never read is read first",
        );
        const w2 = (await quiet.put("acme", "poem", files("w2"))).record;
        slowPointers = true;
        const before = pointerGets;
        const started = performance.now();
        assert.equal((await c.get("acme", "poem"))?.version, w1.version, "answered from the pointer held");
        assert.ok(performance.now() - started < 300, "without waiting for the bucket");
        assert.equal((await c.get("acme", "poem"))?.version, w1.version, "again, while it revalidates");
        await new Promise((r) => setTimeout(r, 700));
        assert.equal(pointerGets - before, 1, "one revalidation for both lookups");
        slowPointers = false;
        assert.equal(
          (await c.get("acme", "poem"))?.version,
          w2.version,
          "the revalidation brought the new one",
        );
        // invalidate() drops the pointer: the next lookup reads the bucket (and waits for it)
        const w3 = (await quiet.put("acme", "poem", files("w3"))).record;
        c.invalidate("acme", "poem");
        assert.equal((await c.get("acme", "poem"))?.version, w3.version);
      } finally {
        await stop();
      }
    } finally {
      await db.close();
      await s3.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
