/**
 * Serving graph variants, one session per variant (`separate`, the old layout) against one session whose
 * `If` branches are every variant over one copy of the base weights (`shared`, with and without MLAS
 * prepacking) and the one gated graph (`gated`: base model once, every site's LoRA behind an `If`), on
 * stories260K and on a random-weight model of stories15M's shape:
 *
 * - memory and build time with 1, 8 and 64 adapter variants (each five random sites, plus the plain
 *   variant): each case runs in its own process (the wasm heap never shrinks, so cases cannot share one),
 *   layouts alternating; RSS growth from the plain variant's session to after the last, the time to build all
 *   of them, and the time to add one more (`shared`: a rebuild of the session with one branch more);
 * - decode step time with 8 adapter variants cached, both layouts in one process, alternating blocks:
 *   no adapter, a K = 5 rank-8 adapter (batch 1 and 8), and a bank of two K = 5 adapters (batch 8); a third
 *   arm runs separate sessions without MLAS prepacking (what the shared session gives up).
 *
 * These machines are shared and vary up to 2× from minute to minute: compare only figures of one run.
 * Writes `bench/results/variants.json` and `bench/results/variants.md`.
 *
 * Also rewrites the summary table of `docs/inference.md` (between `<!-- bench:variants -->` markers); `--docs`
 * rewrites it from the last JSON without measuring.
 *
 * Usage: `deno run -A bench/variants_bench.ts [--rounds=N] [--models=260k,15m]` or `… --docs`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadModelFolder } from "../src/io/model_folder.ts";
import { BatchDecoder } from "../src/models/batch_decoder.ts";
import type { LlamaConfig } from "../src/models/config.ts";
import type { LlamaWeights } from "../src/models/llama/forward.ts";
import { randomLlamaWeights } from "../src/models/random_weights.ts";
import { listAdapterSites } from "../src/models/sites.ts";
import type { OrtTensor } from "../src/runtime/session.ts";
import { hostTensor } from "../src/runtime/tensor.ts";
import type { PreparedAdapter } from "../src/serve/prepared_adapter.ts";
import {
  composeBatch,
  LORA_INDEX_INPUT,
  type ServingVariant,
  variantArrays,
} from "../src/serve/variant_graphs.ts";
import { VariantSessions } from "../src/serve/variant_sessions.ts";
import { gatedArrays, LORA_GATES_INPUT } from "../src/serve/gated_graph.ts";
import { ort } from "../src/runtime/ort.ts";
import { stories260kHf } from "../tests/serve/_fixtures.ts";
import { STORIES15M_SHAPE } from "./_models.ts";
import { figure, markdownTable } from "./_table.ts";

const CHILD = "--child";
const MODELS = ["260k", "15m"] as const;
type ModelName = (typeof MODELS)[number];
const COUNTS = [1, 8, 64];

/** The layouts compared: one session per variant, and one shared session without and with prepacking. */
const ARMS = {
  "separate": { layout: "separate", prepack: true },
  "shared": { layout: "shared", prepack: false },
  "shared+prepack": { layout: "shared", prepack: true },
  "gated": { layout: "gated", prepack: true },
} as const;
type Arm = keyof typeof ARMS;
const ARM_NAMES = Object.keys(ARMS) as Arm[];

/** Cases not run: 64 copies of stories15M's shape (~120 MB each with prepacked weights). */
const SKIP = new Set(["15m/separate/64", "15m/shared+prepack/64"]);

async function loadModel(name: ModelName): Promise<{ config: LlamaConfig; weights: LlamaWeights }> {
  if (name === "260k") return await loadModelFolder(await stories260kHf());
  return {
    config: STORIES15M_SHAPE,
    weights: randomLlamaWeights(STORIES15M_SHAPE, { seed: 1, scale: 0.05 }),
  };
}

/** Seeded values in [-scale, scale). */
function values(n: number, seed: number, scale: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * scale;
  });
}

