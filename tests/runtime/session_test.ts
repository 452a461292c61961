import { gpuMappingCount, liveGpuBufferCount, wasmHeapBytes } from "./_probes.ts";
import assert from "node:assert/strict";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { encodeModel } from "../../src/onnx/proto.ts";
import type { Model } from "../../src/onnx/types.ts";
import type { ExecutionProvider } from "../../src/runtime/execution_provider.ts";
import { liveDeviceTensorCount, liveSessionCount, OnnxSession } from "../../src/runtime/session.ts";
import { disposeTensors, hostTensor, toHost } from "../../src/runtime/tensor.ts";
import { requireWebGpu } from "../_util/fixtures.ts";

const webGpu = await requireWebGpu("the WebGPU cases of tests/runtime/session_test.ts");
const providers: ExecutionProvider[] = ["wasm", "webgpu"];
const repoRoot = new URL("../../", import.meta.url);

/** `next = state * 0.5 + 1` over a [8] state. */
function halveAndAddOne(): Model {
  const b = new GraphBuilder("halve_add_one");
  const state = b.input("state", "float32", [8]);
  b.output(b.add(b.mul(state, 0.5), 1), "next");
  return b.toModel();
}

/** `y = ReduceSum(x + w)` with a 1 MiB initializer `w`, so that a leaked session shows in memory. */
function weightedSum(): Uint8Array {
  const n = 1 << 18;
  const b = new GraphBuilder("weighted_sum");
  const x = b.input("x", "float32", [n]);
  const w = b.initializer("w", new Float32Array(n).fill(0.25), [n]);
  b.output(b.reduceSum(b.add(x, w), undefined, false), "y");
  return encodeModel(b.toModel()).model;
}

function negate(): Model {
  const b = new GraphBuilder("negate");
  b.output(b.neg(b.input("x", "float32", [2])), "y");
  return b.toModel();
}

/** The state loop on the host, in float32 like the device. */
function hostLoop(initial: Float32Array, steps: number): Float32Array {
  const x = Float32Array.from(initial);
  for (let step = 0; step < steps; step++) {
    for (let i = 0; i < x.length; i++) x[i] = Math.fround(Math.fround(x[i] * 0.5) + 1);
  }
  return x;
}

