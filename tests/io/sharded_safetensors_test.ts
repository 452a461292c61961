import assert from "node:assert/strict";
import type { TensorData } from "../../src/onnx/types.ts";
import {
  readSafetensorsIndex,
  readShardedSafetensors,
  writeShardedSafetensors,
} from "../../src/io/sharded_safetensors.ts";
import { writeSafetensors } from "../../src/io/safetensors.ts";
import { withTempDir, writeJson } from "./_helpers.ts";

function u8(name: string, values: number[]): TensorData {
  return { name, dtype: "uint8", dims: [values.length], data: new Uint8Array(values) };
}

Deno.test("writeShardedSafetensors splits by size and readShardedSafetensors merges the shards", async () => {
  await withTempDir(async (dir) => {
    const tensors = [u8("a", [1, 2, 3]), u8("b", [4, 5]), u8("c", [6, 7, 8, 9]), u8("d", [10])];
    const index = await writeShardedSafetensors(dir, tensors, { maxShardBytes: 5 });
    assert.equal(index, `${dir}/model.safetensors.index.json`);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, [
      "model-00001-of-00002.safetensors",
      "model-00002-of-00002.safetensors",
      "model.safetensors.index.json",
    ]);
    const parsed = await readSafetensorsIndex(index);
    assert.equal(parsed.metadata.total_size, 10);
    // a + b fill the first 5-byte shard; c and d the second.
    assert.deepEqual([...parsed.weightMap.values()], [
      "model-00001-of-00002.safetensors",
      "model-00001-of-00002.safetensors",
      "model-00002-of-00002.safetensors",
      "model-00002-of-00002.safetensors",
    ]);
    const { tensors: merged, metadata } = await readShardedSafetensors(index);
    assert.deepEqual(metadata, { format: "pt" });
    for (const t of tensors) assert.deepEqual(Array.from(merged.get(t.name)!.data), Array.from(t.data));
  });
});

Deno.test("readShardedSafetensors names the index, tensor and shards when they disagree", async () => {
  await withTempDir(async (dir) => {
    await writeSafetensors(`${dir}/s1.safetensors`, [u8("a", [1]), u8("b", [2])]);
    await writeSafetensors(`${dir}/s2.safetensors`, [u8("c", [3])]);
    const index = `${dir}/model.safetensors.index.json`;
    await writeJson(index, {
      metadata: {},
      weight_map: { a: "s1.safetensors", b: "s2.safetensors", c: "s2.safetensors" },
    });
    await assert.rejects(
      readShardedSafetensors(index),
      /Cannot load sharded checkpoint .*index\.json: tensor "b" is in s1\.safetensors but the index says s2\.safetensors/,
    );
    await writeJson(index, { weight_map: { a: "s1.safetensors", x: "s2.safetensors" } });
    await assert.rejects(readShardedSafetensors(index), /tensor "x" is missing from shard s2\.safetensors/);
    await writeJson(index, { weight_map: { a: "s1.safetensors", c: "s3.safetensors" } });
    await assert.rejects(readShardedSafetensors(index), /Cannot read safetensors file .*s3\.safetensors/);
    await writeSafetensors(`${dir}/s3.safetensors`, [u8("a", [9])]);
    await writeJson(index, { weight_map: { a: "s1.safetensors", c: "s3.safetensors" } });
    await assert.rejects(
      readShardedSafetensors(index),
      /tensor "a" is in both s1\.safetensors and s3\.safetensors/,
    );
    await writeJson(index, { weight_map: { a: "../s1.safetensors" } });
    await assert.rejects(readSafetensorsIndex(index), /tensor "a" maps to shard "\.\.\/s1\.safetensors"/);
    await writeJson(index, { metadata: {} });
    await assert.rejects(readSafetensorsIndex(index), /"weight_map" is undefined, expected an object/);
    await assert.rejects(
      readSafetensorsIndex(`${dir}/none.json`),
      /Cannot read .*none\.json: the file does not exist/,
    );
  });
});
