/**
 * Our engine against the JavaScript engines a user would pick instead for edge inference, side by side
 * in one run on the same weights: decode tokens/s at batch 1, greedy, EOS ignored, the same prompt.
 *
 * - weightlora: {@linkcode LlamaGenerator} timed by `generateTiming` (the code of `deno task generate
 *   --json --ignore-eos`), wasm, with `WEIGHTLORA_WASM_THREADS` = 1 (and 2 on the stories15M shape).
 * - `@wllama/wllama` (llama.cpp compiled to wasm, single-thread and pthread builds) on a GGUF file of the
 *   same weights (`_peer_wllama.ts` explains the shims Deno needs).
 * - `@huggingface/transformers` (transformers.js on its onnxruntime-web, wasm) on an export of the same
 *   model in its layout (`_transformers_export.ts`, `_peer_transformers.ts`).
 *
 * Each process loads the model, runs a 16-token warm-up generation, then the measured one (`--cold`: the
 * first generation is measured, and ours runs through `deno task generate --json --ignore-eos`, reading
 * its `"timing"`; the warm path runs the CLI's code, {@linkcode LlamaGenerator} and `generateTiming`).
 *
 * Models (`_peer_models.ts`): stories260K (the real checkpoint) and stories15M's shape with random weights;
 * every engine's copy is converted from one llama2.c checkpoint. Each run is its own process (threads are
 * fixed per process; no engine is warmed by another); the decode loop alone is timed (no start-up, no
 * load). Rounds alternate the engines (the order rotates each round) and the ratio ours / peer is taken
 * within each round, then the median over rounds. Parity: our greedy tokens against transformers.js's
 * (same graph, so they must agree) and our text against wllama's (llama.cpp's kernels round differently;
 * the first difference is reported).
 *
 *     deno task bench peers                        # or: deno run -A bench/peers_bench.ts --write
 *     deno run -A bench/peers_bench.ts --quick     # smoke run: 1 round, 32 tokens, writes nothing
 *
 * Options: `--rounds R` (default 3), `--tokens N` (default 256), `--cold`, `--write` (write
 * `bench/results/peers.json` and `bench/results/peers.md`).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { generateTiming } from "../src/cli/generate.ts";
import { loadModelFolder } from "../src/io/model_folder.ts";
import { LlamaGenerator } from "../src/models/generate.ts";
import { markdownTable } from "./_table.ts";
import { type PeerModel, type PeerModelName, preparePeerModel } from "./_peer_models.ts";
import type { PeerRun } from "./_peer_result.ts";
import { WLLAMA_VERSION } from "./_peer_wllama.ts";
import type { SideBySideEntry } from "./_side_by_side.ts";

/** The prompt every engine gets (each tokenizes it; BOS added). */
export const PROMPT = "Once upon a time";

const REPO = new URL("../", import.meta.url);
const RESULTS = new URL("results/", import.meta.url);
const TRANSFORMERS_VERSION = "4.3.1";

type Engine = "weightlora" | "wllama" | "transformers.js";

/** One configuration measured each round. */
interface Config {
  engine: Engine;
  threads: number;
}

/** Configurations per model: 2 threads where the model is large enough for them to matter. */
const CONFIGS: Record<PeerModelName, Config[]> = {
  "stories260K": [
    { engine: "weightlora", threads: 1 },
    { engine: "wllama", threads: 1 },
    { engine: "transformers.js", threads: 1 },
  ],
  "stories15M shape (random)": [
    { engine: "weightlora", threads: 1 },
    { engine: "wllama", threads: 1 },
    { engine: "transformers.js", threads: 1 },
    { engine: "weightlora", threads: 2 },
    { engine: "wllama", threads: 2 },
    { engine: "transformers.js", threads: 2 },
  ],
};

/** A run, or why it failed. */
type Outcome = { run: PeerRun } | { error: string };

