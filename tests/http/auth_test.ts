import assert from "node:assert/strict";
import { Hono } from "hono";
import { KeyTable, tenantAuth } from "../../src/http/auth.ts";
import type { AppEnv } from "../../src/http/context.ts";
import { ApiError } from "../../src/http/errors.ts";

const JSON_KEYS = {
  tenants: {
    acme: { keys: ["sk-acme-0123456789", "sk-acme-second-key"] },
    beta: { keys: ["sk-beta-0123456789"] },
  },
};

Deno.test("a key resolves to its tenant at once: no asynchronous digest on the request path", async () => {
  const keys = await KeyTable.fromJson(JSON_KEYS, "keys.json");
  const found = keys.tenantOf("sk-acme-second-key");
  assert.equal(typeof found, "string", "answered synchronously, not a promise");
  assert.equal(found, "acme");
  assert.equal(keys.tenantOf("sk-beta-0123456789"), "beta");
  assert.equal(keys.tenantOf("sk-acme-012345678"), undefined, "a prefix of a key is not a key");
  assert.equal(keys.tenantOf(""), undefined);
});

Deno.test("the keys file: a key of two tenants and a short key are refused, naming the file", async () => {
  await assert.rejects(
    KeyTable.fromJson(
      { tenants: { a: { keys: ["sk-shared-key-1"] }, b: { keys: ["sk-shared-key-1"] } } },
      "k.json",
    ),
    /Cannot load keys file k\.json: key 0 of tenant "b" is also a key of tenant "a"/,
  );
  await assert.rejects(
    KeyTable.fromJson({ tenants: { a: { keys: ["short"] } } }, "k.json"),
    /key 0 of tenant "a" must be a string of at least 8 characters/,
  );
});

Deno.test("the middleware sets the key's tenant and answers 401 for a missing or unknown key", async () => {
  const keys = await KeyTable.fromJson(JSON_KEYS, "keys.json");
  const app = new Hono<AppEnv>();
  app.onError((e, c) => c.json({ error: e.message }, e instanceof ApiError ? e.status as 401 : 500));
  app.use(tenantAuth({ keys }));
  app.get("/who", (c) => c.text(c.get("tenant")));
  const ask = (key?: string) =>
    app.request("/who", { headers: key ? { authorization: `Bearer ${key}` } : {} });
  const ok = await ask("sk-beta-0123456789");
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), "beta");
  const unknown = await ask("sk-nobody-0123456789");
  assert.equal(unknown.status, 401);
  assert.match((await unknown.json()).error, /Incorrect API key provided: sk-…6789/);
  const missing = await ask();
  assert.equal(missing.status, 401);
  await missing.body?.cancel();
});
