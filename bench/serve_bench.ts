/**
 * Serving benchmark on stories260K (converted into a temporary folder), figures for the note:
 *
 * - latency of one greedy request with an adapter vs the base model alone (same prompt, alternating);
 * - generated tokens/s under concurrent load: 1 tenant vs 20 tenants round-robin (one adapter each);
 * - cold adapter load (store read + validation + preparation) vs a cache hit;
 * - bytes per cached adapter (prepared tensors) for a few shapes;
 * - requests/s over loopback HTTP from a second process (closed loop), one core (in-process) vs both
 *   (two inference workers).
 *
 * These machines are shared and vary up to 2× from minute to minute: compare only figures of one run.
 * Prints Markdown tables and writes `bench/results/serve.json`.
 *
 * Usage: `deno run -A bench/serve_bench.ts [--rounds=N] [--seconds=S]` (default 5 rounds, 8 s loads).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { startServer } from "../src/http/server.ts";
import { loadModelFolder, type ModelFolder } from "../src/io/model_folder.ts";
import { LlamaGenerator } from "../src/models/generate.ts";
import { LLAMA_MODULES, type LlamaModule } from "../src/models/sites.ts";
import { BatchRunner } from "../src/serve/batch_runner.ts";
import { type JobRow, type ModelRef, ServeEngine } from "../src/serve/engine.ts";
import { parseAdapterFiles, prepareAdapter } from "../src/serve/prepared_adapter.ts";
import { FolderAdapterStore } from "../src/store/folder_adapter_store.ts";
import { randomAdapterFiles, stories260kHf } from "../tests/serve/_fixtures.ts";
import { figure, markdownTable } from "./_table.ts";

const LOAD_CHILD = "--load-child";

function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function row(maxTokens: number): JobRow {
  return { promptIds: [1, 403, 407, 261, 378], maxTokens, seed: 0, stop: [], temperature: 0, eosIds: [] };
}

async function generate(engine: ServeEngine, model: ModelRef, maxTokens: number): Promise<number> {
  let tokens = 0;
  for await (const events of engine.generate({ rows: [row(maxTokens)], model })) {
    for (const e of events) if (e.tokenId !== undefined) tokens++;
  }
  return tokens;
}

/**
 * Latency of single requests through the engine — base model, a K = 5 rank-8 adapter (one module per layer,
 * as WeightLoRA keeps), a rank-8 LoRA at all 35 sites — and through the plain generator, alternating.
 */
async function benchLatency(
  engine: ServeEngine,
  models: { base: ModelRef; k5: ModelRef; all: ModelRef },
  rounds: number,
  model: ModelFolder,
) {
  const maxTokens = 64;
  const cases = [models.base, models.k5, models.all];
  // warm-up: V8 tiers the wasm kernels up only after many runs; every variant gets built
  for (let i = 0; i < 12; i++) await generate(engine, cases[i % 3], maxTokens);
  const plain = await LlamaGenerator.create(model, { ep: "wasm" });
  const prompt = row(maxTokens).promptIds;
  const runPlain = () => plain.generate([prompt], { maxTokens, temperature: 0, eosTokenIds: [] });
  for (let i = 0; i < 5; i++) await runPlain();
  const samples: number[][] = [[], [], [], []];
  for (let r = 0; r < rounds * 2; r++) {
    for (const [i, ref] of cases.entries()) {
      const t0 = performance.now();
      await generate(engine, ref, maxTokens);
      samples[i].push(performance.now() - t0);
    }
    const t0 = performance.now();
    await runPlain();
    samples[3].push(performance.now() - t0);
  }
  await plain.release();
  const [baseMs, k5Ms, allSitesMs, plainGraphMs] = samples.map(median);
  return { maxTokens, baseMs, k5Ms, allSitesMs, plainGraphMs };
}

/**
 * Graph variants: build time and process memory as 1, 8 and 64 variants (distinct site sets of 5) exist
 * in one runner.
 */
