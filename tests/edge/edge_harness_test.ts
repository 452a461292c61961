// `examples/edge/main.ts` as an edge platform runs it: `deno serve` with the permissions of an isolate
// (read access to the model and adapter folders only, network access to the listening address only, the
// WEIGHTLORA_* variables only, no write, no subprocess, no Workers, a V8 heap cap). It serves completions
// with and without a tenant's adapter from the folder, and the isolate's limits hold (write, run, reads
// elsewhere, other environment variables and other hosts are refused).

import assert from "node:assert/strict";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { FolderAdapterStore } from "../../src/store/folder_adapter_store.ts";
import { requireStories260k } from "../_util/fixtures.ts";
import { call, KEYS, KEYS_JSON, upload } from "../http/_server.ts";
import { randomAdapterFiles, stories260kHf } from "../serve/_fixtures.ts";
import { freePort, spawnEdge } from "./_harness.ts";

async function prepare() {
  const model = await stories260kHf();
  const adapters = await Deno.makeTempDir({ prefix: "edge_adapters_" });
  const config = (await loadModelFolder(model)).config;
  await new FolderAdapterStore(adapters).put(
    "acme",
    "story",
    randomAdapterFiles(config, { seed: 4, scale: 0.15 }),
  );
  return { model, adapters, config };
}

Deno.test({
  name: "examples/edge/main.ts serves under an isolate's permissions; writes, runs and Workers are refused",
  ignore: !requireStories260k("edge harness"),
  fn: async () => {
    const { model, adapters, config } = await prepare();
    const server = await spawnEdge({ model, adapters, keys: KEYS_JSON });
    try {
      const prompt = { prompt: "Once upon a time", max_tokens: 12, temperature: 0 };
      const base = await call(`${server.url}/v1/completions`, {
        key: KEYS.acme,
        json: { model: "stories260K", ...prompt },
      });
      assert.equal(base.status, 200, JSON.stringify(base.body));
      assert.match(base.body.choices[0].text, /^, there was a little girl/);
      const tuned = await call(`${server.url}/v1/completions`, {
        key: KEYS.acme,
        json: { model: "story", ...prompt },
      });
      assert.equal(tuned.status, 200, JSON.stringify(tuned.body));
      assert.notEqual(tuned.body.choices[0].text, base.body.choices[0].text);
      // the keys from WEIGHTLORA_KEYS hold: another tenant does not see acme's adapter, no key is a 401
      const other = await call(`${server.url}/v1/completions`, {
        key: KEYS.beta,
        json: { model: "story", ...prompt },
      });
      assert.equal(other.status, 404, JSON.stringify(other.body));
      assert.equal((await call(`${server.url}/v1/models`)).status, 401);
      // the folder is read-only: uploads are refused by the app before any write is tried
      const refused = await upload(server.url, KEYS.acme, "other", randomAdapterFiles(config, { seed: 5 }));
      assert.equal(refused.status, 403, JSON.stringify(refused.body));

      const outside = decodeURIComponent(new URL(import.meta.url).pathname);
      const query = new URLSearchParams({ model, outside, port: String(freePort()) });
      const probe = (await call(`${server.url}/__probe?${query}`)).body as Record<string, string>;
      assert.equal(probe.workers, "false", "the server started without the Worker global");
      assert.equal(probe.wasmThreads, "1", "onnxruntime runs one wasm thread (no pthread Workers)");
      assert.equal(probe.readModel, "ok");
      for (const denied of ["write", "tempDir", "run", "readOutside", "env", "net"]) {
        assert.match(
          probe[denied],
          /^NotCapable: Requires (write|run|read|env|net) access/,
          `${denied}: ${probe[denied]}`,
        );
      }
      assert.equal(await server.close(), 0, server.output.join("\n"));
      assert.ok(
        !server.output.some((l) => /NotCapable|Requires .* access/.test(l)),
        `the server itself needed no other permission:\n${server.output.join("\n")}`,
      );
    } finally {
      await server.close();
      await Deno.remove(adapters, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "examples/edge/main.ts exits with a clear message when WEIGHTLORA_MODEL is missing or the keys are not JSON",
  ignore: !requireStories260k("edge harness configuration errors"),
  fn: async () => {
    const { model, adapters } = await prepare();
    try {
      await assert.rejects(
        spawnEdge({ model, adapters, env: { WEIGHTLORA_MODEL: undefined } }),
        /WEIGHTLORA_MODEL is not set \(the model folder of the deployment\)/,
      );
      await assert.rejects(
        spawnEdge({ model, adapters, env: { WEIGHTLORA_KEYS: "{tenants" } }),
        /WEIGHTLORA_KEYS is not JSON/,
      );
    } finally {
      await Deno.remove(adapters, { recursive: true });
    }
  },
});
