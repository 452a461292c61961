import assert from "node:assert/strict";
import { convertGguf } from "../../src/io/convert.ts";
import { downloadHubFiles, parseModelSource, resolveModelSource } from "../../src/io/hub.ts";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { writeModelFolder } from "../../src/io/write_model_folder.ts";
import { FakeHub } from "./_fake_hub.ts";
import {
  randomWeights,
  requireStories260k,
  stories,
  TINY_CONFIG,
  tinyTokenizerJson,
  withTempDir,
} from "./_helpers.ts";

const HAVE = requireStories260k("hub_test");
const COMMIT = "0123456789abcdef0123456789abcdef01234567";

/** The files of a folder, by name. */
async function filesOf(dir: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for (const e of Deno.readDirSync(dir)) files.set(e.name, await Deno.readFile(`${dir}/${e.name}`));
  return files;
}

/** Runs `fn` with a started fake hub serving the converted stories260K as acme/stories. */
async function withHub(
  fn: (hub: FakeHub, cache: string, sha: string, files: Map<string, Uint8Array>) => Promise<void>,
) {
  await withTempDir(async (dir) => {
    await convertGguf({ model: stories().gguf, out: `${dir}/model` });
    const files = await filesOf(`${dir}/model`);
    const hub = new FakeHub().start();
    try {
      const sha = hub.add("acme/stories", { files, commit: COMMIT }).get("model.safetensors")!;
      await fn(hub, `${dir}/cache`, sha, files);
    } finally {
      await hub.close();
    }
  });
}

Deno.test("parseModelSource: folders, hf: sources with and without revision, malformed sources", () => {
  assert.deepEqual(parseModelSource("./models/x"), { kind: "dir", path: "./models/x" });
  assert.deepEqual(parseModelSource("hf:Qwen/Qwen2-0.5B"), {
    kind: "hub",
    repo: "Qwen/Qwen2-0.5B",
    revision: "main",
  });
  assert.deepEqual(parseModelSource("hf:a/b@refs/pr/1"), { kind: "hub", repo: "a/b", revision: "refs/pr/1" });
  for (const bad of ["hf:noslash", "hf:a/b/c", "hf:../b", "hf:a/b@", "hf:a/b@x y", "hf:a/.."]) {
    assert.throws(() => parseModelSource(bad), /Cannot parse model source/, bad);
  }
});

Deno.test("a folder source is returned as is; a missing folder is an error", async () => {
  await withTempDir(async (dir) => {
    assert.equal(await resolveModelSource(dir), dir);
    await assert.rejects(
      resolveModelSource(`${dir}/nope`),
      /Cannot use model folder .*\/nope: it does not exist/,
    );
    await Deno.writeTextFile(`${dir}/f`, "");
    await assert.rejects(resolveModelSource(`${dir}/f`), /it is not a folder/);
  });
});

Deno.test({
  name: "an interrupted download is kept, resumed with a Range request, checked against sha256 and cached",
  ignore: !HAVE,
  fn: async () => {
    await withHub(async (hub, cache, sha, files) => {
      const options = { cacheDir: cache, endpoint: hub.url, progress: "none" as const, retries: 0 };
      const full = files.get("model.safetensors")!;
      hub.interrupt.set(sha, 300_000);
      await assert.rejects(
        resolveModelSource("hf:acme/stories", options),
        /Cannot download acme\/stories\/model\.safetensors: the transfer was interrupted at .* of 1020\.5 KiB .*model\.safetensors\.incomplete is kept/,
      );
      const snapshot = `${cache}/models--acme--stories/snapshots/${COMMIT}`;
      const partial = Deno.statSync(`${snapshot}/model.safetensors.incomplete`).size;
      assert.ok(partial > 0 && partial <= 300_000, `partial size ${partial}`);

      hub.requests.length = 0;
      const dir = await resolveModelSource("hf:acme/stories", options);
      assert.equal(dir, snapshot);
      const cdn = hub.requests.filter((r) => r.path === `/cdn/${sha}` && r.method === "GET");
      assert.deepEqual(
        cdn.map((r) => r.range),
        [`bytes=${partial}-`],
        "one resumed request from the partial size",
      );
      assert.deepEqual(await Deno.readFile(`${dir}/model.safetensors`), full);
      assert.equal([...Deno.readDirSync(dir)].some((e) => e.name.endsWith(".incomplete")), false);
      assert.equal(await Deno.readTextFile(`${cache}/models--acme--stories/refs/main`), COMMIT);
      for (const [name, bytes] of files) assert.deepEqual(await Deno.readFile(`${dir}/${name}`), bytes, name);
      const model = await loadModelFolder(dir);
      assert.equal(model.id, "acme/stories", "a hub snapshot is named after its repository");
      assert.equal(model.weights.size, 47);

      // A second resolution downloads nothing; offline mode needs no network at all.
      hub.requests.length = 0;
      assert.equal(await resolveModelSource("hf:acme/stories", options), dir);
      assert.equal(hub.requests.filter((r) => r.method === "GET").length, 0);
      const noNetwork = () => Promise.reject(new Error("offline"));
      assert.equal(
        await resolveModelSource("hf:acme/stories", { ...options, offline: true, fetch: noNetwork }),
        dir,
      );
      assert.equal(
        await resolveModelSource(`hf:acme/stories@${COMMIT}`, {
          ...options,
          offline: true,
          fetch: noNetwork,
        }),
        dir,
      );
      await assert.rejects(
        resolveModelSource("hf:acme/other", { ...options, offline: true }),
        /Cannot resolve hf:acme\/other offline: no cached snapshot/,
      );
    });
  },
});

