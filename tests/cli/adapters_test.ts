// `deno task adapters push|list|rm` on a folder and on S3 (s3rver on loopback), run as a subprocess under
// the permissions of its deno.json task; push validates the PEFT files (against --model when given).

import assert from "node:assert/strict";
import { parseAdaptersArgs, readAdapterFolder } from "../../src/cli/adapters.ts";
import { UsageError } from "../../src/cli/_args.ts";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { FolderAdapterStore } from "../../src/store/folder_adapter_store.ts";
import { openAdapterStore } from "../../src/store/open_adapter_store.ts";
import { requireStories260k } from "../_util/fixtures.ts";
import { startS3Server } from "../_util/s3_server.ts";
import { randomAdapterFiles, stories260kHf, writeAdapterFolder } from "../serve/_fixtures.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);

/** The permission flags of `deno task adapters`, read from deno.json. */
async function taskPermissions(): Promise<string[]> {
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks as Record<string, string>;
  const words = tasks.adapters.split(/\s+/);
  assert.equal(words.slice(0, 2).join(" "), "deno run");
  assert.equal(words.at(-1), "src/cli/adapters.ts");
  return words.slice(2, -1);
}

async function adapters(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...(await taskPermissions()), "src/cli/adapters.ts", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("adapters: the command line", () => {
  assert.equal(parseAdaptersArgs([]), "help");
  assert.equal(parseAdaptersArgs(["push", "--help"]), "help");
  assert.deepEqual(
    parseAdaptersArgs(["push", "--to", "s3://b/p", "--tenant", "acme", "--name", "story", "out/adapter"]),
    { command: "push", to: "s3://b/p", tenant: "acme", name: "story", model: undefined, dir: "out/adapter" },
  );
  assert.deepEqual(
    parseAdaptersArgs(["push", "dir", "--to=x", "--tenant", "t", "--name", "n", "--model", "m"]),
    {
      command: "push",
      to: "x",
      tenant: "t",
      name: "n",
      model: "m",
      dir: "dir",
    },
  );
  assert.deepEqual(parseAdaptersArgs(["list", "--from", "d", "--json"]), {
    command: "list",
    from: "d",
    tenant: undefined,
    json: true,
  });
  assert.deepEqual(parseAdaptersArgs(["rm", "--from", "d", "--tenant", "t", "--name", "n"]), {
    command: "rm",
    from: "d",
    tenant: "t",
    name: "n",
  });
  assert.throws(() => parseAdaptersArgs(["copy"]), /Unknown command "copy": expected push, list or rm/);
  assert.throws(
    () => parseAdaptersArgs(["push", "--to", "x", "--tenant", "t", "--name", "n"]),
    /one adapter folder/,
  );
  assert.throws(() => parseAdaptersArgs(["push", "--tenant", "t", "--name", "n", "d"]), /missing --to/);
  assert.throws(() => parseAdaptersArgs(["list", "--to", "x"]), /--to does not apply to `adapters list`/);
  assert.throws(() => parseAdaptersArgs(["rm", "--from", "x", "--tenant", "t"]), /missing --name/);
  assert.throws(
    () => parseAdaptersArgs(["rm", "--from", "x", "--tenant", "../t", "--name", "n"]),
    UsageError,
  );
  assert.throws(() => parseAdaptersArgs(["list", "--from", "x", "--bogus"]), UsageError);
});

Deno.test({
  name: "adapters push validates the PEFT files, against --model when given",
  ignore: !requireStories260k("adapters push validation"),
  async fn() {
    const model = await stories260kHf();
    const { config } = await loadModelFolder(model);
    const dir = await Deno.makeTempDir({ prefix: "adapters_validate_" });
    try {
      const good = randomAdapterFiles(config, { seed: 1 });
      await writeAdapterFolder(`${dir}/good`, good);
      assert.deepEqual(await readAdapterFolder(`${dir}/good`, { model, source: "good" }), good);
      assert.deepEqual(await readAdapterFolder(`${dir}/good`, { source: "good" }), good);
      // a rank the model's shapes do not fit: only the model check sees it
      const wide = randomAdapterFiles({ ...config, hiddenSize: config.hiddenSize * 2 }, { seed: 2 });
      await writeAdapterFolder(`${dir}/wide`, wide);
      await assert.rejects(readAdapterFolder(`${dir}/wide`, { model, source: "wide" }), /has shape/);
      await readAdapterFolder(`${dir}/wide`, { source: "wide" });
      await writeAdapterFolder(`${dir}/notlora`, {
        config: new TextEncoder().encode('{"peft_type": "IA3", "r": 4}'),
        weights: good.weights,
      });
      await assert.rejects(
        readAdapterFolder(`${dir}/notlora`, { source: "notlora" }),
        /only "LORA" is supported/,
      );
      await Deno.mkdir(`${dir}/empty`);
      await assert.rejects(
        readAdapterFolder(`${dir}/empty`, { source: "empty" }),
        new RegExp(`cannot read ${dir}/empty/adapter_config.json: the file does not exist`),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "adapters push, list and rm on a folder and on S3, under the task's permissions",
  ignore: !requireStories260k("adapters push/list/rm"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const model = await stories260kHf();
    const { config } = await loadModelFolder(model);
    const dir = await Deno.makeTempDir({ prefix: "adapters_cli_" });
    const s3 = await startS3Server({ buckets: ["deploy"] });
    try {
      const v1 = randomAdapterFiles(config, { seed: 3 });
      const v2 = randomAdapterFiles(config, { seed: 4, rank: 8 });
      await writeAdapterFolder(`${dir}/v1`, v1);
      await writeAdapterFolder(`${dir}/v2`, v2);
      await writeAdapterFolder(
        `${dir}/bad`,
        randomAdapterFiles({ ...config, hiddenSize: 2 * config.hiddenSize }, { seed: 5 }),
      );
      for (const [label, location] of [["folder", `${dir}/store`], ["s3", "s3://deploy/prod"]]) {
        await t.step(label, async () => {
          const env = label === "s3" ? s3.env : {};
          const push = (name: string, src: string, tenant = "acme") =>
            adapters(
              ["push", "--to", location, "--tenant", tenant, "--name", name, "--model", model, src],
              env,
            );
          const first = await push("story", `${dir}/v1`);
          assert.equal(first.code, 0, first.stderr);
          const version = first.stdout.trim();
          assert.match(version, /^[0-9a-z]{9}-[0-9a-f]{8}$/, "push prints the version id alone");
          assert.match(first.stderr, new RegExp(`Pushed acme/story version ${version} \\(\\d+ bytes\\) to `));
          const second = await push("story", `${dir}/v2`);
          assert.equal(second.code, 0, second.stderr);
          assert.ok(second.stdout.trim() > version, "a new, later version");
          assert.match(second.stderr, /replacing the earlier version/);
          assert.equal((await push("poem", `${dir}/v1`, "beta")).code, 0);
          const refused = await push("bad", `${dir}/bad`);
          assert.equal(refused.code, 1);
          assert.match(refused.stderr, /adapters: Cannot load adapter "bad".*has shape/);
          // what a server would read
          const store = await openAdapterStore(location, { env, readOnly: true });
          const record = await store.get("acme", "story");
          assert.equal(record?.version, second.stdout.trim());
          assert.deepEqual(await store.read(record!), v2);
          assert.equal(await store.get("acme", "bad"), undefined);
          if (label === "folder") assert.ok(store instanceof FolderAdapterStore);

          const all = await adapters(["list", "--from", location], env);
          assert.equal(all.code, 0, all.stderr);
          const rows = all.stdout.trim().split("\n").map((l) => l.split("\t"));
          assert.deepEqual(rows[0], ["tenant", "name", "version", "bytes", "created", "sha256"]);
          assert.deepEqual(rows.slice(1).map((r) => `${r[0]}/${r[1]}`), ["acme/story", "beta/poem"]);
          assert.equal(rows[1][2], record!.version);
          assert.equal(Number(rows[1][3]), record!.bytes);
          const json = await adapters(["list", "--from", location, "--tenant", "acme", "--json"], env);
          assert.equal(json.code, 0, json.stderr);
          const listed = json.stdout.trim().split("\n").map((l) => JSON.parse(l));
          assert.deepEqual(listed, [{
            tenant: "acme",
            name: "story",
            version: record!.version,
            bytes: record!.bytes,
            created_at: record!.createdAt,
            sha256: record!.sha256,
          }]);

          const rm = await adapters(["rm", "--from", location, "--tenant", "acme", "--name", "story"], env);
          assert.equal(rm.code, 0, rm.stderr);
          assert.match(rm.stderr, /Removed acme\/story from /);
          const again = await adapters(
            ["rm", "--from", location, "--tenant", "acme", "--name", "story"],
            env,
          );
          assert.equal(again.code, 1);
          assert.match(again.stderr, /no adapter "story" of tenant "acme" in /);
          const after = await adapters(["list", "--from", location, "--json"], env);
          assert.deepEqual(after.stdout.trim().split("\n").map((l) => JSON.parse(l).name), ["poem"]);
        });
      }
      await t.step("s3 errors: no credentials, wrong secret", async () => {
        const none = await adapters(["list", "--from", "s3://deploy/prod"]);
        assert.equal(none.code, 1);
        assert.match(none.stderr, /AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set/);
        const wrong = await adapters(["list", "--from", "s3://deploy/prod"], {
          ...s3.env,
          AWS_SECRET_ACCESS_KEY: "wrong-secret-value",
        });
        assert.equal(wrong.code, 1);
        assert.match(wrong.stderr, /access key id "WEIGHTLORATEST" were refused \(SignatureDoesNotMatch/);
        assert.doesNotMatch(wrong.stderr, /wrong-secret-value/);
      });
    } finally {
      await s3.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
