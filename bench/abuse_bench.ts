/**
 * Abuse soak of the server (issue 12), on stories260K over loopback only, against a real `serve` process
 * in database mode (embedded PGlite in a temporary folder):
 *
 * - **soak**: a well-behaved tenant sends short greedy requests (8 tokens) one after another, first alone,
 *   then while five abusive tenants upload hostile adapters (a catastrophic regex as `target_modules`, NaN
 *   weights, `lora_alpha` 1e308, 47 MB valid ones), send 1 MB prompts, flood chunked bodies over the limits
 *   and valid 2 MB JSONL files, hold 16 long streams and flood job creation. Reported: its p50/p99 latency
 *   alone and under abuse, `/health` latency, the number of 5xx answers, the server's peak RSS, and — after
 *   a `kill -9` and a restart — whether every acknowledged write (adapter 200/201, file 200, job 200) is
 *   still there.
 * - **probes** (before/after with `--baseline DIR`, a checkout of the code to compare, alternating):
 *   `/health` latency while one 47 MB adapter is uploaded, while it is first used after a restart, while a
 *   2 MB JSONL file (many rows, or one row) is uploaded, and while a 1 MB prompt is refused; the server's
 *   peak RSS.
 *
 * The machine is shared: compare only figures of one run. Writes `bench/results/abuse.json` and the tables
 * generated from it, `bench/results/abuse.md` (`--render` regenerates the Markdown from the JSON alone).
 *
 * Usage: `deno run -A bench/abuse_bench.ts [--seconds=60] [--baseline=DIR] [--no-probes] [--no-soak]
 * [--abusers=adapters,prompts,floods,streams,jobs] [--train-nice=0,10] [--dry-run] [--render]`
 * (`--seconds` is the length of the abuse phase; the phase alone lasts a third of it; one soak per
 * `--train-nice` value, the first being the headline).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadModelFolder } from "../src/io/model_folder.ts";
import type { LlamaConfig } from "../src/models/config.ts";
import { randomAdapterFiles, stories260kHf } from "../tests/serve/_fixtures.ts";
import type { SideBySideEntry } from "./_side_by_side.ts";
import { figure, markdownTable } from "./_table.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "60" },
    baseline: { type: "string" },
    "no-probes": { type: "boolean", default: false },
    "no-soak": { type: "boolean", default: false },
    render: { type: "boolean", default: false },
    "dry-run": { type: "boolean", default: false },
    abusers: { type: "string", default: "adapters,prompts,floods,streams,jobs" },
    "train-nice": { type: "string", default: "0,10" },
    "abuse-child": { type: "boolean", default: false },
    url: { type: "string" },
    model: { type: "string" },
  },
});

const RESULTS = new URL("./results/", import.meta.url);
const HERE = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
const KEYS = {
  good: "sk-good-0123456789",
  adapters: "sk-adapters-0123456789",
  prompts: "sk-prompts-0123456789",
  floods: "sk-floods-0123456789",
  streams: "sk-streams-0123456789",
  jobs: "sk-jobs-0123456789",
} as const;
type Tenant = keyof typeof KEYS;

const KEYS_FILE = {
  default_quotas: { adapters: 16, files: 32, bytes: 1 << 30, concurrent_jobs: 4, concurrent_rows: 32 },
  tenants: Object.fromEntries(Object.entries(KEYS).map(([t, k]) => [t, { keys: [k] }])),
};

function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function summary(samples: readonly number[]): { n: number; p50: number; p99: number; max: number } {
  return {
    n: samples.length,
    p50: percentile(samples, 0.5),
    p99: percentile(samples, 0.99),
    max: samples.length ? Math.max(...samples) : NaN,
  };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Resident memory of a process, bytes: current and peak (Linux). */
async function rss(pid: number): Promise<{ now: number; peak: number }> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const kb = (key: string) =>
      Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
    return { now: kb("VmRSS"), peak: kb("VmHWM") };
  } catch {
    return { now: NaN, peak: NaN };
  }
}

