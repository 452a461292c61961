import assert from "node:assert/strict";
import {
  EngineBusyError,
  EngineClosedError,
  type JobRow,
  JobTooLargeError,
  ModelNotFoundError,
  type ModelRef,
  ServeEngine,
} from "../../src/serve/engine.ts";
import { FolderAdapterStore } from "../../src/store/folder_adapter_store.ts";
import { requireStories260k } from "../_util/fixtures.ts";
import { randomAdapterFiles, stories260kHf } from "./_fixtures.ts";

function row(maxTokens = 20): JobRow {
  return { promptIds: [1], maxTokens, seed: 0, stop: [], temperature: 0 };
}

async function tokensOf(engine: ServeEngine, model: ModelRef, maxTokens = 20): Promise<number[]> {
  const tokens: number[] = [];
  for await (const events of engine.generate({ rows: [row(maxTokens)], model })) {
    for (const e of events) {
      assert.equal(e.error, undefined);
      if (e.tokenId !== undefined) tokens.push(e.tokenId);
    }
  }
  return tokens;
}

Deno.test({
  name: "a replaced adapter: requests in flight finish on the old version, new ones get the new one",
  ignore: !requireStories260k("adapter replacement"),
  fn: async () => {
    const storeDir = await Deno.makeTempDir({ prefix: "engine_test_" });
    const store = new FolderAdapterStore(storeDir);
    const engine = await ServeEngine.create({
      model: await stories260kHf(),
      store,
      ep: "wasm",
      workers: 0,
      maxQueuedRows: 8,
    });
    try {
      const v1 = randomAdapterFiles(engine.config, { seed: 5, scale: 0.15 });
      const v2 = randomAdapterFiles(engine.config, { seed: 6, scale: 0.15 });
      await store.put("t", "a", v1);
      const old = await engine.resolveModel("t", "a");
      const base = await engine.resolveModel("t", engine.modelId);
      assert.equal(base.record, null);
      const oldAlone = await tokensOf(engine, old, 40);
      // start a long request on v1, replace the adapter while it runs
      const stream = engine.generate({ rows: [row(40)], model: old });
      const first = await stream.next();
      assert.equal(first.done, false);
      await store.put("t", "a", v2);
      engine.cache.invalidate("t", "a");
      const fresh = await engine.resolveModel("t", "a");
      assert.notEqual(fresh.record!.version, old.record!.version);
      const newTokens = await tokensOf(engine, fresh, 40);
      const inFlight = first.value!.flatMap((e) => (e.tokenId === undefined ? [] : [e.tokenId]));
      for await (const events of stream) {
        for (const e of events) if (e.tokenId !== undefined) inFlight.push(e.tokenId);
      }
      assert.deepEqual(inFlight, oldAlone, "the request in flight finished on v1");
      assert.notDeepEqual(newTokens, oldAlone, "a new request uses v2");
      // more rows than the queue ever holds is a bad request; too many waiting rows a busy server
      assert.throws(
        () => engine.generate({ rows: Array.from({ length: 9 }, () => row()), model: base }),
        JobTooLargeError,
      );
      const waiting = engine.generate({ rows: Array.from({ length: 8 }, () => row(5)), model: base });
      assert.throws(() => engine.generate({ rows: [row()], model: base }), EngineBusyError);
      for await (const _ of waiting) { /* run to the end */ }
      // aborting a request cancels its rows
      const controller = new AbortController();
      const events = [];
      for await (
        const batch of engine.generate({ rows: [row(300)], model: base, signal: controller.signal })
      ) {
        events.push(...batch);
        if (events.length === 3) controller.abort();
      }
      assert.equal(events.at(-1)!.finishReason, "cancelled");
      assert.equal(engine.activeRows, 0);
    } finally {
      await engine.close();
      await Deno.remove(storeDir, { recursive: true });
    }
    assert.throws(
      () => engine.generate({ rows: [row()], model: { tenant: "t", name: "stories260K", record: null } }),
      EngineClosedError,
    );
  },
});

