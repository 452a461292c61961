/**
 * The ONNX graph layer: the IR types, a builder with static shape inference, and the protobuf codec.
 *
 * @example
 * ```ts
 * import { decodeModel, encodeModel, GraphBuilder } from "./mod.ts";
 * const b = new GraphBuilder("double");
 * const x = b.input("x", "float32", ["n"]);
 * b.output(b.mul(x, 2), "y");
 * const bytes = encodeModel(b.toModel()).model;
 * console.assert(decodeModel(bytes).graph.outputs[0].name === "y");
 * ```
 *
 * @module
 */

export * from "./types.ts";
export * from "./builder.ts";
export * from "./shape_inference.ts";
export * from "./proto.ts";
export * from "./model.ts";
