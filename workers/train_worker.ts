/**
 * A training worker: runs one fine-tuning job off the request thread. It receives a `TrainJobSpec` (model
 * folder, resolved options, data text, optional checkpoint), trains with `train()` in a scratch folder, and
 * posts progress, checkpoints and the final PEFT files back to the job runner (see
 * `src/jobs/worker_protocol.ts`). `{type: "cancel"}` stops it after the current step, with a checkpoint.
 *
 * onnxruntime-web's WebGPU bundle resolves its own URL against `location.origin`, which is the string
 * `"null"` in a worker started from a `file:` script; so `location` is hidden first (as on the main
 * thread) and the worker's modules are imported afterwards.
 *
 * @module
 */

/// <reference lib="deno.worker" />

Object.defineProperty(globalThis, "location", { value: undefined, configurable: true });
await import("../src/jobs/_train_worker_main.ts");
