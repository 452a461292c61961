/**
 * Sessions over onnxruntime-web: execution-provider choice, device-resident tensors, clean disposal.
 *
 * `WEIGHTLORA_WASM_THREADS=<n>` (read once, before the first session) sets the number of wasm threads;
 * onnxruntime's default in Deno is one.
 *
 * @example
 * ```ts
 * import { resolveExecutionProvider } from "./mod.ts";
 * console.log(await resolveExecutionProvider("auto")); // "webgpu" or "wasm"
 * ```
 *
 * @module
 */

export * from "./execution_provider.ts";
export * from "./session.ts";
export * from "./tensor.ts";
export { ort, ortWebGpu } from "./ort.ts";