/** A rank-r adapter at the given sites (prepared tensors, seeded). */
function adapterAt(config: LlamaConfig, names: readonly string[], seed: number, rank = 8): PreparedAdapter {
  const all = listAdapterSites(config);
  const sites = all.filter((s) => names.includes(s.name)).map((s, j) => ({
    site: s.name,
    rank,
    at: values(s.inFeatures * rank, seed * 101 + j, 0.05),
    bt: values(rank * s.outFeatures, seed * 103 + j, 0.05),
  }));
  const bytes = sites.reduce((n, s) => n + s.at.byteLength + s.bt.byteLength, 0);
  return { key: `bench${seed}`, sites, bytes };
}

/** `count` distinct single-adapter variants of five sites each (seeded). */
function variants(config: LlamaConfig, count: number): ServingVariant[] {
  const names = listAdapterSites(config).map((s) => s.name);
  const seen = new Set<string>();
  const out: ServingVariant[] = [];
  let state = 12345;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) % names.length;
  while (out.length < count) {
    const chosen = new Set<number>();
    while (chosen.size < 5) chosen.add(next());
    const sites = [...chosen].sort((a, b) => a - b).map((i) => names[i]);
    if (seen.has(sites.join())) continue;
    seen.add(sites.join());
    out.push({ sites, mode: "single" });
  }
  return out;
}

const mib = (bytes: number) => bytes / 2 ** 20;

/** Child: build the plain variant and `count` adapter variants in one layout; report time and memory. */
async function memoryChild(model: ModelName, arm: Arm, count: number): Promise<void> {
  const m = await loadModel(model);
  const list = variants(m.config, count + 1);
  const { layout, prepack } = ARMS[arm];
  const c0 = performance.now();
  const sessions = await VariantSessions.create({
    model: m,
    ep: "wasm",
    maxVariants: count + 2,
    layout,
    prepack,
  });
  const createMs = performance.now() - c0;
  const rss0 = Deno.memoryUsage().rss; // the runtime and the plain variant's session
  const t0 = performance.now();
  await sessions.prepare(list.slice(0, count));
  const buildAllMs = performance.now() - t0;
  const rss1 = Deno.memoryUsage().rss;
  const t1 = performance.now();
  await sessions.acquire(list[count]);
  const addOneMs = performance.now() - t1;
  const usage = Deno.memoryUsage();
  console.log(JSON.stringify({
    model,
    arm,
    variants: count,
    createMs,
    buildAllMs,
    addOneMs,
    rssGrowthMiB: mib(rss1 - rss0),
    rssMiB: mib(usage.rss),
    heapMiB: mib(usage.heapUsed),
    sharedBytes: sessions.shared?.sharedBytes,
  }));
  await sessions.release();
}

interface DecodeArm {
  name: string;
  sessions: VariantSessions;
}

