/**
 * Child process of the wasm-threads test: runs a MatMul on the wasm provider with the thread count from
 * `WEIGHTLORA_WASM_THREADS` and prints `{ threads, correct }` as JSON. onnxruntime resets
 * `env.wasm.numThreads` to 1 when it cannot start threads, so `threads` reports what actually ran.
 *
 * @module
 */

import { GraphBuilder } from "../../src/onnx/builder.ts";
import { hostTensor, OnnxSession, ort, toHost } from "../../src/runtime/mod.ts";

const n = 128;
const b = new GraphBuilder("matmul");
b.output(b.matmul(b.input("a", "float32", [n, n]), b.input("b", "float32", [n, n])), "c");
const a = Float32Array.from({ length: n * n }, (_, i) => ((i * 7) % 13) / 13 - 0.5);
const w = Float32Array.from({ length: n * n }, (_, i) => ((i * 5) % 11) / 11 - 0.5);
const session = await OnnxSession.create(b.toModel(), { ep: "wasm" });
const c = await toHost((await session.run({ a: hostTensor(a, [n, n]), b: hostTensor(w, [n, n]) })).c);
await session.release();
let correct = true;
for (let i = 0; i < n; i++) {
  for (let j = 0; j < n; j++) {
    let sum = 0;
    for (let k = 0; k < n; k++) sum += a[i * n + k] * w[k * n + j];
    if (Math.abs(sum - (c[i * n + j] as number)) > 1e-4 * (1 + Math.abs(sum))) correct = false;
  }
}
console.log(JSON.stringify({ threads: ort.env.wasm.numThreads, correct }));