for (const ep of providers) {
  const ignore = ep === "webgpu" && !webGpu;

  Deno.test({
    name: `${ep}: a 20-step state loop fed back from its own outputs equals the host computation`,
    ignore,
    fn: async () => {
      const initial = Float32Array.from([-7.25, -3, -1, 0, 0.125, 2, 5.5, 1e6]);
      const session = await OnnxSession.create(halveAndAddOne(), { ep, keepOnDevice: true });
      assert.equal(session.ep, ep);
      let state = hostTensor(initial, [8]);
      const mappingsBefore = gpuMappingCount();
      for (let step = 0; step < 20; step++) {
        const { next } = await session.run({ state });
        assert.equal(next.location, ep === "webgpu" ? "gpu-buffer" : "cpu", `location at step ${step}`);
        disposeTensors([state]);
        state = next;
      }
      // No GPU-to-host copy happened during the loop; the state never left the device.
      assert.equal(gpuMappingCount() - mappingsBefore, 0);
      assert.equal(liveDeviceTensorCount(), ep === "webgpu" ? 1 : 0);
      const result = await toHost(state);
      disposeTensors([state]);
      assert.equal(liveDeviceTensorCount(), 0);
      assert.deepEqual(result, hostLoop(initial, 20));
      await session.release();
      assert.equal(liveSessionCount(), 0);
    },
  });

  Deno.test({
    name: `${ep}: creating and releasing ${ep === "wasm" ? 200 : 20} sessions leaves nothing behind`,
    ignore,
    fn: async () => {
      const count = ep === "wasm" ? 200 : 20;
      const bytes = weightedSum();
      const x = hostTensor(new Float32Array(1 << 18).fill(1), [1 << 18]);
      const cycle = async (times: number) => {
        for (let i = 0; i < times; i++) {
          const session = await OnnxSession.create(bytes, { ep, keepOnDevice: true, label: "weighted_sum" });
          const { y } = await session.run({ x });
          if (i === 0) assert.equal((await toHost(y))[0], (1 << 18) * 1.25);
          disposeTensors([y]);
          await session.release();
        }
      };
      await cycle(5); // the heaps reach their working size
      const heapBefore = wasmHeapBytes();
      const buffersBefore = liveGpuBufferCount();
      await cycle(count);
      assert.equal(liveSessionCount(), 0);
      assert.equal(liveDeviceTensorCount(), 0);
      // Each session holds 1 MiB of weights: a leak would grow the heaps by `count` MiB.
      const growth = wasmHeapBytes() - heapBefore;
      assert.ok(growth <= 16 * 2 ** 20, `wasm heaps grew by ${growth} bytes over ${count} sessions`);
      assert.ok(
        liveGpuBufferCount() <= buffersBefore,
        `GPU buffers went from ${buffersBefore} to ${liveGpuBufferCount()}`,
      );
    },
  });

  Deno.test({
    name: `${ep}: running a released session fails clearly`,
    ignore,
    fn: async () => {
      const session = await OnnxSession.create(negate(), { ep });
      await session.release();
      await session.release(); // a second release is harmless
      assert.equal(session.released, true);
      await assert.rejects(
        () => session.run({ x: hostTensor(new Float32Array([1, 2]), [2]) }),
        { message: 'Cannot run model "negate": the session was released' },
      );
      assert.equal(liveSessionCount(), 0);
    },
  });

  Deno.test({
    name: `${ep}: a model onnxruntime rejects fails clearly and leaks no session`,
    ignore,
    fn: async () => {
      await assert.rejects(
        () => OnnxSession.create(new Uint8Array([8, 1, 255, 255, 255]), { ep, label: "broken.onnx" }),
        (error: Error) => {
          assert.match(
            error.message,
            new RegExp(`^Cannot create an onnxruntime session \\(${ep}\\) for broken\\.onnx: .+`),
          );
          return true;
        },
      );
      const model = negate();
      model.graph.nodes = model.graph.nodes.map((node) => ({ ...node, opType: "NoSuchOp" }));
      await assert.rejects(
        () => OnnxSession.create(model, { ep }),
        (error: Error) => {
          assert.match(
            error.message,
            new RegExp(`^Cannot create an onnxruntime session \\(${ep}\\) for model "negate": `),
          );
          assert.match(error.message, /NoSuchOp/);
          return true;
        },
      );
      await assert.rejects(
        () => OnnxSession.create(negate(), { ep, keepOnDevice: ["y", "z"] }),
        {
          message:
            'Cannot create a session for model "negate": keepOnDevice names unknown output "z" (outputs: y)',
        },
      );
      assert.equal(liveSessionCount(), 0);
    },
  });
}

Deno.test({
  name: "webgpu: a GPU tensor fed to a wasm session fails clearly",
  ignore: !webGpu,
  fn: async () => {
    const gpu = await OnnxSession.create(negate(), { ep: "webgpu", keepOnDevice: true });
    const cpu = await OnnxSession.create(negate(), { ep: "wasm" });
    const { y } = await gpu.run({ x: hostTensor(new Float32Array([1, 2]), [2]) });
    await assert.rejects(() => cpu.run({ x: y }), {
      message: 'Cannot run model "negate" on wasm: input "x" is a gpu-buffer tensor, not a CPU tensor ' +
        "(copy it with toHost first)",
    });
    const { y: back } = await cpu.run({ x: hostTensor(await toHost(y) as Float32Array, [2]) });
    assert.deepEqual(await toHost(back), Float32Array.from([1, 2]));
    disposeTensors([y]);
    await gpu.release();
    await cpu.release();
  },
});

Deno.test({
  name: "webgpu: a zero-sized input fails with a hint, while wasm accepts it",
  ignore: !webGpu,
  fn: async () => {
    // A rank-0 LoRA adapter: x [2, 4] @ A [4, r] @ B [r, 3] with r = 0.
    const b = new GraphBuilder("lora_rank0");
    const x = b.input("x", "float32", [2, 4]);
    const a = b.input("lora_a", "float32", [4, "r"]);
    const bb = b.input("lora_b", "float32", ["r", 3]);
    b.output(b.matmul(b.matmul(x, a), bb), "y");
    const feeds = {
      x: hostTensor(new Float32Array(8).fill(1), [2, 4]),
      lora_a: hostTensor(new Float32Array(0), [4, 0]),
      lora_b: hostTensor(new Float32Array(0), [0, 3]),
    };
    const cpu = await OnnxSession.create(b.toModel(), { ep: "wasm" });
    assert.deepEqual(await toHost((await cpu.run(feeds)).y), new Float32Array(6));
    await cpu.release();
    const gpu = await OnnxSession.create(b.toModel(), { ep: "webgpu" });
    await assert.rejects(() => gpu.run(feeds), (error: Error) => {
      assert.match(error.message, /^Cannot run model "lora_rank0" on webgpu: /);
      assert.match(error.message, /input "lora_a" has the zero-sized shape \[4, 0\]/);
      return true;
    });
    await gpu.release();
  },
});