/** A `deno task serve` process in database mode. */
class Server {
  readonly url: string;
  #child: Deno.ChildProcess;
  #log: string[] = [];

  private constructor(child: Deno.ChildProcess, url: string) {
    this.#child = child;
    this.url = url;
  }

  static async start(
    repo: string,
    setup: { model: string; db: string; keys: string; trainNice?: number },
  ): Promise<Server> {
    const port = freePort();
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-raw-imports",
        `${repo}/src/cli/serve.ts`,
        "--model",
        setup.model,
        "--db",
        setup.db,
        "--keys",
        setup.keys,
        "--port",
        String(port),
        "--train-workers",
        "1",
        ...(setup.trainNice === undefined ? [] : ["--train-nice", String(setup.trainNice)]),
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const server = new Server(child, `http://127.0.0.1:${port}`);
    server.#drain(child.stdout);
    server.#drain(child.stderr);
    const end = Date.now() + 120_000;
    for (;;) {
      try {
        const res = await fetch(`${server.url}/health`);
        await res.body?.cancel();
        if (res.ok) return server;
      } catch { /* not yet */ }
      if (Date.now() > end) throw new Error(`The server did not start: ${server.#log.join("").slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  get pid(): number {
    return this.#child.pid;
  }

  async #drain(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      this.#log.push(decoder.decode(chunk));
      if (this.#log.length > 200) this.#log.splice(0, 100);
    }
  }

  async kill(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    try {
      this.#child.kill(signal);
    } catch { /* gone */ }
    await this.#child.status;
  }
}

/** Probes `/health` every `everyMs` until stopped: latencies, ms. */
function probeHealth(url: string, everyMs = 50): { stop: () => Promise<number[]> } {
  const samples: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      try {
        const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(60_000) });
        await res.body?.cancel();
      } catch { /* counted as its time */ }
      samples.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return samples;
    },
  };
}

/** Samples the peak RSS of a process while it runs. */
function watchRss(pid: number): { stop: () => Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const m = await rss(pid);
      peak = Math.max(peak, Number.isNaN(m.peak) ? 0 : m.peak, Number.isNaN(m.now) ? 0 : m.now);
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return peak;
    },
  };
}

function bearer(tenant: Tenant): Record<string, string> {
  return { authorization: `Bearer ${KEYS[tenant]}` };
}

function adapterForm(name: string, files: { config: Uint8Array; weights: Uint8Array }): FormData {
  const form = new FormData();
  form.set("name", name);
  form.set("adapter_config.json", new File([files.config as Uint8Array<ArrayBuffer>], "adapter_config.json"));
  form.set(
    "adapter_model.safetensors",
    new File([files.weights as Uint8Array<ArrayBuffer>], "adapter_model.safetensors"),
  );
  return form;
}

function jsonlOf(bytes: number): string {
  const line = JSON.stringify({
    prompt: "Once upon a time, there was a dog named",
    completion: " Zorp. He barked.",
  });
  return Array.from({ length: Math.ceil(bytes / (line.length + 1)) }, () => line).join("\n") + "\n";
}

function fileForm(text: string): FormData {
  const form = new FormData();
  form.set("purpose", "fine-tune");
  form.set("file", new File([text], "train.jsonl"));
  return form;
}

/** A chunked body of `bytes` bytes, 1 MiB at a time (never held whole). */
function chunkedBody(bytes: number, prefix: Uint8Array): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(1 << 20).fill(120);
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent === 0) {
        controller.enqueue(prefix);
        sent += prefix.length;
      } else if (sent < bytes) {
        controller.enqueue(chunk);
        sent += chunk.length;
      } else controller.close();
    },
  });
}

interface Counters {
  requests: number;
  status5xx: number;
  statuses: Record<string, number>;
  examples5xx: string[];
}

async function send(
  counters: Counters,
  what: string,
  url: string,
  init: RequestInit,
): Promise<Response | undefined> {
  counters.requests++;
  try {
    const res = await fetch(url, { ...init, signal: init.signal ?? AbortSignal.timeout(120_000) });
    const key = `${what} ${res.status}`;
    counters.statuses[key] = (counters.statuses[key] ?? 0) + 1;
    if (res.status >= 500) {
      counters.status5xx++;
      if (counters.examples5xx.length < 5) {
        counters.examples5xx.push(`${key}: ${(await res.clone().text()).slice(0, 200)}`);
      }
    }
    return res;
  } catch (e) {
    const key = `${what} ${(e as Error).name}`;
    counters.statuses[key] = (counters.statuses[key] ?? 0) + 1;
    return undefined;
  }
}

const GOOD_REQUEST = { model: "stories260K", prompt: "Once upon a time", max_tokens: 8, temperature: 0 };

/** The well-behaved tenant's loop: latencies of its requests, ms. */
async function goodTenant(url: string, until: number, counters: Counters): Promise<number[]> {
  const latencies: number[] = [];
  while (Date.now() < until) {
    const t0 = performance.now();
    const res = await send(counters, "good completion", `${url}/v1/completions`, {
      method: "POST",
      headers: { ...bearer("good"), "content-type": "application/json" },
      body: JSON.stringify(GOOD_REQUEST),
    });
    await res?.body?.cancel();
    if (res?.status === 200) latencies.push(performance.now() - t0);
    else await new Promise((r) => setTimeout(r, 50));
  }
  return latencies;
}

interface Acknowledged {
  adapters: { tenant: Tenant; name: string; sha256: string }[];
  files: { tenant: Tenant; id: string; bytes: number }[];
  jobs: { tenant: Tenant; id: string }[];
}

/** Every abuser, until `until`. */
async function abusers(
  url: string,
  seconds: number,
  counters: Counters,
  acked: Acknowledged,
  config: LlamaConfig,
): Promise<void> {
  const enc = new TextEncoder();
  let until = Infinity;
  const alive = () => Date.now() < until;
  const big = randomAdapterFiles(config, {
    seed: 1,
    rank: 2048,
    scale: 0.001,
    modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
  });
  const small = randomAdapterFiles(config, { seed: 2, rank: 4, scale: 0.05 });
  const nan = randomAdapterFiles(config, { seed: 3, rank: 4 });
  new Float32Array(nan.weights.buffer, nan.weights.byteOffset + nan.weights.byteLength - 64, 4).fill(NaN);
  const hostileConfigs = [
    { target_modules: ".{7}(.*)*!", r: 4, lora_alpha: 8, peft_type: "LORA" },
    { target_modules: ["q_proj"], r: 4, lora_alpha: 1e308, peft_type: "LORA" },
    {
      target_modules: ["q_proj", "v_proj", "down_proj"],
      r: 4,
      lora_alpha: 8,
      peft_type: "LORA",
      rank_pattern: { "(a+)+$": 2 },
    },
  ];
  let n = 0;
  const uploadAdapter = async (name: string, files: { config: Uint8Array; weights: Uint8Array }) => {
    const res = await send(counters, "adapter upload", `${url}/v1/adapters`, {
      method: "POST",
      headers: bearer("adapters"),
      body: adapterForm(name, files),
    });
    if (res && (res.status === 200 || res.status === 201)) {
      acked.adapters.push({ tenant: "adapters", name, sha256: (await res.json()).sha256 });
    } else await res?.body?.cancel();
  };
  const adapterLoop = async () => {
    while (alive()) {
      const i = n++;
      const kind = i % 5;
      if (kind === 0) await uploadAdapter(`big-${i}`, big);
      else if (kind === 1) await uploadAdapter(`nan-${i}`, nan);
      else if (kind === 4) await uploadAdapter(`ok-${i}`, small);
      else {
        const cfg = hostileConfigs[i % hostileConfigs.length];
        await uploadAdapter(`hostile-${i}`, {
          config: enc.encode(JSON.stringify(cfg)),
          weights: small.weights,
        });
      }
    }
  };
  const hugePrompt = "Once upon a time. ".repeat(55_000);
  const promptLoop = async () => {
    while (alive()) {
      const res = await send(counters, "1 MB prompt", `${url}/v1/completions`, {
        method: "POST",
        headers: { ...bearer("prompts"), "content-type": "application/json" },
        body: JSON.stringify({ model: "stories260K", prompt: hugePrompt, max_tokens: 4 }),
      });
      await res?.body?.cancel();
    }
  };
  const jsonl = jsonlOf(2 << 20);
  const floodLoop = async () => {
    for (let i = 0; alive(); i++) {
      if (i % 3 === 2) {
        const res = await send(counters, "2 MB JSONL", `${url}/v1/files`, {
          method: "POST",
          headers: bearer("floods"),
          body: fileForm(jsonl),
        });
        if (res?.status === 200) {
          const body = await res.json();
          acked.files.push({ tenant: "floods", id: body.id, bytes: body.bytes });
        } else await res?.body?.cancel();
        continue;
      }
      const target = i % 3 === 0 ? "/v1/files" : "/v1/adapters";
      const res = await send(counters, `chunked 100 MB ${target}`, `${url}${target}`, {
        method: "POST",
        headers: { ...bearer("floods"), "content-type": "multipart/form-data; boundary=xyz" },
        body: chunkedBody(
          100 << 20,
          enc.encode('--xyz\r\ncontent-disposition: form-data; name="file"; filename="a"\r\n\r\n'),
        ),
      });
      await res?.body?.cancel();
    }
  };
  const streamLoop = async () => {
    while (alive()) {
      const res = await send(counters, "long stream", `${url}/v1/completions`, {
        method: "POST",
        headers: { ...bearer("streams"), "content-type": "application/json" },
        body: JSON.stringify({
          model: "stories260K",
          prompt: "Once",
          max_tokens: 500,
          stream: true,
          temperature: 1,
        }),
      });
      if (!res?.body) continue;
      try {
        for await (const _ of res.body) if (!alive()) break;
      } catch { /* cut */ }
      await res.body.cancel().catch(() => {});
    }
  };
  const jobLoop = async () => {
    const up = await send(counters, "job file", `${url}/v1/files`, {
      method: "POST",
      headers: bearer("jobs"),
      body: fileForm(jsonlOf(4096)),
    });
    if (up?.status !== 200) return;
    const file = await up.json();
    acked.files.push({ tenant: "jobs", id: file.id, bytes: file.bytes });
    while (alive()) {
      const res = await send(counters, "job create", `${url}/v1/fine_tuning/jobs`, {
        method: "POST",
        headers: { ...bearer("jobs"), "content-type": "application/json" },
        body: JSON.stringify({
          model: "stories260K",
          training_file: file.id,
          method: { type: "weightlora", weightlora: { hyperparameters: { steps: 1000, k: 3, rank: 2 } } },
        }),
      });
      if (res?.status === 200) acked.jobs.push({ tenant: "jobs", id: (await res.json()).id });
      else {
        await res?.body?.cancel();
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const chosen = new Set(flags.abusers!.split(","));
  // every payload is built: tell the parent, then abuse
  console.log("ready");
  until = Date.now() + seconds * 1000;
  await Promise.all([
    chosen.has("adapters") ? adapterLoop() : undefined,
    chosen.has("prompts") ? promptLoop() : undefined,
    chosen.has("floods") ? floodLoop() : undefined,
    chosen.has("jobs") ? jobLoop() : undefined,
    ...Array.from({ length: chosen.has("streams") ? 16 : 0 }, () => streamLoop()),
  ]);
}

/** Checks every acknowledged write on a restarted server. */
async function verify(
  url: string,
  acked: Acknowledged,
): Promise<{ acknowledged: number; found: number; lost: string[] }> {
  const lost: string[] = [];
  let found = 0;
  // several versions of one name: the last acknowledged is what must be there (names are unique here)
  for (const a of acked.adapters) {
    const res = await fetch(`${url}/v1/adapters/${a.name}`, { headers: bearer(a.tenant) });
    const body = res.ok ? await res.json() : (await res.body?.cancel(), undefined);
    if (body?.sha256 === a.sha256) found++;
    else lost.push(`adapter ${a.name}`);
  }
  for (const f of acked.files) {
    const res = await fetch(`${url}/v1/files/${f.id}/content`, { headers: bearer(f.tenant) });
    const bytes = res.ok ? (await res.arrayBuffer()).byteLength : (await res.body?.cancel(), -1);
    if (bytes === f.bytes) found++;
    else lost.push(`file ${f.id}`);
  }
  for (const j of acked.jobs) {
    const res = await fetch(`${url}/v1/fine_tuning/jobs/${j.id}`, { headers: bearer(j.tenant) });
    await res.body?.cancel();
    if (res.ok) found++;
    else lost.push(`job ${j.id}`);
  }
  return { acknowledged: acked.adapters.length + acked.files.length + acked.jobs.length, found, lost };
}

async function soak(model: string, seconds: number, trainNice: number): Promise<Record<string, unknown>> {
  const root = await Deno.makeTempDir({ prefix: "abuse_bench_" });
  const setup = { model, db: `${root}/db`, keys: `${root}/keys.json`, trainNice };
  await Deno.writeTextFile(setup.keys, JSON.stringify(KEYS_FILE));
  let server = await Server.start(HERE, setup);
  try {
    const rssWatch = watchRss(server.pid);
    // warm up: the first requests build graphs
    const warm: Counters = { requests: 0, status5xx: 0, statuses: {}, examples5xx: [] };
    await goodTenant(server.url, Date.now() + 3000, warm);

    const aloneCounters: Counters = { requests: 0, status5xx: 0, statuses: {}, examples5xx: [] };
    let health = probeHealth(server.url);
    const alone = await goodTenant(server.url, Date.now() + (seconds * 1000) / 3, aloneCounters);
    const healthAlone = await health.stop();

    // the abusers run in their own process, so that their work never delays this one's measurements
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL(import.meta.url).pathname,
        "--abuse-child",
        `--url=${server.url}`,
        `--seconds=${seconds}`,
        `--model=${model}`,
        `--abusers=${flags.abusers}`,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(splitLines()).getReader();
    while ((await lines.read()).value !== "ready") { /* payloads being built */ }
    const counters: Counters = { requests: 0, status5xx: 0, statuses: {}, examples5xx: [] };
    health = probeHealth(server.url);
    const underAbuse = await goodTenant(server.url, Date.now() + seconds * 1000, counters);
    const healthAbuse = await health.stop();
    const report = JSON.parse((await lines.read()).value!) as { counters: Counters; acked: Acknowledged };
    await child.status;
    const acked = report.acked;
    counters.requests += report.counters.requests;
    counters.status5xx += report.counters.status5xx;
    counters.examples5xx.push(...report.counters.examples5xx);
    Object.assign(counters.statuses, report.counters.statuses);
    const peakRss = await rssWatch.stop();

    await server.kill("SIGKILL");
    server = await Server.start(HERE, setup);
    const durability = await verify(server.url, acked);
    return {
      seconds,
      train_nice: trainNice,
      good_alone_ms: summary(alone),
      good_under_abuse_ms: summary(underAbuse),
      p99_ratio: percentile(underAbuse, 0.99) / percentile(alone, 0.99),
      health_alone_ms: summary(healthAlone),
      health_under_abuse_ms: summary(healthAbuse),
      requests: counters.requests + aloneCounters.requests,
      status_5xx: counters.status5xx + aloneCounters.status5xx,
      examples_5xx: [...aloneCounters.examples5xx, ...counters.examples5xx],
      statuses: counters.statuses,
      peak_rss_mb: peakRss / 2 ** 20,
      durability,
    };
  } finally {
    await server.kill("SIGKILL");
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

/** One round of the probes on the code at `repo`. */
async function probes(repo: string, model: string, config: LlamaConfig): Promise<Record<string, unknown>> {
  const root = await Deno.makeTempDir({ prefix: "abuse_probe_" });
  const setup = { model, db: `${root}/db`, keys: `${root}/keys.json` };
  await Deno.writeTextFile(setup.keys, JSON.stringify(KEYS_FILE));
  const big = randomAdapterFiles(config, {
    seed: 1,
    rank: 2048,
    scale: 0.001,
    modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
  });
  const out: Record<string, unknown> = { adapter_bytes: big.weights.byteLength };
  let server = await Server.start(repo, setup);
  try {
    const timed = async (name: string, fn: () => Promise<Response>) => {
      const before = await rss(server.pid);
      const health = probeHealth(server.url, 20);
      const t0 = performance.now();
      const res = await fn();
      const ms = performance.now() - t0;
      const text = await res.text();
      const samples = await health.stop();
      const after = await rss(server.pid);
      out[name] = {
        status: res.status,
        ms,
        health_max_ms: Math.max(...samples),
        health_p99_ms: percentile(samples, 0.99),
        rss_peak_growth_mb: (after.peak - before.peak) / 2 ** 20,
        error: res.status >= 400 ? text.slice(0, 160) : undefined,
      };
    };
    // the first request builds graphs: not part of any probe
    await (await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { ...bearer("good"), "content-type": "application/json" },
      body: JSON.stringify(GOOD_REQUEST),
    })).body?.cancel();
    await timed(
      "adapter_upload_47mb",
      () =>
        fetch(`${server.url}/v1/adapters`, {
          method: "POST",
          headers: bearer("adapters"),
          body: adapterForm("big", big),
        }),
    );
    await timed(
      "jsonl_upload_2mb",
      () =>
        fetch(`${server.url}/v1/files`, {
          method: "POST",
          headers: bearer("floods"),
          body: fileForm(jsonlOf(2 << 20)),
        }),
    );
    const oneLine = JSON.stringify({ text: "Once upon a time. ".repeat(116_000) }) + "\n";
    await timed(
      "jsonl_one_line_2mb",
      () =>
        fetch(`${server.url}/v1/files`, {
          method: "POST",
          headers: bearer("floods"),
          body: fileForm(oneLine),
        }),
    );
    await timed("prompt_1mb", () =>
      fetch(`${server.url}/v1/completions`, {
        method: "POST",
        headers: { ...bearer("prompts"), "content-type": "application/json" },
        body: JSON.stringify({
          model: "stories260K",
          prompt: "Once upon a time. ".repeat(55_000),
          max_tokens: 4,
        }),
      }));
    out.peak_rss_mb = (await rss(server.pid)).peak / 2 ** 20;
    await server.kill("SIGKILL");
    server = await Server.start(repo, setup);
    await timed("adapter_first_use_after_restart", () =>
      fetch(`${server.url}/v1/completions`, {
        method: "POST",
        headers: { ...bearer("adapters"), "content-type": "application/json" },
        body: JSON.stringify({ model: "big", prompt: "Once", max_tokens: 4, temperature: 0 }),
      }));
    return out;
  } finally {
    await server.kill("SIGKILL");
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

/** The headline figures for `deno task bench`'s side-by-side table. */
function sideBySide(results: Record<string, unknown>): SideBySideEntry[] {
  // deno-lint-ignore no-explicit-any
  const r = results as any;
  const entries: SideBySideEntry[] = [];
  if (r.soak) {
    entries.push({
      area: "serving under abuse",
      metric: "well-behaved tenant p99 (8-token greedy)",
      value: r.soak.good_under_abuse_ms.p99,
      baseline: "the same tenant without abusers",
      baselineValue: r.soak.good_alone_ms.p99,
      unit: "ms",
      higherIsBetter: false,
    });
  }
  for (
    const [probe, label] of [["adapter_upload_47mb", "47 MB adapter upload"], ["prompt_1mb", "1 MB prompt"]]
  ) {
    const before = r.probes?.baseline?.[probe];
    const after = r.probes?.this?.[probe];
    if (!before || !after) continue;
    entries.push({
      area: "serving under abuse",
      metric: `/health max during a ${label}`,
      value: after.health_max_ms,
      baseline: "the baseline code",
      baselineValue: before.health_max_ms,
      unit: "ms",
      higherIsBetter: false,
    });
  }
  return entries;
}

/** The Markdown of the results. */
export function renderMarkdown(results: Record<string, unknown>): string {
  // deno-lint-ignore no-explicit-any
  const r = results as any;
  const lines = [
    "# Abuse soak (generated from abuse.json by bench/abuse_bench.ts)",
    "",
    `Run ${r.date} on ${r.machine}. Loopback only, stories260K, database mode (embedded PGlite).`,
    "",
  ];
  if (r.soak) {
    const s = r.soak;
    lines.push(
      `## Soak: ${s.seconds} s of abuse`,
      "",
      markdownTable(["well-behaved tenant (8-token greedy)", "requests", "p50 ms", "p99 ms", "max ms"], [
        ["alone", s.good_alone_ms.n, s.good_alone_ms.p50, s.good_alone_ms.p99, s.good_alone_ms.max],
        [
          "under abuse",
          s.good_under_abuse_ms.n,
          s.good_under_abuse_ms.p50,
          s.good_under_abuse_ms.p99,
          s.good_under_abuse_ms.max,
        ],
      ]),
      "",
      markdownTable(["/health", "probes", "p50 ms", "p99 ms", "max ms"], [
        ["alone", s.health_alone_ms.n, s.health_alone_ms.p50, s.health_alone_ms.p99, s.health_alone_ms.max],
        [
          "under abuse",
          s.health_under_abuse_ms.n,
          s.health_under_abuse_ms.p50,
          s.health_under_abuse_ms.p99,
          s.health_under_abuse_ms.max,
        ],
      ]),
      "",
      markdownTable(["figure", "value"], [
        ["p99 under abuse / p99 alone", figure(s.p99_ratio)],
        ["requests sent", s.requests],
        ["5xx answers", s.status_5xx],
        ["server peak RSS, MB", s.peak_rss_mb],
        ["acknowledged writes (adapters, files, jobs)", s.durability.acknowledged],
        ["found after kill -9 and restart", s.durability.found],
      ]),
      "",
      ...(r.soaks ? niceTable(r.soaks) : []),
      "Answers by kind under abuse:",
      "",
      markdownTable(
        ["request and status", "count"],
        Object.entries(s.statuses).sort().map(([k, v]) => [k, v as number]),
      ),
      "",
    );
  }
  if (r.probes) {
    const names = [
      "adapter_upload_47mb",
      "adapter_first_use_after_restart",
      "jsonl_upload_2mb",
      "jsonl_one_line_2mb",
      "prompt_1mb",
    ];
    const versions = Object.keys(r.probes);
    lines.push("## Probes: /health while one request runs", "");
    const rows = [];
    for (const name of names) {
      for (const v of versions) {
        const p = r.probes[v][name];
        if (!p) continue;
        rows.push([name, v, p.status, p.ms, p.health_max_ms, p.health_p99_ms, p.rss_peak_growth_mb]);
      }
    }
    lines.push(
      markdownTable([
        "probe",
        "code",
        "status",
        "request ms",
        "/health max ms",
        "/health p99 ms",
        "peak RSS growth MB",
      ], rows),
      "",
    );
  }
  return lines.join("\n");
}

/** The soaks side by side by the training threads' niceness (`--train-nice` list). */
// deno-lint-ignore no-explicit-any
function niceTable(soaks: any[]): string[] {
  return [
    "The same soak with the training threads at each niceness (`serve --train-nice`), one after the other:",
    "",
    markdownTable(
      [
        "training nice",
        "good p50 ms alone / under abuse",
        "good p99 ms alone / under abuse",
        "p99 ratio",
        "/health p99 ms",
        "/health max ms",
        "jobs created",
      ],
      soaks.map((s) => [
        s.train_nice,
        `${figure(s.good_alone_ms.p50)} / ${figure(s.good_under_abuse_ms.p50)}`,
        `${figure(s.good_alone_ms.p99)} / ${figure(s.good_under_abuse_ms.p99)}`,
        figure(s.p99_ratio),
        figure(s.health_under_abuse_ms.p99),
        figure(s.health_under_abuse_ms.max),
        s.statuses["job create 200"] ?? 0,
      ]),
    ),
    "",
  ];
}

/** Splits text into lines. */
function splitLines(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, controller) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const line of parts) controller.enqueue(line);
    },
    flush(controller) {
      if (rest) controller.enqueue(rest);
    },
  });
}

