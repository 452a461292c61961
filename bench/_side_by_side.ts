/**
 * The side-by-side summary `deno task bench` prints after its scripts: each headline figure next to its
 * baseline, as a ratio, read from the JSON the scripts keep under `bench/results/`.
 *
 * A script can list its own entries under a top-level `"sideBySide"` array of {@linkcode SideBySideEntry};
 * for the scripts that do not, the figures are derived here from their known layout: training tokens/s
 * (`weightlora.json`: LoRA on all sites vs WeightLoRA phase 2), decode and prefill tokens/s (`models.json`:
 * against llama2.c's `run.c` on the same machine, DESIGN.md), adapter-vs-base latency and multi-tenant
 * throughput (`serve.json`). A file that is missing or has another layout adds no entry; its absence is named.
 *
 * @example
 * ```ts
 * import { sideBySideTable } from "./_side_by_side.ts";
 * import assert from "node:assert/strict";
 * const table = sideBySideTable([{
 *   area: "training", metric: "tokens/s", value: 200, baseline: "LoRA", baselineValue: 100, unit: "tok/s",
 *   higherIsBetter: true,
 * }]);
 * assert.ok(table.includes("2.00×"));
 * ```
 *
 * @module
 */

import { figure } from "./_table.ts";

/** One figure next to its baseline. */
export interface SideBySideEntry {
  /** What part of the toolkit (training, generation, serving, …). */
  area: string;
  /** What was measured. */
  metric: string;
  /** The figure. */
  value: number;
  /** What it is compared with. */
  baseline: string;
  /** The baseline's figure, same unit. */
  baselineValue: number;
  /** Unit of both. */
  unit: string;
  /** Whether a higher value is better (tokens/s) or worse (latency); absent when neither (a cost ratio). */
  higherIsBetter?: boolean;
  /** The JSON file it came from (set by {@linkcode collectEntries}). */
  source?: string;
}

/** llama2.c `run.c` decoding stories260K on these machines (DESIGN.md: 6,000–7,100 tokens/s), the midpoint. */
export const LLAMA2C_STORIES260K_DECODE = 6550;

type Json = Record<string, unknown>;

