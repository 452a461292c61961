// The README walk: every shell block of README.md runs, in order, in a fresh copy of the repository with
// stories260K beside it (as ../shared/models/stories260K), so the documented commands cannot rot. Blocks the
// walk does not run carry a `<!-- walk: skip KIND reason -->` marker (see _walk.ts); a server block runs in
// the background until the walk ends.

import assert from "node:assert/strict";
import { requireStories260k, stories260kDir } from "../_util/fixtures.ts";
import { checkRunnable, codeBlocks, OTHER_CODE_LANGS, SHELL_LANGS, walkScript } from "./_walk.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname).replace(/\/$/, "");
const README = await Deno.readTextFile(`${ROOT}/README.md`);

/** Most blocks the walk may leave out: keep the README runnable. */
const MAX_SKIPPED = 10;

/** What the walk runs instead of a skipped block of a kind. */
const SUBSTITUTES = {
  // the model download: link the same two files from ../shared/models/stories260K
  network: "mkdir -p downloads\n" +
    'ln -sf "$(cd ../shared/models/stories260K && pwd)/stories260K.bin" downloads/stories260K.bin\n' +
    'ln -sf "$(cd ../shared/models/stories260K && pwd)/tok512.bin" downloads/tok512.bin',
};

async function run(cmd: string, args: string[], cwd: string): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** Copies the working tree's tracked and unignored files, as a fresh clone (plus local edits) has them. */
async function copyCheckout(to: string): Promise<void> {
  const files = (await run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT))
    .split("\0").filter(Boolean);
  for (const file of files) {
    let data: Uint8Array;
    try {
      data = await Deno.readFile(`${ROOT}/${file}`);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue; // deleted in the working tree
      throw e;
    }
    const dir = `${to}/${file}`.replace(/\/[^/]*$/, "");
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeFile(`${to}/${file}`, data);
  }
}

Deno.test("README blocks are runnable or marked, and the skipped ones are few", () => {
  const blocks = codeBlocks(README);
  checkRunnable("README.md", blocks);
  const skipped = blocks.filter((b) => b.marker?.kind === "skip");
  assert.ok(
    skipped.length <= MAX_SKIPPED,
    `${skipped.length} README blocks are skipped (at most ${MAX_SKIPPED})`,
  );
  for (const b of blocks) {
    if (OTHER_CODE_LANGS.has(b.lang)) {
      assert.equal(
        b.marker?.kind,
        "skip",
        `README.md:${b.line}: a ${b.lang} block must be walked or marked skip`,
      );
    }
    if (b.marker?.kind === "background") assert.ok(SHELL_LANGS.has(b.lang), `README.md:${b.line}`);
  }
  assert.ok(blocks.filter((b) => SHELL_LANGS.has(b.lang) && b.marker === undefined).length >= 8);
});

Deno.test({
  name: "README walk: every shell block runs as written in a fresh copy, against stories260K",
  ignore: !requireStories260k("README walk"),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "weightlora-walk-" });
    const clone = `${tmp}/weightlora`;
    try {
      await copyCheckout(clone);
      await Deno.mkdir(`${tmp}/shared/models`, { recursive: true });
      await Deno.symlink(stories260kDir(), `${tmp}/shared/models/stories260K`);
      const script = "exec 2>&1\n" + walkScript("README.md", codeBlocks(README), SUBSTITUTES);
      await Deno.writeTextFile(`${clone}/.walk.sh`, script);
      const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1" };
      delete env.DATABASE_URL;
      const child = new Deno.Command("setsid", {
        args: ["bash", ".walk.sh"],
        cwd: clone,
        env,
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const timer = setTimeout(() => {
        new Deno.Command("kill", { args: ["-KILL", "--", `-${child.pid}`] }).outputSync();
      }, 8 * 60_000);
      const out = await child.output();
      clearTimeout(timer);
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      const log = Deno.env.get("WEIGHTLORA_WALK_LOG"); // keep the whole output for a look
      if (log) await Deno.writeTextFile(log, text);
      const tail = text.split("\n").slice(-80).join("\n");
      assert.equal(out.code, 0, `the README walk failed (last "walk:" line names the block):\n${tail}`);
      assert.match(text, /walk: done/);
      // stats of generate start on their own line, also with stdout and stderr in one stream
      for (const line of text.split("\n")) {
        if (line.includes("generate: ")) assert.ok(line.startsWith("generate: "), `shared line: ${line}`);
      }
      // Mesa's noise would mean a WebGPU probe that was not needed, or not quiet
      const noise = text.indexOf("XDG_RUNTIME_DIR is invalid");
      const during = text.slice(0, noise).match(/walk: [^\n]*/g)?.at(-1);
      assert.equal(noise, -1, `Mesa's "XDG_RUNTIME_DIR is invalid" lines during ${during}`);
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});
