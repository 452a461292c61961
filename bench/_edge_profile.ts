/**
 * Where an edge server's cold start and memory go, stage by stage, in a fresh process (run by
 * `edge_bench.ts` as `deno run --unstable-raw-imports -A bench/_edge_profile.ts MODEL ADAPTERS`): the same
 * steps as `createEdgeHandler`, timed one by one, with the process's resident memory after each. Modules
 * are imported dynamically so that their loading is a stage of its own. Prints one JSON line:
 * `{"stages": [{"stage", "ms", "rssMb", "heapMb", "externalMb"}, …]}`; `ms` is the stage's own time, and
 * the first stage ("runtime start") is the time from the process's time origin to the script's first line.
 *
 * @module
 */

interface Stage {
  stage: string;
  ms: number;
  rssMb: number;
  heapMb: number;
  externalMb: number;
}

const stages: Stage[] = [];
let last = 0;

function mark(stage: string): void {
  const now = performance.now();
  (globalThis as { gc?: () => void }).gc?.(); // with --v8-flags=--expose-gc: live memory only
  const m = Deno.memoryUsage();
  stages.push({
    stage,
    ms: now - last,
    rssMb: m.rss / 2 ** 20,
    heapMb: m.heapUsed / 2 ** 20,
    externalMb: m.external / 2 ** 20,
  });
  last = now;
}

async function main(): Promise<void> {
  const [model, adapters] = Deno.args;
  mark("runtime start");
  await import("../src/runtime/ort.ts");
  mark("import onnxruntime-web (both builds)");
  const { createApp } = await import("../src/http/app.ts");
  const { ServeEngine } = await import("../src/serve/engine.ts");
  const { FolderAdapterStore } = await import("../src/store/folder_adapter_store.ts");
  const { loadModelFolder } = await import("../src/io/model_folder.ts");
  const { OnnxSession } = await import("../src/runtime/session.ts");
  const { GraphBuilder } = await import("../src/onnx/builder.ts");
  mark("import the app (Hono, zod, engine, tokenizer)");
  const { preloadOrtWasm } = await import("../src/serve/ort_wasm.ts");
  await preloadOrtWasm("wasm");
  mark("import the wasm binary (raw import)");
  const folder = await loadModelFolder(model);
  mark("load the model folder (weights, tokenizer)");
  // the first session compiles and instantiates the wasm module: time that apart from the model's session
  const b = new GraphBuilder("negate");
  b.output(b.neg(b.input("x", "float32", [2])), "y");
  const probe = await OnnxSession.create(b.toModel(), { ep: "wasm" });
  await probe.release();
  mark("compile and instantiate onnxruntime's wasm");
  const engine = await ServeEngine.create({
    model: folder,
    store: new FolderAdapterStore(adapters, { readOnly: true }),
    ep: "wasm",
    workers: 0,
    cacheBytes: 64 * 2 ** 20,
  });
  mark("build the graph and create the session");
  const app = createApp({ engine });
  mark("create the app");
  const request = (max: number, name = folder.id) =>
    app.fetch(
      new Request("http://edge/v1/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: name,
          prompt: "Once upon a time",
          max_tokens: max,
          temperature: 0,
        }),
      }),
    );
  let res = await request(1);
  await res.text();
  mark("first request (1 token)");
  res = await request(1);
  await res.text();
  mark("second request (1 token)");
  res = await request(64);
  await res.text();
  mark("a 64-token request");
  if (await engine.store.get("default", "story")) {
    res = await request(64, "story");
    await res.text();
    mark("a 64-token request with an adapter (builds its graph variant)");
  }
  await engine.close();
  console.log(JSON.stringify({ stages }));
}

if (import.meta.main) await main();
