/**
 * {@linkcode preloadOrtWasm}: hands onnxruntime-web its WebAssembly binary as a module import, so that a
 * server needs no read permission on Deno's npm cache (onnxruntime otherwise reads the `.wasm` file from
 * its package folder). Needs Deno's `--unstable-raw-imports`; without it nothing changes and onnxruntime
 * loads the file itself (then `--allow-read` must cover the npm cache).
 *
 * @module
 */

import { ort, ortWebGpu } from "../runtime/ort.ts";

const WASM = "npm:onnxruntime-web@1.30.0/ort-wasm-simd-threaded.wasm";
const WEBGPU_WASM = "npm:onnxruntime-web@1.30.0/ort-wasm-simd-threaded.asyncify.wasm";

async function importBytes(specifier: string): Promise<Uint8Array | undefined> {
  try {
    const module = await import(specifier, { with: { type: "bytes" } });
    return module.default as Uint8Array;
  } catch {
    return undefined;
  }
}

/**
 * Gives onnxruntime its wasm binary for a provider before the first session of that provider.
 *
 * @param ep `wasm` or `webgpu`.
 * @returns Whether the binary was preloaded (false without `--unstable-raw-imports`).
 * @example
 * ```ts ignore
 * import { preloadOrtWasm } from "./ort_wasm.ts";
 * await preloadOrtWasm("wasm");
 * ```
 */
export async function preloadOrtWasm(ep: "wasm" | "webgpu"): Promise<boolean> {
  const env = ep === "wasm" ? ort.env : ortWebGpu.env;
  if (env.wasm.wasmBinary) return true;
  const bytes = await importBytes(ep === "wasm" ? WASM : WEBGPU_WASM);
  if (!bytes) return false;
  env.wasm.wasmBinary = bytes;
  return true;
}
