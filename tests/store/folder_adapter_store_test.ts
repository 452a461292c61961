import assert from "node:assert/strict";
import {
  AdapterVersionGoneError,
  newAdapterVersion,
  ReadOnlyStoreError,
  validateStoreName,
} from "../../src/store/adapter_store.ts";
import { FolderAdapterStore } from "../../src/store/folder_adapter_store.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const files = (tag: string) => ({ config: enc(`{"tag":"${tag}"}`), weights: enc(`weights of ${tag}`) });
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

async function withStore(fn: (store: FolderAdapterStore, root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "folder_store_test_" });
  try {
    await fn(new FolderAdapterStore(root), root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("stores, lists, reads and deletes adapters per tenant", async () => {
  await withStore(async (store, root) => {
    assert.deepEqual(await store.list("acme"), []);
    assert.equal(await store.get("acme", "story"), undefined);
    const { record, replaced } = await store.put("acme", "story", files("v1"));
    assert.equal(replaced, false);
    assert.equal(record.tenant, "acme");
    assert.equal(record.bytes, files("v1").config.length + files("v1").weights.length);
    assert.match(record.sha256, /^[0-9a-f]{64}$/);
    await store.put("acme", "poem", files("p"));
    await store.put("other", "story", files("o"));
    assert.deepEqual((await store.list("acme")).map((r) => r.name), ["poem", "story"]);
    assert.deepEqual((await store.list("other")).map((r) => r.name), ["story"]);
    assert.deepEqual(await store.get("acme", "story"), record);
    const read = await store.read(record);
    assert.equal(dec(read.config), '{"tag":"v1"}');
    assert.equal(dec(read.weights), "weights of v1");
    // PEFT layout on disk: a folder per tenant and adapter, the files under the version
    const onDisk = await Deno.readTextFile(`${root}/acme/story/${record.version}/adapter_config.json`);
    assert.equal(onDisk, '{"tag":"v1"}');
    assert.equal(await store.delete("acme", "story"), true);
    assert.equal(await store.delete("acme", "story"), false);
    assert.equal(await store.get("acme", "story"), undefined);
    assert.deepEqual((await store.list("acme")).map((r) => r.name), ["poem"]);
    assert.equal((await store.get("other", "story"))?.name, "story");
  });
});

Deno.test("replacing makes a new version; the old one is gone for readers that resolved it before", async () => {
  await withStore(async (store) => {
    const first = (await store.put("t", "a", files("one"))).record;
    const second = await store.put("t", "a", files("two"));
    assert.equal(second.replaced, true);
    assert.ok(second.record.version > first.version, "versions sort by time");
    assert.equal((await store.get("t", "a"))?.version, second.record.version);
    assert.equal(dec((await store.read(second.record)).config), '{"tag":"two"}');
    await assert.rejects(store.read(first), AdapterVersionGoneError);
    await assert.rejects(store.read(first), /version .* no longer exists/);
  });
});

Deno.test("concurrent writes of one adapter leave exactly one complete current version", async () => {
  await withStore(async (store, root) => {
    await Promise.all(Array.from({ length: 8 }, (_, i) => store.put("t", "a", files(`w${i}`))));
    const current = await store.get("t", "a");
    assert.ok(current);
    const read = await store.read(current);
    assert.match(dec(read.config), /^\{"tag":"w\d"\}$/);
    const versions: string[] = [];
    for await (const e of Deno.readDir(`${root}/t/a`)) if (e.isDirectory) versions.push(e.name);
    assert.deepEqual(versions, [current.version], "older versions and temporary folders are removed");
  });
});

Deno.test("a read-only store refuses writes and needs no folder", async () => {
  const root = await Deno.makeTempDir({ prefix: "folder_store_ro_" });
  try {
    await new FolderAdapterStore(root).put("t", "a", files("x"));
    const ro = new FolderAdapterStore(root, { readOnly: true });
    assert.equal(ro.readOnly, true);
    assert.equal((await ro.get("t", "a"))?.name, "a");
    await assert.rejects(() => ro.put("t", "b", files("y")), ReadOnlyStoreError);
    await assert.rejects(() => ro.delete("t", "a"), /read-only/);
    assert.deepEqual(await new FolderAdapterStore(`${root}/missing`, { readOnly: true }).list("t"), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("names are checked so that no path escapes the store", async () => {
  await withStore(async (store, root) => {
    for (const bad of ["..", ".hidden", "a/b", "", "x".repeat(65), "a b", "ü"]) {
      assert.throws(() => validateStoreName("adapter name", bad), RangeError, bad);
      await assert.rejects(() => store.put("t", bad, files("x")), /Invalid adapter name/);
      await assert.rejects(() => store.get(bad, "a"), /Invalid tenant/);
    }
    // junk in a tenant folder is not listed
    await Deno.mkdir(`${root}/t/not-an-adapter`, { recursive: true });
    await Deno.mkdir(`${root}/t/.tmp-x`, { recursive: true });
    await store.put("t", "real", files("r"));
    assert.deepEqual((await store.list("t")).map((r) => r.name), ["real"]);
  });
});

Deno.test("version ids increase strictly within a process", () => {
  const ids = Array.from({ length: 50 }, () => newAdapterVersion());
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], `${ids[i]} > ${ids[i - 1]}`);
});

Deno.test("sweepTemporary removes versions half-written before a kill, not fresh ones or adapters", async () => {
  await withStore(async (store, root) => {
    await store.put("acme", "story", files("v1"));
    const dir = `${root}/acme/story`;
    const old = new Date(Date.now() - 3600_000);
    await Deno.mkdir(`${dir}/.tmp-0001`);
    await Deno.writeTextFile(`${dir}/.tmp-0001/adapter_model.safetensors`, "partial");
    await Deno.utime(`${dir}/.tmp-0001`, old, old);
    await Deno.writeTextFile(`${dir}/.CURRENT.tmp-0001`, "0001\n");
    await Deno.utime(`${dir}/.CURRENT.tmp-0001`, old, old);
    await Deno.mkdir(`${dir}/.tmp-0002`); // a write in progress elsewhere: young
    const removed = await store.sweepTemporary();
    assert.deepEqual(removed.sort(), [`${dir}/.CURRENT.tmp-0001`, `${dir}/.tmp-0001`]);
    const left = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).filter((n) =>
      n.startsWith(".")
    );
    assert.deepEqual(left, [".tmp-0002"]);
    const record = await store.get("acme", "story");
    assert.equal(dec((await store.read(record!)).weights), "weights of v1");
    await assert.rejects(
      new FolderAdapterStore(root, { readOnly: true }).sweepTemporary(),
      ReadOnlyStoreError,
    );
  });
});