function decode(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/** The `error: …` lines of a child's stderr (Deno's uncaught-error report), else its last lines. */
function tail(text: string, lines = 12): string {
  const all = text.trim().split("\n");
  const errors = all.filter((l) => l.startsWith("error: "));
  return (errors.length > 0 ? errors : all.slice(-lines)).join("\n");
}

/** Runs our CLI once (a cold run: its one generation is measured). */
async function runOursCli(model: PeerModel, config: Config, maxTokens: number): Promise<PeerRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "task",
      "-q",
      "generate",
      "--model",
      model.folder,
      "--prompt",
      PROMPT,
      "--max-tokens",
      String(maxTokens),
      "--temperature",
      "0",
      "--ignore-eos",
      "--json",
      "--ep",
      "wasm",
    ],
    cwd: REPO.pathname,
    env: { WEIGHTLORA_WASM_THREADS: String(config.threads), NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = decode(out.stderr);
  if (!out.success) throw new Error(`deno task generate failed (exit ${out.code}):\n${tail(stderr)}`);
  const json = JSON.parse(decode(out.stdout));
  const t = json.timing;
  const loaded = /loaded in ([\d.]+) s/.exec(stderr);
  return {
    engine: "weightlora",
    threads: config.threads,
    promptTokens: json.prompt_token_ids.length,
    decodeTokens: t.decode_tokens,
    decodeMs: t.decode_ms,
    tokensPerS: t.decode_tokens_per_s,
    prefillMs: t.prefill_ms,
    loadMs: loaded ? Number(loaded[1]) * 1000 : NaN,
    text: json.text,
    tokenIds: json.token_ids,
  };
}

/** Runs an engine in a child process of this script (`--child`). */
async function runChild(model: PeerModel, config: Config, sizes: Sizes): Promise<PeerRun> {
  const path = config.engine === "wllama"
    ? model.gguf
    : config.engine === "transformers.js"
    ? model.transformersJs
    : model.folder;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--child",
      config.engine,
      "--path",
      path,
      "--threads",
      String(config.threads),
      "--tokens",
      String(sizes.maxTokens),
      "--warmup",
      String(sizes.warmup),
    ],
    cwd: REPO.pathname,
    env: { WEIGHTLORA_WASM_THREADS: String(config.threads), NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = decode(out.stdout), stderr = decode(out.stderr);
  const last = stdout.trim().split("\n").at(-1) ?? "";
  if (!out.success || !last.startsWith("{")) {
    throw new Error(`${config.engine} failed (exit ${out.code}):\n${tail(stderr || stdout)}`);
  }
  return JSON.parse(last);
}

/** Generated tokens measured, and the warm-up generation's length (0: cold, the first generation). */
export interface Sizes {
  /** Tokens generated in the measured run. */
  maxTokens: number;
  /** Tokens of the warm-up generation (0: cold). */
  warmup: number;
}