// Runs after an in-process engine created wasm sessions in this process: onnxruntime then has replaced
// globalThis.Worker with a Node-style one, which the workers must not use.
Deno.test({
  name: "two inference workers serve concurrent tenants with cached adapters, each row as alone",
  ignore: !requireStories260k("engine with workers"),
  fn: async () => {
    const storeDir = await Deno.makeTempDir({ prefix: "engine_test_" });
    const store = new FolderAdapterStore(storeDir);
    const steps: { rows: number; slots: number }[] = [];
    const engine = await ServeEngine.create({
      model: await stories260kHf(),
      store,
      ep: "wasm",
      workers: 2,
      maxBatch: 4,
      cacheBytes: 60_000, // room for one of the two adapters below: every switch evicts
      onStep: (s) => steps.push(s),
    });
    try {
      assert.equal(engine.runnerCount, 2);
      assert.equal(engine.modelId, "stories260K");
      await store.put("acme", "story", randomAdapterFiles(engine.config, { seed: 1, scale: 0.15 }));
      await store.put("beta", "story", randomAdapterFiles(engine.config, { seed: 2, rank: 4, scale: 0.15 }));
      assert.equal(await engine.adapter("acme", "missing"), undefined);
      await assert.rejects(engine.resolveModel("acme", "missing"), ModelNotFoundError);
      await assert.rejects(
        engine.resolveModel("gamma", "story"),
        ModelNotFoundError,
        "tenants see only theirs",
      );
      const acme = (await engine.adapter("acme", "story"))!;
      const beta = (await engine.adapter("beta", "story"))!;
      const refs = [
        await engine.resolveModel("acme", engine.modelId),
        await engine.resolveModel("acme", "story"),
        await engine.resolveModel("beta", "story"),
      ];
      assert.notEqual(acme.adapter.key, beta.adapter.key, "tenants' adapters of the same name are distinct");
      assert.ok(beta.adapter.bytes <= 60_000 && acme.adapter.bytes + beta.adapter.bytes > 60_000);
      const alone = [
        await tokensOf(engine, refs[0]),
        await tokensOf(engine, refs[1]),
        await tokensOf(engine, refs[2]),
      ];
      assert.notDeepEqual(alone[1], alone[0]);
      assert.notDeepEqual(alone[2], alone[1]);
      // 12 concurrent requests over 2 workers × 4 rows: batched, all rows as alone
      const jobs = Array.from({ length: 12 }, async (_, i) => {
        const which = i % 3;
        return { which, tokens: await tokensOf(engine, refs[which]) };
      });
      for (const { which, tokens } of await Promise.all(jobs)) assert.deepEqual(tokens, alone[which]);
      // (whether a pass mixes adapters now depends on placement: each tenant's rows stay on their runner;
      // mixed passes are asserted in batch_runner_test.ts and, through HTTP with two workers, tenants_test.ts)
      assert.ok(steps.some((s) => s.rows > 1), "rows shared passes");
      assert.ok(steps.every((s) => s.rows <= 4));
      const stats = engine.cache.stats;
      assert.ok(stats.evictions > 0, "the small cache evicted");
      assert.ok(stats.bytes <= 60_000);
      assert.ok(stats.misses >= 3 && stats.hits > 0);
    } finally {
      await engine.close();
      await Deno.remove(storeDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "the engine's variant layout reaches its workers: the gated graph gives the separate sessions' tokens",
  ignore: !requireStories260k("engine variant layout"),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const storeDir = await Deno.makeTempDir({ prefix: "engine_layout_" });
    const store = new FolderAdapterStore(storeDir);
    const model = await stories260kHf();
    const tokens: Record<string, number[][]> = {};
    try {
      for (const variantLayout of ["separate", "gated"] as const) {
        const steps: number[] = [];
        const engine = await ServeEngine.create({
          model,
          store,
          ep: "wasm",
          workers: 1,
          variantLayout,
          onStep: (s) => steps.push(s.rows),
        });
        try {
          if (variantLayout === "separate") {
            await store.put("acme", "story", randomAdapterFiles(engine.config, { seed: 1, scale: 0.15 }));
          }
          const refs = [
            await engine.resolveModel("acme", engine.modelId),
            await engine.resolveModel("acme", "story"),
          ];
          tokens[variantLayout] = [await tokensOf(engine, refs[0]), await tokensOf(engine, refs[1])];
          assert.ok(steps.length > 0);
        } finally {
          await engine.close();
        }
      }
      assert.notDeepEqual(tokens.separate[1], tokens.separate[0], "the adapter changes the tokens");
      assert.deepEqual(tokens.gated, tokens.separate);
      await assert.rejects(
        ServeEngine.create({
          model,
          store,
          ep: "wasm",
          workers: 0,
          variantLayout: "bogus" as "gated",
        }),
        /Unknown variant layout "bogus"/,
      );
    } finally {
      await Deno.remove(storeDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "the engine counts where requests wait: resolving adapters (a miss loads) and rows before a runner",
  ignore: !requireStories260k("engine waits"),
  fn: async () => {
    const storeDir = await Deno.makeTempDir({ prefix: "engine_test_" });
    const store = new FolderAdapterStore(storeDir);
    const engine = await ServeEngine.create({ model: await stories260kHf(), store, ep: "wasm", workers: 0 });
    try {
      await store.put("t", "a", randomAdapterFiles(engine.config, { seed: 5, scale: 0.15 }));
      assert.deepEqual(engine.waits, { resolves: 0, resolveSeconds: 0, rows: 0, queueSeconds: 0 });
      const base = await engine.resolveModel("t", engine.modelId);
      assert.equal(engine.waits.resolves, 0, "the base model resolves nothing");
      const model = await engine.resolveModel("t", "a"); // a miss: loaded and prepared
      const afterMiss = engine.waits;
      assert.equal(afterMiss.resolves, 1);
      assert.ok(afterMiss.resolveSeconds > 0);
      await engine.resolveModel("t", "a");
      assert.equal(engine.waits.resolves, 2);
      for await (const _ of engine.generate({ rows: [row(3), row(3)], model })) { /* drain */ }
      await tokensOf(engine, base, 2);
      const waits = engine.waits;
      assert.equal(waits.rows, 3, "every row handed to a runner is counted once");
      assert.ok(waits.queueSeconds >= 0);
      await assert.rejects(engine.resolveModel("t", "missing"), ModelNotFoundError);
      assert.equal(engine.waits.resolves, 3, "a failed lookup is counted too");
    } finally {
      await engine.close();
      await Deno.remove(storeDir, { recursive: true });
    }
  },
});
