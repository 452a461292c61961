import assert from "node:assert/strict";
import { AdapterCache, adapterKey } from "../../src/serve/adapter_cache.ts";
import type { PreparedAdapter } from "../../src/serve/prepared_adapter.ts";
import type { AdapterRecord } from "../../src/store/adapter_store.ts";

function record(name: string, version = "v1"): AdapterRecord {
  return { tenant: "t", name, version, createdAt: 0, bytes: 0, sha256: "" };
}

function fakeLoader(sizes: Record<string, number>) {
  const loads: string[] = [];
  const load = async (r: AdapterRecord): Promise<PreparedAdapter> => {
    loads.push(adapterKey(r));
    await new Promise((resolve) => setTimeout(resolve, 1));
    if (sizes[r.name] === undefined) throw new Error(`Cannot load adapter "${r.name}": not in the store`);
    return { key: adapterKey(r), sites: [], bytes: sizes[r.name] };
  };
  return { loads, load };
}

Deno.test("keeps prepared adapters within the byte budget, least recently used out first", async () => {
  const { loads, load } = fakeLoader({ a: 40, b: 40, c: 40, huge: 200 });
  const evicted: string[] = [];
  const cache = new AdapterCache({ maxBytes: 100, load, onEvict: (k) => evicted.push(k) });
  await cache.get(record("a"));
  await cache.get(record("b"));
  await cache.get(record("a")); // a is now the most recent
  assert.deepEqual(cache.stats, {
    hits: 1,
    misses: 2,
    evictions: 0,
    bytes: 80,
    entries: 2,
    loadSeconds: cache.stats.loadSeconds,
  });
  await cache.get(record("c")); // 120 > 100: b goes
  assert.deepEqual(evicted, ["t/b@v1"]);
  assert.equal(cache.has(record("a")), true);
  assert.equal(cache.has(record("b")), false);
  assert.equal(cache.stats.bytes, 80);
  assert.equal(cache.stats.evictions, 1);
  await cache.get(record("b")); // a miss again: loaded from the store
  assert.deepEqual(loads, ["t/a@v1", "t/b@v1", "t/c@v1", "t/b@v1"]);
  // an adapter larger than the whole budget is served but not kept
  const huge = await cache.get(record("huge"));
  assert.equal(huge.bytes, 200);
  assert.equal(cache.has(record("huge")), false);
  assert.ok(cache.stats.bytes <= 100);
  assert.ok(cache.stats.loadSeconds > 0);
});

Deno.test("concurrent misses of one version share one load; failures are not cached", async () => {
  const { loads, load } = fakeLoader({ a: 10 });
  const cache = new AdapterCache({ maxBytes: 100, load });
  const [x, y, z] = await Promise.all([
    cache.get(record("a")),
    cache.get(record("a")),
    cache.get(record("a")),
  ]);
  assert.equal(x, y);
  assert.equal(y, z);
  assert.deepEqual(loads, ["t/a@v1"]);
  assert.equal(cache.stats.misses, 1);
  assert.equal(cache.stats.hits, 2);
  await assert.rejects(cache.get(record("missing")), /not in the store/);
  await assert.rejects(cache.get(record("missing")), /not in the store/);
  assert.equal(loads.filter((k) => k === "t/missing@v1").length, 2);
  assert.equal(cache.has(record("missing")), false);
});

Deno.test("versions are separate entries; invalidate drops every version of a name", async () => {
  const { load } = fakeLoader({ a: 10, b: 10 });
  const evicted: string[] = [];
  const cache = new AdapterCache({ maxBytes: 100, load, onEvict: (k) => evicted.push(k) });
  const v1 = await cache.get(record("a", "v1"));
  const v2 = await cache.get(record("a", "v2"));
  await cache.get(record("b"));
  assert.notEqual(v1, v2);
  assert.equal(cache.stats.entries, 3);
  cache.invalidate("t", "a");
  assert.deepEqual(evicted, ["t/a@v1", "t/a@v2"]);
  assert.equal(cache.stats.entries, 1);
  assert.equal(cache.stats.bytes, 10);
  assert.equal(cache.stats.evictions, 0, "invalidation is not an eviction");
  assert.throws(() => new AdapterCache({ maxBytes: -1, load }), /Invalid adapter cache size -1/);
});
