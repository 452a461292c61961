// Adapter uploads in database mode: the weights stream to a blob beside the embedded database (the row
// holds their digest), round-trip byte for byte, survive a restart, and an interrupted or oversize upload
// leaves nothing behind.

import assert from "node:assert/strict";
import { createApp } from "../../src/http/app.ts";
import { KeyTable } from "../../src/http/auth.ts";
import { ServeEngine } from "../../src/serve/engine.ts";
import { DbAdapterStore, migrate, openDatabase } from "../../src/store/db/mod.ts";
import { freshPgliteFolder } from "../jobs/_db.ts";
import { readTar } from "../_util/tar.ts";
import { randomAdapterFiles } from "../serve/_fixtures.ts";
import { stories260k } from "../train/_stories.ts";
import { adapterForm } from "./_server.ts";

const ACME = { authorization: "Bearer sk-acme-0123456789" };

async function blobFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) {
        for await (const f of Deno.readDir(`${dir}/${e.name}`)) out.push(`${e.name}/${f.name}`);
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

Deno.test({
  name: "database mode: adapter weights stream to a blob; round trip, replace, restart, nothing half-written",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const model = await stories260k(t);
    if (!model) return;
    const folder = await freshPgliteFolder();
    const blobDir = `${folder.location}.blobs`;
    let db = await openDatabase(folder.location);
    await migrate(db);
    const keys = await KeyTable.fromJson(
      { tenants: { acme: { keys: ["sk-acme-0123456789"] } } },
      "keys.json",
    );
    const engine = await ServeEngine.create({ model, store: new DbAdapterStore(db), ep: "wasm", workers: 0 });
    const files = randomAdapterFiles(engine.config, {
      seed: 3,
      rank: 64,
      scale: 0.02,
      modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    });
    assert.ok(files.weights.byteLength > 1_000_000, `${files.weights.byteLength} bytes`);
    try {
      const { app } = createApp({ engine, keys, limits: { maxAdapterBytes: 2 << 20 } });
      const post = (body: BodyInit, headers: Record<string, string> = {}) =>
        app.request("/v1/adapters", { method: "POST", body, headers: { ...ACME, ...headers } });

      const created = await post(adapterForm("big", files));
      assert.equal(created.status, 201, await created.clone().text());
      const record = await created.json();
      assert.ok(engine.validator.inWorker, "validated in a worker");
      const [row] = await db.query<{ n: number; blob: string | null }>(
        "select octet_length(weights) as n, weights_blob as blob from weightlora_adapters where name = 'big'",
      );
      assert.equal(Number(row.n), 0, "the row holds no weights");
      assert.equal(row.blob, record.sha256);
      assert.deepEqual(await blobFiles(blobDir), [`${record.sha256.slice(0, 2)}/${record.sha256}`]);
      const tar = readTar(
        new Uint8Array(
          await (await app.request("/v1/adapters/big/content", { headers: ACME })).arrayBuffer(),
        ),
      );
      assert.deepEqual(tar.get("adapter_model.safetensors"), files.weights, "byte for byte");
      assert.deepEqual(tar.get("adapter_config.json"), files.config);
      const completion = await app.request("/v1/completions", {
        method: "POST",
        headers: { ...ACME, "content-type": "application/json" },
        body: JSON.stringify({ model: "big", prompt: "Once", max_tokens: 4, temperature: 0 }),
      });
      assert.equal(completion.status, 200);

      await t.step("an interrupted upload leaves no blob, no staging file, no row change", async () => {
        const { bytes, type } = await (async () => {
          const req = new Request("http://x/", { method: "POST", body: adapterForm("big", files) });
          return { bytes: new Uint8Array(await req.arrayBuffer()), type: req.headers.get("content-type")! };
        })();
        let sent = 0;
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (sent > bytes.length / 2) return controller.error(new Error("client went away"));
            controller.enqueue(bytes.slice(sent, sent + 65_536));
            sent += 65_536;
          },
        });
        const res = await post(body, { "content-type": type });
        // 400 from the route's reader (500 while the body limit buffers chunked bodies itself)
        assert.ok(res.status >= 400, `status ${res.status}`);
        await res.body?.cancel();
        assert.deepEqual(await blobFiles(blobDir), [`${record.sha256.slice(0, 2)}/${record.sha256}`]);
        const [after] = await db.query<{ version: string }>("select version from weightlora_adapters");
        assert.equal(after.version, record.version);
      });

      await t.step("an oversize chunked upload is a 413 and leaves nothing", async () => {
        const big = randomAdapterFiles(engine.config, {
          seed: 4,
          rank: 128,
          modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        });
        assert.ok(big.weights.byteLength > 2 << 20);
        const req = new Request("http://x/", { method: "POST", body: adapterForm("huge", big) });
        const type = req.headers.get("content-type")!;
        const res = await post(req.body!, { "content-type": type });
        assert.equal(res.status, 413, await res.clone().text());
        assert.equal((await res.json()).error.code, "request_too_large");
        assert.deepEqual(await blobFiles(blobDir), [`${record.sha256.slice(0, 2)}/${record.sha256}`]);
      });

      await t.step("replacing frees the old blob; a restart keeps the acknowledged one", async () => {
        const v2 = randomAdapterFiles(engine.config, { seed: 5, rank: 8, scale: 0.02 });
        const replaced = await post(adapterForm("big", v2));
        assert.equal(replaced.status, 200);
        const sha2 = (await replaced.json()).sha256;
        assert.deepEqual(await blobFiles(blobDir), [`${sha2.slice(0, 2)}/${sha2}`]);
        // a kill mid-upload leaves a staging file: the next open sweeps it
        await Deno.writeFile(`${blobDir}/.staging/leftover`, new Uint8Array(10));
        await db.close();
        db = await openDatabase(folder.location);
        await migrate(db);
        assert.deepEqual(await blobFiles(blobDir), [`${sha2.slice(0, 2)}/${sha2}`]);
        const store = new DbAdapterStore(db);
        const rec = await store.get("acme", "big");
        assert.deepEqual((await store.read(rec!)).weights, v2.weights);
        assert.equal(await store.delete("acme", "big"), true);
        assert.deepEqual(await blobFiles(blobDir), []);
      });
    } finally {
      await engine.close();
      await db.close();
      await folder.remove();
      await Deno.remove(blobDir, { recursive: true }).catch(() => {});
    }
  },
});
