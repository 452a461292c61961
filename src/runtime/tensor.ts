/**
 * Tensor helpers over onnxruntime-web: CPU tensors from typed arrays, host copies of device tensors,
 * and disposal of GPU-resident outputs.
 *
 * @module
 */

import { ort } from "./ort.ts";
import type { OrtTensor } from "./session.ts";
import { isLiveDeviceTensor } from "./_live.ts";

/** Typed arrays a CPU tensor may wrap, by onnxruntime dtype. */
export type HostData = Float32Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array | Float64Array;

/**
 * Makes a CPU tensor.
 *
 * @param data Element data.
 * @param dims Dimensions.
 * @returns An onnxruntime tensor, its dtype from the array type (`Uint16Array` holds float16 bits,
 * `Uint8Array` is uint8; build bool tensors with `new ort.Tensor("bool", data, dims)`).
 * @throws {Error} When the element count does not match the dimensions (onnxruntime's check).
 * @example
 * ```ts
 * import { hostTensor } from "./tensor.ts";
 * const t = hostTensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
 * console.assert(t.type === "float32" && t.location === "cpu");
 * ```
 */
export function hostTensor(data: HostData, dims: readonly number[]): OrtTensor {
  if (data instanceof Float32Array) return new ort.Tensor("float32", data, dims);
  if (data instanceof Int32Array) return new ort.Tensor("int32", data, dims);
  if (data instanceof BigInt64Array) return new ort.Tensor("int64", data, dims);
  if (data instanceof Float64Array) return new ort.Tensor("float64", data, dims);
  if (data instanceof Uint16Array) return new ort.Tensor("float16", data, dims);
  return new ort.Tensor("uint8", data, dims);
}

/**
 * Copies a tensor's data to the host (downloads GPU buffers; CPU tensors return their data).
 *
 * @param tensor The tensor.
 * @returns Its elements. onnxruntime then reports a GPU tensor's location as `cpu` (feeding it again
 * uploads the host copy), but the tensor keeps its GPU buffer until disposed: still pass it to
 * {@linkcode disposeTensors}.
 * @example
 * ```ts
 * import { hostTensor, toHost } from "./tensor.ts";
 * const data = await toHost(hostTensor(new Int32Array([7]), [1]));
 * console.assert(data[0] === 7);
 * ```
 */
export async function toHost(tensor: OrtTensor): Promise<HostData> {
  return (await tensor.getData()) as HostData;
}

/**
 * Whether a tensor lives in a GPU buffer.
 *
 * @param tensor The tensor.
 * @returns True for `gpu-buffer` tensors.
 */
export function isOnDevice(tensor: OrtTensor): boolean {
  return tensor.location === "gpu-buffer";
}

/**
 * Disposes GPU-resident tensors, including GPU outputs already copied to the host with
 * {@linkcode toHost} (CPU tensors are left to the garbage collector). Disposing twice is harmless.
 *
 * @param tensors Tensors to dispose; `undefined` entries are skipped.
 * @example
 * ```ts
 * import { disposeTensors } from "./tensor.ts";
 * import type { OrtTensor } from "./session.ts";
import { isLiveDeviceTensor } from "./_live.ts";
 * const outputs: Record<string, OrtTensor> = {};
 * disposeTensors(Object.values(outputs));
 * ```
 */
export function disposeTensors(tensors: Iterable<OrtTensor | undefined>): void {
  for (const t of tensors) {
    if (t && (t.location === "gpu-buffer" || isLiveDeviceTensor(t))) t.dispose();
  }
}
