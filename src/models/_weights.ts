// Reading a model's Hugging Face-named weights into a graph as initializers, with shape checks that name
// the tensor: float linear weights pre-transposed to [in, out] for MatMul, quantized ones (X.qweight,
// X.scales, X.qzeros) as MatMulNBits operands; projections that share an input concatenated along N.

import type { GraphBuilder, Value } from "../onnx/builder.ts";
import type { TensorData } from "../onnx/types.ts";
import { dequantizeNBits, type NBitsWeight } from "../io/quantize.ts";
import { readNBitsWeight } from "../io/quantized_weights.ts";
import type { QuantizationConfig } from "./config.ts";

/**
 * The base weight of one linear layer, or of several that share an input concatenated along the output
 * axis (a fused QKV or gate/up projection), as {@linkcode WeightLoader.projection} returns it:
 *
 * - `float`: `value` is the `[inFeatures, outFeatures]` MatMul right operand.
 * - `nbits`: onnxruntime's MatMulNBits operands: `b` uint8 `[outFeatures, kBlocks, blockSize · bits / 8]`,
 *   `scales` float32 `[outFeatures, kBlocks]`, optional packed `zeroPoints` uint8.
 */
export type ProjectionWeight =
  | { kind: "float"; value: Value; inFeatures: number; outFeatures: number }
  | {
    kind: "nbits";
    bits: 4 | 8;
    blockSize: number;
    b: Value;
    scales: Value;
    zeroPoints?: Value;
    inFeatures: number;
    outFeatures: number;
  };

/** Options of {@linkcode WeightLoader}. */
export interface WeightLoaderOptions {
  /** The model's quantization (`config.quantization`); required when the weights hold `X.qweight` tensors. */
  quantization?: QuantizationConfig;
}

function float32View(tensor: TensorData, name: string): Float32Array {
  if (tensor.dtype !== "float32") {
    throw new TypeError(`Cannot use weight "${name}": dtype is ${tensor.dtype}, expected float32`);
  }
  const { data } = tensor;
  if (data.byteOffset % 4 === 0) return new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4);
  return new Float32Array(data.slice().buffer);
}

/** Adds weights to a builder once each, checking shapes against the config. */
export class WeightLoader {
  #b: GraphBuilder;
  #weights: ReadonlyMap<string, TensorData>;
  #added = new Map<string, Value>();
  #projections = new Map<string, ProjectionWeight>();
  #quantization: QuantizationConfig | undefined;

  /**
   * @param b The builder the initializers go to.
   * @param weights Tensors by Hugging Face name.
   * @param options The quantization of `X.qweight` tensors.
   */
  constructor(b: GraphBuilder, weights: ReadonlyMap<string, TensorData>, options: WeightLoaderOptions = {}) {
    this.#b = b;
    this.#weights = weights;
    this.#quantization = options.quantization;
  }

  /** Whether the model has a tensor of this name. */
  has(name: string): boolean {
    return this.#weights.has(name);
  }

  /**
   * Checks that the model has tensor `name` of shape `dims`.
   *
   * @throws {Error} When it is missing or misshapen (the message names the tensor and both shapes).
   */
  check(name: string, dims: number[]): void {
    this.#tensor(name, dims);
  }

