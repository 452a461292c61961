/**
 * Creates onnxruntime-web's threaded wasm heap at its full size, so that it never grows while its thread
 * pool works (see {@linkcode withFullWasmHeap}).
 *
 * Why: onnxruntime-web's threaded build keeps its heap in a shared `WebAssembly.Memory` (16 MiB at first,
 * grown by `malloc` up to 4 GiB) that its pool threads, Deno workers, use too. When the heap grows during a
 * `session.run` whose kernels are split over the pool (a large step's first run, say), V8 tells the other
 * threads of the new size only later, and a pool thread that touches the new pages first dies with
 * `RuntimeError: memory access out of bounds`. Its error is posted to the main thread, which never reads it:
 * the main thread waits in onnxruntime's pool for work the dead thread will not finish, and `session.run`
 * never returns. (Seen on Deno 2.9.6, V8 15.0, onnxruntime-web 1.30: the pool thread's OS thread is gone
 * while the main thread spins; a heap created at its full size removes the hang.) A heap that starts at its
 * full size never grows; its pages stay unbacked until written, so the resident memory is unchanged.
 *
 * @module
 */

/** The largest wasm32 heap emscripten grows to, in 64 KiB pages (4 GiB − 64 KiB). */
export const FULL_HEAP_PAGES = 65535;

/** The declared maximum of onnxruntime-web's heap (4 GiB), which tells it from other wasm memories. */
const ORT_HEAP_MAXIMUM_PAGES = 65536;

let heapCreated = false;
let creating: Promise<void> | undefined;

/**
 * Whether a heap was created at its full size by {@linkcode withFullWasmHeap} in this thread.
 *
 * @returns True once onnxruntime's shared heap was created at {@linkcode FULL_HEAP_PAGES} pages.
 */
export function fullWasmHeapCreated(): boolean {
  return heapCreated;
}

/**
 * Runs `create` (the first session of onnxruntime's threaded wasm build, which creates its heap) while
 * `WebAssembly.Memory` makes every shared memory declared with a 4 GiB maximum start at
 * {@linkcode FULL_HEAP_PAGES} pages. Once a heap was made so, later calls just run `create`; concurrent
 * first calls wait for the one in flight. A WebGPU session created in the same window gets a full-size
 * heap too (harmless: unwritten pages cost no memory).
 *
 * @param create Creates the session.
 * @returns What `create` returns.
 * @throws {unknown} What `create` throws.
 */
export async function withFullWasmHeap<T>(create: () => Promise<T>): Promise<T> {
  while (!heapCreated && creating) await creating;
  if (heapCreated) return await create();
  const native = WebAssembly.Memory;
  class FullHeap extends native {
    constructor(descriptor: WebAssembly.MemoryDescriptor) {
      if (
        descriptor.shared && descriptor.maximum === ORT_HEAP_MAXIMUM_PAGES &&
        descriptor.initial < FULL_HEAP_PAGES
      ) {
        descriptor = { ...descriptor, initial: FULL_HEAP_PAGES };
        heapCreated = true;
      }
      super(descriptor);
    }
  }
  (WebAssembly as { Memory: typeof WebAssembly.Memory }).Memory = FullHeap;
  const result = create();
  creating = result.then(() => {}, () => {}).finally(() => {
    if (WebAssembly.Memory === FullHeap) {
      (WebAssembly as { Memory: typeof WebAssembly.Memory }).Memory = native;
    }
    creating = undefined;
  });
  return await result;
}
