import assert from "node:assert/strict";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { AdapterValidator } from "../../src/serve/adapter_validator.ts";
import { InvalidAdapterError } from "../../src/serve/prepared_adapter.ts";
import { requireStories260k } from "../_util/fixtures.ts";
import { randomAdapterFiles, stories260kHf } from "./_fixtures.ts";

Deno.test({
  name: "adapter validator: checks a staged file in a worker; a check past its time limit is refused",
  ignore: !requireStories260k("adapter validator"),
  fn: async () => {
    const { config } = await loadModelFolder(await stories260kHf());
    const dir = await Deno.makeTempDir({ prefix: "validator_" });
    const validator = new AdapterValidator(config);
    try {
      assert.ok(validator.inWorker);
      const files = randomAdapterFiles(config, { seed: 1, rank: 4 });
      await Deno.writeFile(`${dir}/w`, files.weights);
      assert.deepEqual(
        await validator.validate({ config: files.config, weightsPath: `${dir}/w`, source: "a" }),
        { sites: 15, rank: 4 },
      );
      const bad = new TextEncoder().encode(JSON.stringify({ peft_type: "PREFIX_TUNING" }));
      await assert.rejects(
        validator.validate({ config: bad, weightsPath: `${dir}/w`, source: "b" }),
        InvalidAdapterError,
      );
      // a large file cannot be read and checked within 1 ms
      const large = randomAdapterFiles(config, {
        seed: 2,
        rank: 256,
        modules: ["q_proj", "gate_proj", "down_proj"],
      });
      await Deno.writeFile(`${dir}/large`, large.weights);
      await assert.rejects(
        validator.validate({ config: large.config, weightsPath: `${dir}/large`, source: "c", timeoutMs: 1 }),
        (e) => e instanceof InvalidAdapterError && /checking it took longer than 0.001 s/.test(e.message),
      );
      // the stuck worker was replaced: the next check runs
      assert.equal(
        (await validator.validate({ config: files.config, weightsPath: `${dir}/w`, source: "d" })).rank,
        4,
      );
    } finally {
      validator.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
