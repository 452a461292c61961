/**
 * The one place that imports onnxruntime-web. The `webgpu` build carries both the WebGPU and the wasm
 * execution providers, so one module instance (one wasm heap) serves every session.
 *
 * @module
 */

import * as ort from "onnxruntime-web/webgpu";

export { ort };
