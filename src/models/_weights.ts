// Reading a model's Hugging Face-named float32 weights into a graph as initializers, with shape checks
// that name the tensor, and linear weights pre-transposed to [in, out] for MatMul.

import type { GraphBuilder, Value } from "../onnx/builder.ts";
import type { TensorData } from "../onnx/types.ts";

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

  constructor(b: GraphBuilder, weights: ReadonlyMap<string, TensorData>) {
    this.#b = b;
    this.#weights = weights;
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
}
