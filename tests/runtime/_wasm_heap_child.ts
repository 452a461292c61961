/**
 * Child process of the wasm-heap test: builds one block of a Llama forward of stories260K's shape (random
 * weights) at a static `[4, 256]` batch and runs it `runs` times (first argument) on the wasm provider with
 * the thread count from `WEIGHTLORA_WASM_THREADS`, then prints `{ threads, runs, fullHeap, finite }` as JSON.
 * With two threads this graph's first run grows onnxruntime's heap while its pool works, which hung
 * `session.run` before onnxruntime's heap was created at its full size (`src/runtime/_wasm_heap.ts`).
 *
 * @module
 */

import { GraphBuilder } from "../../src/onnx/builder.ts";
import { llamaForward } from "../../src/models/llama/forward.ts";
import { randomLlamaWeights } from "../../src/models/random_weights.ts";
import { hostTensor, OnnxSession, ort, toHost } from "../../src/runtime/mod.ts";
import { fullWasmHeapCreated } from "../../src/runtime/_wasm_heap.ts";
import { STORIES260K_CONFIG } from "../_util/fixtures.ts";

const runs = Number(Deno.args[0] ?? 1);
const [batch, seq] = [4, 256];
const config = { ...STORIES260K_CONFIG, numHiddenLayers: 1 };
const b = new GraphBuilder("one_block");
const inputIds = b.input("input_ids", "int64", [batch, seq]);
const attentionMask = b.input("attention_mask", "int64", [batch, seq]);
const positions = Array.from({ length: batch * seq }, (_, i) => i % seq);
const positionIds = b.constant(positions, "int64", [batch, seq]);
const { logits } = llamaForward(b, { config, weights: randomLlamaWeights(config) }, {
  inputIds,
  positionIds,
  attentionMask,
});
b.output(logits, "logits");
const session = await OnnxSession.create(b.toModel(), { ep: "wasm", graphOptimizationLevel: "basic" });
const ids = BigInt64Array.from({ length: batch * seq }, (_, i) => BigInt((i * 7) % config.vocabSize));
const mask = new BigInt64Array(batch * seq).fill(1n);
let finite = true;
for (let i = 0; i < runs; i++) {
  const out = await session.run({
    input_ids: hostTensor(ids, [batch, seq]),
    attention_mask: hostTensor(mask, [batch, seq]),
  });
  const values = await toHost(out.logits);
  if (!(values as Float32Array).every(Number.isFinite)) finite = false;
}
await session.release();
console.log(
  JSON.stringify({ threads: ort.env.wasm.numThreads, runs, fullHeap: fullWasmHeapCreated(), finite }),
);
