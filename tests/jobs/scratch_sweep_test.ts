// A job runner removes at start the scratch folders of runners that were killed (their lock is free),
// and leaves a live runner's alone.

import assert from "node:assert/strict";
import { JobRunner, SCRATCH_PREFIX } from "../../src/jobs/job_runner.ts";
import { lockFolder } from "../../src/store/folder_lock.ts";
import { FileStore, JobStore, migrate, openDatabase } from "../../src/store/db/mod.ts";

async function scratch(parent: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: SCRATCH_PREFIX, dir: parent });
  await Deno.mkdir(`${dir}/job-1-abc`);
  await Deno.writeTextFile(`${dir}/job-1-abc/adapter_model.safetensors`, "partial output");
  return dir;
}

async function age(dir: string): Promise<void> {
  const old = new Date(Date.now() - 3600_000);
  await Deno.utime(`${dir}/weightlora.lock`, old, old);
}

Deno.test({
  name: "job runner start removes killed runners' scratch folders, keeps live ones",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // a folder of its own: runners started by tests running in parallel sweep the system's temp folder
    const parent = await Deno.makeTempDir({ prefix: "scratch_sweep_parent_" });
    // a killed runner: its lock file exists, nobody holds it
    const dead = await scratch(parent);
    (await lockFolder(dead, { what: "scratch folder" })).release();
    await age(dead);
    // a live runner (here: a lock held by this process)
    const live = await scratch(parent);
    const liveLock = await lockFolder(live, { what: "scratch folder" });
    await age(live);
    const root = await Deno.makeTempDir({ prefix: "scratch_sweep_" });
    const db = await openDatabase(`${root}/db`);
    const logs: string[] = [];
    try {
      await migrate(db);
      const runner = new JobRunner({
        jobs: new JobStore(db),
        files: new FileStore(db),
        models: new Map(),
        ep: "wasm",
        scratchParent: parent,
        log: (m) => logs.push(m),
      });
      await runner.start();
      await runner.stop();
      await assert.rejects(Deno.stat(dead), Deno.errors.NotFound);
      assert.ok((await Deno.stat(`${live}/job-1-abc`)).isDirectory, "a live runner's folder stays");
      assert.ok(
        logs.some((l) => /removed \d+ scratch folder\(s\) of killed trainers/.test(l)),
        logs.join("\n"),
      );
    } finally {
      liveLock.release();
      await db.close();
      await Deno.remove(parent, { recursive: true }).catch(() => {});
      await Deno.remove(root, { recursive: true });
    }
  },
});
