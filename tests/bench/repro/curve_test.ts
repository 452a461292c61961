// The step-budget curve end to end, small: `deno task repro --preset curve-smoke` with LoRA and WeightLoRA on
// the authors' schedule (K=3), two seeds, budgets 8 and 16 from snapshots of one run each.

import assert from "node:assert/strict";
import { requireStories260k } from "../../_util/fixtures.ts";

const ROOT = decodeURIComponent(new URL("../../../", import.meta.url).pathname);

Deno.test({
  name: "deno task repro --preset curve-smoke measures every budget from snapshots and writes its reports",
  ignore: !requireStories260k("repro curve smoke"),
  fn: async () => {
    const work = await Deno.makeTempDir({ prefix: "repro_curve_" });
    try {
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read",
          "--allow-write",
          "--allow-env",
          "--allow-run",
          "--allow-sys",
          `${ROOT}bench/repro/repro.ts`,
          "--preset",
          "curve-smoke",
          "--work",
          work,
          "--methods",
          "lora,wl-all-k3",
          "--seeds",
          "0,1",
        ],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.ok(output.success, stderr);
      const json = JSON.parse(await Deno.readTextFile(`${work}/repro_curve.json`));
      const rows = json.rows as { methodId: string; budget: number; evalLoss: { n: number; mean: number } }[];
      const base = rows.find((r) => r.methodId === "base")!;
      for (const id of ["lora", "wl-all-k3"]) {
        assert.deepEqual(rows.filter((r) => r.methodId === id).map((r) => r.budget), [8, 16]);
        for (const r of rows.filter((r) => r.methodId === id)) {
          assert.equal(r.evalLoss.n, 2);
          assert.ok(r.evalLoss.mean < base.evalLoss.mean, `${id} at ${r.budget} steps did not learn`);
        }
      }
      // every run of the authors' schedule exported exactly K sites at every budget
      const runs = json.runs as {
        methodId: string;
        kKept: number;
        budgets: { step: number; sites: string[] }[];
      }[];
      const wl = runs.filter((r) => r.methodId === "wl-all-k3");
      assert.equal(wl.length, 2); // one rate, seeds 0 and 1
      for (const r of wl) {
        assert.equal(r.kKept, 3);
        assert.deepEqual(r.budgets.map((b) => [b.step, b.sites.length]), [[8, 3], [16, 3]]);
      }
      assert.ok(json.keptSets.some((k: { methodId: string }) => k.methodId === "wl-all-k3"));
      const markdown = await Deno.readTextFile(`${work}/repro_curve.md`);
      assert.match(
        markdown,
        /\| lora \| WeightLoRA \(K=3, all steps\) \| \d\/1 \([+=−]\) \| \d\/1 \([+=−]\) \|/,
      );
      assert.match(markdown, /### Adapter sites/);
      assert.ok((await Deno.readTextFile(`${work}/loss.svg`)).startsWith("<svg"));
      assert.ok((await Deno.readTextFile(`${work}/sites.svg`)).startsWith("<svg"));
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});
