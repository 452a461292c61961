/**
 * Runs every bench script of this folder in turn, each in its own process: `*_bench.ts` files, in name
 * order. A file that calls `Deno.bench` runs under `deno bench`, any other under `deno run`; a file that
 * calls `Deno.bench` but also takes `--write` (it then prints its full table and writes its JSON) runs as
 * `deno run -A <file> --write`. Adding a benchmark is adding a `<name>_bench.ts` file. Arguments filter by
 * name: `deno task bench runtime` runs only `runtime_bench.ts`.
 *
 * At the end it prints the headline figures side by side with their baselines, as ratios, from the JSON the
 * scripts keep under `bench/results/` (see `_side_by_side.ts`).
 *
 * @example
 * ```sh
 * deno task bench            # all bench scripts
 * deno task bench runtime    # only those whose file name contains "runtime"
 * ```
 *
 * @module
 */

import { collectEntries, EXPECTED_RESULTS, sideBySideTable } from "./_side_by_side.ts";

const BENCH_DIR = new URL("./", import.meta.url);

/**
 * The bench scripts of this folder.
 *
 * @param filters Substrings of file names to keep (all files when empty).
 * @returns File names, sorted.
 */
export function benchScripts(filters: readonly string[] = []): string[] {
  const names: string[] = [];
  for (const entry of Deno.readDirSync(BENCH_DIR)) {
    if (!entry.isFile || !entry.name.endsWith("_bench.ts") || entry.name.startsWith("_")) continue;
    if (filters.length > 0 && !filters.some((f) => entry.name.includes(f))) continue;
    names.push(entry.name);
  }
  return names.sort();
}

async function main(): Promise<void> {
  const scripts = benchScripts(Deno.args);
  if (scripts.length === 0) {
    throw new Error(`No bench script in ${BENCH_DIR.pathname} matches ${JSON.stringify(Deno.args)}`);
  }
  const failed: string[] = [];
  for (const name of scripts) {
    const path = new URL(name, BENCH_DIR).pathname;
    const source = Deno.readTextFileSync(path);
    const usesDenoBench = /\bDeno\.bench\(/.test(source) && !/["']--write["']/.test(source);
    const args = usesDenoBench
      ? ["bench", "-A", path]
      : ["run", "-A", path, ...(/["']--write["']/.test(source) ? ["--write"] : [])];
    console.log(`\n=== ${name} (deno ${args[0]}) ===\n`);
    const t0 = performance.now();
    const status = await new Deno.Command(Deno.execPath(), { args, stdout: "inherit", stderr: "inherit" })
      .spawn().status;
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(
      `\n=== ${name}: ${status.success ? "done" : `failed (exit ${status.code})`} in ${seconds} s ===`,
    );
    if (!status.success) failed.push(name);
  }
  printSideBySide();
  if (failed.length > 0) {
    console.error(`Bench scripts failed: ${failed.join(", ")}`);
    Deno.exit(1);
  }
}

/** Prints the headline figures of `bench/results/*.json` next to their baselines. */
function printSideBySide(): void {
  const { entries, missing } = collectEntries(new URL("results/", BENCH_DIR));
  console.log("\n=== side by side (bench/results/*.json) ===\n");
  console.log(sideBySideTable(entries));
  for (const name of missing) console.log(`\nNo bench/results/${name}: ${EXPECTED_RESULTS[name]} not shown`);
}

if (import.meta.main) await main();
