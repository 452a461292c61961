/**
 * Training without a training runtime: reverse-mode autodiff over ONNX graphs (standard ops only),
 * optimizer graphs (AdamW, SGD, global-norm clipping), a training-step runner over onnxruntime-web
 * sessions, and safetensors checkpoints of its state.
 *
 * @example
 * ```ts
 * import { GraphBuilder } from "../onnx/builder.ts";
 * import { buildGradientGraph } from "./mod.ts";
 * const b = new GraphBuilder("f");
 * const w = b.input("w", "float32", [2]);
 * b.output(b.reduceSum(b.exp(w), undefined, false), "loss");
 * const { gradientNames } = buildGradientGraph(b.toGraph(), { loss: "loss", trainable: ["w"] });
 * console.assert(gradientNames.w === "grad.w");
 * ```
 *
 * @module
 */

export * from "./gradient.ts";
export * from "./rules.ts";
export * from "./optimizer.ts";
export * from "./training_session.ts";
export * from "./checkpoint.ts";
