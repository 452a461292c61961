import assert from "node:assert/strict";
import { GraphBuilder } from "../../src/onnx/builder.ts";
import { liveDeviceTensorCount, OnnxSession } from "../../src/runtime/session.ts";
import { disposeTensors, hostTensor, isOnDevice, toHost } from "../../src/runtime/tensor.ts";
import { requireWebGpu } from "../_util/fixtures.ts";

Deno.test("hostTensor: the dtype follows the typed array", () => {
  const cases: [Parameters<typeof hostTensor>[0], string][] = [
    [new Float32Array(6), "float32"],
    [new Float64Array(6), "float64"],
    [new Int32Array(6), "int32"],
    [new BigInt64Array(6), "int64"],
    [new Uint16Array(6), "float16"],
    [new Uint8Array(6), "uint8"],
  ];
  for (const [data, dtype] of cases) {
    const tensor = hostTensor(data, [2, 3]);
    assert.equal(tensor.type, dtype);
    assert.deepEqual(tensor.dims, [2, 3]);
    assert.equal(tensor.location, "cpu");
    assert.equal(isOnDevice(tensor), false);
  }
});

Deno.test("hostTensor: a size that does not match the dimensions is rejected", () => {
  assert.throws(() => hostTensor(new Float32Array(5), [2, 3]), {
    message: "Tensor's size(6) does not match data length(5).",
  });
});

Deno.test("toHost and disposeTensors: CPU tensors are returned as they are and left intact", async () => {
  const data = Float32Array.from([1, 2, 3]);
  const tensor = hostTensor(data, [3]);
  assert.equal(await toHost(tensor), data);
  disposeTensors([tensor, undefined]);
  assert.equal(tensor.location, "cpu");
  assert.deepEqual(await toHost(tensor), Float32Array.from([1, 2, 3]));
});

Deno.test({
  name: "disposeTensors: frees GPU outputs, also after toHost copied them",
  ignore: !(await requireWebGpu("disposeTensors: frees GPU outputs")),
  fn: async () => {
    const b = new GraphBuilder("double");
    b.output(b.mul(b.input("x", "float32", [3]), 2), "y");
    const session = await OnnxSession.create(b.toModel(), { ep: "webgpu", keepOnDevice: true });
    const x = hostTensor(Float32Array.from([1, 2, 3]), [3]);
    const { y: kept } = await session.run({ x });
    const { y: copied } = await session.run({ x });
    assert.equal(isOnDevice(kept), true);
    assert.deepEqual(await toHost(copied), Float32Array.from([2, 4, 6]));
    assert.equal(copied.location, "cpu"); // onnxruntime's view after a download ...
    assert.equal(liveDeviceTensorCount(), 2); // ... yet the GPU buffer is still held
    disposeTensors([kept, copied, x]);
    assert.equal(liveDeviceTensorCount(), 0);
    assert.equal(kept.location, "none");
    assert.equal(x.location, "cpu");
    await session.release();
  },
});
