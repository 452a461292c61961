/**
 * Execution-provider choice: `wasm`, `webgpu`, or `auto` (WebGPU when `navigator.gpu` yields an adapter).
 *
 * @module
 */

/** An execution provider a caller may ask for. */
export type ExecutionProviderChoice = "auto" | "wasm" | "webgpu";

/** An execution provider a session actually runs on. */
export type ExecutionProvider = "wasm" | "webgpu";

let adapterProbe: Promise<boolean> | undefined;

/**
 * Whether this runtime exposes a WebGPU adapter (probed once, then cached).
 *
 * @example
 * ```ts
 * import { hasWebGpu } from "./execution_provider.ts";
 * console.log((await hasWebGpu()) ? "WebGPU available" : "wasm only");
 * ```
 *
 * @returns True when `navigator.gpu.requestAdapter()` yields an adapter.
 */
export function hasWebGpu(): Promise<boolean> {
  adapterProbe ??= (async () => {
    const gpu = (globalThis.navigator as Navigator & { gpu?: GPU }).gpu;
    if (!gpu) return false;
    try {
      return (await gpu.requestAdapter()) !== null;
    } catch {
      return false;
    }
  })();
  return adapterProbe;
}

/**
 * Resolves a provider choice to the provider that will run.
 *
 * @param choice `auto`, `wasm` or `webgpu`.
 * @returns The provider to use.
 * @throws {Error} When `webgpu` is asked for and no adapter is available.
 * @throws {TypeError} When the choice is not one of `auto`, `wasm`, `webgpu`.
 * @example
 * ```ts
 * import { resolveExecutionProvider } from "./execution_provider.ts";
 * console.assert((await resolveExecutionProvider("wasm")) === "wasm");
 * ```
 */
export async function resolveExecutionProvider(choice: ExecutionProviderChoice): Promise<ExecutionProvider> {
  if (choice !== "auto" && choice !== "wasm" && choice !== "webgpu") {
    throw new TypeError(`Unknown execution provider "${choice}": use auto, wasm or webgpu`);
  }
  if (choice === "wasm") return "wasm";
  const gpu = await hasWebGpu();
  if (choice === "webgpu" && !gpu) {
    throw new Error(
      'Cannot use execution provider "webgpu": navigator.gpu yields no adapter ' +
        "(on Linux without a GPU install Debian's mesa-vulkan-drivers for lavapipe)",
    );
  }
  return gpu ? "webgpu" : "wasm";
}
