/**
 * Runs `@huggingface/transformers` (transformers.js) under Deno on onnxruntime-web's wasm backend, offline,
 * on a folder written by {@linkcode exportForTransformersJs}: greedy, EOS ignored.
 *
 * Deno resolves the package's `node` export, whose backend is `onnxruntime-node` (a native binding): the
 * package is imported while `process.release.name` reads as not "node", so it picks its web backend (the
 * onnxruntime-web build it bundles) and offers the `wasm` device. Its wasm files load from the
 * onnxruntime-web package of the same version in Deno's npm cache (by default it fetches them from a
 * CDN), imported from their `file:` URLs (`env.useWasmCache = false`: its blob-URL cache cannot be
 * imported by an npm module in Deno).
 *
 * More than one thread fails under Deno: for pthreads onnxruntime-web imports its Emscripten factory
 * directly only when the file shares the page's origin (`location.origin`, which Deno lacks; a `file:`
 * origin, "null", cannot serve as its base URL either), else it imports it from a `blob:` URL, which
 * Deno refuses inside an npm module (`ERR_UNSUPPORTED_ESM_URL_SCHEME`). The bench records that error.
 *
 * Timing comes from a streamer's timestamps: the prompt is pushed before the prefill, then one push per
 * token; the decode loop runs from the first generated token's push to the last one's.
 *
 * @module
 */

import { npmPackageDir, type PeerRun } from "./_peer_result.ts";

/** Options of {@linkcode runTransformersJs}. */
export interface RunTransformersJsOptions {
  /** The exported folder. */
  dir: string;
  /** wasm threads. */
  threads: number;
  /** Prompt text (tokenized by transformers.js, BOS added). */
  prompt: string;
  /** Tokens to generate. */
  maxTokens: number;
  /** Tokens of a warm-up generation run first (0: none). */
  warmup: number;
}

// deno-lint-ignore no-explicit-any
type Transformers = any;

let loaded: Promise<Transformers> | undefined;

/** Imports transformers.js with its web backend (see the module notes). */
function importTransformers(): Promise<Transformers> {
  loaded ??= (async () => {
    const real = globalThis.process;
    (globalThis as { process: unknown }).process = new Proxy(real, {
      get(target, key) {
        if (key === "release") return { ...target.release, name: "deno" };
        return Reflect.get(target, key);
      },
    });
    try {
      return await import("@huggingface/transformers");
    } finally {
      (globalThis as { process: unknown }).process = real;
    }
  })();
  return loaded;
}

/**
 * Loads the folder with transformers.js and generates once.
 *
 * @param options Folder, threads, prompt, length.
 * @returns The run.
 * @throws {Error} When transformers.js fails (its message kept).
 */
export async function runTransformersJs(options: RunTransformersJsOptions): Promise<PeerRun> {
  const { env, AutoModelForCausalLM, AutoTokenizer } = await importTransformers();
  const slash = options.dir.lastIndexOf("/");
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.useWasmCache = false;
  env.localModelPath = options.dir.slice(0, slash + 1);
  const wasm = env.backends.onnx.wasm;
  const version = env.backends.onnx.versions?.web as string;
  const ortDir = `file://${await npmPackageDir("onnxruntime-web", version)}/dist/`;
  wasm.numThreads = options.threads;
  wasm.wasmPaths = {
    mjs: `${ortDir}ort-wasm-simd-threaded.asyncify.mjs`,
    wasm: `${ortDir}ort-wasm-simd-threaded.asyncify.wasm`,
  };
  const id = options.dir.slice(slash + 1);
  const loadStart = performance.now();
  const tokenizer = await AutoTokenizer.from_pretrained(id);
  const model = await AutoModelForCausalLM.from_pretrained(id, { dtype: "fp32", device: "wasm" });
  const loadMs = performance.now() - loadStart;
  try {
    const inputs = tokenizer(options.prompt);
    const promptTokens = inputs.input_ids.dims[1] as number;
    if (options.warmup > 0) {
      await model.generate({ ...inputs, max_new_tokens: options.warmup, do_sample: false });
    }
    const pushes: number[] = [];
    const streamer = { put: () => pushes.push(performance.now()), end: () => {} };
    const out = await model.generate({
      ...inputs,
      max_new_tokens: options.maxTokens,
      do_sample: false,
      eos_token_id: null,
      streamer,
    });
    const ids = (out.tolist()[0] as bigint[]).slice(promptTokens).map(Number);
    if (ids.length !== options.maxTokens || pushes.length !== options.maxTokens + 1) {
      throw new Error(
        `transformers.js generated ${ids.length} tokens (${pushes.length} streamer pushes), expected ${options.maxTokens}`,
      );
    }
    const decodeMs = pushes[pushes.length - 1] - pushes[1];
    const decodeTokens = options.maxTokens - 1;
    return {
      engine: "transformers.js",
      threads: options.threads,
      promptTokens,
      decodeTokens,
      decodeMs,
      tokensPerS: decodeTokens / (decodeMs / 1000),
      prefillMs: pushes[1] - pushes[0],
      loadMs,
      text: tokenizer.decode(ids, { skip_special_tokens: true }),
      tokenIds: ids,
    };
  } finally {
    await model.dispose();
  }
}