async function measure(model: PeerModel, config: Config, sizes: Sizes): Promise<Outcome> {
  try {
    const run = config.engine === "weightlora" && sizes.warmup === 0
      ? await runOursCli(model, config, sizes.maxTokens)
      : await runChild(model, config, sizes);
    if (run.decodeTokens !== sizes.maxTokens - 1) {
      throw new Error(`${config.engine} decoded ${run.decodeTokens} tokens, expected ${sizes.maxTokens - 1}`);
    }
    return { run };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const label = (c: Config) => `${c.engine} ${c.threads}t`;

/** A configuration's figures over the rounds. */
export interface PeerRow {
  /** Model. */
  model: string;
  /** Engine. */
  engine: string;
  /** Threads. */
  threads: number;
  /** Median decode tokens/s. */
  tokensPerS: number;
  /** Each round's decode tokens/s. */
  roundsTokensPerS: number[];
  /** Median of the per-round ratios ours (same threads) / this; 1 for ours. */
  oursOverThis: number;
  /** Prompt tokens as this engine tokenized the prompt. */
  promptTokens: number;
  /** Median load time, ms. */
  loadMs: number;
  /** Median share of the decode loop spent inside `session.run` (ours, warm runs; NaN otherwise). */
  sessionRunShare: number;
  /** Errors of failed rounds. */
  errors: string[];
}

/** Parity of one peer's greedy output against ours. */
export interface PeerParity {
  /** Model. */
  model: string;
  /** Peer. */
  engine: string;
  /** What was compared (`token ids` or `text`). */
  compared: string;
  /** Whether they are equal. */
  equal: boolean;
  /** Index of the first difference (token or character), -1 when equal. */
  firstDifference: number;
  /** Length compared. */
  length: number;
}

function firstDifference<T>(a: readonly T[], b: readonly T[]): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}

async function benchModel(
  dir: string,
  name: PeerModelName,
  settings: { rounds: number } & Sizes,
): Promise<{ rows: PeerRow[]; parity: PeerParity[] }> {
  console.log(`\n## ${name}: preparing the model for every engine`);
  const model = await preparePeerModel(dir, name);
  const configs = CONFIGS[name];
  const outcomes = new Map<string, Outcome[]>(configs.map((c) => [label(c), []]));
  for (let round = 0; round < settings.rounds; round++) {
    const order = configs.map((_, i) => configs[(i + round) % configs.length]);
    for (const config of order) {
      const outcome = await measure(model, config, settings);
      outcomes.get(label(config))!.push(outcome);
      const shown = "run" in outcome
        ? `${outcome.run.tokensPerS.toFixed(0)} tokens/s`
        : `failed: ${outcome.error.split("\n")[0]}`;
      console.log(`round ${round + 1}: ${label(config).padEnd(20)} ${shown}`);
    }
  }
  const runsOf = (c: Config) => outcomes.get(label(c))!;
  const rows: PeerRow[] = configs.map((c) => {
    const results = runsOf(c);
    const ours = runsOf({ engine: "weightlora", threads: c.threads });
    const ratios = results.flatMap((o, i) => {
      const mine = ours[i];
      return "run" in o && mine && "run" in mine ? [mine.run.tokensPerS / o.run.tokensPerS] : [];
    });
    const runs = results.flatMap((o) => "run" in o ? [o.run] : []);
    return {
      model: name,
      engine: c.engine,
      threads: c.threads,
      tokensPerS: median(runs.map((r) => r.tokensPerS)),
      roundsTokensPerS: runs.map((r) => r.tokensPerS),
      oursOverThis: median(ratios),
      promptTokens: runs[0]?.promptTokens ?? NaN,
      loadMs: median(runs.map((r) => r.loadMs)),
      sessionRunShare: median(
        runs.flatMap((r) => r.sessionRunMs === undefined ? [] : [r.sessionRunMs / r.decodeMs]),
      ),
      errors: results.flatMap((o) => "error" in o ? [o.error] : []),
    };
  });
  const first = (c: Config) => runsOf(c).find((o): o is { run: PeerRun } => "run" in o)?.run;
  const ours = first({ engine: "weightlora", threads: 1 });
  const parity: PeerParity[] = [];
  const tjs = first({ engine: "transformers.js", threads: 1 });
  if (ours && tjs && ours.tokenIds && tjs.tokenIds) {
    const at = firstDifference(ours.tokenIds, tjs.tokenIds);
    parity.push({
      model: name,
      engine: "transformers.js",
      compared: "token ids",
      equal: at === -1,
      firstDifference: at,
      length: ours.tokenIds.length,
    });
  }
  const wllama = first({ engine: "wllama", threads: 1 });
  if (ours && wllama) {
    const at = firstDifference([...ours.text], [...wllama.text]);
    parity.push({
      model: name,
      engine: "wllama",
      compared: "text",
      equal: at === -1,
      firstDifference: at,
      length: [...ours.text].length,
    });
  }
  return { rows, parity };
}

/** Causes of failures seen under Deno, found in the peers' sources (see `_peer_transformers.ts`). */
const KNOWN_CAUSES: readonly [RegExp, string][] = [
  [
    /ERR_UNSUPPORTED_ESM_URL_SCHEME.*'blob'/,
    "for more than one thread onnxruntime-web imports its Emscripten factory from a blob: URL (it imports " +
    "it directly only from the page's origin, which Deno lacks), and Deno refuses blob: imports inside an " +
    "npm module",
  ],
];

/** A failure's first meaningful line, with its cause when known. */
function explainFailure(error: string): string {
  const lines = error.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const message = lines.find((l) => l.startsWith("error: ")) ?? lines.at(-1) ?? error;
  const cause = KNOWN_CAUSES.find(([pattern]) => pattern.test(error));
  return cause ? `${message.slice(0, 300)} — ${cause[1]}` : message.slice(0, 300);
}

/** The Markdown report of a run. */
export function peersMarkdown(
  rows: readonly PeerRow[],
  parity: readonly PeerParity[],
  settings: { rounds: number; date: string; machine: string } & Sizes,
): string {
  // figures read back from JSON carry null for NaN
  const nan = (x: number | null) => x ?? NaN;
  rows = rows.map((r) => ({
    ...r,
    tokensPerS: nan(r.tokensPerS),
    oursOverThis: nan(r.oursOverThis),
    promptTokens: nan(r.promptTokens),
    sessionRunShare: nan(r.sessionRunShare),
  }));
  const oursOf = (r: PeerRow) =>
    rows.find((o) => o.model === r.model && o.engine === "weightlora" && o.threads === r.threads);
  // the best round is the least disturbed by other work on a shared machine
  const best = (r: PeerRow | undefined) =>
    r && r.roundsTokensPerS.length > 0 ? Math.max(...r.roundsTokensPerS) : NaN;
  const table = markdownTable(
    [
      "model",
      "engine",
      "threads",
      "decode tokens/s (median)",
      "ours / this, per round (median)",
      "best tokens/s",
      "ours / this, of bests",
      "prompt tokens",
      "in session.run",
    ],
    rows.map((r) => [
      r.model,
      r.errors.length === r.roundsTokensPerS.length + r.errors.length && r.errors.length > 0
        ? `${r.engine} (failed)`
        : r.engine,
      r.threads,
      r.tokensPerS,
      r.engine === "weightlora" || !Number.isFinite(r.oursOverThis) ? "—" : `${r.oursOverThis.toFixed(2)}×`,
      best(r),
      r.engine === "weightlora" || !Number.isFinite(best(r))
        ? "—"
        : `${(best(oursOf(r)) / best(r)).toFixed(2)}×`,
      r.promptTokens,
      Number.isFinite(r.sessionRunShare) ? `${(100 * r.sessionRunShare).toFixed(0)}%` : "—",
    ]),
  );
  const parityTable = markdownTable(
    ["model", "peer", "compared", "equal", "first difference"],
    parity.map((p) => [
      p.model,
      p.engine,
      `${p.compared} (${p.length})`,
      p.equal ? "yes" : "no",
      p.firstDifference === -1 ? "—" : String(p.firstDifference),
    ]),
  );
  const errors = rows.flatMap((r) =>
    [...new Set(r.errors.map(explainFailure))].map((e) => `- ${r.model}, ${r.engine} ${r.threads}t: ${e}`)
  );
  return [
    "# Peers: decode tokens/s at batch 1 (generated by bench/peers_bench.ts; do not edit)",
    "",
    `${settings.date}. Greedy, EOS ignored, ${settings.maxTokens} generated tokens after the prompt ` +
    `${JSON.stringify(PROMPT)}; the decode loop alone (the first token comes from the prefill); ` +
    (settings.warmup > 0
      ? `measured after a ${settings.warmup}-token warm-up generation in the same process; `
      : "cold: each process's first generation (ours through `deno task generate`); ") +
    `${settings.rounds} rounds alternating the engines, each run in its own process. ` +
    `wllama ${WLLAMA_VERSION}, transformers.js ${TRANSFORMERS_VERSION}. ${settings.machine}`,
    "",
    table,
    "",
    "Greedy parity against our output (first round, 1 thread):",
    "",
    parityTable,
    ...(errors.length > 0 ? ["", "Failures:", "", ...errors] : []),
    "",
  ].join("\n");
}

/** Entries for `deno task bench`'s side-by-side summary: each engine's best round (the least disturbed). */
function sideBySide(rows: readonly PeerRow[]): SideBySideEntry[] {
  return rows.filter((r) => r.engine !== "weightlora" && Number.isFinite(r.oursOverThis)).map((r) => {
    const ours = rows.find((o) =>
      o.model === r.model && o.engine === "weightlora" && o.threads === r.threads
    )!;
    return {
      area: "peers",
      metric: `${r.model}: decode tokens/s, ${r.threads} thread${r.threads > 1 ? "s" : ""}, best round`,
      value: Math.max(...ours.roundsTokensPerS),
      baseline: `${r.engine} ${r.threads}t`,
      baselineValue: Math.max(...r.roundsTokensPerS),
      unit: "tok/s",
      higherIsBetter: true,
    };
  });
}

async function writeAtomic(url: URL, text: string): Promise<void> {
  const tmp = new URL(`${url.pathname.split("/").pop()}.tmp`, url);
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, url);
}