async function benchVariants(model: ModelFolder) {
  const sites = [...LLAMA_MODULES].flatMap((m) =>
    Array.from({ length: model.config.numHiddenLayers }, (_, l) => ({ layer: l, module: m }))
  );
  const usedSets = new Set<string>();
  const adapters = Array.from({ length: 64 }, (_, i) => {
    // five sites per adapter, a different set each time (seeded draws; sets already used are drawn again)
    let state = i * 2654435761 + 1;
    const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) % sites.length;
    let chosen = new Set<string>();
    do {
      chosen = new Set<string>();
      while (chosen.size < 5) {
        const s = sites[next()];
        chosen.add(`${s.layer}:${s.module}`);
      }
    } while (usedSets.has([...chosen].sort().join(",")));
    usedSets.add([...chosen].sort().join(","));
    const modules = [...new Set([...chosen].map((c) => c.split(":")[1] as LlamaModule))];
    const files = randomAdapterFiles(model.config, { seed: i + 1, rank: 8, modules, scale: 0.1 });
    const peft = parseAdapterFiles(files, { model: model.config, source: `v${i}` });
    for (const name of [...peft.sites.keys()]) {
      const layer = Number(name.split(".")[2]);
      const module = name.split(".").at(-1)!;
      if (!chosen.has(`${layer}:${module}`)) peft.sites.delete(name);
    }
    return prepareAdapter(peft, { key: `v${i}` });
  });
  let waiting: { id: number; resolve: () => void } | undefined;
  const runner = await BatchRunner.create({
    model,
    tokenizer: model.tokenizer,
    ep: "wasm",
    maxVariants: 64,
    onEvents: (events) => {
      if (waiting && events.some((e) => e.id === waiting!.id && e.finishReason)) waiting.resolve();
    },
  });
  const rows: { variants: number; buildMsMedian: number; rssMiB: number; rssPerVariantMiB: number }[] = [];
  const rss0 = Deno.memoryUsage().rss;
  let id = 1;
  for (const target of [1, 8, 64]) {
    for (let i = runner.variants.length - 1; i < target; i++) {
      const rowId = id++;
      await new Promise<void>((resolve) => {
        waiting = { id: rowId, resolve };
        runner.submit([{ ...row(1), id: rowId }], adapters[i]);
      });
    }
    const built = runner.variants.filter((v) => !v.key.startsWith("none"));
    const rss = Deno.memoryUsage().rss;
    rows.push({
      variants: built.length,
      buildMsMedian: median(built.map((v) => v.buildMs)),
      rssMiB: rss / 2 ** 20,
      rssPerVariantMiB: (rss - rss0) / 2 ** 20 / built.length,
    });
  }
  await runner.close();
  return rows;
}

/** Tokens/s with `concurrency` requests in flight, adapters chosen round-robin from `adapters`. */
async function benchThroughput(
  engine: ServeEngine,
  adapters: ModelRef[],
  concurrency: number,
  requests: number,
) {
  const maxTokens = 32;
  let next = 0;
  let tokens = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < requests) {
      const i = next++;
      const n = await generate(engine, adapters[i % adapters.length], maxTokens); // (not `tokens += await …`)
      tokens += n;
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  return { tokens, seconds, tokensPerSecond: tokens / seconds };
}

/** The load generator, run in a second process: a closed loop of `concurrency` clients. */
async function loadChild(url: string, concurrency: number, seconds: number, models: string[]): Promise<void> {
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  let i = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const model = models[i++ % models.length];
      const t0 = performance.now();
      const res = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model, prompt: "Once upon a time", max_tokens: 16, temperature: 0 }),
      });
      await res.arrayBuffer();
      if (res.status === 200) latencies.push(performance.now() - t0);
      else errors++;
    }
  }));
  console.log(JSON.stringify({ requests: latencies.length, errors, seconds, latencies }));
}

async function benchHttp(
  model: string,
  storeDir: string,
  workers: number,
  seconds: number,
  models: string[],
) {
  const server = await startServer({
    model,
    store: new FolderAdapterStore(storeDir, { readOnly: true }),
    ep: "wasm",
    workers,
    port: 0,
    limits: { maxConcurrentPerTenant: 64 },
  });
  try {
    const load = async (duration: number) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL(import.meta.url).pathname,
          LOAD_CHILD,
          server.url,
          "16",
          String(duration),
          models.join(","),
        ],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      if (!out.success) throw new Error("The load generator failed");
      return JSON.parse(new TextDecoder().decode(out.stdout)) as {
        requests: number;
        errors: number;
        seconds: number;
        latencies: number[];
      };
    };
    await load(2); // warm-up (wasm tier-up)
    const result = await load(seconds);
    return {
      workers,
      requestsPerSecond: result.requests / result.seconds,
      errors: result.errors,
      p50Ms: percentile(result.latencies, 0.5),
      p95Ms: percentile(result.latencies, 0.95),
    };
  } finally {
    await server.shutdown(5_000);
  }
}

