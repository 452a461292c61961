// GPU-resident tensors made from host data on onnxruntime's own WebGPU device, for inputs fed at every
// step (adapter banks): uploaded once, fed many times, destroyed on dispose.

import { ortWebGpu } from "../runtime/ort.ts";
import type { OrtTensor } from "../runtime/session.ts";

/**
 * Uploads float32 data into a GPU buffer on onnxruntime's device (call after a WebGPU session exists).
 *
 * @param data Elements (copied).
 * @param dims Dimensions.
 * @returns A `gpu-buffer` tensor; `dispose()` destroys the buffer.
 */
export async function uploadFloat32(data: Float32Array, dims: readonly number[]): Promise<OrtTensor> {
  const device = await ortWebGpu.env.webgpu.device;
  const size = Math.max(16, Math.ceil(data.byteLength / 16) * 16);
  const buffer = device.createBuffer({
    size,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  const source = data.buffer instanceof ArrayBuffer ? data : data.slice();
  device.queue.writeBuffer(buffer, 0, source as Float32Array<ArrayBuffer>);
  return ortWebGpu.Tensor.fromGpuBuffer(buffer, {
    dataType: "float32",
    dims,
    dispose: () => buffer.destroy(),
  }) as unknown as OrtTensor;
}
