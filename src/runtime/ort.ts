/**
 * The one place that imports onnxruntime-web. Two builds serve the two execution providers:
 *
 * - {@linkcode ort} (`onnxruntime-web`, which Deno resolves to the package's `node` build) runs wasm
 *   sessions. Its wasm threads work in Deno (`WEIGHTLORA_WASM_THREADS`) and its wasm binary is half the
 *   size of the WebGPU build's (about 150 MB of resident memory after the first session instead of 250).
 * - {@linkcode ortWebGpu} (`onnxruntime-web/webgpu`) runs WebGPU sessions. Its wasm part stays
 *   single-threaded: it loads its thread workers through a `blob:` import, which Deno refuses inside npm
 *   packages.
 *
 * Tensors of either build are accepted by sessions of the other (onnxruntime checks tensors by shape,
 * not by class), so callers build tensors with `ort.Tensor` everywhere.
 *
 * @module
 */

import * as ort from "onnxruntime-web";
import * as ortWebGpu from "onnxruntime-web/webgpu";

export { ort, ortWebGpu };
