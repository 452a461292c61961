// The CI smoke configuration of `deno task repro` (1 task, 1 seed, 2 learning rates, 6 steps, 9 runs), run
// the way a user interrupts it: stopped by --max-runs, then by SIGTERM, then continued to the end.

import assert from "node:assert/strict";
import { requireStories260k } from "../../_util/fixtures.ts";

const ROOT = decodeURIComponent(new URL("../../../", import.meta.url).pathname);
const SCRIPT = `${ROOT}bench/repro/repro.ts`;

function command(work: string, extra: string[] = []): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-run",
      "--allow-sys",
      SCRIPT,
      "--preset",
      "smoke",
      "--work",
      work,
      "--jobs",
      "2",
      ...extra,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  });
}

function results(work: string): Map<string, Date> {
  const out = new Map<string, Date>();
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) walk(path);
      else if (entry.name === "result.json") out.set(path, Deno.statSync(path).mtime!);
    }
  };
  try {
    walk(`${work}/runs`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test({
  name: "deno task repro --preset smoke stops, resumes and finishes with JSON, Markdown and a plot",
  ignore: !requireStories260k("repro smoke"),
  fn: async () => {
    const work = await Deno.makeTempDir({ prefix: "repro_smoke_" });
    try {
      // 1. stop after three runs
      const first = await command(work, ["--max-runs", "3"]).output();
      assert.ok(first.success, text(first.stderr));
      assert.match(text(first.stderr), /stopped after starting 3 runs \(--max-runs\); 3 of 9 done/);
      const afterFirst = results(work);
      assert.equal(afterFirst.size, 3);
      assert.throws(() => Deno.statSync(`${work}/repro.json`), Deno.errors.NotFound);

      // 2. interrupt with SIGTERM once a fourth run is done
      const child = command(work).spawn();
      const deadline = Date.now() + 300_000;
      while (results(work).size < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      try {
        child.kill("SIGTERM");
      } catch {
        // it already finished every run
      }
      const second = await child.output();
      if (!second.success) {
        assert.equal(second.code, 130, text(second.stderr));
        assert.match(text(second.stderr), /stopped after \d+ runs; run the same command again to continue/);
      }

      // 3. continue to the end: earlier results are kept, not recomputed
      const third = await command(work).output();
      assert.ok(third.success, text(third.stderr));
      const all = results(work);
      assert.equal(all.size, 9);
      for (const [path, mtime] of afterFirst) {
        assert.deepEqual(all.get(path), mtime, `${path} was recomputed`);
      }
      const json = JSON.parse(await Deno.readTextFile(`${work}/repro.json`));
      assert.equal(json.runs.length, 9);
      assert.deepEqual(
        json.rows.map((r: { methodId: string }) => r.methodId),
        ["base", "lora", "randlora-k3", "weightlora-k3", "weightlora-plus"],
      );
      for (const row of json.rows.slice(1)) {
        assert.ok(Number.isFinite(row.evalLoss.mean) && row.evalLoss.mean < json.rows[0].evalLoss.mean);
        assert.ok(row.accuracy.mean >= 0 && row.accuracy.mean <= 1);
      }
      const weightlora = json.rows.find((r: { methodId: string }) => r.methodId === "weightlora-k3");
      assert.equal(Object.keys(weightlora.sites).length, 3);
      assert.equal(weightlora.parameters.peak > weightlora.parameters.final, true);
      assert.deepEqual(json.claims.map((c: { claim: number }) => c.claim), [1, 2, 3]);
      assert.ok(json.invocations.length >= 3);
      const markdown = await Deno.readTextFile(`${work}/repro.md`);
      assert.match(markdown, /### Task `qa`/);
      assert.match(markdown, /\*\*Claim 2: WeightLoRA\+ beats LoRA\.\*\*/);
      assert.ok((await Deno.readTextFile(`${work}/repro.svg`)).startsWith("<svg"));
      assert.match(text(third.stdout), /\| WeightLoRA \(K=3\) \|/);

      // 4. the same folder refuses other settings
      const other = await command(work, ["--steps", "7"]).output();
      assert.equal(other.code, 1);
      assert.match(
        text(other.stderr),
        /Cannot continue in .*: it holds runs made with other settings \(steps differ\)/,
      );
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});