Deno.test({
  name: "webgpu: device tensors outlive their session while another lives; the last release disposes them",
  ignore: !webGpu,
  fn: async () => {
    const first = await OnnxSession.create(halveAndAddOne(), { ep: "webgpu", keepOnDevice: true });
    const second = await OnnxSession.create(halveAndAddOne(), { ep: "webgpu", keepOnDevice: true });
    const { next: carried } = await first.run({ state: hostTensor(new Float32Array(8).fill(2), [8]) });
    const { next: orphan } = await first.run({ state: hostTensor(new Float32Array(8).fill(4), [8]) });
    await first.release();
    const { next } = await second.run({ state: carried }); // 2 → 2 → 2
    assert.deepEqual(await toHost(next), new Float32Array(8).fill(2));
    disposeTensors([carried, next]);
    assert.equal(liveDeviceTensorCount(), 1);
    await second.release();
    assert.equal(liveDeviceTensorCount(), 0);
    assert.equal(orphan.location, "none");
    orphan.dispose(); // disposing again is harmless
  },
});

Deno.test("wasm threads: WEIGHTLORA_WASM_THREADS=2 runs two threads; a bad value fails clearly", async () => {
  const child = new URL("tests/runtime/_wasm_threads_child.ts", repoRoot).pathname;
  const run = async (threads: string) => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--allow-read", "--allow-env", child],
      cwd: repoRoot,
      env: { WEIGHTLORA_WASM_THREADS: threads },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder();
    return { code: output.code, stdout: text.decode(output.stdout), stderr: text.decode(output.stderr) };
  };
  const two = await run("2");
  assert.equal(two.code, 0, two.stderr);
  assert.deepEqual(JSON.parse(two.stdout), { threads: 2, correct: true });
  const bad = await run("two");
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /WEIGHTLORA_WASM_THREADS must be a positive integer, got "two"/);
});

Deno.test("wasm threads: a run that grows the heap while two threads work finishes (it hung before)", async () => {
  // one block of a Llama forward at [4, 256]: its first run grows onnxruntime's heap with the pool busy, which
  // killed the pool thread and hung session.run in most processes until the heap was created at full size
  const child = new URL("tests/runtime/_wasm_heap_child.ts", repoRoot).pathname;
  for (let attempt = 0; attempt < 2; attempt++) {
    const command = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--allow-read", "--allow-env", child, "2"],
      cwd: repoRoot,
      env: { WEIGHTLORA_WASM_THREADS: "2" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => command.kill("SIGKILL"), 90_000);
    const output = await command.output();
    clearTimeout(timer);
    const text = new TextDecoder();
    assert.equal(
      output.code,
      0,
      `the child hung or failed (exit ${output.code}): ${text.decode(output.stderr)}`,
    );
    assert.deepEqual(JSON.parse(text.decode(output.stdout)), {
      threads: 2,
      runs: 2,
      fullHeap: true,
      finite: true,
    });
  }
});

Deno.test("a graph whose weights pass externalDataAbove is handed over as external data, same outputs", async () => {
  const n = 1 << 12;
  const b = new GraphBuilder("big_weights");
  const x = b.input("x", "float32", [n]);
  const w = b.initializer("w", Float32Array.from({ length: n }, (_, i) => (i % 7) * 0.125), [n]);
  b.output(b.reduceSum(b.mul(x, w), undefined, false), "y");
  const model = b.toModel();
  const feeds = { x: hostTensor(Float32Array.from({ length: n }, (_, i) => (i % 5) - 1), [n]) };
  const results: number[] = [];
  for (const externalDataAbove of [undefined, 1024]) {
    const session = await OnnxSession.create(model, { ep: "wasm", externalDataAbove });
    results.push((await toHost((await session.run(feeds)).y))[0] as number);
    await session.release();
  }
  assert.equal(results[0], results[1]);
  assert.notEqual(results[0], 0);
});
