/**
 * weightlora: fine-tune language models with WeightLoRA and serve per-tenant adapters, on
 * onnxruntime-web (WebGPU or WebAssembly) in Deno.
 *
 * @example
 * ```ts
 * import { GraphBuilder, OnnxSession } from "./mod.ts";
 * const b = new GraphBuilder("relu");
 * b.output(b.relu(b.input("x", "float32", [3])), "y");
 * const session = await OnnxSession.create(b.toModel(), { ep: "wasm" });
 * console.assert(session.ep === "wasm");
 * await session.release();
 * ```
 *
 * @module
 */

export * from "./src/onnx/mod.ts";
export * from "./src/runtime/mod.ts";
export * from "./src/autodiff/mod.ts";
export * from "./src/io/mod.ts";
export * from "./src/models/mod.ts";
export * from "./src/lora/mod.ts";
export * from "./src/train/mod.ts";
