/**
 * Tensor helpers over onnxruntime-web: CPU tensors from typed arrays, host copies of device tensors,
 * and disposal of GPU-resident outputs.
 *
 * @module
 */

import { ort } from "./ort.ts";
import type { OrtTensor } from "./session.ts";

/** Typed arrays a CPU tensor may wrap, by onnxruntime dtype. */
export type HostData = Float32Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array | Float64Array;

/**
 * Makes a CPU tensor.
 *
 * @param data Element data.
 * @param dims Dimensions.
 * @returns An onnxruntime tensor (dtype from the array type; `Uint8Array` is taken as bool only when asked).
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
 * @returns Its elements.
 */
export async function toHost(tensor: OrtTensor): Promise<HostData> {
  return (await tensor.getData()) as HostData;
}

/** Whether a tensor lives in a GPU buffer. */
export function isOnDevice(tensor: OrtTensor): boolean {
  return tensor.location === "gpu-buffer";
}

/**
 * Disposes GPU-resident tensors (CPU tensors are left to the garbage collector).
 *
 * @param tensors Tensors to dispose; `undefined` entries are skipped.
 */
export function disposeTensors(tensors: Iterable<OrtTensor | undefined>): void {
  for (const t of tensors) if (t && t.location === "gpu-buffer") t.dispose();
}
