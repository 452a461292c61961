// S3AdapterStore against a real S3-compatible server (s3rver behind a SigV4-checking front, on loopback):
// the round trip, immutable versions, missing bucket, wrong credentials, timeouts, torn uploads, corrupted
// objects, a second replica, and the conditional requests that keep pointers fresh.

import assert from "node:assert/strict";
import { AwsClient } from "aws4fetch";
import { AdapterVersionGoneError, ReadOnlyStoreError } from "../../src/store/adapter_store.ts";
import { FolderAdapterStore } from "../../src/store/folder_adapter_store.ts";
import { openAdapterStore, parseS3Location } from "../../src/store/open_adapter_store.ts";
import { S3AdapterStore, type S3AdapterStoreOptions } from "../../src/store/s3_adapter_store.ts";
import { startS3Server } from "../_util/s3_server.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const files = (tag: string) => ({
  config: enc(`{"tag":"${tag}"}`),
  weights: enc(`weights of ${tag}`.repeat(50)),
});

/** Requests a store sent, as `METHOD path?query` with the status and the If-None-Match header. */
interface Sent {
  method: string;
  path: string;
  status: number;
  ifNoneMatch: string | null;
}

function counting(sent: Sent[]): (request: Request) => Promise<Response> {
  return async (request) => {
    const response = await fetch(request);
    const url = new URL(request.url);
    sent.push({
      method: request.method,
      path: decodeURIComponent(url.pathname + url.search),
      status: response.status,
      ifNoneMatch: request.headers.get("if-none-match"),
    });
    return response;
  };
}

Deno.test("openAdapterStore: folders, s3:// locations and the AWS_* environment", async () => {
  assert.deepEqual(parseS3Location("s3://b"), { bucket: "b", prefix: "" });
  assert.deepEqual(parseS3Location("s3://b/x/y/"), { bucket: "b", prefix: "x/y" });
  assert.equal(parseS3Location("adapters/"), undefined);
  assert.throws(() => parseS3Location("s3:///x"), /expected s3:\/\/BUCKET\/PREFIX/);
  const folder = await openAdapterStore("some/dir", { readOnly: true });
  assert.ok(folder instanceof FolderAdapterStore && folder.readOnly && folder.root === "some/dir");
  await assert.rejects(openAdapterStore("gs://bucket/x"), /Unsupported adapter location "gs:\/\/bucket\/x"/);
  await assert.rejects(
    openAdapterStore("s3://bucket/x", { env: { AWS_ACCESS_KEY_ID: "AK" } }),
    /Cannot open adapter store s3:\/\/bucket\/x: AWS_SECRET_ACCESS_KEY is not set/,
  );
  // AWS_ENDPOINT_URL_S3 wins over AWS_ENDPOINT_URL (path-style); AWS_REGION over AWS_DEFAULT_REGION
  const urls: string[] = [];
  const auth: string[] = [];
  const store = await openAdapterStore("s3://bucket/pre/fix", {
    env: {
      AWS_ACCESS_KEY_ID: "AKID",
      AWS_SECRET_ACCESS_KEY: "secret",
      AWS_SESSION_TOKEN: "token",
      AWS_REGION: "eu-west-3",
      AWS_DEFAULT_REGION: "us-west-2",
      AWS_ENDPOINT_URL: "http://wrong.invalid",
      AWS_ENDPOINT_URL_S3: "http://127.0.0.1:1/",
    },
    s3: {
      retries: 0,
      fetch: (request) => {
        urls.push(request.url);
        auth.push(`${request.headers.get("authorization")} ${request.headers.get("x-amz-security-token")}`);
        return Promise.resolve(new Response(null, { status: 404 }));
      },
    },
  });
  assert.ok(store instanceof S3AdapterStore);
  assert.equal(store.location, "s3://bucket/pre/fix");
  assert.equal(await store.get("acme", "story"), undefined);
  assert.deepEqual(urls, ["http://127.0.0.1:1/bucket/pre/fix/acme/story/CURRENT"]);
  assert.match(auth[0], /Credential=AKID\/\d{8}\/eu-west-3\/s3\/aws4_request.* token$/);
  // without an endpoint: AWS itself, virtual-hosted style
  const aws = new S3AdapterStore({
    bucket: "bucket",
    accessKeyId: "AKID",
    secretAccessKey: "secret",
    region: "eu-west-3",
    fetch: (request) => {
      urls.push(request.url);
      return Promise.resolve(new Response(null, { status: 404 }));
    },
  });
  await aws.get("acme", "story");
  assert.equal(urls.at(-1), "https://bucket.s3.eu-west-3.amazonaws.com/acme/story/CURRENT");
  assert.throws(
    () => new S3AdapterStore({ bucket: "B_ad", accessKeyId: "a", secretAccessKey: "s" }),
    /bucket/,
  );
});

