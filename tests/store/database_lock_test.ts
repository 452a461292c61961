import assert from "node:assert/strict";
import { openDatabase } from "../../src/store/db/mod.ts";
import { spawnDeno } from "../jobs/_process.ts";

Deno.test("a second process cannot open an embedded database folder: the error names the holder", async () => {
  const dir = await Deno.makeTempDir({ prefix: "weightlora-lock-" });
  const folder = `${dir}/db`;
  const holder = spawnDeno("tests/store/_hold_database.ts", [folder]);
  try {
    const [, pid] = await holder.waitFor(/^holding .* as (\d+)$/);
    const started = performance.now();
    await assert.rejects(
      openDatabase(folder),
      new RegExp(
        `Cannot open the embedded database in ${folder}: it is in use by process ${pid} ` +
          `\\(tests/store/_hold_database\\.ts ${folder}, since \\d{4}-\\d\\d-\\d\\dT[^)]*\\)\\. ` +
          "An embedded database belongs to one process",
      ),
    );
    assert.ok(performance.now() - started < 2000, "the refusal does not wait for the holder");
    // kill -9: the OS drops the lock with the process, and the next opener takes over
    await holder.stop("SIGKILL");
    const db = await openDatabase(folder);
    try {
      assert.deepEqual(await db.query("select 1 as one"), [{ one: 1 }]);
      const record = JSON.parse(await Deno.readTextFile(`${folder}/weightlora.lock`));
      assert.equal(record.pid, Deno.pid);
    } finally {
      await db.close();
    }
  } finally {
    await holder.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the same process cannot open one embedded database twice; close releases the folder", async () => {
  const dir = await Deno.makeTempDir({ prefix: "weightlora-lock-" });
  try {
    const first = await openDatabase(`${dir}/db`);
    await assert.rejects(
      openDatabase(`${dir}/db/`),
      new RegExp(`it is in use by this process: process ${Deno.pid} \\(.*\\), opened a second time`),
    );
    await first.close();
    const second = await openDatabase(`${dir}/db`);
    await second.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