/** Child: decode step times, separate vs shared sessions with 8 adapter variants cached, alternating. */
async function decodeChild(model: ModelName, rounds: number): Promise<void> {
  const m = await loadModel(model);
  const { config } = m;
  const sites = listAdapterSites(config);
  const k5 = adapterAt(config, sites.filter((s) => s.module === "up_proj").slice(0, 5).map((s) => s.name), 1);
  const other = adapterAt(
    config,
    sites.filter((s) => s.module === "q_proj").slice(0, 5).map((s) => s.name),
    2,
  );
  const cases = [
    { name: "no adapter, batch 1", rows: [null] },
    { name: "K = 5 rank 8, batch 1", rows: [k5] },
    { name: "no adapter, batch 8", rows: Array(8).fill(null) },
    { name: "K = 5 rank 8, batch 8", rows: Array(8).fill(k5) },
    {
      name: "two K = 5 adapters (bank), batch 8",
      rows: Array.from({ length: 8 }, (_, i) => (i % 2 ? other : k5)),
    },
  ].map((c) => ({ ...c, comp: composeBatch(c.rows, sites) }));
  const cached = [...variants(config, 5), ...cases.map((c) => c.comp.variant)];
  const arms: DecodeArm[] = [];
  for (
    const [name, layout, prepack] of [
      ["separate", "separate", true],
      ["separateNoPrepack", "separate", false],
      ["shared", "shared", false],
      ["sharedPrepack", "shared", true],
      ["gated", "gated", true],
    ] as const
  ) {
    const sessions = await VariantSessions.create({ model: m, ep: "wasm", maxVariants: 16, layout, prepack });
    await sessions.prepare(cached);
    arms.push({ name, sessions });
  }
  const steps = model === "260k" ? 48 : 12;
  const blocks = model === "260k" ? 4 : 2;
  const prompt = Array.from({ length: 16 }, (_, i) => 1 + ((i * 37) % (config.vocabSize - 1)));
  const samples = new Map<string, number[]>();
  for (let round = 0; round < rounds + 1; round++) {
    for (const c of cases) {
      const ungated: Record<string, OrtTensor> = {};
      for (const a of variantArrays(c.comp, config)) ungated[a.name] = hostTensor(a.data, a.dims);
      if (c.comp.variant.mode === "bank") {
        ungated[LORA_INDEX_INPUT] = hostTensor(BigInt64Array.from(c.comp.index, BigInt), [
          c.comp.index.length,
        ]);
      }
      const g = gatedArrays(c.comp, config);
      const gated: Record<string, OrtTensor> = {
        [LORA_GATES_INPUT]: new ort.Tensor("bool", g.gates, [g.gates.length]),
        [LORA_INDEX_INPUT]: hostTensor(g.index, [g.index.length]),
      };
      for (const a of g.arrays) gated[a.name] = hostTensor(a.data, a.dims);
      const order = round % 2 ? [...arms].reverse() : arms;
      for (const arm of order) {
        const handle = await arm.sessions.acquire(c.comp.variant);
        const decoder = new BatchDecoder(config, handle.sessions);
        const lora = arm.name === "gated" ? gated : ungated;
        let total = 0;
        for (let block = 0; block < blocks; block++) {
          await decoder.prefill(c.rows.map(() => prompt), { ...lora, ...handle.feeds("prefill") });
          const feeds = { ...lora, ...handle.feeds("decode") };
          const tokens = c.rows.map((_, r) => 3 + r);
          const t0 = performance.now();
          for (let s = 0; s < steps; s++) await decoder.decode(tokens, feeds);
          total += performance.now() - t0;
          decoder.clear();
        }
        if (round === 0) continue; // warm-up (V8 tiers the wasm kernels up)
        const key = `${c.name}|${arm.name}`;
        (samples.get(key) ?? samples.set(key, []).get(key)!).push((total / (steps * blocks)) * 1000);
      }
    }
  }
  for (const arm of arms) await arm.sessions.release();
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  console.log(JSON.stringify({
    model,
    cached: cached.length + 1,
    rows: cases.map((c) => ({
      case: c.name,
      separateUs: median(samples.get(`${c.name}|separate`)!),
      separateNoPrepackUs: median(samples.get(`${c.name}|separateNoPrepack`)!),
      sharedUs: median(samples.get(`${c.name}|shared`)!),
      sharedPrepackUs: median(samples.get(`${c.name}|sharedPrepack`)!),
      gatedUs: median(samples.get(`${c.name}|gated`)!),
    })),
  }));
}

async function child(args: string[]): Promise<unknown> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, CHILD, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`The bench child ${args.join(" ")} failed`);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return JSON.parse(lines.at(-1)!);
}

interface MemoryRow {
  model: ModelName;
  arm: Arm;
  variants: number;
  createMs: number;
  buildAllMs: number;
  addOneMs: number;
  rssGrowthMiB: number;
  rssMiB: number;
  heapMiB: number;
}

