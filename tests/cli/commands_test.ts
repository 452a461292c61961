// Every command's --help comes from its flag declaration and documents every flag with its default; the
// server and the worker name their database the same way (--db, DATABASE_URL, .weightlora/db) and refuse
// configurations that cannot work; convert creates the output's parent folders.

import assert from "node:assert/strict";
import { COMMANDS } from "../../src/cli/docs_tables.ts";
import { defaultLabel, helpText } from "../../src/cli/_flags.ts";
import { requireStories260k, stories260kDir } from "../_util/fixtures.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);

async function cli(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; permissions?: string[] } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1", ...options.env };
  if (!options.env?.DATABASE_URL) delete env.DATABASE_URL;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...(options.permissions ?? ["-A"]), `src/cli/${command}.ts`, ...args],
    cwd: ROOT,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("--help of every task prints its declaration: each flag with its default, exit 0", async () => {
  for (const [name, spec] of COMMANDS) {
    const help = await cli(name, ["--help"]);
    assert.equal(help.code, 0, `${name} --help: ${help.stderr}`);
    assert.equal(help.stdout, helpText(spec) + "\n", `${name} --help prints helpText`);
    const flat = help.stdout.replace(/\s+/g, " ");
    for (const flag of spec.flags) {
      assert.ok(flat.includes(`--${flag.name}`), `${name} --help lists --${flag.name}`);
      const label = flag.required ? "Required." : `Default: ${defaultLabel(flag)}.`;
      assert.ok(flat.includes(label), `${name} --help gives --${flag.name}'s default (${label})`);
    }
    assert.equal(new Set(spec.flags.map((f) => f.name)).size, spec.flags.length, `${name}: a flag twice`);
  }
});

Deno.test("serve: --db wins over DATABASE_URL, which wins over .weightlora/db; --no-train needs a server", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // an embedded database named by DATABASE_URL: --no-train could never run a job
    const fromEnv = await cli("serve", ["--model", `${dir}/m`, "--no-train"], {
      env: { DATABASE_URL: `${dir}/db` },
    });
    assert.equal(fromEnv.code, 2, fromEnv.stderr);
    assert.match(
      fromEnv.stderr,
      new RegExp(`--no-train with the embedded database ${dir}/db \\(from DATABASE_URL\\) could never run`),
    );
    // --db overrides a server URL in DATABASE_URL
    const fromFlag = await cli("serve", ["--model", `${dir}/m`, "--no-train", "--db", `${dir}/other`], {
      env: { DATABASE_URL: "postgres://u:p@127.0.0.1:1/x" },
    });
    assert.equal(fromFlag.code, 2);
    assert.match(fromFlag.stderr, new RegExp(`embedded database ${dir}/other \\(from --db\\)`));
    // neither: the default folder
    const byDefault = await cli("serve", ["--model", `${dir}/m`, "--no-train"]);
    assert.equal(byDefault.code, 2);
    assert.match(byDefault.stderr, /embedded database \.weightlora\/db \(from default\)/);
    assert.match(byDefault.stderr, /Run `deno task serve --help`/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "serve: a --store folder that does not exist is an error, read-only or not",
  ignore: !requireStories260k("serve --store"),
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      await cli("convert", [
        "--from",
        "gguf",
        "--model",
        `${stories260kDir()}/stories260K-f32.gguf`,
        "--out",
        `${dir}/nested/models/m`, // parents are created
      ]);
      const model = `${dir}/nested/models/m`;
      assert.ok((await Deno.stat(`${model}/config.json`)).isFile, "convert created the parent folders");
      for (const extra of [["--read-only"], []]) {
        const r = await cli("serve", [
          "--model",
          model,
          "--store",
          `${dir}/nonexist`,
          ...extra,
          "--port",
          "0",
        ]);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /Cannot serve adapters from --store .*nonexist: the folder does not exist/);
        assert.doesNotMatch(r.stdout, /Listening on/);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("worker: reads DATABASE_URL when --db is absent, and says so", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/m`);
    await Deno.writeTextFile(`${dir}/m/config.json`, "{}");
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "-A", "src/cli/worker.ts", "--model", `${dir}/m`, "--ep", "wasm"],
      cwd: ROOT,
      env: { ...Deno.env.toObject(), DATABASE_URL: `${dir}/db` },
      clearEnv: true,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const deadline = Date.now() + 120_000;
    while (!/from DATABASE_URL/.test(text) && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    child.kill("SIGTERM");
    while (!(await reader.read()).done) { /* drain */ }
    await child.status;
    assert.match(text, new RegExp(`worker: \\S+ on ${dir}/db \\(pglite, from DATABASE_URL`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
