/**
 * Measuring probes for the runtime tests, installed when this module is first imported (before any
 * onnxruntime session exists): the size of every wasm heap, live GPU buffers, and GPU-to-host copies.
 * They wrap the standard constructors and prototypes of this isolate only.
 *
 * @module
 */

const heaps: WebAssembly.Memory[] = [];
const NativeMemory = WebAssembly.Memory;
(WebAssembly as { Memory: typeof WebAssembly.Memory }).Memory = class extends NativeMemory {
  constructor(descriptor: WebAssembly.MemoryDescriptor) {
    super(descriptor);
    heaps.push(this);
  }
};

/**
 * Bytes of all wasm memories created since this module loaded (onnxruntime's heaps: they grow, never
 * shrink, and freed blocks are reused, so growth across many sessions means a leak).
 *
 * @returns The total size in bytes.
 */
export function wasmHeapBytes(): number {
  return heaps.reduce((sum, memory) => sum + memory.buffer.byteLength, 0);
}

const liveBuffers = new Map<GPUBuffer, GPUDevice>();
let mappings = 0;

if (typeof GPUDevice !== "undefined") {
  const createBuffer = GPUDevice.prototype.createBuffer;
  GPUDevice.prototype.createBuffer = function (this: GPUDevice, descriptor: GPUBufferDescriptor) {
    const buffer = createBuffer.call(this, descriptor);
    liveBuffers.set(buffer, this);
    return buffer;
  };
  const destroyBuffer = GPUBuffer.prototype.destroy;
  GPUBuffer.prototype.destroy = function (this: GPUBuffer) {
    liveBuffers.delete(this);
    return destroyBuffer.call(this);
  };
  const destroyDevice = GPUDevice.prototype.destroy;
  GPUDevice.prototype.destroy = function (this: GPUDevice) {
    for (const [buffer, device] of liveBuffers) if (device === this) liveBuffers.delete(buffer);
    return destroyDevice.call(this);
  };
  const mapAsync = GPUBuffer.prototype.mapAsync;
  GPUBuffer.prototype.mapAsync = function (this: GPUBuffer, ...args: Parameters<GPUBuffer["mapAsync"]>) {
    mappings++;
    return mapAsync.apply(this, args);
  };
}

/**
 * GPU buffers created and neither destroyed nor freed with their device.
 *
 * @returns The count of live buffers.
 */
export function liveGpuBufferCount(): number {
  return liveBuffers.size;
}

/**
 * Calls of `GPUBuffer.mapAsync` so far: every copy from the GPU to the host maps a buffer.
 *
 * @returns The number of mappings.
 */
export function gpuMappingCount(): number {
  return mappings;
}
