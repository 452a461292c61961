/**
 * LoRA adapters: gated LoRA at the model's adapter hook (WeightLoRA), the top-K gate projection,
 * WeightLoRA+'s function-preserving rank doubling, host-side adapter state, and PEFT import and export.
 *
 * @example
 * ```ts
 * import { projectTopK } from "./mod.ts";
 * const { kept } = projectTopK(Float32Array.from([0.2, 0.9, -0.4, 0.7]), 2);
 * console.assert(kept.join() === "1,3");
 * ```
 *
 * @module
 */

export * from "./adapter.ts";
export * from "./gated_lora.ts";
export * from "./top_k.ts";
export * from "./rank_doubling.ts";
export * from "./peft.ts";
export * from "./peft_export.ts";
