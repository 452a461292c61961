import assert from "node:assert/strict";
import { FairQueue } from "../../src/serve/fair_queue.ts";
import { type JobRow, ServeEngine, TenantRowQuotaError } from "../../src/serve/engine.ts";
import type { StepInfo } from "../../src/serve/runner_types.ts";
import { FolderAdapterStore } from "../../src/store/folder_adapter_store.ts";
import { requireStories260k } from "../_util/fixtures.ts";
import { stories260kHf } from "./_fixtures.ts";

Deno.test("fair queue: the tenant given the least work goes next, by cost not by arrival", () => {
  const q = new FairQueue<{ t: string; cost: number; i: number }>((x) => x.cost);
  for (let i = 0; i < 6; i++) q.push("greedy", { t: "greedy", cost: 256, i });
  q.push("polite", { t: "polite", cost: 2, i: 0 });
  q.push("polite", { t: "polite", cost: 2, i: 1 });
  const order = [];
  for (let x = q.take(); x; x = q.take()) order.push(`${x.t}${x.i}`);
  // greedy arrived first and goes first; then polite's cheap items pass its expensive ones
  assert.deepEqual(order, [
    "greedy0",
    "polite0",
    "polite1",
    "greedy1",
    "greedy2",
    "greedy3",
    "greedy4",
    "greedy5",
  ]);
  assert.equal(q.size, 0);
});

Deno.test("fair queue: idleness earns no credit, ineligible tenants and unready items are skipped", () => {
  const q = new FairQueue<string>(() => 10);
  q.push("a", "a0");
  assert.equal(q.take(), "a0");
  q.push("a", "a1");
  assert.equal(q.take(), "a1"); // a's clock is 20 now
  q.push("b", "b0"); // b joins at the lowest waiting clock (none waiting: its own 0)
  q.push("a", "a2");
  assert.equal(q.take(), "b0");
  // a returns after idling: it starts at the floor of those waiting, not with banked credit
  q.push("c", "c0");
  q.push("c", "c1");
  assert.equal(q.take({ eligible: (t) => t !== "a" && t !== "c" }), undefined);
  assert.equal(q.take({ eligible: (t) => t === "c", ready: (x) => x !== "c0" }), "c1");
  // c joined at a's clock (20), not at 0: after one item (30) it is behind a (20)
  assert.equal(q.take({ ready: (x) => x !== "c0" }), "a2");
  assert.deepEqual(q.remove((x) => x.startsWith("c")), ["c0"]);
  assert.equal(q.sizeOf("a"), 0);
  assert.equal(q.size, 0);
});

function row(maxTokens: number): JobRow {
  return { promptIds: [1], maxTokens, seed: 0, stop: [], temperature: 0 };
}

Deno.test({
  name: "engine: one tenant's long streams cannot make another's short request wait; row quota refuses",
  ignore: !requireStories260k("engine fairness"),
  fn: async () => {
    const storeDir = await Deno.makeTempDir({ prefix: "fair_engine_" });
    const engine = await ServeEngine.create({
      model: await stories260kHf(),
      store: new FolderAdapterStore(storeDir),
      ep: "wasm",
      workers: 0,
      maxBatch: 4,
      tenantRowQuota: (tenant) => (tenant === "capped" ? 2 : undefined),
    });
    try {
      const greedy = await engine.resolveModel("greedy", engine.modelId);
      const polite = await engine.resolveModel("polite", engine.modelId);
      let greedyFinished = 0;
      let greedyStarted = 0;
      const streams = Array.from({ length: 8 }, async () => {
        let started = false;
        for await (const events of engine.generate({ rows: [row(200)], model: greedy })) {
          if (!started && events.some((e) => e.tokenId !== undefined)) {
            started = true;
            greedyStarted++;
          }
          if (events.some((e) => e.finishReason)) greedyFinished++;
        }
      });
      await new Promise((r) => setTimeout(r, 0));
      let politeTokens = 0;
      for await (const events of engine.generate({ rows: [row(2)], model: polite })) {
        politeTokens += events.filter((e) => e.tokenId !== undefined).length;
      }
      const atPoliteEnd = { greedyFinished, greedyStarted };
      await Promise.all(streams);
      assert.equal(politeTokens, 2);
      assert.equal(atPoliteEnd.greedyFinished, 0, "the short request ran beside the long ones");
      assert.ok(atPoliteEnd.greedyStarted <= 3, `greedy held ${atPoliteEnd.greedyStarted} of 4 seats`);
      assert.equal(greedyFinished, 8);
      // a tenant's quota of concurrent rows
      const capped = await engine.resolveModel("capped", engine.modelId);
      assert.throws(
        () => engine.generate({ rows: [row(2), row(2), row(2)], model: capped }),
        (e) =>
          e instanceof TenantRowQuotaError &&
          /Quota concurrent_rows exceeded .* the quota is 2/.test(e.message),
      );
      const ok = engine.generate({ rows: [row(2), row(2)], model: capped });
      assert.throws(() => engine.generate({ rows: [row(2)], model: capped }), TenantRowQuotaError);
      for await (const _ of ok) { /* drain */ }
      for await (const _ of engine.generate({ rows: [row(2)], model: capped })) { /* quota freed */ }
      assert.equal(engine.activeRows, 0);
    } finally {
      await engine.close();
      await Deno.remove(storeDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "engine: a busy tenant's rows stay on one runner, so another tenant's request runs in a batch of its own",
  ignore: !requireStories260k("engine placement"),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const storeDir = await Deno.makeTempDir({ prefix: "fair_place_" });
    const steps: StepInfo[] = [];
    const engine = await ServeEngine.create({
      model: await stories260kHf(),
      store: new FolderAdapterStore(storeDir),
      ep: "wasm",
      workers: 2,
      maxBatch: 4,
      onStep: (info) => steps.push(info),
    });
    try {
      const greedy = await engine.resolveModel("greedy", engine.modelId);
      const polite = await engine.resolveModel("polite", engine.modelId);
      let greedyFinished = 0;
      const streams = Array.from({ length: 8 }, async () => {
        for await (const events of engine.generate({ rows: [row(100)], model: greedy })) {
          if (events.some((e) => e.finishReason)) greedyFinished++;
        }
      });
      await new Promise((r) => setTimeout(r, 0));
      const before = steps.length;
      for await (const _ of engine.generate({ rows: [row(4)], model: polite })) { /* drain */ }
      const duringPolite = steps.slice(before);
      const greedyFinishedAtPoliteEnd = greedyFinished;
      await Promise.all(streams);
      assert.equal(greedyFinishedAtPoliteEnd, 0, "the short request ran beside the long ones");
      // the greedy tenant may hold one runner of two (4 rows): the polite row's passes ran alone
      assert.ok(Math.max(...steps.map((s) => s.rows)) <= 4);
      assert.ok(
        duringPolite.filter((s) => s.kind === "decode" && s.rows === 1).length >= 3,
        `passes meanwhile: ${duringPolite.map((s) => `${s.kind[0]}${s.rows}`).join(" ")}`,
      );
      assert.equal(greedyFinished, 8);
      assert.equal(engine.activeRows, 0);
    } finally {
      await engine.close();
      await Deno.remove(storeDir, { recursive: true });
    }
  },
});
