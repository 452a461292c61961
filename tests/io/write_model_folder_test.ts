import assert from "node:assert/strict";
import type { TensorData } from "../../src/onnx/types.ts";
import { writeModelFolder } from "../../src/io/write_model_folder.ts";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { randomWeights, TINY_CONFIG, tinyTokenizerJson, withTempDir } from "./_helpers.ts";

const CONTENTS = {
  config: TINY_CONFIG,
  tokenizerJson: tinyTokenizerJson(TINY_CONFIG.vocabSize),
  tokenizerConfig: { bos_token: "<s>", eos_token: "</s>", add_bos_token: true },
};

Deno.test("writeModelFolder writes a loadable folder, sharding large weights", async () => {
  await withTempDir(async (dir) => {
    const weights = randomWeights(TINY_CONFIG, 5);
    await writeModelFolder(`${dir}/one`, { ...CONTENTS, weights });
    await writeModelFolder(`${dir}/sharded`, { ...CONTENTS, weights }, { maxShardBytes: 4096 });
    const files = [...Deno.readDirSync(`${dir}/sharded`)].map((e) => e.name);
    assert.ok(
      files.includes("model.safetensors.index.json") && !files.includes("model.safetensors"),
      files.join(),
    );
    const one = await loadModelFolder(`${dir}/one`);
    const sharded = await loadModelFolder(`${dir}/sharded`);
    for (const t of weights) {
      assert.deepEqual(one.weights.get(t.name)!.data, t.data);
      assert.deepEqual(sharded.weights.get(t.name)!.data, t.data);
    }
    assert.deepEqual(one.config, TINY_CONFIG);
  });
});

Deno.test("a failure while writing leaves neither the folder nor a temporary folder; a forced replace keeps the old folder", async () => {
  await withTempDir(async (dir) => {
    const good = randomWeights(TINY_CONFIG, 5);
    const bad: TensorData[] = [...good, {
      name: "broken",
      dtype: "float32",
      dims: [3],
      data: new Uint8Array(4),
    }];
    await assert.rejects(
      writeModelFolder(`${dir}/out`, { ...CONTENTS, weights: bad }),
      /Cannot write model folder .*\/out: Cannot encode safetensors: tensor "broken" has 4 bytes but shape \[3\] of F32 needs 12/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    await writeModelFolder(`${dir}/out`, { ...CONTENTS, weights: good });
    const before = await Deno.readFile(`${dir}/out/model.safetensors`);
    await assert.rejects(
      writeModelFolder(`${dir}/out`, { ...CONTENTS, weights: bad }, { force: true }),
      /tensor "broken"/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["out"]);
    assert.deepEqual(await Deno.readFile(`${dir}/out/model.safetensors`), before, "the old folder is intact");
    // missing parent folders are created, as `mkdir -p` would
    await writeModelFolder(`${dir}/missing/parent/out`, { ...CONTENTS, weights: good });
    assert.deepEqual(await Deno.readFile(`${dir}/missing/parent/out/model.safetensors`), before);
    await Deno.writeTextFile(`${dir}/file`, "");
    await assert.rejects(
      writeModelFolder(`${dir}/file/out`, { ...CONTENTS, weights: good }),
      /Cannot write model folder .*file\/out: /,
    );
  });
});