/** Our engine in this process: the CLI's code path (LlamaGenerator, `generateTiming`), after a warm-up. */
async function runOursWarm(options: { dir: string; threads: number; maxTokens: number; warmup: number }) {
  const loadStart = performance.now();
  const model = await loadModelFolder(options.dir);
  const generator = await LlamaGenerator.create(model, { ep: "wasm" });
  const loadMs = performance.now() - loadStart;
  try {
    const promptIds = generator.promptIds(PROMPT);
    if (options.warmup > 0) {
      await generator.generate([promptIds], { maxTokens: options.warmup, temperature: 0 });
    }
    const [result] = await generator.generate([promptIds], {
      maxTokens: options.maxTokens,
      temperature: 0,
      ignoreEos: true,
    });
    const t = generateTiming(generator.stats!);
    return {
      engine: "weightlora",
      threads: options.threads,
      promptTokens: promptIds.length,
      decodeTokens: t.decode_tokens,
      decodeMs: t.decode_ms,
      tokensPerS: t.decode_tokens_per_s ?? NaN,
      prefillMs: t.prefill_ms,
      loadMs,
      text: result.text,
      tokenIds: result.tokenIds,
      sessionRunMs: generator.stats!.decodeRunMs,
    } satisfies PeerRun;
  } finally {
    await generator.release();
  }
}

