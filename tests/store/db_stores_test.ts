// The database stores (adapters, files, jobs, events, checkpoints), one case suite run on embedded PGlite
// and on a Postgres server.

import assert from "node:assert/strict";
import { AdapterVersionGoneError, ReadOnlyStoreError } from "../../src/store/adapter_store.ts";
import {
  type AdapterChange,
  DbAdapterStore,
  FileInUseError,
  FileStore,
  JobStateError,
  JobStore,
  migrate,
  MissingFileError,
  openDatabase,
} from "../../src/store/db/mod.ts";
import { BACKENDS } from "../jobs/_db.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

async function until(check: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`Condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

for (const backend of BACKENDS) {
  Deno.test({
    name: `db stores (${backend.name})`,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn(t) {
      const test = await backend.create(t);
      if (!test) return;
      const { db } = test;
      try {
        await t.step("migrate is idempotent", async () => {
          assert.deepEqual(await migrate(db), []);
          const rows = await db.query<{ version: number }>("select version from weightlora_migrations");
          assert.deepEqual(rows.map((r) => Number(r.version)), [1, 2]);
        });

        await t.step("adapters: put, get, read, replace, list, delete, notify", async () => {
          const store = new DbAdapterStore(db);
          const changes: AdapterChange[] = [];
          const unwatch = await store.watch((c) => changes.push(c));
          const files = { config: bytes('{"r":4}'), weights: new Uint8Array([1, 2, 3, 250]) };
          const first = await store.put("acme", "story", files);
          assert.equal(first.replaced, false);
          assert.equal(first.record.bytes, 7 + 4);
          assert.match(first.record.sha256, /^[0-9a-f]{64}$/);
          assert.deepEqual(await store.get("acme", "story"), first.record);
          assert.equal(await store.get("other", "story"), undefined);
          const read = await store.read(first.record);
          assert.deepEqual([...read.weights], [1, 2, 3, 250]);
          assert.ok(read.weights instanceof Uint8Array);

          const second = await store.put("acme", "story", {
            config: files.config,
            weights: new Uint8Array([9]),
          });
          assert.equal(second.replaced, true);
          assert.ok(second.record.version > first.record.version);
          await assert.rejects(store.read(first.record), AdapterVersionGoneError);
          await store.put("acme", "alpha", files);
          assert.deepEqual((await store.list("acme")).map((r) => r.name), ["alpha", "story"]);
          assert.deepEqual(await store.list("nobody"), []);
          assert.equal(await store.delete("acme", "story"), true);
          assert.equal(await store.delete("acme", "story"), false);
          await assert.rejects(store.put("acme", "bad/name", files), RangeError);
          await until(() => changes.length >= 4);
          assert.deepEqual(changes.map((c) => [c.name, c.version === null]), [
            ["story", false],
            ["story", false],
            ["alpha", false],
            ["story", true],
          ]);
          await unwatch();
          const readOnly = new DbAdapterStore(db, { readOnly: true });
          await assert.rejects(readOnly.put("acme", "x", files), ReadOnlyStoreError);
          assert.equal((await readOnly.list("acme")).length, 1);
        });

        const files = new FileStore(db);
        const jobs = new JobStore(db);
        const content = bytes('{"text": "hello"}\n');
        const file = await files.create({
          tenant: "acme",
          filename: "a.jsonl",
          purpose: "fine-tune",
          content,
          rows: 1,
        });
        const newJob = (tenant = "acme", trainingFile = file.id) => ({
          tenant,
          model: "stories260K",
          trainingFile,
          method: { type: "lora" },
          options: { steps: 3 },
          totalSteps: 3,
        });

        await t.step("files: tenant-scoped", async () => {
          assert.match(file.id, /^file-[0-9a-f]{24}$/);
          assert.equal(file.bytes, content.byteLength);
          assert.deepEqual(await files.content("acme", file.id), content);
          assert.equal(await files.get("other", file.id), undefined);
          assert.equal(await files.content("other", file.id), undefined);
          assert.deepEqual((await files.list("acme")).map((f) => f.id), [file.id]);
          assert.deepEqual(await files.list("other"), []);
          assert.equal(await files.delete("other", file.id), false);
        });

        await t.step("jobs: create checks the tenant's files", async () => {
          await assert.rejects(jobs.create(newJob("other")), MissingFileError);
          await assert.rejects(jobs.create(newJob("acme", "file-missing")), (e: MissingFileError) => {
            assert.equal(e.param, "training_file");
            return true;
          });
          const { jobs: listed } = await jobs.list("acme");
          assert.equal(listed.length, 0, "a refused job leaves no row");
        });

        await t.step("jobs: claimed once, lease, heartbeat, checkpoint fencing, success", async () => {
          const job = await jobs.create(newJob());
          assert.equal(job.status, "queued");
          await assert.rejects(files.delete("acme", file.id), FileInUseError);
          // many concurrent claims: exactly one wins
          const claims = await Promise.all(
            Array.from({ length: 6 }, (_, i) => jobs.claim(`w${i}`, { leaseSeconds: 30 })),
          );
          const won = claims.filter((c) => c !== undefined);
          assert.equal(won.length, 1);
          const owner = won[0]!.lockedBy!;
          assert.equal(won[0]!.status, "running");
          assert.equal(won[0]!.attempts, 1);
          assert.equal(await jobs.claim("late", { leaseSeconds: 30 }), undefined);
          assert.equal(await jobs.heartbeat(job.id, owner, 2), "running");
          assert.equal(await jobs.heartbeat(job.id, "intruder"), undefined);
          const ckpt = { step: 2, trainerState: bytes("{}"), trainingState: new Uint8Array([7]) };
          assert.equal(await jobs.saveCheckpoint(job.id, "intruder", ckpt), false);
          assert.equal(await jobs.checkpoint(job.id), undefined);
          assert.equal(await jobs.saveCheckpoint(job.id, owner, ckpt), true);
          assert.deepEqual(await jobs.checkpoint(job.id), ckpt);

          // the lease expires (leaseSeconds -1: already stale): another trainer takes over
          const stolen = await jobs.claim("w-next", { leaseSeconds: -1 });
          assert.equal(stolen?.id, job.id);
          assert.equal(stolen?.attempts, 2);
          assert.equal(await jobs.saveCheckpoint(job.id, owner, { ...ckpt, step: 3 }), false);
          assert.equal(
            await jobs.succeed(job.id, owner, {
              adapterName: "ft-x",
              files: { config: bytes("{}"), weights: new Uint8Array([1]) },
              result: {},
              trainedTokens: 5,
              steps: 3,
            }),
            undefined,
          );
          const record = await jobs.succeed(job.id, "w-next", {
            adapterName: "ft-x",
            files: { config: bytes("{}"), weights: new Uint8Array([1]) },
            result: { steps: 3 },
            trainedTokens: 5,
            steps: 3,
          });
          assert.equal(record?.name, "ft-x");
          assert.equal((await new DbAdapterStore(db).get("acme", "ft-x"))?.version, record?.version);
          const done = await jobs.get("acme", job.id);
          assert.equal(done?.status, "succeeded");
          assert.equal(done?.fineTunedModel, "ft-x");
          assert.equal(done?.trainedTokens, 5);
          assert.equal(await jobs.get("other", job.id), undefined);
          await assert.rejects(jobs.cancel("acme", job.id), JobStateError);
          const { events } = await jobs.events(job.id, { limit: 100 });
          assert.deepEqual(events.map((e) => e.message).reverse(), [
            `Created fine-tuning job ${job.id}`,
            "The job has successfully completed: adapter ft-x is served",
          ]);
        });

        await t.step("jobs: cancel, release, orphans, paging", async () => {
          const a = await jobs.create(newJob());
          const b = await jobs.create(newJob());
          assert.equal(await jobs.claim("other-model", { leaseSeconds: 30, models: ["llama-3"] }), undefined);
          const cancelled = await jobs.cancel("acme", a.id);
          assert.equal(cancelled?.status, "cancelled");
          assert.equal(await jobs.cancel("other", a.id), undefined);
          const claimed = await jobs.claim("w1", { leaseSeconds: 30 });
          assert.equal(claimed?.id, b.id, "a cancelled job is never claimed");
          await jobs.release(b.id, "w1", "Trainer stopped: back in the queue");
          assert.equal((await jobs.get("acme", b.id))?.status, "queued");
          await jobs.claim("w2", { leaseSeconds: 30 });
          if (db.exclusive) {
            assert.deepEqual(await jobs.releaseOrphans(), [b.id]);
            assert.equal((await jobs.claim("w3", { leaseSeconds: 3600 }))?.id, b.id);
          } else {
            await assert.rejects(jobs.releaseOrphans(), /other processes/);
          }
          // cancelled while its trainer died: the stale lock is cleared once the lease is over
          const orphan = await jobs.create(newJob());
          await jobs.claim("dead", { leaseSeconds: 3600 });
          await jobs.cancel("acme", orphan.id);
          await jobs.claim("w4", { leaseSeconds: 3600 });
          assert.equal((await jobs.get("acme", orphan.id))?.lockedBy, "dead");
          await jobs.claim("w4", { leaseSeconds: -1 });
          assert.equal((await jobs.get("acme", orphan.id))?.lockedBy, null);
          const first = await jobs.list("acme", { limit: 2 });
          assert.equal(first.jobs.length, 2);
          assert.equal(first.hasMore, true);
          const rest = await jobs.list("acme", { after: first.jobs[1].id, limit: 10 });
          assert.equal(rest.hasMore, false);
          assert.equal(first.jobs.length + rest.jobs.length, 4);
          const evs = await jobs.events(b.id, { limit: 1 });
          assert.equal(evs.hasMore, true);
          const asc = await jobs.events(b.id, { after: 0, order: "asc", limit: 10 });
          assert.deepEqual(asc.events.map((e) => e.message), [
            `Created fine-tuning job ${b.id}`,
            "Trainer stopped: back in the queue",
          ]);
        });
      } finally {
        await test.dispose();
      }
    },
  });
}

Deno.test("openDatabase names a server it cannot reach", async () => {
  await assert.rejects(
    openDatabase("postgres://nobody:secret@127.0.0.1:1/none"),
    (e: Error) => {
      assert.match(
        e.message,
        /^Cannot connect to the database postgres:\/\/nobody:\*\*\*@127\.0\.0\.1:1\/none: /,
      );
      return true;
    },
  );
});

Deno.test({
  name: "a finished job never replaces an adapter the tenant already has (pglite)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const test = await BACKENDS[0].create(t);
    if (!test) return;
    const { db } = test;
    try {
      const files = new FileStore(db);
      const jobs = new JobStore(db);
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
      const adapters = new DbAdapterStore(db);
      const uploaded = { config: bytes('{"mine": true}'), weights: new Uint8Array([42]) };
      await adapters.put("acme", "ft-dog_1", uploaded);
      await adapters.put("acme", "ft-dog_1-2", uploaded);
      await adapters.put("acme", "ft-dogx1-3", uploaded); // "_" is not a LIKE wildcard here
      const job = await jobs.create(newJob());
      const claimed = await jobs.claim("w-names", { leaseSeconds: 30 });
      assert.equal(claimed?.id, job.id);
      const record = await jobs.succeed(job.id, "w-names", {
        adapterName: "ft-dog_1",
        files: { config: bytes("{}"), weights: new Uint8Array([1]) },
        result: {},
        trainedTokens: 1,
        steps: 3,
      });
      assert.equal(record?.name, "ft-dog_1-3");
      const kept = await adapters.get("acme", "ft-dog_1");
      assert.deepEqual((await adapters.read(kept!)).weights, new Uint8Array([42]));
      assert.equal((await jobs.get("acme", job.id))?.fineTunedModel, "ft-dog_1-3");
      const { events } = await jobs.events(job.id, { limit: 1 });
      assert.equal(
        events[0].message,
        "The job has successfully completed: adapter ft-dog_1-3 is served " +
          "(an adapter named ft-dog_1 already existed and is left as it was)",
      );
      for (const name of ["ft-dog_1", "ft-dog_1-2", "ft-dog_1-3", "ft-dogx1-3"]) {
        await adapters.delete("acme", name);
      }
    } finally {
      await test.dispose();
    }
  },
});
