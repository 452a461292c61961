// `deno task serve` serves the console: /console sends a visitor to sign-in; without a keys file any key
// signs in as the single tenant "default" (the open API's tenant) and the adapters page lists its adapters;
// with --read-only the store's uploads are off and the fine-tuning pages say that they need a database.

import assert from "node:assert/strict";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { FolderAdapterStore } from "../../src/store/folder_adapter_store.ts";
import { requireStories260k } from "../_util/fixtures.ts";
import { randomAdapterFiles, stories260kHf } from "../serve/_fixtures.ts";
import { spawnServer } from "../jobs/_process.ts";

async function signIn(url: string): Promise<string> {
  const res = await fetch(`${url}/console/login`, {
    method: "POST",
    body: new URLSearchParams({ api_key: "anything-goes" }),
    headers: { origin: url },
    redirect: "manual",
  });
  await res.body?.cancel();
  assert.equal(res.status, 303);
  return res.headers.get("set-cookie")!.split(";")[0];
}

async function page(url: string, path: string, cookie?: string): Promise<Response> {
  return await fetch(`${url}${path}`, {
    headers: { accept: "text/html", ...(cookie ? { cookie } : {}) },
    redirect: "manual",
  });
}

Deno.test({
  name: "serve: the console at /console (open server: the default tenant; read-only: no fine-tuning)",
  ignore: !requireStories260k("serve console"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const model = await stories260kHf();
    const { config } = await loadModelFolder(model);
    const dir = await Deno.makeTempDir({ prefix: "serve_console_" });
    await new FolderAdapterStore(dir).put(
      "default",
      "story",
      randomAdapterFiles(config, { seed: 4, scale: 0.1 }),
    );
    const { server, url } = await spawnServer(["--model", model, "--store", dir, "--read-only"]);
    try {
      const root = await page(url, "/console");
      await root.body?.cancel();
      assert.equal(root.status, 303);
      assert.equal(root.headers.get("location"), "/console/login");
      const login = await page(url, "/console/login");
      assert.match(await login.text(), /This server has no API keys: any key signs in as the one tenant/);
      const cookie = await signIn(url);
      const adapters = await page(url, "/console/adapters", cookie);
      const html = await adapters.text();
      assert.equal(adapters.status, 200);
      assert.match(html, /<span class="tenant"[^>]*>default<\/span>/);
      assert.match(html, /data-adapter="story"/);
      assert.match(html, /read-only: uploads and deletions are disabled/);
      const jobs = await page(url, "/console/jobs", cookie);
      assert.equal(jobs.status, 404);
      assert.match(await jobs.text(), /Fine-tuning is not enabled on this server/);
      // the assets come gzipped to clients that take it, whole to the others
      const css = await fetch(`${url}/console/assets/console.css`, {
        headers: { "accept-encoding": "gzip" },
      });
      assert.equal(css.status, 200);
      assert.match(css.headers.get("content-type") ?? "", /text\/css/);
      assert.equal(css.headers.get("content-encoding"), "gzip");
      const text = await css.text(); // fetch decompresses
      const plain = await fetch(`${url}/console/assets/console.css`, {
        headers: { "accept-encoding": "identity" },
      });
      assert.equal(plain.headers.get("content-encoding"), null);
      assert.equal(await plain.text(), text);
      assert.match(text, /--accent/);
    } finally {
      await server.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