async function child(args: Record<string, string | boolean | undefined>): Promise<void> {
  const options = {
    threads: Number(args.threads),
    prompt: PROMPT,
    maxTokens: Number(args.tokens),
    warmup: Number(args.warmup ?? 0),
  };
  let run: PeerRun;
  if (args.child === "weightlora") {
    run = await runOursWarm({ ...options, dir: args.path as string });
  } else if (args.child === "wllama") {
    const { runWllama } = await import("./_peer_wllama.ts");
    run = await runWllama({ ...options, gguf: args.path as string });
  } else if (args.child === "transformers.js") {
    const { runTransformersJs } = await import("./_peer_transformers.ts");
    run = await runTransformersJs({ ...options, dir: args.path as string });
  } else throw new Error(`Unknown --child ${args.child}: expected weightlora, wllama or transformers.js`);
  console.log(JSON.stringify(run));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean" },
      cold: { type: "boolean" },
      warmup: { type: "string" },
      write: { type: "boolean" },
      rounds: { type: "string" },
      tokens: { type: "string" },
      child: { type: "string" },
      path: { type: "string" },
      threads: { type: "string" },
    },
  });
  if (values.child) {
    await child(values);
    // wllama's and onnxruntime's workers may keep the event loop alive
    Deno.exit(0);
  }
  const quick = values.quick === true;
  const settings = {
    rounds: Number(values.rounds ?? (quick ? 1 : 3)),
    maxTokens: Number(values.tokens ?? (quick ? 32 : 256)),
    warmup: values.cold ? 0 : 16,
  };
  const loadBefore = Deno.loadavg()[0];
  const dir = await Deno.makeTempDir({ prefix: "peers_bench_" });
  const rows: PeerRow[] = [], parity: PeerParity[] = [];
  try {
    for (const name of Object.keys(CONFIGS) as PeerModelName[]) {
      const result = await benchModel(dir, name, settings);
      rows.push(...result.rows);
      parity.push(...result.parity);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const date = new Date().toISOString();
  const machine =
    `${navigator.hardwareConcurrency} CPUs; load average ${loadBefore.toFixed(1)} at the start, ` +
    `${Deno.loadavg()[0].toFixed(1)} at the end (shared machine: other work ran beside the bench).`;
  const markdown = peersMarkdown(rows, parity, { ...settings, date, machine });
  console.log(`\n${markdown}`);
  // `bench/mod.ts` passes "--write" to scripts that name it so
  if (Deno.args.includes("--write") && !quick) {
    const json = {
      date,
      machine,
      prompt: PROMPT,
      ...settings,
      versions: { wllama: WLLAMA_VERSION, transformers: TRANSFORMERS_VERSION },
      rows,
      parity,
      sideBySide: sideBySide(rows),
    };
    await writeAtomic(new URL("peers.json", RESULTS), JSON.stringify(json, null, 2) + "\n");
    await writeAtomic(new URL("peers.md", RESULTS), markdown);
    console.log("Wrote bench/results/peers.json and bench/results/peers.md");
  }
  if (rows.some((r) => r.errors.length > 0)) console.error("Some runs failed: see the table's notes");
}

if (import.meta.main) await main();