async function main(): Promise<void> {
  const { values: flags } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string", default: "5" },
      models: { type: "string", default: MODELS.join(",") },
    },
  });
  const rounds = Number(flags.rounds);
  const models = flags.models!.split(",") as ModelName[];
  const environment = {
    deno: Deno.version.deno,
    cores: navigator.hardwareConcurrency,
    date: new Date().toISOString(),
  };
  const memory: MemoryRow[] = [];
  const skipped: string[] = [];
  for (const model of models) {
    for (const count of COUNTS) {
      const shift = COUNTS.indexOf(count);
      const order = ARM_NAMES.map((_, i) => ARM_NAMES[(i + shift) % ARM_NAMES.length]);
      for (const arm of order) {
        if (SKIP.has(`${model}/${arm}/${count}`)) {
          skipped.push(`${model}/${arm}/${count}`);
          continue;
        }
        console.error(`memory: ${model} ${arm} ${count}`);
        memory.push((await child(["memory", model, arm, String(count)])) as MemoryRow);
      }
    }
  }
  const decode = [];
  for (const model of models) {
    console.error(`decode: ${model}`);
    decode.push(
      (await child(["decode", model, String(rounds)])) as {
        model: ModelName;
        cached: number;
        rows: {
          case: string;
          separateUs: number;
          separateNoPrepackUs: number;
          sharedUs: number;
          sharedPrepackUs: number;
          gatedUs: number;
        }[];
      },
    );
  }

  const lines: string[] = [
    "# Serving graph variants (generated by bench/variants_bench.ts from results/variants.json)",
    "",
  ];
  const label = (m: ModelName) => (m === "260k" ? "stories260K" : "stories15M shape (random weights)");
  lines.push(
    "## Memory and build time: separate sessions vs one shared session (wasm, one process per case)",
    "",
  );
  lines.push(
    "`variants`: adapter variants (five random sites each) besides the plain one.",
    "",
  );
  for (const model of models) {
    const cell = (count: number, arm: Arm, pick: (r: MemoryRow) => number) => {
      const r = memory.find((x) => x.model === model && x.variants === count && x.arm === arm);
      return r ? pick(r) : "not run";
    };
    lines.push(`### ${label(model)}`, "");
    const table = (title: string, pick: (r: MemoryRow) => number) => {
      lines.push(`${title}:`, "");
      lines.push(markdownTable(
        ["variants", ...ARM_NAMES],
        COUNTS.map((count) => [count, ...ARM_NAMES.map((arm) => cell(count, arm, pick))]),
      ));
      lines.push("");
    };
    table("Process RSS after the last variant, MiB", (r) => r.rssMiB);
    table(
      "RSS growth from the plain variant's session to after the last variant, MiB",
      (r) => r.rssGrowthMiB,
    );
    table(
      "Build ms: the first session plus the variants (`shared`: their graphs and one rebuild)",
      (r) => r.createMs + r.buildAllMs,
    );
    table(
      "Add one more variant, ms (`shared`: a rebuild with one branch more; `gated`: nothing)",
      (r) => r.addOneMs,
    );
  }
  if (skipped.length) lines.push(`Not run (memory of a shared machine): ${skipped.join(", ")}.`, "");
  lines.push("## Decode step time with the variants cached (wasm, one thread, alternating blocks)", "");
  for (const d of decode) {
    lines.push(`### ${label(d.model)}, ${d.cached} variants cached`, "");
    lines.push(markdownTable(
      [
        "pass",
        "µs per step, separate",
        "separate without prepacking",
        "shared (no prepacking)",
        "shared+prepack",
        "gated",
        "shared / separate",
        "gated / separate",
        "no prepacking / prepacking (separate)",
      ],
      d.rows.map((r) => [
        r.case,
        r.separateUs,
        r.separateNoPrepackUs,
        r.sharedUs,
        r.sharedPrepackUs,
        r.gatedUs,
        r.sharedUs / r.separateUs,
        r.gatedUs / r.separateUs,
        r.separateNoPrepackUs / r.separateUs,
      ]),
    ));
    lines.push("");
  }
  const results = { environment, rounds, memory, skipped, decode };
  const dir = new URL("./results/", import.meta.url);
  await Deno.mkdir(dir, { recursive: true });
  await writeAtomic(new URL("variants.json", dir), JSON.stringify(results, null, 2) + "\n");
  await writeAtomic(new URL("variants.md", dir), lines.join("\n"));
  await writeDocsTable(results);
  console.log(lines.join("\n"));
}

