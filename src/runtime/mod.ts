/**
 * Sessions over onnxruntime-web: execution-provider choice, device-resident tensors, clean disposal.
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
export { ort } from "./ort.ts";
