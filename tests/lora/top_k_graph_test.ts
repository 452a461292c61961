// The top-K projection as graph nodes (topKMask, run on wasm) against the host rule projectTopK: random gates,
// ties (equal values, 0 and -0, all equal), negative gates, K = 1 and K = n.

import assert from "node:assert/strict";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { projectTopK } from "../../src/lora/top_k.ts";
import { topKMask } from "../../src/lora/top_k_graph.ts";
import { OnnxSession } from "../../src/runtime/session.ts";
import { ort } from "../../src/runtime/ort.ts";

/** Deterministic values in [0, 1). */
function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

async function maskSession(n: number): Promise<OnnxSession> {
  const b = new GraphBuilder(`top_k_${n}`);
  b.output(topKMask(b, b.input("g", "float32", [n]), b.input("k", "int64", [1])), "mask");
  return await OnnxSession.create(b.toModel(), { ep: "wasm" });
}

async function keptInGraph(session: OnnxSession, gates: Float32Array, k: number): Promise<number[]> {
  const { mask } = await session.run({
    g: new ort.Tensor("float32", gates, [gates.length]),
    k: new ort.Tensor("int64", new BigInt64Array([BigInt(k)]), [1]),
  });
  const values = Array.from(mask.data as Float32Array);
  assert.ok(values.every((v) => v === 0 || v === 1), `mask ${values}`);
  return values.flatMap((v, i) => (v === 1 ? [i] : []));
}

Deno.test("the graph's top-K mask keeps the host rule's sites: random gates, every K", async () => {
  const rand = seededRandom(11);
  const n = 35;
  const session = await maskSession(n);
  for (let trial = 0; trial < 4; trial++) {
    const gates = Float32Array.from({ length: n }, () => rand() * 4 - 2);
    for (let k = 1; k <= n; k++) {
      assert.deepEqual(
        await keptInGraph(session, gates, k),
        projectTopK(gates, k).kept,
        `trial ${trial}, K ${k}`,
      );
    }
  }
  await session.release();
});

Deno.test("ties go to the lower index in the graph as on the host (equal values, 0 and -0, all equal)", async () => {
  const cases: number[][] = [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [0, -0, 0, -0, 0, -0, 0, -0],
    [-1, 2, -1, 2, 0.5, 2, 0.5, -1],
    [0, 0, -1, -1, 0, 3, 3, 0],
    [-0.25, -0.25, -0.25, -3, -0.25, -0.25, -7, -0.25],
  ];
  const session = await maskSession(8);
  for (const values of cases) {
    const gates = Float32Array.from(values);
    for (let k = 1; k <= 8; k++) {
      assert.deepEqual(await keptInGraph(session, gates, k), projectTopK(gates, k).kept, `${values}, K ${k}`);
    }
  }
  await session.release();
});

Deno.test("the mask refuses values that are not a static float32 vector", () => {
  const b = new GraphBuilder("bad");
  const k = b.input("k", "int64", [1]);
  assert.throws(
    () => topKMask(b, b.input("g", "float32", [2, 3]), k),
    /expected float32 \[n\] with a static n/,
  );
  assert.throws(() => topKMask(b, b.input("h", "float32", ["n"]), k), /got float32 \[n\]/);
});