/** The abusers' process: builds its payloads, prints `ready`, abuses, prints its counts as JSON. */
async function abuseChild(): Promise<void> {
  const { config } = await loadModelFolder(flags.model!);
  const counters: Counters = { requests: 0, status5xx: 0, statuses: {}, examples5xx: [] };
  const acked: Acknowledged = { adapters: [], files: [], jobs: [] };
  await abusers(flags.url!, Number(flags.seconds), counters, acked, config);
  console.log(JSON.stringify({ counters, acked }));
}

async function main(): Promise<void> {
  if (flags["abuse-child"]) return await abuseChild();
  await Deno.mkdir(RESULTS, { recursive: true });
  const jsonFile = new URL("abuse.json", RESULTS);
  const mdFile = new URL("abuse.md", RESULTS);
  if (flags.render) {
    await Deno.writeTextFile(mdFile, renderMarkdown(JSON.parse(await Deno.readTextFile(jsonFile))) + "\n");
    return;
  }
  const seconds = Number(flags.seconds);
  if (!(seconds > 0)) throw new RangeError(`Invalid --seconds ${flags.seconds}: expected a positive number`);
  const model = await stories260kHf();
  const { config } = await loadModelFolder(model);
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: `${Deno.build.os} ${Deno.build.arch}, ${navigator.hardwareConcurrency} cores (shared)`,
  };
  if (!flags["no-probes"]) {
    const versions: [string, string][] = [["this", HERE]];
    if (flags.baseline) versions.unshift(["baseline", flags.baseline]);
    const probeResults: Record<string, unknown> = {};
    for (const [name, repo] of versions) {
      console.log(`probes on ${name} (${repo})`);
      probeResults[name] = await probes(repo, model, config);
      console.log(JSON.stringify(probeResults[name]));
    }
    results.probes = probeResults;
  }
  if (!flags["no-soak"]) {
    // the first niceness is the server's default (the headline); the others run after it, for comparison
    const nices = flags["train-nice"]!.split(",").map((v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 19) {
        throw new RangeError(`Invalid --train-nice ${flags["train-nice"]}: expected integers from 0 to 19`);
      }
      return n;
    });
    const soaks = [];
    for (const nice of nices) {
      console.log(`soak (training at nice ${nice}): ${seconds / 3} s alone, ${seconds} s under abuse`);
      soaks.push(await soak(model, seconds, nice));
    }
    results.soak = soaks[0];
    if (soaks.length > 1) results.soaks = soaks;
  }
  results.sideBySide = sideBySide(results);
  const md = renderMarkdown(results);
  console.log(md);
  if (!flags["dry-run"]) {
    await Deno.writeTextFile(jsonFile, JSON.stringify(results, null, 2) + "\n");
    await Deno.writeTextFile(mdFile, md + "\n");
  }
}

if (import.meta.main) await main();
