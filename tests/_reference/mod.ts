/**
 * Test references: a float64 ONNX interpreter written from the operator spec, independent of
 * onnxruntime, and a tolerance comparison for numeric arrays.
 *
 * @example
 * ```ts
 * import { GraphBuilder } from "../../src/onnx/mod.ts";
 * import { assertAllClose, evaluate, refTensor } from "./mod.ts";
 * const b = new GraphBuilder("g");
 * b.output(b.erf(b.input("x", "float32", [1])), "y");
 * const { y } = evaluate(b.toGraph(), { x: refTensor("float32", [1], [1]) });
 * assertAllClose(y.data, [0.8427007929497149], { rtol: 1e-15, atol: 0 });
 * ```
 *
 * @module
 */

export * from "./interpreter.ts";
export * from "./assert_close.ts";
