import assert from "node:assert/strict";
import {
  collectEntries,
  entriesOf,
  LLAMA2C_STORIES260K_DECODE,
  sideBySideTable,
} from "../../bench/_side_by_side.ts";

Deno.test("entriesOf derives training tokens/s of WeightLoRA phase 2 against LoRA from weightlora.json", () => {
  const entries = entriesOf("weightlora.json", {
    rows: [
      { model: "m", ep: "wasm", variant: "LoRA (all sites)", tokensPerSecond: 100 },
      { model: "m", ep: "wasm", variant: "WeightLoRA phase 1 (35 sites + gates)", tokensPerSecond: 90 },
      { model: "m", ep: "wasm", variant: "WeightLoRA phase 2 (K = 5)", tokensPerSecond: 250 },
      { model: "m", ep: "webgpu", variant: "LoRA (all sites)", tokensPerSecond: 10 },
    ],
  });
  assert.equal(entries.length, 1);
  assert.equal(entries[0].value / entries[0].baselineValue, 2.5);
  assert.equal(entries[0].source, "weightlora.json");
  assert.equal(entries[0].higherIsBetter, true);
});

Deno.test("entriesOf compares decode with llama2.c and prefill with decode from models.json", () => {
  const entries = entriesOf("models.json", {
    rows: [
      { model: "stories260K", ep: "wasm", batch: 1, decodeTokensPerS: 1310, prefillTokensPerS: 13100 },
      {
        model: "stories15M shape (random)",
        ep: "wasm",
        batch: 1,
        decodeTokensPerS: 50,
        prefillTokensPerS: 90,
      },
    ],
  });
  assert.deepEqual(entries.map((e) => [e.baseline, e.value / e.baselineValue]), [
    ["llama2.c run.c, 1 thread", 1310 / LLAMA2C_STORIES260K_DECODE],
    ["decode tokens/s", 10],
  ]);
});

Deno.test("entriesOf reads adapter latency and multi-tenant throughput from serve.json", () => {
  const entries = entriesOf("serve.json", {
    latency: { maxTokens: 64, baseMs: 200, adapterMs: 220 },
    throughput: [{ workers: 0, oneTenant: 100, twentyTenants: 90 }, {
      workers: 2,
      oneTenant: 100,
      twentyTenants: 160,
    }],
  });
  assert.deepEqual(entries.map((e) => e.metric), [
    "request latency with an adapter (64 tokens)",
    "tokens/s, 20 tenants round-robin (in-process)",
    "tokens/s, 20 tenants round-robin (2 runners)",
  ]);
  assert.equal(entries[0].higherIsBetter, false);
});

Deno.test("entriesOf prefers a file's own sideBySide list and skips malformed entries and layouts", () => {
  const own = { area: "x", metric: "y", value: 2, baseline: "z", baselineValue: 4, unit: "ms" };
  assert.deepEqual(entriesOf("models.json", { sideBySide: [own, { metric: "bad" }], rows: [] }), [
    { ...own, source: "models.json" },
  ]);
  assert.deepEqual(entriesOf("serve.json", { latency: "fast" }), []);
  assert.deepEqual(entriesOf("other.json", { rows: [] }), []);
  assert.deepEqual(entriesOf("models.json", [1, 2]), []);
});

Deno.test("sideBySideTable prints ratios with a verdict only where a direction is known", () => {
  const table = sideBySideTable([
    {
      area: "serving",
      metric: "latency",
      value: 110,
      baseline: "base",
      baselineValue: 100,
      unit: "ms",
      higherIsBetter: false,
    },
    {
      area: "training",
      metric: "step vs forward",
      value: 30,
      baseline: "forward",
      baselineValue: 10,
      unit: "ms",
    },
  ]);
  assert.match(table, /\| serving \| latency \| 110 ms \| base \| 100 ms \| 1\.10× \(worse\) \|/);
  assert.match(table, /\| training \| step vs forward \| 30 ms \| forward \| 10 ms \| 3\.00× \|/);
});

Deno.test("collectEntries reads a results folder and names the expected files it lacks", async () => {
  const dir = await Deno.makeTempDir({ prefix: "side_by_side_" });
  try {
    await Deno.writeTextFile(`${dir}/serve.json`, JSON.stringify({ latency: { baseMs: 1, adapterMs: 2 } }));
    await Deno.writeTextFile(`${dir}/models.json`, "{ not json");
    const { entries, missing } = collectEntries(new URL(`file://${dir}/`));
    assert.equal(entries.length, 1);
    assert.deepEqual(missing.sort(), [
      "abuse.json",
      "edge.json",
      "models.json",
      "peers.json",
      "quant.json",
      "replicas.json",
      "training.json",
      "training_peers.json",
      "weightlora.json",
    ]);
    assert.deepEqual(collectEntries(new URL(`file://${dir}/absent/`)).entries, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
