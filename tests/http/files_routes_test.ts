// POST /v1/files streams the upload: rows are checked as the body arrives (a bad row is answered before the
// rest of the body is read), the content goes to a staging blob, and nothing is left behind on refusal.

import assert from "node:assert/strict";
import { Hono } from "hono";
import type { AppEnv } from "../../src/http/context.ts";
import { handleError } from "../../src/http/errors.ts";
import { filesRoutes, jsonlValidator } from "../../src/http/files_routes.ts";
import { FileStore, migrate, openDatabase } from "../../src/store/db/mod.ts";
import { stories260k } from "../train/_stories.ts";

const BOUNDARY = "weightlora-files-boundary";
const utf8 = new TextEncoder();

/** A multipart body: `head` first, then `filler` lines made on demand until `total` bytes; counts reads. */
function streamedUpload(head: string, filler: string, total: number) {
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) return controller.close();
      const chunk = utf8.encode(sent === 0 ? head : filler.repeat(Math.ceil(65_536 / filler.length)));
      sent += chunk.byteLength;
      controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
  return { body, pulled: () => sent };
}

function filePart(name: string): string {
  return `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\n` +
    "Content-Type: application/jsonl\r\n\r\n";
}

Deno.test({
  name: "POST /v1/files: rows are checked while the body streams in; refusals leave nothing behind",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const model = await stories260k(t);
    if (!model) return;
    const dir = await Deno.makeTempDir({ prefix: "files_routes_" });
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
      app.route("/", filesRoutes({ files, validate: jsonlValidator(model), maxBytes: 64 * 2 ** 20 }));
      const post = (body: BodyInit, type = `multipart/form-data; boundary=${BOUNDARY}`) =>
        app.request("/v1/files", {
          method: "POST",
          body,
          duplex: "half",
          headers: { "content-type": type },
        } as RequestInit);
      const staging = async () => {
        const names: string[] = [];
        try {
          for await (const e of Deno.readDir(`${dir}/db.blobs/.staging`)) names.push(e.name);
        } catch (e) {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        }
        return names;
      };

      await t.step(
        "a bad row early in a 48 MiB body is a 400 naming its line, after a few chunks",
        async () => {
          const upload = streamedUpload(
            filePart("bad.jsonl") + '{"text": "Once upon a time"}\n{"text": oops}\n',
            '{"text": "Lily went to the park."}\n',
            48 * 2 ** 20,
          );
          const res = await post(upload.body);
          assert.equal(res.status, 400, await res.clone().text());
          const error = (await res.json()).error;
          assert.equal(error.code, "invalid_file");
          assert.match(error.message, /^Invalid file: bad\.jsonl:2: invalid JSON/);
          assert.ok(upload.pulled() < 2 ** 20, `read ${upload.pulled()} bytes before answering`);
          assert.deepEqual(await staging(), []);
        },
      );

      await t.step("the file before its purpose (the openai client's order) is stored", async () => {
        const rows = '{"text": "Once upon a time"}\n{"prompt": "Tom", "completion": " ran."}\n';
        const body = filePart("ok.jsonl") + rows +
          `\r\n--${BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n--${BOUNDARY}--\r\n`;
        const res = await post(body);
        assert.equal(res.status, 200, await res.clone().text());
        const file = await res.json();
        assert.equal(file.bytes, utf8.encode(rows).byteLength);
        assert.equal(file.filename, "ok.jsonl");
        const content = await files.content("acme", file.id);
        assert.equal(new TextDecoder().decode(content), rows);
      });

      await t.step("a wrong purpose after a valid file: 400 and the staged content is removed", async () => {
        const body = filePart("ok.jsonl") + '{"text": "a"}\n' +
          `\r\n--${BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--${BOUNDARY}--\r\n`;
        const res = await post(body);
        assert.equal(res.status, 400);
        assert.equal((await res.json()).error.param, "purpose");
        assert.deepEqual(await staging(), []);
        assert.equal((await files.list("acme")).length, 1);
      });

      await t.step("bytes that are not UTF-8, split across chunks, are refused", async () => {
        const head = utf8.encode(filePart("latin1.jsonl") + '{"text": "caf');
        const tail = new Uint8Array([0xe9, 0x22, 0x7d, 0x0a]); // é in Latin-1, then "}\n
        const end = utf8.encode(`\r\n--${BOUNDARY}--\r\n`);
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            for (const part of [head, tail, end]) controller.enqueue(part);
            controller.close();
          },
        });
        const res = await post(body);
        assert.equal(res.status, 400);
        const error = (await res.json()).error;
        assert.equal(error.code, "invalid_file");
        assert.equal(error.message, "Invalid file: latin1.jsonl is not UTF-8 text");
        assert.deepEqual(await staging(), []);
      });

      await t.step("not multipart: 400 saying how to send it", async () => {
        const res = await post('{"text": "a"}', "application/json");
        assert.equal(res.status, 400);
        assert.match(
          (await res.json()).error.message,
          /multipart\/form-data with the fields "file" and "purpose"/,
        );
      });

      await t.step("a file with no usable row is refused", async () => {
        const body = filePart("empty.jsonl") + "\n\n" +
          `\r\n--${BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n--${BOUNDARY}--\r\n`;
        const res = await post(body);
        assert.equal(res.status, 400);
        assert.match((await res.json()).error.message, /empty\.jsonl: it has no usable rows/);
      });
    } finally {
      await db.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