Deno.test("a timeout names the object, the endpoint and the deadline", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn); // accept, never answer
  })();
  try {
    const endpoint = `http://127.0.0.1:${listener.addr.port}`;
    const store = new S3AdapterStore({
      bucket: "adapters",
      endpoint,
      accessKeyId: "AK",
      secretAccessKey: "SK",
      timeoutMs: 200,
    });
    const started = performance.now();
    await assert.rejects(
      store.get("acme", "story"),
      new RegExp(`Cannot GET s3://adapters/acme/story/CURRENT at ${endpoint}: no answer within 0\\.2 s`),
    );
    assert.ok(performance.now() - started < 5_000);
  } finally {
    listener.close();
    for (const conn of held) conn.close();
    await accepting.catch(() => {});
  }
});

Deno.test({
  name: "S3AdapterStore against a real S3-compatible server",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const s3 = await startS3Server({ buckets: ["adapters"] });
    const raw = new AwsClient({
      accessKeyId: s3.accessKeyId,
      secretAccessKey: s3.secretAccessKey,
      region: "us-east-1",
      service: "s3",
      retries: 0,
    });
    const rawUrl = (key: string) => `${s3.endpoint}/adapters/${key}`;
    const rawPut = async (key: string, body: Uint8Array | string) => {
      const response = await raw.fetch(rawUrl(key), { method: "PUT", body: body as BodyInit });
      assert.equal(response.status, 200, await response.text());
    };
    const rawKeys = async (prefix: string) => {
      const xml = await (await raw.fetch(`${s3.endpoint}/adapters?list-type=2&prefix=${prefix}`)).text();
      return [...xml.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]).sort();
    };
    const open = (options: Partial<S3AdapterStoreOptions> & { prefix: string }) =>
      new S3AdapterStore({
        bucket: "adapters",
        endpoint: s3.endpoint,
        accessKeyId: s3.accessKeyId,
        secretAccessKey: s3.secretAccessKey,
        ...options,
      });
    try {
      await t.step(
        "put, get, read, list and delete; the folder store's layout under the prefix",
        async () => {
          const store = open({ prefix: "round/trip" });
          assert.deepEqual(await store.list("acme"), []);
          assert.equal(await store.get("acme", "story"), undefined);
          const { record, replaced } = await store.put("acme", "story", files("v1"));
          assert.equal(replaced, false);
          assert.equal(record.bytes, files("v1").config.length + files("v1").weights.length);
          await store.put("acme", "poem", files("p"));
          await store.put("other", "story", files("o"));
          assert.deepEqual((await store.list("acme")).map((r) => r.name), ["poem", "story"]);
          assert.deepEqual((await store.list("other")).map((r) => r.name), ["story"]);
          assert.deepEqual(await store.tenants(), ["acme", "other"]);
          assert.deepEqual(await store.get("acme", "story"), record);
          const read = await store.read(record);
          assert.equal(dec(read.config), '{"tag":"v1"}');
          assert.deepEqual(read.weights, files("v1").weights);
          const v = record.version;
          assert.deepEqual(await rawKeys("round/trip/acme/story/"), [
            `round/trip/acme/story/${v}/adapter_config.json`,
            `round/trip/acme/story/${v}/adapter_model.safetensors`,
            `round/trip/acme/story/${v}/meta.json`,
            "round/trip/acme/story/CURRENT",
          ]);
          const meta = JSON.parse(
            await (await raw.fetch(rawUrl(`round/trip/acme/story/${v}/meta.json`))).text(),
          );
          assert.deepEqual(meta, {
            created_at: record.createdAt,
            bytes: record.bytes,
            sha256: record.sha256,
          });
          // a fresh instance (no cache) reads the same
          const other = open({ prefix: "round/trip" });
          assert.deepEqual(await other.get("acme", "story"), record);
          assert.deepEqual((await other.read(record)).weights, files("v1").weights);
          assert.equal(await store.delete("acme", "story"), true);
          assert.equal(await store.delete("acme", "story"), false);
          assert.equal(await store.get("acme", "story"), undefined);
          assert.deepEqual(await rawKeys("round/trip/acme/story/"), []);
          assert.deepEqual((await store.list("acme")).map((r) => r.name), ["poem"]);
          await assert.rejects(store.read(record), AdapterVersionGoneError);
          const readOnly = open({ prefix: "round/trip", readOnly: true });
          await assert.rejects(readOnly.put("acme", "x", files("x")), ReadOnlyStoreError);
          await assert.rejects(readOnly.delete("acme", "poem"), /s3:\/\/adapters\/round\/trip is read-only/);
        },
      );

      await t.step("versions are immutable: a replacement is a new version, the old one goes", async () => {
        const store = open({ prefix: "versions" });
        const first = (await store.put("t", "a", files("one"))).record;
        const second = await store.put("t", "a", files("two"));
        assert.equal(second.replaced, true);
        assert.ok(second.record.version > first.version);
        assert.equal((await store.get("t", "a"))?.version, second.record.version);
        assert.equal(dec((await store.read(second.record)).config), '{"tag":"two"}');
        await assert.rejects(store.read(first), AdapterVersionGoneError);
        // another instance, which never cached the first version, finds it gone too
        await assert.rejects(open({ prefix: "versions" }).read(first), /version .* no longer exists/);
        const keys = await rawKeys("versions/t/a/");
        assert.ok(keys.every((k) => !k.includes(first.version)), keys.join("\n"));
      });

      await t.step("a missing bucket is named with the endpoint", async () => {
        const store = new S3AdapterStore({
          bucket: "no-such-bucket",
          endpoint: s3.endpoint,
          accessKeyId: s3.accessKeyId,
          secretAccessKey: s3.secretAccessKey,
        });
        const message = new RegExp(`The bucket "no-such-bucket" does not exist at ${s3.endpoint}`);
        await assert.rejects(store.list("acme"), message);
        await assert.rejects(store.get("acme", "story"), message);
        await assert.rejects(store.put("acme", "story", files("x")), message);
      });

      await t.step("wrong credentials name the key id, never the secret", async () => {
        const wrongSecret = open({ prefix: "creds", secretAccessKey: "not-the-secret-123" });
        const error = await wrongSecret.list("acme").catch((e) => e as Error);
        assert.ok(error instanceof Error);
        assert.match(
          error.message,
          new RegExp(`access key id "${s3.accessKeyId}" were refused \\(SignatureDoesNotMatch`),
        );
        assert.doesNotMatch(error.message, /not-the-secret-123/);
        await assert.rejects(wrongSecret.put("acme", "x", files("x")), /SignatureDoesNotMatch/);
        const unknownKey = open({ prefix: "creds", accessKeyId: "AKIDUNKNOWN" });
        await assert.rejects(
          unknownKey.get("acme", "x"),
          /access key id "AKIDUNKNOWN" were refused \(InvalidAccessKeyId/,
        );
        assert.deepEqual(await rawKeys("creds/"), [], "nothing was written with wrong credentials");
      });

      await t.step(
        "a torn upload (objects without a pointer) is invisible and cleaned by the next put",
        async () => {
          const store = open({ prefix: "torn" });
          const torn = "0000000001-aaaaaaaa";
          await rawPut(`torn/acme/story/${torn}/adapter_config.json`, "{}");
          await rawPut(`torn/acme/story/${torn}/adapter_model.safetensors`, "half");
          assert.equal(await store.get("acme", "story"), undefined);
          assert.deepEqual(await store.list("acme"), []);
          const { record, replaced } = await store.put("acme", "story", files("whole"));
          assert.equal(replaced, false);
          assert.deepEqual((await store.list("acme")).map((r) => r.version), [record.version]);
          assert.ok((await rawKeys("torn/acme/story/")).every((k) => !k.includes(torn)));
        },
      );

      await t.step("a pointer to missing objects is an error naming them, and is not listed", async () => {
        const store = open({ prefix: "dangling" });
        await store.put("acme", "fine", files("fine"));
        await rawPut("dangling/acme/story/CURRENT", "0000000002-bbbbbbbb\n");
        await assert.rejects(
          store.get("acme", "story"),
          /s3:\/\/adapters\/dangling\/acme\/story\/CURRENT names version 0000000002-bbbbbbbb, but s3:\/\/adapters\/dangling\/acme\/story\/0000000002-bbbbbbbb\/meta\.json does not exist/,
        );
        assert.deepEqual((await store.list("acme")).map((r) => r.name), ["fine"]);
        // meta present, weights missing: read names the weights object
        const meta = JSON.stringify({ created_at: 1, bytes: 10, sha256: "0".repeat(64) });
        await rawPut("dangling/acme/story/CURRENT", "0000000003-cccccccc\n");
        await rawPut("dangling/acme/story/0000000003-cccccccc/meta.json", meta);
        await rawPut("dangling/acme/story/0000000003-cccccccc/adapter_config.json", "{}");
        const fresh = open({ prefix: "dangling" });
        const record = await fresh.get("acme", "story");
        assert.equal(record?.version, "0000000003-cccccccc");
        await assert.rejects(
          fresh.read(record!),
          /dangling\/acme\/story\/0000000003-cccccccc\/adapter_model\.safetensors of its current version .* does not exist/,
        );
        assert.equal(await store.delete("acme", "story"), true);
        assert.deepEqual(await rawKeys("dangling/acme/story/"), []);
      });

      await t.step("a corrupted object fails its checksum and is never served", async () => {
        const writer = open({ prefix: "corrupt" });
        const { record } = await writer.put("acme", "story", files("good"));
        const key = `corrupt/acme/story/${record.version}/adapter_model.safetensors`;
        const bad = files("good").weights.slice();
        bad[7] ^= 1;
        await rawPut(key, bad);
        const reader = open({ prefix: "corrupt" });
        const current = await reader.get("acme", "story");
        assert.deepEqual(current, record);
        await assert.rejects(
          reader.read(current!),
          new RegExp(
            `s3://adapters/${
              key.replaceAll(".", "\\.")
            } is corrupted \\(the weights' SHA-256 is [0-9a-f]{64}`,
          ),
        );
        await assert.rejects(reader.read(current!), /is corrupted/, "not cached after the failure");
        // a truncated config fails the size check
        await rawPut(key, files("good").weights);
        await rawPut(`corrupt/acme/story/${record.version}/adapter_config.json`, "{}");
        await assert.rejects(open({ prefix: "corrupt" }).read(record), /adapter_config\.json is corrupted/);
      });

      await t.step("a second replica sees a new adapter within its freshness window", async () => {
        const writer = open({ prefix: "replicas" });
        const replica = open({ prefix: "replicas", freshnessMs: 500 });
        const v1 = (await writer.put("acme", "story", files("v1"))).record;
        assert.equal((await replica.get("acme", "story"))?.version, v1.version);
        assert.equal(await replica.get("acme", "new"), undefined);
        const started = performance.now();
        const v2 = (await writer.put("acme", "story", files("v2"))).record;
        await writer.put("acme", "new", files("new"));
        let seen = 0;
        while ((await replica.get("acme", "story"))?.version !== v2.version) {
          assert.ok(performance.now() - started < 2_000, "the replica saw v2 within 2 s");
          await new Promise((r) => setTimeout(r, 20));
        }
        seen = performance.now() - started;
        assert.ok(seen < 2_000, `seen after ${seen} ms`);
        // "new" was looked up (and found missing) after "story": its pointer may be a few ms younger
        while (!(await replica.get("acme", "new"))) {
          assert.ok(performance.now() - started < 2_000, "the replica saw the new adapter within 2 s");
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal((await replica.get("acme", "new"))?.name, "new");
        assert.equal(dec((await replica.read(v2)).config), '{"tag":"v2"}');
        await assert.rejects(replica.read(v1), AdapterVersionGoneError);
        // deleted on one replica: gone on the other within the window
        await writer.delete("acme", "new");
        const deleted = performance.now();
        while (await replica.get("acme", "new")) {
          assert.ok(performance.now() - deleted < 2_000, "the replica saw the deletion within 2 s");
          await new Promise((r) => setTimeout(r, 20));
        }
      });

      await t.step("pointers are revalidated with If-None-Match; version objects are read once", async () => {
        const writer = open({ prefix: "etag" });
        await writer.put("acme", "story", files("e"));
        const sent: Sent[] = [];
        const store = open({ prefix: "etag", freshnessMs: 0, fetch: counting(sent) });
        const record = (await store.get("acme", "story"))!;
        assert.deepEqual(sent.map((s) => `${s.method} ${s.path} ${s.status}`), [
          "GET /adapters/etag/acme/story/CURRENT 200",
          `GET /adapters/etag/acme/story/${record.version}/meta.json 200`,
        ]);
        assert.equal(sent[0].ifNoneMatch, null);
        sent.length = 0;
        assert.deepEqual(await store.get("acme", "story"), record);
        assert.deepEqual(sent.map((s) => `${s.method} ${s.path} ${s.status}`), [
          "GET /adapters/etag/acme/story/CURRENT 304",
        ]);
        assert.match(sent[0].ifNoneMatch ?? "", /^"[0-9a-f]+"$/);
        sent.length = 0;
        await store.read(record);
        assert.equal(sent.length, 2, "config and weights");
        sent.length = 0;
        await store.read(record);
        await store.get("acme", "story");
        assert.deepEqual(sent.map((s) => `${s.method} ${s.status}`), ["GET 304"], "files from the cache");
        sent.length = 0;
        const together = await Promise.all(Array.from({ length: 10 }, () => store.get("acme", "story")));
        assert.ok(together.every((r) => r?.version === record.version));
        assert.deepEqual(
          sent.map((s) => `${s.method} ${s.status}`),
          ["GET 304"],
          "concurrent lookups share one",
        );
        // within the freshness window: no request at all
        const cached: Sent[] = [];
        const fresh = open({ prefix: "etag", freshnessMs: 60_000, fetch: counting(cached) });
        await fresh.get("acme", "story");
        const before = cached.length;
        for (let i = 0; i < 10; i++) await fresh.get("acme", "story");
        assert.equal(cached.length, before);
        // a cache too small for the weights reads them again
        const small: Sent[] = [];
        const tiny = open({ prefix: "etag", cacheBytes: 100, fetch: counting(small) });
        await tiny.read(record);
        await tiny.read(record);
        assert.equal(small.filter((s) => s.path.endsWith("adapter_model.safetensors")).length, 2);
      });
    } finally {
      await s3.stop();
    }
  },
});
