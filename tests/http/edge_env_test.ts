import assert from "node:assert/strict";
import { type EdgeEnvName, edgeOptionsFromEnv } from "../../src/http/edge_env.ts";

function reader(values: Partial<Record<EdgeEnvName, string>>) {
  return (name: EdgeEnvName) => values[name];
}

Deno.test("edgeOptionsFromEnv reads the model, adapters, keys and cache budget", () => {
  const keys = { tenants: { acme: { keys: ["sk-acme-0123456789"] } } };
  assert.deepEqual(
    edgeOptionsFromEnv(reader({
      WEIGHTLORA_MODEL: "models/stories260K",
      WEIGHTLORA_ADAPTERS: "s3://bucket/prefix",
      WEIGHTLORA_KEYS: JSON.stringify(keys),
      WEIGHTLORA_CACHE_MB: "16",
    })),
    { model: "models/stories260K", adapters: "s3://bucket/prefix", keys, cacheBytes: 16 * 2 ** 20 },
  );
  assert.deepEqual(
    edgeOptionsFromEnv(reader({ WEIGHTLORA_MODEL: "m", WEIGHTLORA_ADAPTERS: "a", WEIGHTLORA_KEYS: " " })),
    { model: "m", adapters: "a" },
  );
});

Deno.test("edgeOptionsFromEnv names the variable that is missing or invalid", () => {
  assert.throws(
    () => edgeOptionsFromEnv(reader({ WEIGHTLORA_ADAPTERS: "a" })),
    /WEIGHTLORA_MODEL is not set \(the model folder of the deployment\)/,
  );
  assert.throws(
    () => edgeOptionsFromEnv(reader({ WEIGHTLORA_MODEL: "m", WEIGHTLORA_ADAPTERS: "  " })),
    /WEIGHTLORA_ADAPTERS is not set \(the adapter folder of the deployment, or s3:\/\/BUCKET\/PREFIX\)/,
  );
  assert.throws(
    () =>
      edgeOptionsFromEnv(reader({ WEIGHTLORA_MODEL: "m", WEIGHTLORA_ADAPTERS: "a", WEIGHTLORA_KEYS: "{x" })),
    /WEIGHTLORA_KEYS is not JSON \(.+\); it holds the keys file's text/,
  );
  for (const bad of ["0", "-1", "lots"]) {
    assert.throws(
      () =>
        edgeOptionsFromEnv(
          reader({ WEIGHTLORA_MODEL: "m", WEIGHTLORA_ADAPTERS: "a", WEIGHTLORA_CACHE_MB: bad }),
        ),
      new RegExp(`WEIGHTLORA_CACHE_MB must be a positive number of MiB, got "${bad}"`),
    );
  }
});

Deno.test("edgeOptionsFromEnv names the permission to grant when the environment is refused", async () => {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      script,
      `import { edgeOptionsFromEnv } from "${new URL("../../src/http/edge_env.ts", import.meta.url)}";\n` +
        `try { edgeOptionsFromEnv(); } catch (e) { console.log((e as Error).message); }\n`,
    );
    const child = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--no-check", script],
      stdout: "piped",
    }).output();
    assert.match(
      new TextDecoder().decode(child.stdout),
      /Cannot read WEIGHTLORA_MODEL: no permission \(grant --allow-env=WEIGHTLORA_MODEL,WEIGHTLORA_ADAPTERS,WEIGHTLORA_KEYS,WEIGHTLORA_CACHE_MB\)/,
    );
  } finally {
    await Deno.remove(script);
  }
});