/** The JSON this script writes (the parts the docs table reads). */
interface Results {
  memory: MemoryRow[];
  decode: { model: ModelName; rows: Record<string, number | string>[] }[];
}

/** The docs' summary table (stories15M's shape): RSS, adding a variant, decode step ratios. */
function docsTable(results: Results): string {
  const arms = ["separate", "shared", "gated"] as const;
  const mem = (arm: Arm, count: number, pick: (r: MemoryRow) => number) => {
    const r = results.memory.find((x) => x.model === "15m" && x.arm === arm && x.variants === count);
    return r ? figure(pick(r)) : "—";
  };
  const decode = results.decode.find((d) => d.model === "15m");
  const ratio = (arm: "shared" | "gated", cases: string[]) =>
    cases.map((c) => {
      const row = decode?.rows.find((r) => r.case === c);
      if (!row) return "—";
      if (arm === "shared") return figure((row.sharedUs as number) / (row.separateUs as number));
      return figure((row.gatedUs as number) / (row.separateUs as number));
    }).join(" / ");
  const batch1 = ["no adapter, batch 1", "K = 5 rank 8, batch 1"];
  const batch8 = ["no adapter, batch 8", "K = 5 rank 8, batch 8", "two K = 5 adapters (bank), batch 8"];
  return markdownTable(["stories15M shape (wasm)", ...arms], [
    [
      "process RSS with 1 / 8 / 64 adapter variants, MiB",
      ...arms.map((a) => COUNTS.map((n) => mem(a, n, (r) => r.rssMiB)).join(" / ")),
    ],
    ["add one more variant at 8, ms", ...arms.map((a) => mem(a, 8, (r) => r.addOneMs))],
    [
      "decode step, no adapter / K = 5, batch 1 (× separate)",
      "1 / 1",
      ratio("shared", batch1),
      ratio("gated", batch1),
    ],
    [
      "decode step, no adapter / K = 5 / bank, batch 8 (× separate)",
      "1 / 1 / 1",
      ratio("shared", batch8),
      ratio("gated", batch8),
    ],
  ]);
}

const DOCS_REGION = /(<!-- bench:variants -->\n)[\s\S]*?(<!-- \/bench:variants -->)/;

/** Rewrites the summary table of `docs/inference.md` (between its `bench:variants` markers). */
async function writeDocsTable(results: Results): Promise<void> {
  const file = new URL("../docs/inference.md", import.meta.url);
  const text = await Deno.readTextFile(file);
  if (!DOCS_REGION.test(text)) throw new Error(`${file.pathname} has no <!-- bench:variants --> region`);
  await writeAtomic(file, text.replace(DOCS_REGION, `$1\n${docsTable(results)}\n\n$2`));
}

/** Writes a file through a temporary sibling and a rename. */
async function writeAtomic(file: URL, text: string): Promise<void> {
  const tmp = new URL(`${file.pathname}.tmp`, file);
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, file);
}

if (import.meta.main) {
  if (Deno.args[0] === "--docs") {
    // the docs table again from the JSON of the last run
    await writeDocsTable(
      JSON.parse(await Deno.readTextFile(new URL("./results/variants.json", import.meta.url))),
    );
  } else if (Deno.args[0] === CHILD) {
    const [, kind, model, a, b] = Deno.args;
    if (kind === "memory") await memoryChild(model as ModelName, a as Arm, Number(b));
    else await decodeChild(model as ModelName, Number(a));
  } else {
    await main();
  }
}