Deno.test({
  name: "retries resume within one call; a corrupted transfer fails its sha256 check and is removed",
  ignore: !HAVE,
  fn: async () => {
    await withHub(async (hub, cache, sha, files) => {
      const options = { cacheDir: cache, endpoint: hub.url, progress: "none" as const, retries: 2 };
      hub.corrupt.add(sha);
      await assert.rejects(
        resolveModelSource("hf:acme/stories", options),
        new RegExp(
          `model\\.safetensors: sha256 [0-9a-f]{64} does not match the hub's ${sha}; the corrupt file was removed`,
        ),
      );
      const snapshot = `${cache}/models--acme--stories/snapshots/${COMMIT}`;
      const names = [...Deno.readDirSync(snapshot)].map((e) => e.name);
      assert.ok(!names.some((n) => n.startsWith("model.safetensors")), names.join());

      hub.corrupt.delete(sha);
      hub.interrupt.set(sha, 100_000);
      hub.requests.length = 0;
      const dir = await resolveModelSource("hf:acme/stories", options);
      const ranges = hub.requests.filter((r) => r.path === `/cdn/${sha}`).map((r) => r.range);
      assert.equal(ranges.length, 2);
      assert.equal(ranges[0], null);
      assert.match(ranges[1]!, /^bytes=\d+-$/);
      assert.deepEqual(await Deno.readFile(`${dir}/model.safetensors`), files.get("model.safetensors"));
    });
  },
});

Deno.test({
  name: "private repos: 401 says to set HF_TOKEN; HF_TOKEN, HF_ENDPOINT and HF_HOME are honoured",
  ignore: !HAVE,
  fn: async () => {
    await withHub(async (hub, cache, _sha, files) => {
      hub.add("acme/private", { files, commit: COMMIT, token: "secret" });
      const options = { cacheDir: cache, endpoint: hub.url, progress: "none" as const };
      await assert.rejects(
        resolveModelSource("hf:acme/private", options),
        /Cannot download acme\/private\/config\.json: HTTP 401, the repository is private or gated: set HF_TOKEN/,
      );
      await assert.rejects(
        resolveModelSource("hf:acme/private", { ...options, token: "wrong" }),
        /HTTP 401, the token in HF_TOKEN has no access to it/,
      );
      const saved = ["HF_TOKEN", "HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE"].map((k) =>
        [k, Deno.env.get(k)] as const
      );
      try {
        Deno.env.delete("HF_HUB_CACHE");
        Deno.env.set("HF_TOKEN", "secret");
        Deno.env.set("HF_ENDPOINT", hub.url);
        Deno.env.set("HF_HOME", `${cache}/home`);
        hub.requests.length = 0;
        const dir = await resolveModelSource("hf:acme/private", { progress: "none" });
        assert.equal(dir, `${cache}/home/hub/models--acme--private/snapshots/${COMMIT}`);
        assert.ok(hub.requests.length > 0 && hub.requests.every((r) => r.authorization === "Bearer secret"));
      } finally {
        for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
      }
    });
  },
});

