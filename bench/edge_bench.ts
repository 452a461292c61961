/**
 * The edge deployment measured as an isolate runs it: `examples/edge/main.ts` under `deno serve` with an
 * isolate's permissions (read access to the model and adapter folders only, loopback net, WEIGHTLORA_*
 * only, no write, no subprocess, no Workers, a V8 heap cap: 256 MiB for stories260K, 512 MiB for the
 * stories15M shape), beside the ordinary server (`deno task serve --read-only --ep wasm`, every permission,
 * inference workers by default), alternating the two in rounds.
 *
 * Per run:
 * - cold start: process spawn → the first token of a first streamed request (64 tokens, base model); also
 *   spawn → listening (module load, wasm compile, model load, session creation);
 * - CPU time per 64-token request: user + system time of the server process (all threads, from
 *   /proc/PID/stat, 10 ms ticks) over `--cpu-requests` greedy 64-token requests (alternately base model and
 *   a tenant's adapter), per 64 tokens generated;
 * - RSS after 100 requests: the first request, the CPU-time requests, and then 8-token requests (alternately
 *   base and adapter) up to 100; VmRSS and VmHWM (peak) of /proc/PID/status.
 *
 * Where the time and memory go: `_edge_profile.ts` once per model (the handler's steps one by one).
 *
 * Models: stories260K (the real checkpoint) and a random-weight model of stories15M's shape (vocab 32000),
 * each in float32 and int8 (`deno task convert --quantize int8`).
 *
 *     deno task bench edge                    # or: deno run -A bench/edge_bench.ts --write
 *     deno run -A bench/edge_bench.ts --rounds 1 --models stories260K
 *
 * Writes `bench/results/edge.json` and the table `bench/results/edge.md` (generated from the JSON) with
 * `--write`; `--markdown` only regenerates the table from the JSON.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { convertLlama2c, quantizationPreset } from "../src/io/convert.ts";
import { loadModelFolder } from "../src/io/model_folder.ts";
import { FolderAdapterStore } from "../src/store/folder_adapter_store.ts";
import { randomAdapterFiles } from "../tests/serve/_fixtures.ts";
import {
  type EdgeMode,
  type EdgeServer,
  processCpuSeconds,
  processMemory,
  spawnEdge,
} from "../tests/edge/_harness.ts";
import { STORIES15M_SHAPE, STORIES260K_DIR } from "./_models.ts";
import { writeRandomLlama2c, writeSyntheticTokenizer } from "./_peer_models.ts";
import type { SideBySideEntry } from "./_side_by_side.ts";
import { type Cell, markdownTable } from "./_table.ts";

/** A model variant of the bench. */
interface ModelSpec {
  /** `stories260K f32`, … */
  label: string;
  /** stories260K or the 15M shape. */
  base: "stories260K" | "stories15M shape";
  /** int8 or float32 weights. */
  dtype: "f32" | "int8";
  /** Goals: cold start (ms) and RSS (MiB). */
  goalColdMs: number;
  goalRssMb: number;
  /** V8 heap cap of the isolate (MiB). */
  heapMb: number;
}

const MODELS: ModelSpec[] = [
  {
    label: "stories260K f32",
    base: "stories260K",
    dtype: "f32",
    goalColdMs: 1000,
    goalRssMb: 256,
    heapMb: 256,
  },
  {
    label: "stories260K int8",
    base: "stories260K",
    dtype: "int8",
    goalColdMs: 1000,
    goalRssMb: 256,
    heapMb: 256,
  },
  {
    label: "stories15M shape f32",
    base: "stories15M shape",
    dtype: "f32",
    goalColdMs: 3000,
    goalRssMb: 512,
    heapMb: 512,
  },
  {
    label: "stories15M shape int8",
    base: "stories15M shape",
    dtype: "int8",
    goalColdMs: 3000,
    goalRssMb: 512,
    heapMb: 512,
  },
];

/** One stage of `_edge_profile.ts`. */
interface ProfileStage {
  stage: string;
  ms: number;
  rssMb: number;
  heapMb: number;
  externalMb: number;
}

