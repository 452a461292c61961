// Body limits on upload routes are enforced while the body streams in: a chunked body far over the limit
// is answered 413 after reading about the limit, never buffered whole.

import assert from "node:assert/strict";
import { Hono } from "hono";
import type { AppEnv } from "../../src/http/context.ts";
import { handleError } from "../../src/http/errors.ts";
import { filesRoutes } from "../../src/http/files_routes.ts";
import { bodyLimitBytes } from "../../src/http/limits.ts";
import { FileStore, migrate, openDatabase } from "../../src/store/db/mod.ts";
import { startTestServer } from "./_server.ts";

const MIB = 2 ** 20;
const CHUNK = 64 * 1024;

/** A chunked (length-less) body of `total` bytes made on demand; `pulled()` says how much was read. */
function chunkedBody(
  total: number,
  prefix = new Uint8Array(),
): { body: ReadableStream<Uint8Array>; pulled(): number } {
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) return controller.close();
      const chunk = sent === 0 && prefix.length > 0 ? prefix : new Uint8Array(CHUNK).fill(120);
      sent += chunk.byteLength;
      controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
  return { body, pulled: () => sent };
}

/** The head of a multipart body whose file part never ends (the rest is filler bytes). */
function multipartHead(boundary: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n` +
      "Content-Type: application/jsonl\r\n\r\n",
  );
}

Deno.test("bodyLimitBytes: a chunked body over the limit is refused after reading about the limit", async () => {
  const app = new Hono<AppEnv>();
  app.onError(handleError);
  app.post(
    "/echo",
    bodyLimitBytes(MIB, "test upload"),
    async (c) => c.json({ bytes: (await c.req.arrayBuffer()).byteLength }),
  );
  const big = chunkedBody(256 * MIB);
  const res = await app.request("/echo", { method: "POST", body: big.body, duplex: "half" } as RequestInit);
  assert.equal(res.status, 413);
  const body = await res.json();
  assert.equal(body.error.code, "request_too_large");
  assert.equal(body.error.message, `The test upload is larger than the server's limit of ${MIB} bytes`);
  assert.ok(big.pulled() <= MIB + 4 * CHUNK, `read ${big.pulled()} bytes of a 256 MiB body`);
  // a declared length over the limit is refused before reading
  const declared = await app.request("/echo", {
    method: "POST",
    body: new Uint8Array(MIB + 1),
    headers: { "content-length": String(MIB + 1) },
  });
  assert.equal(declared.status, 413);
  // under the limit, chunked: read whole
  const small = chunkedBody(MIB - CHUNK);
  const ok = await app.request("/echo", { method: "POST", body: small.body, duplex: "half" } as RequestInit);
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { bytes: MIB - CHUNK });
});

Deno.test({
  name: "POST /v1/files: a chunked multipart body over the limit is a 413 without buffering it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "upload_limits_" });
    const db = await openDatabase(`${dir}/db`);
    try {
      await migrate(db);
      const files = new FileStore(db);
      const app = new Hono<AppEnv>();
      app.onError(handleError);
      app.use(async (c, next) => {
        c.set("tenant", "acme");
        await next();
      });
      const validate = () => {
        let text = "";
        return {
          push: (piece: string) => void (text += piece),
          finish: () => ({ rows: text.split("\n").filter((l) => l.trim()).length }),
        };
      };
      app.route("/", filesRoutes({ files, validate, maxBytes: 2 * MIB }));
      const boundary = "weightlora-test-boundary";
      const big = chunkedBody(200 * MIB, multipartHead(boundary));
      const started = performance.now();
      const res = await app.request("/v1/files", {
        method: "POST",
        body: big.body,
        duplex: "half",
        headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
      } as RequestInit);
      assert.equal(res.status, 413, await res.clone().text());
      assert.match(
        (await res.json()).error.message,
        /The file upload is larger than the server's limit of 2162688 bytes/,
      );
      assert.ok(big.pulled() <= 2 * MIB + 64 * 1024 + 4 * CHUNK, `read ${big.pulled()} bytes of 200 MiB`);
      console.log(
        `413 after reading ${(big.pulled() / MIB).toFixed(2)} MiB of 200 MiB in ${
          (performance.now() - started).toFixed(0)
        } ms`,
      );
      assert.deepEqual(await files.list("acme"), []);
      // an upload within the limit is stored
      const form = new FormData();
      form.append("purpose", "fine-tune");
      form.append("file", new File(['{"text": "a"}\n{"text": "b"}\n'], "ok.jsonl"));
      const ok = await app.request("/v1/files", { method: "POST", body: form });
      assert.equal(ok.status, 200, await ok.clone().text());
    } finally {
      await db.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "POST /v1/adapters over HTTP: a chunked body over the limit is a 413",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const server = await startTestServer({ keys: false, limits: { maxAdapterBytes: MIB } });
    try {
      const boundary = "weightlora-test-boundary";
      const head = new TextEncoder().encode(
        `--${boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nbig\r\n` +
          `--${boundary}\r\nContent-Disposition: form-data; name="adapter_model.safetensors"; filename="w"\r\n\r\n`,
      );
      const big = chunkedBody(64 * MIB, head);
      const res = await fetch(`${server.url}/v1/adapters`, {
        method: "POST",
        body: big.body,
        headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
      });
      assert.equal(res.status, 413);
      assert.equal((await res.json()).error.code, "request_too_large");
      assert.ok(big.pulled() < 64 * MIB, `the client sent ${big.pulled()} bytes`);
      console.log(`413 after the client sent ${(big.pulled() / MIB).toFixed(2)} MiB of 64 MiB`);
    } finally {
      await server.close();
    }
  },
});

Deno.test("bodyLimitBytes: reading a body that is always ready hands the event loop back", async () => {
  const app = new Hono<AppEnv>();
  app.onError(handleError);
  app.post("/count", bodyLimitBytes(512 * MIB, "test upload"), async (c) => {
    let bytes = 0;
    for await (const chunk of c.req.raw.body!) bytes += chunk.byteLength; // as the upload routes read
    return c.json({ bytes });
  });
  // every read of this body resolves at once (a fast client on loopback): without a hand-back, a chain of
  // resolved reads runs to the end and no timer, and no other request, gets a turn meanwhile
  const total = 256 * MIB;
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) return controller.close();
      sent += CHUNK;
      controller.enqueue(new Uint8Array(CHUNK).fill(120));
    },
  }, { highWaterMark: 0 });
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const started = performance.now();
  const res = await app.request("/count", { method: "POST", body, duplex: "half" } as RequestInit);
  const ms = performance.now() - started;
  clearInterval(timer);
  assert.deepEqual(await res.json(), { bytes: total });
  const expected = Math.min(3, Math.floor(ms / 50));
  assert.ok(ticks >= expected, `${ticks} timer ticks while the body was read in ${ms.toFixed(0)} ms`);
});
