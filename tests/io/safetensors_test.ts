import assert from "node:assert/strict";
import { DTYPE_BYTES, type TensorData } from "../../src/onnx/types.ts";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../../src/io/half.ts";
import {
  encodeSafetensors,
  parseSafetensors,
  readSafetensors,
  SAFETENSORS_MAX_HEADER_BYTES,
  writeSafetensors,
} from "../../src/io/safetensors.ts";
import { withTempDir } from "./_helpers.ts";

function f32(name: string, dims: number[], values: number[]): TensorData {
  return { name, dtype: "float32", dims, data: new Uint8Array(new Float32Array(values).buffer) };
}

/** Builds a file from a raw header object and data bytes. */
function rawFile(header: unknown, data: Uint8Array, headerLength?: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength ?? json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

Deno.test("encodeSafetensors matches the reference implementation's bytes", () => {
  // safetensors/src/tensor.rs test_serialization: {"attn.0": F32 [1,2,3] = 0..5}.
  const out = encodeSafetensors([f32("attn.0", [1, 2, 3], [0, 1, 2, 3, 4, 5])]);
  const expected = [
    64,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    123,
    34,
    97,
    116,
    116,
    110,
    46,
    48,
    34,
    58,
    123,
    34,
    100,
    116,
    121,
    112,
    101,
    34,
    58,
    34,
    70,
    51,
    50,
    34,
    44,
    34,
    115,
    104,
    97,
    112,
    101,
    34,
    58,
    91,
    49,
    44,
    50,
    44,
    51,
    93,
    44,
    34,
    100,
    97,
    116,
    97,
    95,
    111,
    102,
    102,
    115,
    101,
    116,
    115,
    34,
    58,
    91,
    48,
    44,
    50,
    52,
    93,
    125,
    125,
    0,
    0,
    0,
    0,
    0,
    0,
    128,
    63,
    0,
    0,
    0,
    64,
    0,
    0,
    64,
    64,
    0,
    0,
    128,
    64,
    0,
    0,
    160,
    64,
  ];
  assert.deepEqual(Array.from(out), expected);
  // test_serialization_forced_alignement: a shorter name forces 7 spaces of padding.
  const padded = encodeSafetensors([f32("attn0", [1, 1, 2, 3], [0, 1, 2, 3, 4, 5])]);
  assert.equal(new DataView(padded.buffer).getUint32(0, true), 72);
  assert.deepEqual(Array.from(padded.subarray(8 + 65, 8 + 72)), [32, 32, 32, 32, 32, 32, 32]);
  // test_empty with metadata {"framework": "pt"}.
  assert.deepEqual(
    new TextDecoder().decode(encodeSafetensors([], { metadata: { framework: "pt" } }).subarray(8)),
    '{"__metadata__":{"framework":"pt"}}     ',
  );
});

Deno.test("round trip of F32, F16, BF16, I64, I32, U8 and BOOL with metadata, zero-copy", () => {
  const values = new Float32Array([0.5, -1.25, 3, 65504, 1e-3, -0]);
  const tensors: TensorData[] = [
    { name: "f32", dtype: "float32", dims: [2, 3], data: new Uint8Array(values.buffer) },
    { name: "f16", dtype: "float16", dims: [3, 2], data: f32ToF16(values) },
    { name: "bf16", dtype: "bfloat16", dims: [6], data: f32ToBf16(values) },
    {
      name: "i64",
      dtype: "int64",
      dims: [2],
      data: new Uint8Array(new BigInt64Array([-1n, 1n << 40n]).buffer),
    },
    { name: "i32", dtype: "int32", dims: [1, 1], data: new Uint8Array(new Int32Array([-7]).buffer) },
    { name: "u8", dtype: "uint8", dims: [3], data: new Uint8Array([1, 2, 255]) },
    { name: "mask", dtype: "bool", dims: [2], data: new Uint8Array([1, 0]) },
    { name: "scalar", dtype: "float32", dims: [], data: new Uint8Array(new Float32Array([9]).buffer) },
    { name: "empty", dtype: "float32", dims: [0, 4], data: new Uint8Array(0) },
  ];
  const bytes = encodeSafetensors(tensors, { metadata: { format: "pt", b: "2" } });
  assert.equal(new DataView(bytes.buffer).getUint32(0, true) % 8, 0);
  const file = parseSafetensors(bytes, { file: "x.safetensors" });
  assert.deepEqual(file.metadata, { b: "2", format: "pt" });
  // File order: descending alignment (I64, F32, I32, BF16, F16, U8, BOOL), then name.
  assert.deepEqual([...file.tensors.keys()], [
    "i64",
    "empty",
    "f32",
    "scalar",
    "i32",
    "bf16",
    "f16",
    "u8",
    "mask",
  ]);
  for (const t of tensors) {
    const got = file.tensors.get(t.name)!;
    assert.deepEqual([got.dtype, got.dims, Array.from(got.data)], [t.dtype, t.dims, Array.from(t.data)]);
    assert.equal(got.data.buffer, bytes.buffer, "views share the file's buffer");
    assert.equal(got.data.byteOffset % DTYPE_BYTES[got.dtype], 0, `${t.name} is aligned to its element size`);
  }
  const f16 = Array.from(f16ToF32(file.tensors.get("f16")!.data));
  assert.deepEqual(f16.slice(0, 4), [0.5, -1.25, 3, 65504]);
  assert.ok(Math.abs(f16[4] - 1e-3) < 1e-6 && Object.is(f16[5], -0));
  assert.deepEqual(Array.from(bf16ToF32(file.tensors.get("bf16")!.data)).slice(0, 3), [0.5, -1.25, 3]);
  // Deterministic: the same tensors in another order give the same bytes.
  assert.deepEqual(encodeSafetensors([...tensors].reverse(), { metadata: { b: "2", format: "pt" } }), bytes);
});

Deno.test("writeSafetensors writes atomically and readSafetensors reads it back", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/w.safetensors`;
    await writeSafetensors(path, [f32("w", [2], [1, 2])], { metadata: { format: "pt" } });
    const entries = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.deepEqual(entries, ["w.safetensors"], "no temporary file is left");
    const { tensors } = await readSafetensors(path);
    assert.deepEqual(Array.from(new Float32Array(tensors.get("w")!.data.slice().buffer)), [1, 2]);
    await assert.rejects(
      readSafetensors(`${dir}/missing.safetensors`),
      /Cannot read safetensors file .*missing\.safetensors/,
    );
    await assert.rejects(
      writeSafetensors(`${dir}/no/such/dir/x.safetensors`, [f32("w", [1], [1])]),
      /Cannot write .*x\.safetensors/,
    );
  });
});

Deno.test("parseSafetensors rejects malformed files, naming the file and tensor", () => {
  const file = { file: "bad.safetensors" };
  const data8 = new Uint8Array(8);
  const ok = { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
  assert.doesNotThrow(() => parseSafetensors(rawFile(ok, data8), file));
  const cases: [string, Uint8Array, RegExp][] = [
    ["too short", new Uint8Array(5), /bad\.safetensors: it has 5 bytes, fewer than the 8-byte header length/],
    [
      "oversized header length",
      rawFile(ok, data8, SAFETENSORS_MAX_HEADER_BYTES + 1),
      /bad\.safetensors: header length 100000001 exceeds the 100000000-byte limit/,
    ],
    [
      "header past the end",
      rawFile(ok, data8, 4000),
      /bad\.safetensors: header length 4000 runs past the end of the file/,
    ],
    [
      "truncated data",
      rawFile(ok, new Uint8Array(4)),
      /tensor "a" ends at data offset 8, past the end of the data \(4 bytes\); the file is truncated/,
    ],
    ["extra data", rawFile(ok, new Uint8Array(12)), /the tensors cover 8 data bytes but the file holds 12/],
    [
      "unknown dtype",
      rawFile({ a: { dtype: "F8_E4M3", shape: [8], data_offsets: [0, 8] } }, data8),
      /bad\.safetensors: tensor "a" has unsupported dtype "F8_E4M3"/,
    ],
    [
      "shape × dtype ≠ bytes",
      rawFile({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, data8),
      /tensor "a" has 8 bytes but shape \[3\] of F32 needs 12/,
    ],
    [
      "gap between tensors",
      rawFile({
        a: { dtype: "U8", shape: [2], data_offsets: [0, 2] },
        b: { dtype: "U8", shape: [2], data_offsets: [4, 6] },
      }, data8.subarray(0, 6)),
      /tensor "b" starts at data offset 4, expected 2/,
    ],
    [
      "overlapping tensors",
      rawFile({
        a: { dtype: "U8", shape: [4], data_offsets: [0, 4] },
        b: { dtype: "U8", shape: [4], data_offsets: [2, 6] },
      }, data8.subarray(0, 6)),
      /tensor "b" starts at data offset 2, expected 4/,
    ],
    [
      "negative shape",
      rawFile({ a: { dtype: "U8", shape: [-1], data_offsets: [0, 0] } }, new Uint8Array(0)),
      /tensor "a" has invalid shape \[-1\]/,
    ],
    [
      "bad offsets",
      rawFile({ a: { dtype: "U8", shape: [1], data_offsets: [1] } }, new Uint8Array(1)),
      /tensor "a" has invalid data_offsets \[1\]/,
    ],
    ["not JSON", rawFile(ok, data8).fill(0x41, 8, 12), /bad\.safetensors: the header is not valid JSON/],
    ["JSON array", rawFile([1], new Uint8Array(0)), /the header is not a JSON object/],
    [
      "bad metadata",
      rawFile({ __metadata__: { n: 1 } }, new Uint8Array(0)),
      /"__metadata__\.n" is 1, not a string/,
    ],
  ];
  for (const [what, bytes, pattern] of cases) {
    assert.throws(() => parseSafetensors(bytes, file), pattern, what);
  }
});

Deno.test("encodeSafetensors refuses duplicate names, unsupported dtypes and wrong byte lengths", () => {
  assert.throws(
    () => encodeSafetensors([f32("a", [1], [1]), f32("a", [1], [2])]),
    /tensor name "a" appears twice/,
  );
  assert.throws(
    () => encodeSafetensors([{ name: "s", dtype: "string", dims: [1], data: new Uint8Array(0) }]),
    /tensor "s" has dtype string, which safetensors cannot hold/,
  );
  assert.throws(
    () => encodeSafetensors([f32("a", [3], [1, 2])]),
    /tensor "a" has 8 bytes but shape \[3\] of F32 needs 12/,
  );
});
