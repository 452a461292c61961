/**
 * `deno task docs`: rewrites the flag tables of the docs from the commands' flag declarations, so the
 * tables, `--help` and the parsers cannot disagree. A table sits between `<!-- flags:NAME -->` and
 * `<!-- /flags:NAME -->` (NAME a `deno task` command); the README's speed table, made from
 * `bench/results/models.json`, between `<!-- bench:models -->` and `<!-- /bench:models -->`.
 * `tests/docs/flag_tables_test.ts` checks both.
 *
 *     deno task docs            # rewrite README.md and docs/cli.md
 *
 * @module
 */

import { ADAPTERS_COMMAND } from "./adapters.ts";
import type { CommandSpec } from "./_flags.ts";
import { flagTable } from "./_flags.ts";
import { CONVERT_COMMAND } from "./convert.ts";
import { DEMO_COMMAND } from "./demo.ts";
import { EVAL_COMMAND } from "./eval.ts";
import { GENERATE_COMMAND } from "./generate.ts";
import { SERVE_COMMAND } from "./serve.ts";
import { TRAIN_COMMAND } from "./train.ts";
import { WORKER_COMMAND } from "./worker.ts";

/** Every `deno task` command with flags, by name. */
export const COMMANDS: ReadonlyMap<string, CommandSpec> = new Map(
  [
    DEMO_COMMAND,
    TRAIN_COMMAND,
    EVAL_COMMAND,
    GENERATE_COMMAND,
    CONVERT_COMMAND,
    SERVE_COMMAND,
    WORKER_COMMAND,
    ADAPTERS_COMMAND,
  ]
    .map((c) => [c.name, c as CommandSpec]),
);

/** The files whose flag tables `deno task docs` writes. */
export const DOC_FILES: readonly string[] = ["README.md", "docs/cli.md"];

const REGION = /<!-- flags:([a-z-]+) -->\n([\s\S]*?)<!-- \/flags:\1 -->/g;

/** One flag table found in a document. */
export interface FlagRegion {
  /** The command. */
  name: string;
  /** The table as the document has it. */
  actual: string;
  /** The table as the command's flags make it. */
  expected: string;
}

/**
 * The flag tables of a document, with what each should be.
 *
 * @param text The Markdown.
 * @returns One entry per marked region.
 * @throws {Error} When a region names a command that does not exist.
 */
export function flagRegions(text: string): FlagRegion[] {
  return [...text.matchAll(REGION)].map((m) => {
    const spec = COMMANDS.get(m[1]);
    if (!spec) throw new Error(`Unknown command "${m[1]}" in <!-- flags:${m[1]} -->`);
    return { name: m[1], actual: m[2], expected: flagTable(spec) };
  });
}

/**
 * Compares generated Markdown, ignoring the padding and line wrapping that a formatter may change.
 *
 * @param a A table (or paragraph).
 * @param b Another.
 * @returns Whether they have the same words and cells.
 */
export function sameTable(a: string, b: string): boolean {
  const normal = (t: string) => t.replace(/-{3,}/g, "---").replace(/\s+/g, " ").trim();
  return normal(a) === normal(b);
}

/**
 * Rewrites every flag table of a document.
 *
 * @param text The Markdown.
 * @returns The Markdown with current tables.
 */
export function renderFlagTables(text: string): string {
  return text.replace(REGION, (all, name: string, actual: string) => {
    const spec = COMMANDS.get(name);
    if (!spec) throw new Error(`Unknown command "${name}" in <!-- flags:${name} -->`);
    if (sameTable(actual, flagTable(spec))) return all;
    return `<!-- flags:${name} -->\n\n${flagTable(spec)}\n<!-- /flags:${name} -->`;
  });
}

/** One row of `bench/results/models.json`. */
interface ModelsBenchRow {
  model: string;
  ep: string;
  batch: number;
  threads: number;
  prefillTokensPerS: number;
  decodeTokensPerS: number;
}

/**
 * The README's speed table, from the inference benchmark's JSON (`deno task bench models` writes it).
 *
 * @param json The text of `bench/results/models.json`.
 * @returns A Markdown table and a line naming the date and versions, ending with a newline.
 */
export function modelsBenchTable(json: string): string {
  const bench = JSON.parse(json) as {
    date: string;
    deno: string;
    onnxruntimeWeb: string;
    rows: ModelsBenchRow[];
  };
  const n = (x: number) => Math.round(x).toLocaleString("en-US");
  const rows = bench.rows.map((
    r,
  ) => [r.model, r.ep, String(r.batch), String(r.threads), n(r.prefillTokensPerS), n(r.decodeTokensPerS)]);
  const head = ["model", "EP", "batch", "wasm threads", "prefill tokens/s", "decode tokens/s"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [
    line(head),
    `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`,
    ...rows.map(line),
    "",
    `Measured ${bench.date.slice(0, 10)} (Deno ${bench.deno}, onnxruntime-web ${bench.onnxruntimeWeb}) by ` +
    "`deno task bench models` on a shared 2-core VM; WebGPU there was lavapipe (software).",
  ].join("\n") + "\n";
}

const BENCH_REGION = /<!-- bench:models -->\n([\s\S]*?)<!-- \/bench:models -->/g;

/**
 * The speed table of a document (if it has one) and what it should be.
 *
 * @param text The Markdown.
 * @param json The text of `bench/results/models.json`.
 * @returns The table as the document has it and as the JSON makes it, or undefined without a region.
 */
export function benchRegion(text: string, json: string): { actual: string; expected: string } | undefined {
  const m = [...text.matchAll(BENCH_REGION)][0];
  return m ? { actual: m[1], expected: modelsBenchTable(json) } : undefined;
}

if (import.meta.main) {
  const root = decodeURIComponent(new URL("../../", import.meta.url).pathname);
  for (const file of DOC_FILES) {
    const path = `${root}${file}`;
    const text = await Deno.readTextFile(path);
    const json = await Deno.readTextFile(`${root}bench/results/models.json`);
    const next = renderFlagTables(text).replace(
      BENCH_REGION,
      (all, actual: string) =>
        sameTable(actual, modelsBenchTable(json))
          ? all
          : `<!-- bench:models -->\n\n${modelsBenchTable(json)}\n<!-- /bench:models -->`,
    );
    if (next === text) continue;
    await Deno.writeTextFile(`${path}.tmp`, next);
    await Deno.rename(`${path}.tmp`, path);
    console.error(`docs: wrote the flag tables of ${file}`);
  }
}