/** Runs `_edge_profile.ts` on a model in a fresh process: where start-up time and memory go. */
async function profile(paths: { model: string; adapters: string }): Promise<ProfileStage[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-raw-imports",
      new URL("./_edge_profile.ts", import.meta.url).pathname,
      paths.model,
      paths.adapters,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
  if (!out.success || !text.startsWith("{")) {
    throw new Error(`The edge profile of ${paths.model} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  return JSON.parse(text).stages;
}

/** The figures of one run. */
interface RunRow {
  model: string;
  mode: EdgeMode;
  round: number;
  listenMs: number;
  coldStartMs: number;
  coldStartCpuMs: number;
  cpuMsPer64: number;
  tokensPerRequest: number;
  cpuRequests: number;
  requests: number;
  rssMb: number;
  peakRssMb: number;
  tokensPerS: number;
}

const TOKENS = 64;
const SMALL_TOKENS = 8;
const PROMPT = "Once upon a time";

/** Writes the model folders and the adapter folder of a variant. */
async function prepare(
  dir: string,
  spec: ModelSpec,
): Promise<{ model: string; adapters: string; id: string }> {
  const quantization = spec.dtype === "int8" ? quantizationPreset("int8") : undefined;
  let bin: string, tokenizer: string;
  if (spec.base === "stories260K") {
    bin = `${STORIES260K_DIR}stories260K.bin`;
    tokenizer = `${STORIES260K_DIR}tok512.bin`;
  } else {
    bin = `${dir}/stories15M_random.bin`;
    tokenizer = `${dir}/stories15M_random_tok.bin`;
    try {
      await Deno.stat(bin);
    } catch {
      await writeRandomLlama2c(bin, { seed: 1 });
      await writeSyntheticTokenizer(tokenizer, STORIES15M_SHAPE.vocabSize);
    }
  }
  const slug = spec.label.replaceAll(" ", "_");
  const model = `${dir}/${slug}`;
  await convertLlama2c({ model: bin, tokenizer, out: model, quantization });
  const adapters = `${dir}/${slug}_adapters`;
  const { config, id } = await loadModelFolder(model);
  await new FolderAdapterStore(adapters).put(
    "default",
    "story",
    randomAdapterFiles(config, { seed: 3, scale: 0.05 }),
  );
  return { model, adapters, id };
}

/** Sends one greedy completion; with `stream`, resolves when the first token arrives and again at the end. */
async function complete(
  url: string,
  body: { model: string; max_tokens: number },
  onFirstToken?: () => void,
): Promise<number> {
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: PROMPT, temperature: 0, ...body, stream: true }),
  });
  if (!res.ok) throw new Error(`Completion failed: ${res.status} ${await res.text()}`);
  let text = "", tokens = 0, first = true;
  for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
    text += chunk;
    const events = text.split("\n\n");
    text = events.pop()!;
    for (const event of events) {
      if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
      tokens++;
      if (first) {
        first = false;
        onFirstToken?.();
      }
    }
  }
  return tokens;
}

/** One run: spawn, first token, CPU-time requests, the rest of 100 requests, memory. */
async function run(
  spec: ModelSpec,
  paths: { model: string; adapters: string; id: string },
  mode: EdgeMode,
  round: number,
  cpuRequests: number,
  requests: number,
): Promise<RunRow> {
  let server: EdgeServer | undefined;
  try {
    server = await spawnEdge({ model: paths.model, adapters: paths.adapters, mode, heapMb: spec.heapMb });
    let firstAt = NaN, coldCpu = NaN;
    const pid = server.child.pid;
    await complete(server.url, { model: paths.id, max_tokens: TOKENS }, () => {
      firstAt = performance.now();
      coldCpu = processCpuSeconds(pid);
    });
    const cpu0 = processCpuSeconds(pid);
    const t0 = performance.now();
    let tokens = 0;
    for (let i = 0; i < cpuRequests; i++) {
      tokens += await complete(server.url, { model: i % 2 ? "story" : paths.id, max_tokens: TOKENS });
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = processCpuSeconds(pid) - cpu0;
    for (let i = 1 + cpuRequests; i < requests; i++) {
      await complete(server.url, { model: i % 2 ? "story" : paths.id, max_tokens: SMALL_TOKENS });
    }
    const memory = processMemory(pid);
    return {
      model: spec.label,
      mode,
      round,
      listenMs: server.listeningAt - server.spawnedAt,
      coldStartMs: firstAt - server.spawnedAt,
      coldStartCpuMs: coldCpu * 1000,
      cpuMsPer64: (cpu * 1000 * TOKENS) / tokens,
      tokensPerRequest: tokens / cpuRequests,
      cpuRequests,
      requests,
      rssMb: memory.rss / 2 ** 20,
      peakRssMb: memory.peak / 2 ** 20,
      tokensPerS: tokens / seconds,
    };
  } finally {
    await server?.close();
  }
}

function median(values: number[]): number {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const MODE_LABEL: Record<EdgeMode, string> = {
  isolate: "edge isolate (deno serve, least privilege)",
  full: "deno serve -A",
  serve: "deno task serve --read-only",
};

/** The Markdown page of the results, generated from the JSON. */
export function edgeMarkdown(
  json: { meta: Record<string, unknown>; rows: RunRow[]; profiles: Record<string, ProfileStage[]> },
): string {
  const groups = new Map<string, RunRow[]>();
  for (const r of json.rows) {
    const key = `${r.model}\u0000${r.mode}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const cells: Cell[][] = [];
  for (const rows of groups.values()) {
    const spec = MODELS.find((m) => m.label === rows[0].model);
    const cold = median(rows.map((r) => r.coldStartMs));
    const rss = median(rows.map((r) => r.rssMb));
    const isolate = rows[0].mode === "isolate";
    cells.push([
      rows[0].model,
      MODE_LABEL[rows[0].mode],
      rows.length,
      median(rows.map((r) => r.listenMs)),
      cold,
      median(rows.map((r) => r.coldStartCpuMs)),
      isolate && spec
        ? (cold <= spec.goalColdMs ? `met (≤ ${spec.goalColdMs})` : `missed (> ${spec.goalColdMs})`)
        : "",
      median(rows.map((r) => r.cpuMsPer64)),
      median(rows.map((r) => r.tokensPerS)),
      rss,
      median(rows.map((r) => r.peakRssMb)),
      isolate && spec
        ? (rss <= spec.goalRssMb ? `met (≤ ${spec.goalRssMb})` : `missed (> ${spec.goalRssMb})`)
        : "",
    ]);
  }
  const m = json.meta;
  return [
    "# Edge deployment (generated by bench/edge_bench.ts from edge.json)",
    "",
    `${m.date}; load average ${m.loadavg}; ${m.rounds} rounds alternating the modes; ${m.cpuRequests} requests of ` +
    `${TOKENS} tokens for CPU time; RSS after ${m.requests} requests (the rest of ${SMALL_TOKENS} tokens). ` +
    "Medians over rounds. Cold start: process spawn → first token of a first streamed request; its CPU time is " +
    "the server's user + system time until then (steadier than wall time on a loaded machine). The goal " +
    "columns judge the figures as measured, under that load.",
    "",
    markdownTable(
      [
        "model",
        "server",
        "runs",
        "spawn → listening ms",
        "cold start ms",
        "cold start CPU ms",
        "goal",
        "CPU ms / 64-token request",
        "tokens/s",
        `RSS MiB after ${m.requests}`,
        "peak RSS MiB",
        "goal",
      ],
      cells,
    ),
    ...profileTables(json.profiles),
  ].join("\n") + "\n";
}

/** The start-up breakdown: each stage's own time and the resident memory after it, per model. */
function profileTables(profiles: Record<string, ProfileStage[]>): string[] {
  const models = Object.keys(profiles);
  if (models.length === 0) return [];
  const stages = profiles[models[0]].map((s) => s.stage);
  const rows: Cell[][] = stages.map((stage) => [
    stage,
    ...models.flatMap((m) => {
      const s = profiles[m].find((x) => x.stage === stage);
      return s ? [s.ms, s.rssMb] : [NaN, NaN];
    }),
  ]);
  return [
    "",
    "Where start-up time and memory go (`bench/_edge_profile.ts`: the steps of `createEdgeHandler` one by one " +
    "in a fresh process, modules imported dynamically; one run per model, so single readings)",
    "",
    markdownTable(["stage", ...models.flatMap((m) => [`${m} ms`, `${m} RSS MiB`])], rows),
  ];
}

/** Side-by-side entries: the isolate against the ordinary server. */
function sideBySide(rows: RunRow[]): SideBySideEntry[] {
  const out: SideBySideEntry[] = [];
  for (const spec of MODELS) {
    const iso = rows.filter((r) => r.model === spec.label && r.mode === "isolate");
    const srv = rows.filter((r) => r.model === spec.label && r.mode === "serve");
    if (iso.length === 0 || srv.length === 0) continue;
    out.push({
      area: "edge",
      metric: `${spec.label}: cold start (spawn → first token)`,
      value: median(iso.map((r) => r.coldStartMs)),
      baseline: "deno task serve --read-only",
      baselineValue: median(srv.map((r) => r.coldStartMs)),
      unit: "ms",
      higherIsBetter: false,
    }, {
      area: "edge",
      metric: `${spec.label}: RSS after ${iso[0].requests} requests`,
      value: median(iso.map((r) => r.rssMb)),
      baseline: "deno task serve --read-only",
      baselineValue: median(srv.map((r) => r.rssMb)),
      unit: "MiB",
      higherIsBetter: false,
    });
  }
  return out;
}

async function main(): Promise<void> {
  if (Deno.args.includes("--markdown")) {
    // regenerate the table from the JSON, without measuring
    const results = new URL("./results/", import.meta.url);
    const json = JSON.parse(await Deno.readTextFile(new URL("edge.json", results)));
    await writeAtomic(new URL("edge.md", results), edgeMarkdown(json));
    console.log("Wrote bench/results/edge.md from bench/results/edge.json");
    return;
  }
  const write = Deno.args.includes("--write"); // bench/mod.ts passes it to the scripts that name it
  const { values } = parseArgs({
    args: Deno.args.filter((a) => a !== "--write"),
    options: {
      rounds: { type: "string", default: "2" },
      "cpu-requests": { type: "string", default: "6" },
      requests: { type: "string", default: "100" },
      models: { type: "string" },
      modes: { type: "string", default: "isolate,serve" },
    },
  });
  const rounds = Number(values.rounds), cpuRequests = Number(values["cpu-requests"]);
  const requests = Number(values.requests);
  const modes = values.modes!.split(",") as EdgeMode[];
  const wanted = values.models?.split(",");
  const specs = MODELS.filter((m) => !wanted || wanted.some((w) => m.label.includes(w)));
  const dir = await Deno.makeTempDir({ prefix: "edge_bench_" });
  const rows: RunRow[] = [];
  const profiles: Record<string, ProfileStage[]> = {};
  try {
    for (const spec of specs) {
      const paths = await prepare(dir, spec);
      profiles[spec.label] = await profile(paths);
      for (let round = 1; round <= rounds; round++) {
        const order = round % 2 ? modes : [...modes].reverse();
        for (const mode of order) {
          const row = await run(spec, paths, mode, round, cpuRequests, requests);
          rows.push(row);
          console.log(
            `${row.model} | ${mode} | round ${round}: listening ${row.listenMs.toFixed(0)} ms, ` +
              `first token ${row.coldStartMs.toFixed(0)} ms (CPU ${row.coldStartCpuMs.toFixed(0)}), CPU ${
                row.cpuMsPer64.toFixed(0)
              } ms/request, ` +
              `${row.tokensPerS.toFixed(0)} tok/s, RSS ${row.rssMb.toFixed(0)} MiB (peak ${
                row.peakRssMb.toFixed(0)
              })`,
          );
        }
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const json = {
    meta: {
      date: new Date().toISOString(),
      loadavg: Deno.loadavg().map((x) => x.toFixed(2)).join(" "),
      deno: Deno.version.deno,
      rounds,
      cpuRequests,
      requests,
    },
    rows,
    profiles,
    sideBySide: sideBySide(rows),
  };
  const markdown = edgeMarkdown(json);
  console.log(`\n${markdown}`);
  if (write) {
    const results = new URL("./results/", import.meta.url);
    await writeAtomic(new URL("edge.json", results), JSON.stringify(json, null, 2) + "\n");
    await writeAtomic(new URL("edge.md", results), markdown);
    console.log("Wrote bench/results/edge.json and bench/results/edge.md");
  }
}

async function writeAtomic(url: URL, text: string): Promise<void> {
  const tmp = new URL(`${url.pathname}.tmp-${crypto.randomUUID()}`, url);
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, url);
}

if (import.meta.main) await main();
