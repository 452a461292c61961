// Imported first by workers/inference_worker.ts, before onnxruntime-web loads: the WebGPU bundle resolves
// its own URL against `location.origin` when it is evaluated, and a worker's origin is the string "null"
// for a `file:` script, which is not a valid base URL (the main thread has no `location`, so the bundle
// skips it there). Hiding `location` makes the worker look like the main thread.

Object.defineProperty(globalThis, "location", { value: undefined, configurable: true });