async function main(): Promise<void> {
  const lines: string[] = [];
  const out = (text: string) => {
    console.log(text);
    lines.push(text);
  };
  const { values } = parseArgs({
    args: Deno.args,
    options: { rounds: { type: "string", default: "5" }, seconds: { type: "string", default: "8" } },
  });
  const rounds = Number(values.rounds);
  const seconds = Number(values.seconds);
  const model = await stories260kHf();
  const storeDir = await Deno.makeTempDir({ prefix: "serve_bench_store_" });
  try {
    const store = new FolderAdapterStore(storeDir);
    const environment = {
      deno: Deno.version.deno,
      cores: navigator.hardwareConcurrency,
      date: new Date().toISOString(),
    };
    const setup = await ServeEngine.create({ model, store, ep: "wasm", workers: 0 });
    const config = setup.config;
    await setup.close();
    for (let t = 0; t < 20; t++) {
      await store.put(
        `tenant${t}`,
        "story",
        randomAdapterFiles(config, { seed: t + 1, rank: 8, scale: 0.1 }),
      );
    }
    await store.put("default", "story", randomAdapterFiles(config, { seed: 99, rank: 8, scale: 0.1 }));
    await store.put(
      "bench",
      "k5",
      randomAdapterFiles(config, { seed: 5, rank: 8, modules: ["up_proj"], scale: 0.1 }),
    );
    await store.put(
      "bench",
      "all",
      randomAdapterFiles(config, { seed: 6, rank: 8, modules: [...LLAMA_MODULES], scale: 0.1 }),
    );

    // latency and cold loads: one in-process engine
    const engine = await ServeEngine.create({ model, store, ep: "wasm", workers: 0, maxBatch: 16 });
    const folder = await loadModelFolder(model);
    const latency = await benchLatency(
      engine,
      {
        base: await engine.resolveModel("bench", engine.modelId),
        k5: await engine.resolveModel("bench", "k5"),
        all: await engine.resolveModel("bench", "all"),
      },
      rounds,
      folder,
    );
    const cold: number[] = [];
    const warm: number[] = [];
    for (let t = 1; t < 20; t++) {
      const t0 = performance.now();
      await engine.adapter(`tenant${t}`, "story");
      cold.push(performance.now() - t0);
      const t1 = performance.now();
      await engine.adapter(`tenant${t}`, "story");
      warm.push(performance.now() - t1);
    }
    await engine.close();

    const perSecond = (ms: number) => latency.maxTokens / (ms / 1000);
    out("\n## One greedy request, 64 tokens, in-process (wasm, one core), alternating\n");
    out(markdownTable(["request", "ms per request", "tokens/s", "ratio"], [
      ["server, base model", latency.baseMs, perSecond(latency.baseMs), "1"],
      [
        "server, K = 5 rank-8 adapter (up_proj of each layer)",
        latency.k5Ms,
        perSecond(latency.k5Ms),
        latency.k5Ms / latency.baseMs,
      ],
      [
        "server, rank-8 LoRA at all 35 sites",
        latency.allSitesMs,
        perSecond(latency.allSitesMs),
        latency.allSitesMs / latency.baseMs,
      ],
      [
        "plain LlamaGenerator (no server)",
        latency.plainGraphMs,
        perSecond(latency.plainGraphMs),
        latency.plainGraphMs / latency.baseMs,
      ],
      ["server base / plain generator", latency.baseMs / latency.plainGraphMs, "—", "—"],
    ]));
    const variants = await benchVariants(folder);
    out("\n## Graph variants in one runner (stories260K, wasm): build time and memory\n");
    out(markdownTable(
      ["variants", "median build ms", "process RSS MiB", "RSS per variant MiB"],
      variants.map((v) => [v.variants, v.buildMsMedian, v.rssMiB, v.rssPerVariantMiB]),
    ));
    out("\n## Adapter resolution (store + validation + preparation), rank 8 on q, v, down\n");
    out(
      markdownTable(["case", "median ms"], [["cold (cache miss)", median(cold)], [
        "warm (cache hit)",
        median(warm),
      ]]),
    );

    // bytes per cached adapter
    const shapes: [string, number, LlamaModule[]][] = [
      ["r=4, q and v", 4, ["q_proj", "v_proj"]],
      ["r=8, q, v, down", 8, ["q_proj", "v_proj", "down_proj"]],
      ["r=16, all 7 modules", 16, [...LLAMA_MODULES]],
    ];
    const bytesRows = [];
    const sizing = await ServeEngine.create({ model, store, ep: "wasm", workers: 0 });
    for (const [label, rank, modules] of shapes) {
      const files = randomAdapterFiles(config, { seed: 7, rank, modules });
      await store.put("sizes", `r${rank}`, files);
      const prepared = (await sizing.adapter("sizes", `r${rank}`))!.adapter;
      bytesRows.push([label, files.weights.byteLength, prepared.bytes]);
    }
    await sizing.close();
    out("\n## Bytes per cached adapter (stories260K: 5 layers, width 64, MLP 172)\n");
    out(markdownTable(["adapter", "safetensors bytes", "cached bytes"], bytesRows));

    // tokens/s under load: 1 tenant vs 20 tenants, 20 requests in flight, both cores
    const throughput = [];
    for (const workers of [0, 2]) {
      const loaded = await ServeEngine.create({ model, store, ep: "wasm", workers, maxBatch: 16 });
      const one = [await loaded.resolveModel("tenant0", "story")];
      const twenty = await Promise.all(
        Array.from({ length: 20 }, (_, t) => loaded.resolveModel(`tenant${t}`, "story")),
      );
      for (let i = 0; i < 3; i++) await benchThroughput(loaded, twenty, 20, 40); // warm-up (wasm tier-up)
      const a: number[] = [];
      const b: number[] = [];
      for (let r = 0; r < rounds; r++) {
        a.push((await benchThroughput(loaded, one, 20, 60)).tokensPerSecond);
        b.push((await benchThroughput(loaded, twenty, 20, 60)).tokensPerSecond);
      }
      throughput.push({ workers, oneTenant: median(a), twentyTenants: median(b) });
      await loaded.close();
    }
    out("\n## Generated tokens/s, 20 requests in flight, 32 tokens each (greedy)\n");
    out(markdownTable(
      ["runners", "1 tenant", "20 tenants round-robin", "20 / 1"],
      throughput.map((t) => [
        t.workers === 0 ? "in-process (1 core)" : `${t.workers} workers`,
        t.oneTenant,
        t.twentyTenants,
        t.twentyTenants / t.oneTenant,
      ]),
    ));

    // HTTP load from a second process
    const models = Array.from({ length: 20 }, () => "story");
    const http = [];
    for (const workers of [0, 2]) http.push(await benchHttp(model, storeDir, workers, seconds, models));
    console.log(
      `\n## Loopback HTTP load from a second process: 16 clients, closed loop, ${seconds} s, 16 tokens\n`,
    );
    out(markdownTable(
      ["server", "requests/s", "p50 ms", "p95 ms", "errors"],
      http.map((
        h,
      ) => [
        h.workers === 0 ? "in-process (1 core)" : `${h.workers} workers`,
        h.requestsPerSecond,
        h.p50Ms,
        h.p95Ms,
        h.errors,
      ]),
    ));

    const results = {
      environment,
      latency,
      variants,
      adapterLoad: { coldMs: median(cold), warmMs: median(warm) },
      bytes: bytesRows,
      throughput,
      http,
    };
    const dir = new URL("./results/", import.meta.url);
    await Deno.mkdir(dir, { recursive: true });
    const file = new URL("serve.json", dir);
    await Deno.writeTextFile(file, JSON.stringify(results, null, 2) + "\n");
    await Deno.writeTextFile(
      new URL("serve.md", dir),
      `# Serving (generated by bench/serve_bench.ts from results/serve.json)\n${lines.join("\n")}\n`,
    );
    console.log(
      `\nWrote ${file.pathname} (${figure(http[1].requestsPerSecond)} requests/s with two workers).`,
    );
  } finally {
    await Deno.remove(storeDir, { recursive: true });
  }
}

if (import.meta.main) {
  if (Deno.args[0] === LOAD_CHILD) {
    const [, url, concurrency, seconds, models] = Deno.args;
    await loadChild(url, Number(concurrency), Number(seconds), models.split(","));
  } else {
    await main();
  }
}
