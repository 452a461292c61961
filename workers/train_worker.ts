/**
 * A training worker: runs one fine-tuning job off the request thread. It receives a `TrainJobSpec` (model
 * folder, resolved options, data text, optional checkpoint), trains with `train()` in a scratch folder, and
 * posts progress, checkpoints and the final PEFT files back to the job runner (see
 * `src/jobs/worker_protocol.ts`). `{type: "cancel"}` stops it after the current step, with a checkpoint.
 *
 * The first import prepares the worker's globals for onnxruntime-web (see `src/runtime/worker_env.ts`).
 *
 * @module
 */

/// <reference lib="deno.worker" />

import "../src/runtime/worker_env.ts";
import "../src/jobs/_train_worker_main.ts";
