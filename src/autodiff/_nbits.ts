// The backward of onnxruntime's com.microsoft MatMulNBits (`Y = A · Wᵀ`, W [N, K] stored blockwise
// quantized along K): the frozen weight gets no gradient, A gets `dY · W`, with W dequantized inside the graph
// from the node's own uint8 codes by standard ops, `W = (code − zero_point) · scale`.
//
// onnxruntime folds every node whose inputs are all initializers into a new initializer when the session is
// created, so a dequantization of constant codes would become a float32 copy of the weight (the base memory
// that keeping it quantized saves). Each constant therefore passes through `Where(c, x, x)` first, with `c` a
// boolean read from the incoming gradient: the value is `x` whatever `c` is, but it is no longer constant, so
// the float32 weight exists only while its layer's backward runs.

import type { GraphBuilder, Value } from "../onnx/builder.ts";
import type { Node } from "../onnx/types.ts";

/** MatMulNBits' attributes as the backward needs them. */
export interface NBitsAttributes {
  /** Input features. */
  k: number;
  /** Output features. */
  n: number;
  /** Bits per code (4 or 8). */
  bits: number;
  /** Codes per block. */
  blockSize: number;
}

/**
 * Reads a MatMulNBits node's attributes.
 *
 * @throws {TypeError} When K, N, bits or block_size is missing or unsupported (naming the node).
 */
export function nbitsAttributes(node: Node): NBitsAttributes {
  const int = (name: string) => {
    const a = node.attributes[name];
    return a && a.type === "int" ? a.value : undefined;
  };
  const k = int("K"), n = int("N"), bits = int("bits") ?? 4, blockSize = int("block_size");
  const fail = (why: string): never => {
    throw new TypeError(`Cannot differentiate node "${node.name}" (MatMulNBits): ${why}`);
  };
  if (k === undefined || n === undefined || k < 1 || n < 1) {
    fail(`attributes K (${k}) and N (${n}) must be set`);
  }
  if (bits !== 4 && bits !== 8) fail(`only 4- and 8-bit weights are supported, got bits = ${bits}`);
  if (blockSize === undefined || blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) {
    fail(`attribute block_size is ${blockSize}, expected a power of 2 ≥ 16`);
  }
  return { k: k!, n: n!, bits, blockSize: blockSize! };
}

/**
 * uint8 bytes as float32 codes, `[..., bytes]` → `[..., bytes · 8 / bits]`: one code per byte for 8 bits;
 * for 4 bits the even code in the low nibble, the odd one in the high nibble (MatMulNBits' packing).
 */
function unpackCodes(b: GraphBuilder, bytes: Value, bits: number): Value {
  const f = b.cast(bytes, "float32");
  if (bits === 8) return f;
  const high = b.node("Floor", [b.mul(f, 1 / 16)])[0];
  const low = b.sub(f, b.mul(high, 16));
  const rank = f.shape.length;
  const pairs = b.concat([b.unsqueeze(low, [rank]), b.unsqueeze(high, [rank])], rank); // [..., bytes, 2]
  const dims = f.shape.slice(0, -1).map((d) => (typeof d === "number" ? d : 0));
  return b.reshape(pairs, [...dims, -1]);
}

/**
 * The float32 weight `[N, K]` of a MatMulNBits node, dequantized in the graph.
 *
 * @param b The builder of the gradient graph.
 * @param inputs The node's inputs: A, B (uint8 codes `[N, k_blocks, blob]`), scales (`N · k_blocks` floats),
 *   optional zero points (packed uint8 `[N, ⌈k_blocks · bits / 8⌉]`, or `N · k_blocks` floats).
 * @param options The node's attributes, and `anchor`: a runtime value (the incoming gradient) that keeps
 *   onnxruntime from folding the dequantization into a float32 initializer.
 * @returns W `[N, K]`, float32.
 */
export function dequantizedWeight(
  b: GraphBuilder,
  inputs: (Value | undefined)[],
  options: NBitsAttributes & { anchor: Value },
): Value {
  const { k, n, bits, blockSize } = options;
  const kBlocks = Math.ceil(k / blockSize);
  const [, codes, scales, zeroPoints] = inputs;
  // a runtime boolean: Where(c, x, x) is x, but not a constant any more
  const c = b.node("IsNaN", [b.slice(b.reshape(options.anchor, [-1]), [0], [1], [0])])[0];
  const live = (x: Value) => b.where(c, x, x);
  const values = unpackCodes(b, live(codes!), bits); // [N, k_blocks, blockSize]
  const scale = b.reshape(live(scales!), [n, kBlocks, 1]);
  let zero: Value | number = 1 << (bits - 1);
  if (zeroPoints && zeroPoints.dtype === "uint8") {
    let z = unpackCodes(b, b.reshape(live(zeroPoints), [n, -1]), bits); // [N, ≥ k_blocks]
    if (z.shape[1] !== kBlocks) z = b.slice(z, [0], [kBlocks], [1]);
    zero = b.unsqueeze(z, [2]);
  } else if (zeroPoints) zero = b.reshape(live(zeroPoints), [n, kBlocks, 1]);
  const w = b.reshape(b.mul(b.sub(values, zero), scale), [n, kBlocks * blockSize]);
  return kBlocks * blockSize === k ? w : b.slice(w, [0], [k], [1]);
}
