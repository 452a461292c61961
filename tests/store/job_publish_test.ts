// A JobStore with `adapters` (serve --adapters, worker --adapters) publishes a finished job's adapter to that
// store instead of the database, never replacing one the tenant has there, and publishes nothing for a
// job cancelled meanwhile.

import assert from "node:assert/strict";
import { DbAdapterStore, FileStore, JobStore } from "../../src/store/db/mod.ts";
import { FolderAdapterStore } from "../../src/store/folder_adapter_store.ts";
import { BACKENDS } from "../jobs/_db.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test({
  name: "a finished job publishes its adapter to the JobStore's adapter store (pglite)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const test = await BACKENDS[0].create(t);
    if (!test) return;
    const { db } = test;
    const root = await Deno.makeTempDir({ prefix: "job_publish_" });
    try {
      const store = new FolderAdapterStore(root);
      const files = new FileStore(db);
      const jobs = new JobStore(db, { adapters: store });
      assert.equal(jobs.adapters, store);
      const file = await files.create({
        tenant: "acme",
        filename: "a.jsonl",
        purpose: "fine-tune",
        content: bytes('{"text": "hello"}\n'),
        rows: 1,
      });
      const newJob = () => ({
        tenant: "acme",
        model: "stories260K",
        trainingFile: file.id,
        method: { type: "lora" },
        options: { steps: 3 },
        totalSteps: 3,
      });
      const success = (weights: number) => ({
        adapterName: "ft-dog",
        files: { config: bytes("{}"), weights: new Uint8Array([weights]) },
        result: {},
        trainedTokens: 1,
        steps: 3,
      });
      const mine = { config: bytes('{"mine": true}'), weights: new Uint8Array([42]) };
      await store.put("acme", "ft-dog", mine);

      const job = await jobs.create(newJob());
      assert.equal((await jobs.claim("w-1", { leaseSeconds: 30 }))?.id, job.id);
      const record = await jobs.succeed(job.id, "w-1", success(1));
      assert.equal(record?.name, "ft-dog-2", "the tenant's own adapter is not replaced");
      assert.deepEqual(await store.get("acme", "ft-dog-2"), record);
      assert.deepEqual((await store.read(record!)).weights, new Uint8Array([1]));
      assert.deepEqual(
        (await store.read((await store.get("acme", "ft-dog"))!)).weights,
        new Uint8Array([42]),
      );
      assert.deepEqual(await new DbAdapterStore(db).list("acme"), [], "nothing in the database's table");
      const done = await jobs.get("acme", job.id);
      assert.equal(done?.status, "succeeded");
      assert.equal(done?.fineTunedModel, "ft-dog-2");

      // cancelled while training: nothing is published
      const cancelled = await jobs.create(newJob());
      assert.equal((await jobs.claim("w-2", { leaseSeconds: 30 }))?.id, cancelled.id);
      await jobs.cancel("acme", cancelled.id);
      assert.equal(await jobs.succeed(cancelled.id, "w-2", success(2)), undefined);
      assert.deepEqual((await store.list("acme")).map((r) => r.name), ["ft-dog", "ft-dog-2"]);
    } finally {
      await test.dispose();
      await Deno.remove(root, { recursive: true });
    }
  },
});