  #tensor(name: string, dims: number[]): TensorData {
    const tensor = this.#weights.get(name);
    if (!tensor) throw new Error(`Cannot build the model graph: weight "${name}" is missing`);
    if (tensor.dims.length !== dims.length || tensor.dims.some((d, i) => d !== dims[i])) {
      throw new RangeError(
        `Cannot build the model graph: weight "${name}" has shape [${tensor.dims.join(", ")}], expected [${
          dims.join(", ")
        }]`,
      );
    }
    return tensor;
  }

  /** The weight as stored (`[...dims]`), as an initializer of the same name. */
  plain(name: string, dims: number[]): Value {
    const cached = this.#added.get(name);
    if (cached) return cached;
    const tensor = this.#tensor(name, dims);
    const value = this.#b.initializer(name, float32View(tensor, name), dims);
    this.#added.set(name, value);
    return value;
  }

  /** A linear weight stored `[out, in]`, transposed to `[in, out]` (initializer `<name>.T`). */
  transposed(name: string, out: number, inFeatures: number): Value {
    const key = `${name}.T`;
    const cached = this.#added.get(key);
    if (cached) return cached;
    const source = float32View(this.#tensor(name, [out, inFeatures]), name);
    const t = new Float32Array(out * inFeatures);
    for (let o = 0; o < out; o++) {
      const row = o * inFeatures;
      for (let i = 0; i < inFeatures; i++) t[i * out + o] = source[row + i];
    }
    const value = this.#b.initializer(key, t, [inFeatures, out]);
    this.#added.set(key, value);
    return value;
  }

  /**
   * The base weight of the linear layers `names` (module paths such as `model.layers.0.self_attn.q_proj`,
   * read from `<name>.weight`, or `<name>.qweight`/`.scales`/`.qzeros` when quantized), which share an
   * input of `inFeatures`, concatenated along the output axis in the given order; one name is one layer.
   * Cached per name list. When some of the layers are quantized and some are not, the quantized ones are
   * dequantized and the result is float.
   *
   * @param names Module paths, in output order.
   * @param outFeatures Each layer's output width.
   * @param inFeatures The shared input width.
   * @returns A float `[inFeatures, sum(outFeatures)]` initializer or MatMulNBits operands.
   * @throws {Error} When a weight is missing or misshapen (naming the tensor), or quantized weights come
   *   without {@linkcode WeightLoaderOptions.quantization}.
   */
  projection(names: readonly string[], outFeatures: readonly number[], inFeatures: number): ProjectionWeight {
    if (names.length === 0 || names.length !== outFeatures.length) {
      throw new RangeError(
        `Cannot build the model graph: ${names.length} projection names for ${outFeatures.length} output widths`,
      );
    }
    const key = names.join("+");
    const cached = this.#projections.get(key);
    if (cached) return cached;
    const quantized = names.map((name, i) => this.#nbits(name, outFeatures[i], inFeatures));
    const total = outFeatures.reduce((a, n) => a + n, 0);
    let weight: ProjectionWeight;
    if (quantized.every((q) => q !== undefined)) {
      weight = this.#nbitsProjection(key, quantized as NBitsWeight[], inFeatures, total);
    } else if (names.length === 1) {
      weight = {
        kind: "float",
        value: this.transposed(`${names[0]}.weight`, outFeatures[0], inFeatures),
        inFeatures,
        outFeatures: total,
      };
    } else {
      // [in, sum(out)]: column block j holds layer j's weight transposed
      const t = new Float32Array(inFeatures * total);
      let offset = 0;
      names.forEach((name, j) => {
        const out = outFeatures[j];
        const source = quantized[j] ? dequantizeNBits(quantized[j]!) : float32View(
          this.#tensor(`${name}.weight`, [out, inFeatures]),
          `${name}.weight`,
        );
        for (let o = 0; o < out; o++) {
          for (let i = 0; i < inFeatures; i++) t[i * total + offset + o] = source[o * inFeatures + i];
        }
        offset += out;
      });
      weight = {
        kind: "float",
        value: this.#b.initializer(`${key}.weight.T`, t, [inFeatures, total]),
        inFeatures,
        outFeatures: total,
      };
    }
    this.#projections.set(key, weight);
    return weight;
  }

  /** Layer `name`'s quantized weight, or undefined when it is stored as float. */
  #nbits(name: string, outFeatures: number, inFeatures: number): NBitsWeight | undefined {
    if (!this.#weights.has(`${name}.qweight`)) return undefined;
    if (!this.#quantization) {
      throw new Error(
        `Cannot build the model graph: weight "${name}.qweight" is quantized but no quantization settings were given (config.quantization)`,
      );
    }
    return readNBitsWeight(this.#weights, name, {
      outFeatures,
      inFeatures,
      quantization: this.#quantization,
      context: "Cannot build the model graph",
    });
  }

  /** MatMulNBits initializers for layers concatenated along N (rows). */
  #nbitsProjection(key: string, parts: NBitsWeight[], inFeatures: number, total: number): ProjectionWeight {
    const { bits, blockSize } = parts[0];
    const kBlocks = Math.ceil(inFeatures / blockSize);
    const concat = (arrays: Uint8Array[]) => {
      if (arrays.length === 1) return arrays[0];
      const out = new Uint8Array(arrays.reduce((a, x) => a + x.byteLength, 0));
      let at = 0;
      for (const x of arrays) {
        out.set(x, at);
        at += x.byteLength;
      }
      return out;
    };
    const bytesOf = (f: Float32Array) => new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
    const qweight = concat(parts.map((p) => p.qweight));
    const scales = concat(parts.map((p) => bytesOf(p.scales)));
    const b = this.#b.initializer(`${key}.qweight`, qweight, [
      total,
      kBlocks,
      qweight.byteLength / (total * kBlocks),
    ], "uint8");
    const scaleValue = this.#b.initializer(`${key}.scales`, scales, [total, kBlocks], "float32");
    const weight: ProjectionWeight = {
      kind: "nbits",
      bits,
      blockSize,
      b,
      scales: scaleValue,
      inFeatures,
      outFeatures: total,
    };
    if (parts[0].zeroPoints) {
      const zeros = concat(parts.map((p) => p.zeroPoints!));
      weight.zeroPoints = this.#b.initializer(
        `${key}.qzeros`,
        zeros,
        [total, zeros.byteLength / total],
        "uint8",
      );
    }
    return weight;
  }
}
