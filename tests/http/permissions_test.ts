// The server as an operator runs it at the edge of least privilege: `deno run` with network access to
// loopback, read access to the model and the adapter folder only, one named environment variable, and
// no write permission (`--read-only`). It serves inference, refuses uploads, and stops gracefully on
// SIGTERM, finishing the stream in flight.

import assert from "node:assert/strict";
import { FolderAdapterStore } from "../../src/store/folder_adapter_store.ts";
import { requireStories260k } from "../_util/fixtures.ts";
import { randomAdapterFiles, stories260kHf } from "../serve/_fixtures.ts";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { call, readSse, upload } from "./_server.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);

/** Reads lines from a stream until one matches; returns the match and keeps collecting the rest. */
function lines(stream: ReadableStream<Uint8Array<ArrayBuffer>>) {
  const all: string[] = [];
  let pending = "";
  const waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  const done = (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      const parts = pending.split("\n");
      pending = parts.pop()!;
      for (const line of parts) {
        all.push(line);
        for (const w of [...waiters]) {
          const m = w.re.exec(line);
          if (m) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(m);
          }
        }
      }
    }
  })();
  return {
    all,
    done,
    wait(re: RegExp, ms: number): Promise<RegExpExecArray> {
      const found = all.map((l) => re.exec(l)).find((m) => m);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`No line matching ${re} within ${ms} ms:\n${all.join("\n")}`)),
          ms,
        );
        waiters.push({ re, resolve: (m) => (clearTimeout(timer), resolve(m)) });
      });
    },
  };
}

/** Starts `src/cli/serve.ts` with least privilege; resolves once it listens. */
async function spawnServer(model: string, store: string, extraRead: string[] = []) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--unstable-raw-imports",
      "--allow-net=127.0.0.1",
      `--allow-read=${[model, store, ...extraRead].join(",")}`,
      "--allow-env=WEIGHTLORA_WASM_THREADS",
      "src/cli/serve.ts",
      "--model",
      model,
      "--store",
      store,
      "--read-only",
      "--ep",
      "wasm",
      "--port",
      "0",
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = lines(child.stdout);
  const err = lines(child.stderr);
  let exited = false;
  const stop = async () => {
    if (!exited) {
      child.kill("SIGKILL");
      await child.status;
    }
    await Promise.all([out.done, err.done]).catch(() => {});
  };
  try {
    const [, url] = await out.wait(/^Listening on (http:\/\/127\.0\.0\.1:\d+) .*read-only/, 60_000);
    const status = async () => {
      const s = await child.status;
      exited = true;
      await Promise.all([out.done, err.done]);
      return s;
    };
    return { child, out, err, url, stop, status };
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}\nstderr:\n${err.all.join("\n")}`);
  }
}

async function prepare() {
  const model = await stories260kHf();
  const store = await Deno.makeTempDir({ prefix: "perm_test_store_" });
  const config = (await loadModelFolder(model)).config;
  await new FolderAdapterStore(store).put(
    "default",
    "story",
    randomAdapterFiles(config, { seed: 4, scale: 0.15 }),
  );
  return { model, store, config };
}

Deno.test({
  name: "serves with read access to the model and store only, loopback net, one env var; stops gracefully",
  ignore: !requireStories260k("least privilege"),
  fn: async () => {
    const { model, store, config } = await prepare();
    const server = await spawnServer(model, store);
    const { url, out, err } = server;
    try {
      await err.wait(/no --keys file/, 1000);
      await err.wait(/running inference in-process on one core: no read permission/, 1000);
      const base = await call(`${url}/v1/completions`, {
        json: { model: "stories260K", prompt: "Once upon a time", max_tokens: 12, temperature: 0 },
      });
      assert.equal(base.status, 200, JSON.stringify(base.body));
      assert.match(base.body.choices[0].text, /^, there was a little girl/);
      const tuned = await call(`${url}/v1/completions`, {
        json: { model: "story", prompt: "Once upon a time", max_tokens: 12, temperature: 0 },
      });
      assert.equal(tuned.status, 200, JSON.stringify(tuned.body));
      assert.notEqual(tuned.body.choices[0].text, base.body.choices[0].text);
      const refused = await upload(url, undefined, "other", randomAdapterFiles(config, { seed: 5 }));
      assert.equal(refused.status, 403);
      assert.equal((await call(`${url}/health`)).body.runners, 1);

      // SIGTERM while a stream runs: the stream completes, then the process exits 0
      const res = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "story",
          prompt: "Once",
          max_tokens: 300,
          temperature: 0,
          stream: true,
        }),
      });
      const reader = res.body!.getReader();
      const first = await reader.read();
      server.child.kill("SIGTERM");
      await out.wait(/^SIGTERM: finishing requests in flight/, 10_000);
      let rest = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        rest += new TextDecoder().decode(value);
      }
      const chunks = await readSse(new Response(new TextDecoder().decode(first.value) + rest));
      assert.equal(chunks.at(-1), "[DONE]");
      assert.ok(chunks.length > 100, `the stream ran to its end (${chunks.length} events)`);
      const status = await server.status();
      assert.equal(status.code, 0, err.all.join("\n"));
      assert.ok(out.all.includes("Stopped"));
      assert.ok(
        !err.all.some((l) => /NotCapable|PermissionDenied|Requires .* access/.test(l)),
        err.all.join("\n"),
      );
    } finally {
      await server.stop();
      await Deno.remove(store, { recursive: true });
    }
  },
});

Deno.test({
  name: "with read access to its own code as well, the server runs two inference workers",
  ignore: !requireStories260k("least privilege with workers"),
  fn: async () => {
    const { model, store } = await prepare();
    const server = await spawnServer(model, store, [`${ROOT}src`, `${ROOT}workers`]);
    try {
      assert.equal((await call(`${server.url}/health`)).body.runners, 2);
      const tuned = await call(`${server.url}/v1/completions`, {
        json: { model: "story", prompt: "Once upon a time", max_tokens: 12, temperature: 0 },
      });
      assert.equal(tuned.status, 200, JSON.stringify(tuned.body));
      server.child.kill("SIGTERM");
      assert.equal((await server.status()).code, 0, server.err.all.join("\n"));
      assert.ok(
        !server.err.all.some((l) => /in-process on one core|Requires .* access/.test(l)),
        server.err.all.join("\n"),
      );
    } finally {
      await server.stop();
      await Deno.remove(store, { recursive: true });
    }
  },
});
