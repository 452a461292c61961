// The edge harness's entry point: `examples/edge/main.ts` as deployed, in a process without the web
// `Worker` global (as an isolate), plus one route, `/__probe`, that tries what an isolate may not do and
// reports how each attempt ended. Everything else goes to the deployed handler unchanged.

import "./_no_workers.ts"; // first: it must run before the server's modules are evaluated
import deployed from "../../examples/edge/main.ts";
import { ort } from "../../src/runtime/ort.ts";
import { hasWorkers } from "../../src/serve/worker_runner.ts";

/** How one attempt ended: `ok`, or the error's class name and message. */
async function attempt(action: () => unknown): Promise<string> {
  try {
    await action();
    return "ok";
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
}

async function probe(url: URL): Promise<Record<string, string>> {
  const model = url.searchParams.get("model") ?? "";
  const outside = url.searchParams.get("outside") ?? "";
  const port = url.searchParams.get("port") ?? "1";
  return {
    // what the server saw at start-up (onnxruntime's node glue later sets the global to node's
    // worker_threads.Worker, which it uses only for wasm threads)
    workers: String(hasWorkers()),
    wasmThreads: String(ort.env.wasm.numThreads),
    write: await attempt(() => Deno.writeTextFile(`${model}/probe.txt`, "x")),
    tempDir: await attempt(() => Deno.makeTempDir()),
    run: await attempt(() => new Deno.Command("true").output()),
    readOutside: await attempt(() => Deno.readTextFile(outside)),
    readModel: await attempt(() => Deno.readTextFile(`${model}/config.json`)),
    env: await attempt(() => Deno.env.get("HOME")),
    net: await attempt(() => fetch(`http://127.0.0.1:${port}/`)),
  };
}

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/__probe") return Response.json(await probe(url));
    return await deployed.fetch(request);
  },
} satisfies Deno.ServeDefaultExport;