function isRecord(v: unknown): v is Json {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function rowsOf(json: Json): Json[] {
  return Array.isArray(json.rows) ? json.rows.filter(isRecord) : [];
}

/** Training tokens/s of WeightLoRA phase 2 against LoRA on all sites, per model and provider. */
function fromWeightlora(json: Json): SideBySideEntry[] {
  const out: SideBySideEntry[] = [];
  const rows = rowsOf(json);
  for (const lora of rows.filter((r) => String(r.variant).startsWith("LoRA"))) {
    const phase2 = rows.find((r) =>
      r.model === lora.model && r.ep === lora.ep && String(r.variant).startsWith("WeightLoRA phase 2")
    );
    const a = num(phase2?.tokensPerSecond), b = num(lora.tokensPerSecond);
    if (a === undefined || b === undefined) continue;
    out.push({
      area: "training",
      metric: `${lora.model} ${lora.ep}: ${phase2!.variant} train tokens/s`,
      value: a,
      baseline: "LoRA (all sites)",
      baselineValue: b,
      unit: "tok/s",
      higherIsBetter: true,
    });
  }
  return out;
}

/** Decode tokens/s against llama2.c, and prefill against decode, for stories260K. */
function fromModels(json: Json): SideBySideEntry[] {
  const out: SideBySideEntry[] = [];
  for (const r of rowsOf(json).filter((x) => x.model === "stories260K")) {
    const decode = num(r.decodeTokensPerS), prefill = num(r.prefillTokensPerS);
    const label = `stories260K ${r.ep} batch ${r.batch}`;
    if (decode !== undefined && r.ep === "wasm" && r.batch === 1) {
      out.push({
        area: "generation",
        metric: `${label}: decode tokens/s`,
        value: decode,
        baseline: "llama2.c run.c, 1 thread",
        baselineValue: LLAMA2C_STORIES260K_DECODE,
        unit: "tok/s",
        higherIsBetter: true,
      });
    }
    if (decode !== undefined && prefill !== undefined) {
      out.push({
        area: "generation",
        metric: `${label}: prefill tokens/s`,
        value: prefill,
        baseline: "decode tokens/s",
        baselineValue: decode,
        unit: "tok/s",
      });
    }
  }
  return out;
}

/** Adapter-vs-base latency and 20-tenant vs 1-tenant throughput. */
function fromServe(json: Json): SideBySideEntry[] {
  const out: SideBySideEntry[] = [];
  const latency = isRecord(json.latency) ? json.latency : {};
  const adapterMs = num(latency.adapterMs), baseMs = num(latency.baseMs);
  if (adapterMs !== undefined && baseMs !== undefined) {
    out.push({
      area: "serving",
      metric: `request latency with an adapter (${latency.maxTokens ?? "?"} tokens)`,
      value: adapterMs,
      baseline: "base model alone",
      baselineValue: baseMs,
      unit: "ms",
      higherIsBetter: false,
    });
  }
  const throughput = Array.isArray(json.throughput) ? json.throughput.filter(isRecord) : [];
  for (const t of throughput) {
    const many = num(t.twentyTenants), one = num(t.oneTenant);
    if (many === undefined || one === undefined) continue;
    out.push({
      area: "serving",
      metric: `tokens/s, 20 tenants round-robin (${
        t.workers === 0 ? "in-process" : `${t.workers ?? "?"} runners`
      })`,
      value: many,
      baseline: "1 tenant",
      baselineValue: one,
      unit: "tok/s",
      higherIsBetter: true,
    });
  }
  return out;
}

function isEntry(v: unknown): v is SideBySideEntry {
  return isRecord(v) && typeof v.metric === "string" && num(v.value) !== undefined &&
    num(v.baselineValue) !== undefined && typeof v.baseline === "string";
}

/**
 * The entries of one results file: its own `sideBySide` list, else the derivation for its name.
 *
 * @param name File name (`models.json`, …).
 * @param json Its parsed contents.
 * @returns Entries (none for an unknown layout).
 */
export function entriesOf(name: string, json: unknown): SideBySideEntry[] {
  if (!isRecord(json)) return [];
  let entries: SideBySideEntry[];
  if (Array.isArray(json.sideBySide)) entries = json.sideBySide.filter(isEntry);
  else if (name === "weightlora.json") entries = fromWeightlora(json);
  else if (name === "models.json") entries = fromModels(json);
  else if (name === "serve.json") entries = fromServe(json);
  else entries = [];
  return entries.map((e) => ({ ...e, source: name }));
}

/** The files the summary expects, with what they cover. */
export const EXPECTED_RESULTS: Readonly<Record<string, string>> = {
  "weightlora.json": "training tokens/s, LoRA (all) vs WeightLoRA phase 2 (weightlora_bench.ts)",
  "training.json": "train step vs forward, wasm vs WebGPU (training_bench.ts)",
  "models.json": "decode and prefill tokens/s (models_bench.ts --write)",
  "serve.json": "adapter-vs-base latency, multi-tenant throughput (serve_bench.ts)",
  "quant.json": "int8/int4 perplexity and decode tokens/s vs float32 (quant_bench.ts --write)",
  "peers.json": "decode tokens/s against wllama and transformers.js (peers_bench.ts --write)",
  "training_peers.json":
    "LoRA training tokens/s against PyTorch on the same work (training_peers_bench.ts --write)",
  "abuse.json":
    "a well-behaved tenant's p99 under abuse vs alone, /health during big uploads (abuse_bench.ts)",
  "edge.json": "edge isolate cold start and RSS vs deno task serve --read-only (edge_bench.ts --write)",
  "replicas.json":
    "new adapter served by every replica vs the 2 s goal, 1,000 tenants vs one adapter (replicas_bench.ts)",
};

/**
 * Reads every `*.json` of a results folder.
 *
 * @param dir The folder (`bench/results/`).
 * @returns The entries, and the expected files that were missing or unreadable.
 */
export function collectEntries(dir: URL): { entries: SideBySideEntry[]; missing: string[] } {
  const entries: SideBySideEntry[] = [];
  const seen = new Set<string>();
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(dir)].filter((e) => e.isFile && e.name.endsWith(".json")).map((e) => e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  for (const name of names.sort()) {
    try {
      entries.push(...entriesOf(name, JSON.parse(Deno.readTextFileSync(new URL(name, dir)))));
      seen.add(name);
    } catch {
      // an unreadable file counts as missing below
    }
  }
  return { entries, missing: Object.keys(EXPECTED_RESULTS).filter((n) => !seen.has(n)) };
}

/**
 * The entries as a Markdown table; the ratio is value / baseline, marked "better" or "worse" where the
 * entry has a direction.
 *
 * @param entries The entries.
 * @returns The table.
 */
export function sideBySideTable(entries: readonly SideBySideEntry[]): string {
  const lines = [
    "| area | figure | value | baseline | baseline value | ratio |",
    "|---|---|---:|---|---:|---:|",
  ];
  for (const e of entries) {
    const ratio = e.value / e.baselineValue;
    const better = e.higherIsBetter ? ratio > 1 : ratio < 1;
    const verdict = e.higherIsBetter === undefined || ratio === 1 ? "" : better ? " (better)" : " (worse)";
    const value = `${figure(e.value)} ${e.unit}`, baseline = `${figure(e.baselineValue)} ${e.unit}`;
    lines.push(
      `| ${e.area} | ${e.metric} | ${value} | ${e.baseline} | ${baseline} | ${ratio.toFixed(2)}×${verdict} |`,
    );
  }
  return lines.join("\n");
}
