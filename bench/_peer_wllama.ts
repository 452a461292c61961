/**
 * Runs `@wllama/wllama` (llama.cpp compiled to wasm) under Deno: greedy, EOS ignored, on a GGUF file.
 *
 * wllama targets browsers; three shims make it run in Deno, each for a cause found in its source:
 * - `self.location` is undefined in Deno (no `--location`): wllama resolves its wasm path against it, so a
 *   `file:///` location is set.
 * - Its Emscripten glue takes Deno for Node.js (`globalThis.process.versions.node` is set) and calls
 *   `require("fs")`, and for a `file:` URL it uses `XMLHttpRequest`: the worker code it builds from a Blob
 *   gets `process` hidden, and the wasm is given as a `blob:` URL (read with `fetch`).
 * - Emscripten's pthread pool creates classic Workers, which Deno refuses ("Classic workers are not
 *   supported"): inside wllama's worker, `Worker` gets `type: "module"` (for the 2-thread build).
 * wllama's cache manager needs OPFS or the Cache API (not in Deno); loading from a Blob needs neither, so a
 * stand-in is passed.
 *
 * Timing is llama.cpp's own (`timings.predicted_ms`, `predicted_per_second`: the decode loop alone).
 *
 * @module
 */

import { npmPackageDir, type PeerRun } from "./_peer_result.ts";

/** The wllama version (deno.json pins it). */
export const WLLAMA_VERSION = "3.8.1";

/** Options of {@linkcode runWllama}. */
export interface RunWllamaOptions {
  /** GGUF file. */
  gguf: string;
  /** Threads (1: the single-thread build; more: pthreads). */
  threads: number;
  /** Prompt text (tokenized by llama.cpp, BOS added). */
  prompt: string;
  /** Tokens to generate. */
  maxTokens: number;
  /** Tokens of a warm-up generation run first (0: none). */
  warmup: number;
}

/** The parts of llama-server's completion response the bench reads. */
interface WllamaCompletion {
  choices?: { text?: string }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number };
  timings?: { prompt_ms: number; predicted_ms: number; predicted_per_second: number };
}

/** The code put before every JavaScript Blob wllama turns into a Worker (it re-applies itself inside). */
function denoWorkerShim(): void {
  const self = "(" + denoWorkerShim.toString() + ")();\n";
  Object.defineProperty(globalThis, "process", { value: undefined, configurable: true });
  const Base = globalThis.Worker;
  if (Base) {
    globalThis.Worker = class extends Base {
      constructor(url: string | URL, options: WorkerOptions = {}) {
        super(url, { ...options, type: "module" });
      }
    } as typeof Worker;
  }
  const create = URL.createObjectURL;
  URL.createObjectURL = (obj: Blob | MediaSource) => {
    if (obj instanceof Blob && obj.type === "text/javascript") {
      obj = new Blob([self, obj], { type: obj.type });
    }
    return create(obj);
  };
}

let shimmed = false;
function installShims(): void {
  if (shimmed) return;
  shimmed = true;
  if (!("location" in globalThis) || globalThis.location === undefined) {
    Object.defineProperty(globalThis, "location", { value: new URL("file:///"), configurable: true });
  }
  const shim = "(" + denoWorkerShim.toString() + ")();\n";
  const create = URL.createObjectURL;
  URL.createObjectURL = (obj: Blob | MediaSource) => {
    if (obj instanceof Blob && obj.type === "text/javascript") {
      obj = new Blob([shim, obj], { type: obj.type });
    }
    return create(obj);
  };
}

/**
 * Loads the GGUF file into wllama and generates once.
 *
 * @param options Model, threads, prompt, length.
 * @returns The run.
 * @throws {Error} When wllama fails (its message kept).
 */
export async function runWllama(options: RunWllamaOptions): Promise<PeerRun> {
  installShims();
  const { Wllama } = await import("@wllama/wllama");
  const dir = await npmPackageDir("@wllama/wllama", WLLAMA_VERSION);
  const wasm = URL.createObjectURL(
    new Blob([await Deno.readFile(`${dir}/esm/wasm/wllama.wasm`)], { type: "application/wasm" }),
  );
  const quiet = { debug: () => {}, log: () => {}, warn: console.warn, error: console.error };
  type Config = NonNullable<ConstructorParameters<typeof Wllama>[1]>;
  const wllama = new Wllama({ default: wasm }, {
    suppressNativeLog: true,
    logger: quiet,
    // never used: the model loads from a Blob
    cacheManager: {} as Config["cacheManager"],
  });
  try {
    const bytes = await Deno.readFile(options.gguf);
    const loadStart = performance.now();
    await wllama.loadModel([new Blob([bytes])], {
      n_threads: options.threads,
      n_ctx: 512,
      n_gpu_layers: 0,
    });
    const loadMs = performance.now() - loadStart;
    // llama-server's completion parameters (ignore_eos is not in wllama's types)
    type Params = Parameters<typeof wllama.createCompletion>[0];
    const complete = (maxTokens: number, ignoreEos: boolean) =>
      wllama.createCompletion(
        { prompt: options.prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: ignoreEos } as Params,
      ) as Promise<WllamaCompletion>;
    if (options.warmup > 0) await complete(options.warmup, false);
    const r = await complete(options.maxTokens, true);
    const t = r.timings;
    if (!t || typeof t.predicted_ms !== "number" || r.usage?.completion_tokens !== options.maxTokens) {
      throw new Error(
        `wllama returned no timings or not ${options.maxTokens} tokens: ${JSON.stringify(r).slice(0, 300)}`,
      );
    }
    const decodeTokens = Math.round((t.predicted_per_second * t.predicted_ms) / 1000);
    return {
      engine: "wllama",
      threads: options.threads,
      promptTokens: r.usage?.prompt_tokens ?? NaN,
      decodeTokens,
      decodeMs: t.predicted_ms,
      tokensPerS: t.predicted_per_second,
      prefillMs: t.prompt_ms,
      loadMs,
      text: r.choices?.[0]?.text ?? "",
    };
  } finally {
    await wllama.exit();
  }
}
