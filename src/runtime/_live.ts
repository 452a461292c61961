/**
 * Bookkeeping of live sessions and GPU-resident tensors, for clean disposal and leak checks.
 *
 * The WebGPU device of onnxruntime-web lives while at least one WebGPU session does: releasing the last
 * one destroys it, after which GPU tensors can neither be read nor disposed (disposing then corrupts the
 * wasm heap). So tensors still alive at that moment are disposed first.
 *
 * @module
 */

import type { ExecutionProvider } from "./execution_provider.ts";
import type { ort } from "./ort.ts";

const sessions: Record<ExecutionProvider, number> = { wasm: 0, webgpu: 0 };
const deviceTensors = new Set<ort.Tensor>();

/** Counts a new session. */
export function sessionOpened(ep: ExecutionProvider): void {
  sessions[ep]++;
}

/**
 * Counts a session about to be released; when it is the last WebGPU session, disposes the GPU tensors
 * still alive (they would become invalid with the device).
 *
 * @returns The number of GPU tensors disposed.
 */
export function sessionClosing(ep: ExecutionProvider): number {
  sessions[ep]--;
  if (ep !== "webgpu" || sessions.webgpu > 0) return 0;
  const orphans = [...deviceTensors];
  for (const tensor of orphans) tensor.dispose();
  return orphans.length;
}

/** Live sessions, all providers together. */
export function sessionTotal(): number {
  return sessions.wasm + sessions.webgpu;
}

/** Registers a GPU-resident output so that its `dispose()` is counted. */
export function trackDeviceTensor(tensor: ort.Tensor): void {
  if (deviceTensors.has(tensor)) return;
  deviceTensors.add(tensor);
  const dispose = tensor.dispose.bind(tensor);
  tensor.dispose = () => {
    deviceTensors.delete(tensor);
    dispose();
  };
}

/**
 * Whether a tensor is a GPU output not yet disposed. onnxruntime marks a GPU tensor as `cpu` once its data
 * was downloaded, yet it keeps the GPU buffer until `dispose()`: this set still knows it.
 */
export function isLiveDeviceTensor(tensor: ort.Tensor): boolean {
  return deviceTensors.has(tensor);
}

/** GPU-resident tensors returned by runs and not yet disposed. */
export function deviceTensorTotal(): number {
  return deviceTensors.size;
}