Deno.test({
  name: "sharded checkpoints, optional files, renamed repos and missing repos or revisions",
  ignore: !HAVE,
  fn: async () => {
    await withHub(async (hub, cache) => {
      const options = { cacheDir: cache, endpoint: hub.url, progress: "none" as const };
      await withTempDir(async (src) => {
        await writeModelFolder(`${src}/m`, {
          config: TINY_CONFIG,
          weights: randomWeights(TINY_CONFIG, 2),
          tokenizerJson: tinyTokenizerJson(TINY_CONFIG.vocabSize),
          tokenizerConfig: { bos_token: "<s>", eos_token: "</s>" },
        }, { maxShardBytes: 4000 });
        const files = await filesOf(`${src}/m`);
        files.delete("generation_config.json");
        files.set("chat_template.jinja", new TextEncoder().encode("{{ messages }}"));
        hub.add("acme/sharded", { files, commit: COMMIT });
        const dir = await resolveModelSource("hf:acme/sharded", options);
        const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
        assert.deepEqual(names, [...files.keys()].sort());
        assert.ok(names.filter((n) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(n)).length >= 2);
        const model = await loadModelFolder(dir);
        assert.equal(model.chatTemplate, "{{ messages }}");
        assert.equal(model.id, "acme/sharded");
      });
      hub.renamed.set("acme/old-stories", "acme/stories");
      const renamed = await resolveModelSource("hf:acme/old-stories", options);
      assert.equal(renamed, `${cache}/models--acme--old-stories/snapshots/${COMMIT}`);
      assert.ok(Deno.statSync(`${renamed}/model.safetensors`).size > 0);
      await assert.rejects(
        resolveModelSource("hf:acme/nope", options),
        /Cannot resolve hf:acme\/nope: http:\/\/127\.0\.0\.1:\d+\/acme\/nope has no config\.json at revision "main"/,
      );
      await assert.rejects(
        resolveModelSource("hf:acme/stories@v9", options),
        /has no config\.json at revision "v9"/,
      );
      const weightless = new Map([["config.json", new TextEncoder().encode("{}")], [
        "tokenizer.json",
        new Uint8Array(2),
      ]]);
      hub.add("acme/weightless", { files: weightless, commit: COMMIT });
      await assert.rejects(
        resolveModelSource("hf:acme/weightless", options),
        /Cannot resolve hf:acme\/weightless: the repository has neither model\.safetensors nor model\.safetensors\.index\.json/,
      );
    });
  },
});

Deno.test("downloadHubFiles fetches chosen files in folders (a llama2.c checkpoint) and works offline after", async () => {
  if (!HAVE) return;
  await withTempDir(async (dir) => {
    const bin = await Deno.readFile(stories().bin);
    const tok = await Deno.readFile(stories().tok);
    const hub = new FakeHub().start();
    try {
      hub.add("karpathy/tinyllamas", {
        files: new Map([["stories260K/stories260K.bin", bin], ["stories260K/tok512.bin", tok]]),
        commit: COMMIT,
        lfs: new Set(["stories260K/stories260K.bin"]),
      });
      const options = { cacheDir: `${dir}/cache`, endpoint: hub.url, progress: "none" as const };
      const files = ["stories260K/stories260K.bin", "stories260K/tok512.bin"];
      const paths = await downloadHubFiles("hf:karpathy/tinyllamas", files, options);
      assert.deepEqual(await Deno.readFile(paths[files[0]]), bin);
      assert.deepEqual(await Deno.readFile(paths[files[1]]), tok);
      assert.match(paths[files[0]], new RegExp(`snapshots/${COMMIT}/stories260K/stories260K.bin$`));
      const offline = await downloadHubFiles("hf:karpathy/tinyllamas", files, { ...options, offline: true });
      assert.deepEqual(offline, paths);
      await assert.rejects(
        downloadHubFiles("hf:karpathy/tinyllamas", ["stories260K/missing.bin"], options),
        /has no stories260K\/missing\.bin/,
      );
      await assert.rejects(downloadHubFiles("./folder", files, options), /expected hf:OWNER\/REPO/);
    } finally {
      await hub.close();
    }
  });
});
