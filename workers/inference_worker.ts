/**
 * An inference worker: one `BatchRunner` with its own single-threaded wasm sessions, driven by
 * `src/serve/worker_runner.ts` (see its message types). The first import prepares the worker's globals
 * for onnxruntime-web (see `src/runtime/worker_env.ts`); static imports keep that order and need no read
 * permission beyond this file's.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import "../src/runtime/worker_env.ts";
import "../src/serve/_worker_main.ts";
