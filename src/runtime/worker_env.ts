/**
 * Prepares a Deno Worker's globals for onnxruntime-web; import it first in every worker entry point,
 * before anything that loads onnxruntime. The WebGPU bundle resolves its own URL against
 * `location.origin` when it is evaluated, and a worker's origin is the string "null" for a `file:` script,
 * which is not a valid base URL (the main thread has no `location`, so the bundle skips it there). Hiding
 * `location` makes the worker look like the main thread.
 *
 * @example
 * ```ts ignore
 * import "../src/runtime/worker_env.ts";
 * import "./my_worker_main.ts";
 * ```
 *
 * @module
 */

Object.defineProperty(globalThis, "location", { value: undefined, configurable: true });
