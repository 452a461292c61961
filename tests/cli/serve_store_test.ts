// `deno task serve --store DIR` serves the whole API (files and fine-tuning jobs too) with its embedded
// database in DIR/db, importing DIR's folder-layout adapters on first start; `--read-only` stays the
// folder-only edge mode; a second server on the same folder is refused by the database lock.

import assert from "node:assert/strict";
import { parseServeArgs, type ServeArgs } from "../../src/cli/serve.ts";
import { UsageError } from "../../src/cli/_args.ts";
import { loadModelFolder } from "../../src/io/model_folder.ts";
import { FolderAdapterStore } from "../../src/store/folder_adapter_store.ts";
import { requireStories260k } from "../_util/fixtures.ts";
import { randomAdapterFiles, stories260kHf } from "../serve/_fixtures.ts";
import { api, spawnDeno, spawnServer } from "../jobs/_process.ts";

Deno.test("serve flags: --store DIR puts the embedded database in DIR/db unless --db names another", () => {
  const parse = (args: string[]) => parseServeArgs(["--model", "m", ...args]) as ServeArgs;
  const plain = parse(["--store", "state/"]);
  assert.equal(plain.db, "state/db");
  assert.equal(plain.dbSource, "--store");
  assert.equal(parse(["--store", "state", "--db", "other/db"]).db, "other/db");
  const edge = parse(["--store", "state", "--read-only"]);
  assert.equal(edge.db, undefined);
  assert.equal(edge.readOnly, true);
  assert.throws(() => parse(["--store", "s", "--read-only", "--db", "x"]), UsageError);
  assert.equal(parse(["--max-file-mb", "3"]).maxFileMb, 3);
  assert.equal(parse([]).maxFileMb, 64);
});

Deno.test({
  name:
    "serve --store DIR: /v1/files and /v1/fine_tuning/jobs answer, DIR's adapters are imported into DIR/db",
  ignore: !requireStories260k("serve --store"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const model = await stories260kHf();
    const { config } = await loadModelFolder(model);
    const dir = await Deno.makeTempDir({ prefix: "serve_store_" });
    await new FolderAdapterStore(dir).put(
      "default",
      "story",
      randomAdapterFiles(config, { seed: 4, scale: 0.1 }),
    );
    const { server, url } = await spawnServer(["--model", model, "--store", dir, "--max-file-mb", "1"]);
    try {
      await server.waitFor(/State: created .*\/db, imported 1 adapter\(s\)/);
      assert.ok((await Deno.stat(`${dir}/db`)).isDirectory);
      const files = await api(url, "/v1/files");
      assert.equal(files.status, 200, JSON.stringify(files.body));
      assert.deepEqual(files.body.data, []);
      const jobs = await api(url, "/v1/fine_tuning/jobs");
      assert.equal(jobs.status, 200, JSON.stringify(jobs.body));
      const adapters = await api(url, "/v1/adapters");
      assert.deepEqual((adapters.body.data as { id: string }[]).map((a) => a.id), ["story"]);
      // the file limit flag reaches the route
      const form = new FormData();
      form.append("purpose", "fine-tune");
      form.append("file", new File(["x".repeat(2 * 2 ** 20)], "big.jsonl"));
      const big = await api(url, "/v1/files", { form });
      assert.equal(big.status, 413, JSON.stringify(big.body));

      // a second server on the same folder is refused, naming the first
      const second = spawnDeno("src/cli/serve.ts", [
        "--model",
        model,
        "--store",
        dir,
        "--port",
        "0",
        "--ep",
        "wasm",
      ]);
      const status = await second.child.status;
      assert.equal(status.code, 1);
      assert.match(
        second.lines.join("\n"),
        /Cannot open the embedded database in .*\/db: it is in use by process \d+ \(src\/cli\/serve\.ts --model/,
      );
    } finally {
      await server.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
