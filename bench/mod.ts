/**
 * Runs every bench script of this folder in turn, each in its own process: `*_bench.ts` files, in name
 * order. A file that calls `Deno.bench` runs under `deno bench`, any other under `deno run`. Adding a
 * benchmark is adding a `<name>_bench.ts` file. Arguments filter by name: `deno task bench runtime`
 * runs only `runtime_bench.ts`.
 *
 * @example
 * ```sh
 * deno task bench            # all bench scripts
 * deno task bench runtime    # only those whose file name contains "runtime"
 * ```
 *
 * @module
 */

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
    const usesDenoBench = /\bDeno\.bench\(/.test(Deno.readTextFileSync(path));
    const args = usesDenoBench ? ["bench", "-A", path] : ["run", "-A", path];
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
  if (failed.length > 0) {
    console.error(`Bench scripts failed: ${failed.join(", ")}`);
    Deno.exit(1);
  }
}

if (import.meta.main) await main();
