/**
 * Replicas at scale, simulated (issue 15 item 5): real `serve` processes on loopback, stories260K, adapters
 * in one S3-compatible object store (the test server of `tests/_util/s3_server.ts`: s3rver behind a SigV4
 * front), files and jobs in one Postgres server.
 *
 * - **propagation**: N replicas (`--replicas`, 3) share the Postgres database and the bucket. A new
 *   version of one adapter is uploaded `--versions` times (30) through `POST /v1/adapters`, each time to
 *   the next replica; every other replica is polled with a greedy completion of that adapter (and
 *   `GET /v1/adapters/{name}`) until its output is the new version's (the uploader's own output, checked to
 *   differ from the previous version's). Reported: the time from the upload's answer until each replica
 *   serves the new version, p50/p99/max (goal ≤ 2 s).
 * - **tenants**: one replica, a prepared-adapter cache sized for `--cache-adapters` (64) rank-8 adapters,
 *   10, 100 and 1,000 tenants with one adapter each (pushed straight into the bucket with
 *   `S3AdapterStore.put`), `--clients` (8) concurrent clients sending 16-token greedy completions for
 *   Zipf-distributed tenants (s = `--zipf`, 1.0; seeded). Configurations alternate with the single-adapter
 *   baseline (one tenant, one adapter): single, 10, single, 100, single, 1000, single; each N is compared
 *   with the mean of the single runs on either side. Reported: tokens/s and its ratio (goal ≥ 0.8 at 1,000),
 *   request latency, request hit rate and mean load time per miss (from `/metrics`), the latency of each
 *   tenant's first request (always a miss), and where a miss's time goes (the load path timed in this
 *   process against the same bucket: pointer and meta GETs, weight GETs and checksum, parse, prepare).
 *
 * The server uses one inference worker (`--workers 1`): with two, the engine keeps one tenant's rows on
 * at most all runners but one, which would halve the single-adapter baseline and flatter the ratios.
 *
 * Postgres: `--db-url`, else `WEIGHTLORA_BENCH_PG_URL`, else `WEIGHTLORA_TEST_PG_URL` (a role that may create
 * databases; the bench creates a fresh database and drops it). Without one the propagation phase is skipped
 * (it needs a shared database) and the tenants phase uses an embedded one. To get one here:
 * `pg_ctlcluster 15 main start` and
 * `WEIGHTLORA_TEST_PG_URL=postgres://weightlora:weightlora@127.0.0.1:5432/postgres` (the role `.ci/run`
 * creates).
 *
 * The machine is shared: compare only figures of one run. Writes `bench/results/replicas.json` and the
 * Markdown generated from it, `bench/results/replicas.md` (`--render` regenerates it from the JSON alone).
 *
 * Usage: `deno run -A bench/replicas_bench.ts [--quick] [--replicas=3] [--versions=30] [--tenants=10,100,1000]
 * [--seconds=20] [--clients=8] [--cache-adapters=64] [--zipf=1.0] [--seed=1] [--no-propagation]
 * [--no-tenants] [--tenants-store=s3|folder] [--db-url=URL] [--baseline=DIR] [--rounds=2] [--server-flags="…"]
 * [--out=DIR] [--dry-run] [--render]` (`--quick`: 2 replicas,
 * 4 versions, 10 and 100 tenants, 3 s per configuration, nothing written unless `--out` names a folder;
 * `--baseline`: a checkout of other code whose `serve` runs every tenants step too, alternating, as in
 * `abuse_bench.ts`; `--tenants-store folder`: the tenants phase reads adapters from a folder store instead of
 * the bucket, to tell the object store's share of the time from the engine's; `--rounds`: how many times each
 * tenant count runs, each time between single-adapter runs, with a ratio per round; `--server-flags`: extra
 * `deno run` flags of the `serve` processes, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadModelFolder } from "../src/io/model_folder.ts";
import type { LlamaConfig } from "../src/models/config.ts";
import { parseAdapterFiles, prepareAdapter } from "../src/serve/prepared_adapter.ts";
import type { AdapterStore } from "../src/store/adapter_store.ts";
import { FolderAdapterStore } from "../src/store/folder_adapter_store.ts";
import { S3AdapterStore } from "../src/store/s3_adapter_store.ts";
import { startS3Server } from "../tests/_util/s3_server.ts";
import { freshPostgresDatabase } from "../tests/jobs/_db.ts";
import { randomAdapterFiles, stories260kHf } from "../tests/serve/_fixtures.ts";
import type { SideBySideEntry } from "./_side_by_side.ts";
import { figure, markdownTable } from "./_table.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    replicas: { type: "string" },
    versions: { type: "string" },
    tenants: { type: "string" },
    seconds: { type: "string" },
    clients: { type: "string", default: "8" },
    "cache-adapters": { type: "string", default: "64" },
    zipf: { type: "string", default: "1.0" },
    seed: { type: "string", default: "1" },
    rounds: { type: "string" },
    "no-propagation": { type: "boolean", default: false },
    "no-tenants": { type: "boolean", default: false },
    "tenants-store": { type: "string", default: "s3" },
    "db-url": { type: "string" },
    baseline: { type: "string" },
    "server-flags": { type: "string" },
    out: { type: "string" },
    "dry-run": { type: "boolean", default: false },
    render: { type: "boolean", default: false },
  },
});

const HERE = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
const BUCKET = "replicas";
const PREFIX = "bench";
const ADAPTER = "a";
const RANK = 8;
const MAX_TOKENS = 16;
const PROMPT = "Once upon a time";

function intFlag(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new RangeError(`Invalid --${name}=${value}: expected an integer ≥ ${min}`);
  }
  return n;
}

/** Settings of one run. */
interface Settings {
  replicas: number;
  versions: number;
  tenants: number[];
  seconds: number;
  warmupSeconds: number;
  clients: number;
  cacheAdapters: number;
  zipf: number;
  seed: number;
  /** Times the tenant counts are run, each between single-adapter runs. */
  rounds: number;
}

function settings(): Settings {
  const quick = flags.quick;
  const tenants = (flags.tenants ?? (quick ? "10,100" : "10,100,1000")).split(",").map((t) => {
    const n = Number(t);
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(`Invalid --tenants entry "${t}": expected a count`);
    }
    return n;
  });
  const seconds = Number(flags.seconds ?? (quick ? 3 : 20));
  if (!(seconds > 0)) throw new RangeError(`Invalid --seconds=${flags.seconds}: expected a positive number`);
  const zipf = Number(flags.zipf);
  if (!(zipf >= 0)) throw new RangeError(`Invalid --zipf=${flags.zipf}: expected a number ≥ 0`);
  return {
    replicas: intFlag("replicas", flags.replicas, quick ? 2 : 3, 2),
    versions: intFlag("versions", flags.versions, quick ? 4 : 30),
    tenants,
    seconds,
    warmupSeconds: quick ? 1 : 3,
    clients: intFlag("clients", flags.clients, 8),
    cacheAdapters: intFlag("cache-adapters", flags["cache-adapters"], 64),
    zipf,
    seed: intFlag("seed", flags.seed, 1, 0),
    rounds: intFlag("rounds", flags.rounds, quick ? 1 : 2),
  };
}

// ---- statistics ----

/** Percentile of samples (nearest rank below). */
function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** Count, p50, p99 and max of samples. */
interface Summary {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

function summary(samples: readonly number[]): Summary {
  return {
    n: samples.length,
    p50: percentile(samples, 0.5),
    p99: percentile(samples, 0.99),
    max: samples.length ? Math.max(...samples) : NaN,
  };
}

/** A seeded PRNG in [0, 1) (mulberry32). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * A Zipf sampler over `n` items: item k (0-based) has probability ∝ 1 / (k + 1)^s.
 *
 * @param n Items.
 * @param s Exponent.
 * @param random Uniform source.
 * @returns A function drawing an index.
 */
export function zipfSampler(n: number, s: number, random: () => number): () => number {
  const cdf = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) cdf[k] = total += 1 / (k + 1) ** s;
  return () => {
    const u = random() * total;
    let lo = 0, hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

// ---- processes ----

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** What a `serve` process is started with. */
interface ServerSetup {
  model: string;
  db: string;
  keys: string;
  env: Record<string, string>;
  cacheMb?: number;
  workers: number;
  /** The checkout whose `src/cli/serve.ts` runs. */
  repo?: string;
  /** `--adapters`: a folder, else the bucket. */
  adapters?: string;
}

/** A `deno task serve --adapters s3://…` process. */
class Server {
  readonly url: string;
  #child: Deno.ChildProcess;
  #log: string[] = [];

  private constructor(child: Deno.ChildProcess, url: string) {
    this.#child = child;
    this.url = url;
  }

  static async start(setup: ServerSetup): Promise<Server> {
    const port = freePort();
    const args = [
      "run",
      "-A",
      "--unstable-raw-imports",
      ...(flags["server-flags"]?.split(" ").filter((f) => f) ?? []),
      `${setup.repo ?? HERE}/src/cli/serve.ts`,
      "--model",
      setup.model,
      "--db",
      setup.db,
      "--adapters",
      setup.adapters ?? `s3://${BUCKET}/${PREFIX}`,
      "--keys",
      setup.keys,
      "--port",
      String(port),
      "--workers",
      String(setup.workers),
      ...(setup.cacheMb === undefined ? [] : ["--cache-mb", String(setup.cacheMb)]),
    ];
    // a Postgres server lets this process leave jobs to others; an embedded database needs a trainer
    if (/^postgres(ql)?:/.test(setup.db)) args.push("--no-train");
    const child = new Deno.Command(Deno.execPath(), {
      args,
      env: setup.env,
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
      if (Date.now() > end) {
        await server.stop();
        throw new Error(`A serve process did not start within 120 s: ${server.#log.join("").slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async #drain(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      this.#log.push(decoder.decode(chunk));
      if (this.#log.length > 200) this.#log.splice(0, 100);
    }
  }

  /** The process id (for its threads' CPU time). */
  get pid(): number {
    return this.#child.pid;
  }

  /** The last lines it printed. */
  get log(): string {
    return this.#log.join("").slice(-2000);
  }

  /** Stops it gracefully (a `--cpu-prof` profile is written at exit), killed after 10 s. */
  async stop(): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch { /* gone */ }
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 10_000);
    await this.#child.status;
    clearTimeout(timer);
  }
}

/** A Postgres database for one run (dropped by `remove`), or an embedded one in a temporary folder. */
async function benchDatabase(
  adminUrl: string | undefined,
  root: string,
): Promise<{ location: string; remove: () => Promise<void> }> {
  if (!adminUrl) return { location: `${root}/db`, remove: () => Promise.resolve() };
  return await freshPostgresDatabase(adminUrl, "weightlora_replicas");
}

function keyOf(tenant: string): string {
  return `sk-${tenant}-0123456789`;
}

async function writeKeys(path: string, tenants: readonly string[]): Promise<void> {
  const file = {
    default_quotas: { adapters: 16, files: 16, bytes: 1 << 30, concurrent_jobs: 2, concurrent_rows: 64 },
    tenants: Object.fromEntries(tenants.map((t) => [t, { keys: [keyOf(t)] }])),
  };
  await Deno.writeTextFile(path, JSON.stringify(file));
}

/** One greedy completion: its text and completion tokens (throws on a non-200 answer). */
async function complete(
  url: string,
  tenant: string,
  model: string,
): Promise<{ text: string; tokens: number }> {
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${keyOf(tenant)}`, "content-type": "application/json" },
    body: JSON.stringify({ model, prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0 }),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  if (res.status !== 200) {
    throw new Error(
      `Completion of "${model}" for tenant "${tenant}" at ${url}: ${res.status} ${text.slice(0, 300)}`,
    );
  }
  const body = JSON.parse(text);
  return { text: body.choices[0].text, tokens: body.usage.completion_tokens };
}

// ---- phase 1: propagation ----

/** The propagation results. */
interface PropagationResult {
  replicas: number;
  versions: number;
  upload_ms: Summary;
  /** Upload answered → `GET /v1/adapters/{name}` names the new version, per other replica. */
  visible_ms: Summary;
  /** Upload answered → a completion's output is the new version's, per other replica. */
  served_ms: Summary;
  /** Versions whose greedy output equalled the previous version's (served time not measurable). */
  indistinct: number;
  /** Replicas that never served a version within the deadline. */
  timeouts: number;
  freshness_ms: number;
}

async function propagation(
  s: Settings,
  common: { model: string; db: string; env: Record<string, string>; root: string; config: LlamaConfig },
): Promise<PropagationResult> {
  const keys = `${common.root}/keys_propagation.json`;
  await writeKeys(keys, ["acme"]);
  const servers = await Promise.all(
    Array.from(
      { length: s.replicas },
      () => Server.start({ model: common.model, db: common.db, keys, env: common.env, workers: 1 }),
    ),
  );
  const auth = { authorization: `Bearer ${keyOf("acme")}` };
  const upload: number[] = [];
  const visible: number[] = [];
  const served: number[] = [];
  let indistinct = 0;
  let timeouts = 0;
  let previous: string | undefined;
  try {
    await Promise.all(servers.map((server) => complete(server.url, "acme", "stories260K")));
    const random = prng(s.seed);
    for (let v = 0; v < s.versions; v++) {
      const files = randomAdapterFiles(common.config, { seed: 10_000 + v, rank: RANK, scale: 0.5 });
      const uploader = servers[v % servers.length];
      const form = new FormData();
      form.set("name", ADAPTER);
      form.set(
        "adapter_config.json",
        new File([files.config as Uint8Array<ArrayBuffer>], "adapter_config.json"),
      );
      form.set(
        "adapter_model.safetensors",
        new File([files.weights as Uint8Array<ArrayBuffer>], "adapter_model.safetensors"),
      );
      const t0 = performance.now();
      const res = await fetch(`${uploader.url}/v1/adapters`, { method: "POST", headers: auth, body: form });
      const answer = await res.json();
      const acked = performance.now();
      if (res.status !== 200 && res.status !== 201) {
        throw new Error(`Upload of version ${v} to ${uploader.url}: ${res.status} ${JSON.stringify(answer)}`);
      }
      upload.push(acked - t0);
      const version = answer.version as string;
      const others = servers.filter((server) => server !== uploader);
      // the uploader serves its own upload at once: its output is what the others must serve
      let expectedText: string | undefined;
      const expectedPromise = complete(uploader.url, "acme", ADAPTER).then((r) => (expectedText = r.text));
      const deadline = acked + 10_000;
      const polls = others.map(async (server) => {
        let seen: number | undefined;
        const outputs: { at: number; text: string }[] = [];
        while (performance.now() < deadline) {
          const [meta, out] = await Promise.all([
            fetch(`${server.url}/v1/adapters/${ADAPTER}`, { headers: auth }).then((r) => r.json()),
            complete(server.url, "acme", ADAPTER).catch(() => undefined), // 404 before the first version
          ]);
          const at = performance.now() - acked;
          if (seen === undefined && meta.version === version) seen = at;
          if (out) outputs.push({ at, text: out.text });
          if (seen !== undefined && out !== undefined && out.text === expectedText) break;
          await new Promise((r) => setTimeout(r, 20));
        }
        return { seen, outputs };
      });
      const expected = await expectedPromise;
      const results = await Promise.all(polls);
      const distinct = expected !== previous;
      if (!distinct) indistinct++;
      for (const { seen, outputs } of results) {
        const hit = outputs.find((o) => o.text === expected);
        if (seen === undefined || !hit) {
          timeouts++;
          continue;
        }
        visible.push(seen);
        if (distinct) served.push(hit.at);
      }
      previous = expected;
      console.log(
        `version ${v + 1}/${s.versions} (${version}) via replica ${v % servers.length}: visible ${
          results.map((r) => figure(r.seen ?? NaN)).join(", ")
        } ms`,
      );
      await new Promise((r) => setTimeout(r, random() * 500)); // a random phase of the freshness window
    }
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
  }
  return {
    replicas: s.replicas,
    versions: s.versions,
    upload_ms: summary(upload),
    visible_ms: summary(visible),
    served_ms: summary(served),
    indistinct,
    timeouts,
    freshness_ms: 1000,
  };
}

// ---- phase 2: tenants and the prepared-adapter cache ----

/** Figures of one configuration of the tenants phase. */
interface TenantRun {
  label: string;
  /** The round of an N-tenant run, or of the N-tenant run a single-adapter run follows (0: the first). */
  round?: number;
  /** The code measured: `this` or `baseline` (`--baseline DIR`). */
  code: string;
  /** Tenants (1 = the single-adapter baseline). */
  tenants: number;
  seconds: number;
  requests: number;
  errors: number;
  tokens: number;
  tokens_per_s: number;
  latency_ms: Summary;
  /**
   * Latency of each tenant's first request on this replica (a cold miss: pointer, meta and file GETs,
   * checksum, parse, prepare), sent before the warm-up, `clients` at a time.
   */
  cold_request_ms: Summary;
  /** Tenants asked for at least once. */
  tenants_used: number;
  hits: number;
  misses: number;
  evictions: number;
  /** Requests whose adapter was in the cache: 1 − misses / requests (each request loads at most once). */
  hit_rate: number;
  /** Cache lookups that hit, from `/metrics` (a request looks its adapter up twice: resolve and start). */
  lookup_hit_rate: number;
  /** Mean load time per miss, from the server's `weightlora_adapter_load_seconds_total`. */
  mean_load_ms: number;
  /** Decode passes per second, mean rows and mean distinct adapters per decode pass (from `/metrics`). */
  decode_passes_per_s: number;
  rows_per_decode: number;
  adapters_per_decode: number;
  /** Prefill passes per second. */
  prefill_passes_per_s: number;
  /**
   * Mean time per decode pass, ms: the whole pass, inside `session.run`, and building the adapter feeds
   * (variant, packing, index), from `/metrics`.
   */
  decode_ms: number;
  decode_run_ms: number;
  decode_feed_ms: number;
  /** Share of the wall time the inference worker spent in forward passes (decode and prefill). */
  worker_busy: number;
  /**
   * CPU seconds per wall second: the server's main thread, its other threads (the inference worker's
   * among them), and this bench process (clients and the S3 server), from /proc.
   */
  cpu: { server_main: number; server_other: number; bench: number };
  /**
   * Where a request's time goes, ms: its mean latency at the client, in the server (the completions route's
   * duration from `/metrics`), resolving its adapter (store lookup, load on a miss), its row queued in the
   * engine (before a runner; the adapter's load included when it comes from the request), and in the
   * inference worker (mean rows in the batch × busy share ÷ requests/s, an estimate: from its prefill to its
   * last token).
   */
  request_ms: { client: number; server: number; resolve: number; queue: number; worker: number };
}

/** A `/metrics` scrape of the adapter cache's counters. */
async function cacheCounters(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const read = (name: string) =>
    Number(
      new RegExp(`^${name.replaceAll("{", "\\{").replaceAll("}", "\\}")} (\\S+)$`, "m").exec(text)?.[1] ??
        NaN,
    );
  return {
    decodePasses: read('weightlora_batch_rows_count{kind="decode"}'),
    decodeRows: read('weightlora_batch_rows_sum{kind="decode"}'),
    decodeAdapters: read('weightlora_batch_adapters_sum{kind="decode"}'),
    decodeSeconds: read('weightlora_forward_pass_seconds_total{kind="decode",part="all"}'),
    decodeRunSeconds: read('weightlora_forward_pass_seconds_total{kind="decode",part="run"}'),
    decodeFeedSeconds: read('weightlora_forward_pass_seconds_total{kind="decode",part="feeds"}'),
    prefillSeconds: read('weightlora_forward_pass_seconds_total{kind="prefill",part="all"}'),
    serverSeconds: read(
      'weightlora_http_request_duration_seconds_sum{route="/v1/completions",method="POST"}',
    ),
    resolves: read("weightlora_adapter_resolves_total"),
    resolveSeconds: read("weightlora_adapter_resolve_seconds_total"),
    queuedRows: read("weightlora_queued_rows_total"),
    queueSeconds: read("weightlora_row_queue_seconds_total"),
    serverRequests: read(
      'weightlora_http_request_duration_seconds_count{route="/v1/completions",method="POST"}',
    ),
    prefillPasses: read('weightlora_batch_rows_count{kind="prefill"}'),
    hits: read("weightlora_adapter_cache_hits_total"),
    misses: read("weightlora_adapter_cache_misses_total"),
    evictions: read("weightlora_adapter_cache_evictions_total"),
    loadSeconds: read("weightlora_adapter_load_seconds_total"),
  };
}

/** Tenants each server (by URL) has served at least once. */
const TOUCHED = new Map<string, Set<string>>();

/** CPU seconds (user + system) of a process's main thread and of its other threads, from /proc. */
function threadCpuSeconds(pid: number): { main: number; other: number } {
  const tick = 100; // USER_HZ on Linux
  let main = 0, other = 0;
  try {
    for (const entry of Deno.readDirSync(`/proc/${pid}/task`)) {
      try {
        const stat = Deno.readTextFileSync(`/proc/${pid}/task/${entry.name}/stat`);
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        const seconds = (Number(fields[11]) + Number(fields[12])) / tick; // utime, stime
        if (Number(entry.name) === pid) main += seconds;
        else other += seconds;
      } catch { /* a thread that ended */ }
    }
  } catch {
    return { main: NaN, other: NaN }; // no /proc
  }
  return { main, other };
}

async function tenantRun(
  url: string,
  s: Settings,
  run: { label: string; code: string; tenants: string[]; seed: number; pid: number },
): Promise<TenantRun> {
  const draw = zipfSampler(run.tenants.length, s.zipf, prng(run.seed));
  const used = new Set<string>();
  let measuring = false;
  const latencies: number[] = [];
  let tokens = 0, requests = 0, errors = 0;
  let lastError = "";
  // every tenant's first request on this replica, before the warm-up: the measured window is the steady
  // state of a replica that has served them all before (a 20 s window would otherwise be mostly first loads)
  const touched = TOUCHED.get(url) ?? new Set<string>();
  TOUCHED.set(url, touched);
  const cold: number[] = [];
  const fresh = run.tenants.filter((t) => !touched.has(t));
  let nextCold = 0;
  await Promise.all(Array.from({ length: s.clients }, async () => {
    while (nextCold < fresh.length) {
      const tenant = fresh[nextCold++];
      touched.add(tenant);
      const t0 = performance.now();
      try {
        await complete(url, tenant, ADAPTER);
        cold.push(performance.now() - t0);
      } catch (e) {
        errors++;
        lastError = (e as Error).message;
      }
    }
  }));
  const client = async (until: number) => {
    while (performance.now() < until) {
      const tenant = run.tenants[draw()];
      const t0 = performance.now();
      try {
        const out = await complete(url, tenant, ADAPTER);
        const ms = performance.now() - t0;
        if (!measuring) continue;
        used.add(tenant);
        requests++;
        tokens += out.tokens;
        latencies.push(ms);
      } catch (e) {
        errors++;
        lastError = (e as Error).message;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  // warm-up (not counted): graphs built, the hottest adapters loaded
  const warmEnd = performance.now() + s.warmupSeconds * 1000;
  await Promise.all(Array.from({ length: s.clients }, () => client(warmEnd)));
  const before = await cacheCounters(url);
  const cpuBefore = { server: threadCpuSeconds(run.pid), bench: threadCpuSeconds(Deno.pid) };
  measuring = true;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: s.clients }, () => client(t0 + s.seconds * 1000)));
  const seconds = (performance.now() - t0) / 1000;
  const cpuAfter = { server: threadCpuSeconds(run.pid), bench: threadCpuSeconds(Deno.pid) };
  const after = await cacheCounters(url);
  const decodePasses = after.decodePasses - before.decodePasses;
  if (errors > 0) console.warn(`${run.label}: ${errors} failed requests, the last: ${lastError}`);
  const hits = after.hits - before.hits, misses = after.misses - before.misses;
  const result: TenantRun = {
    label: run.label,
    code: run.code,
    tenants: run.tenants.length,
    seconds,
    requests,
    errors,
    tokens,
    tokens_per_s: tokens / seconds,
    latency_ms: summary(latencies),
    cold_request_ms: summary(cold),
    tenants_used: used.size,
    hits,
    misses,
    evictions: after.evictions - before.evictions,
    hit_rate: Math.max(0, 1 - misses / requests),
    lookup_hit_rate: hits / (hits + misses),
    mean_load_ms: misses > 0 ? ((after.loadSeconds - before.loadSeconds) / misses) * 1000 : NaN,
    decode_passes_per_s: (after.decodePasses - before.decodePasses) / seconds,
    rows_per_decode: (after.decodeRows - before.decodeRows) / (after.decodePasses - before.decodePasses),
    adapters_per_decode: (after.decodeAdapters - before.decodeAdapters) /
      (after.decodePasses - before.decodePasses),
    prefill_passes_per_s: (after.prefillPasses - before.prefillPasses) / seconds,
    decode_ms: ((after.decodeSeconds - before.decodeSeconds) / decodePasses) * 1000,
    decode_run_ms: ((after.decodeRunSeconds - before.decodeRunSeconds) / decodePasses) * 1000,
    decode_feed_ms: ((after.decodeFeedSeconds - before.decodeFeedSeconds) / decodePasses) * 1000,
    worker_busy: (after.decodeSeconds - before.decodeSeconds + after.prefillSeconds - before.prefillSeconds) /
      seconds,
    request_ms: {
      client: latencies.reduce((a, x) => a + x, 0) / latencies.length,
      server:
        ((after.serverSeconds - before.serverSeconds) / (after.serverRequests - before.serverRequests)) *
        1000,
      resolve: ((after.resolveSeconds - before.resolveSeconds) / (after.resolves - before.resolves)) * 1000,
      queue: ((after.queueSeconds - before.queueSeconds) / (after.queuedRows - before.queuedRows)) * 1000,
      worker: ((((after.decodeRows - before.decodeRows) / decodePasses) *
        (after.decodeSeconds - before.decodeSeconds + after.prefillSeconds - before.prefillSeconds) /
        seconds) /
        (requests / seconds)) * 1000,
    },
    cpu: {
      server_main: (cpuAfter.server.main - cpuBefore.server.main) / seconds,
      server_other: (cpuAfter.server.other - cpuBefore.server.other) / seconds,
      bench: (cpuAfter.bench.main + cpuAfter.bench.other - cpuBefore.bench.main - cpuBefore.bench.other) /
        seconds,
    },
  };
  console.log(
    `${run.label} (${run.code}): ${figure(result.tokens_per_s)} tokens/s, hit rate ${
      figure(result.hit_rate)
    }, ` +
      `mean load ${figure(result.mean_load_ms)} ms, p50/p99 ${figure(result.latency_ms.p50)}/${
        figure(result.latency_ms.p99)
      } ms, decode ${figure(result.decode_passes_per_s)}/s × ${figure(result.rows_per_decode)} rows, ` +
      `${figure(result.decode_ms)} ms/pass (run ${figure(result.decode_run_ms)}, feeds ${
        figure(result.decode_feed_ms)
      }), worker busy ${figure(result.worker_busy)}, CPU main/other/bench ${figure(result.cpu.server_main)}/${
        figure(result.cpu.server_other)
      }/${figure(result.cpu.bench)}, request ms client/server/resolve/queue/worker ${
        [
          result.request_ms.client,
          result.request_ms.server,
          result.request_ms.resolve,
          result.request_ms.queue,
          result.request_ms.worker,
        ].map(figure).join("/")
      }`,
  );
  return result;
}

/** Where a cache miss's time goes, timed in this process against the same bucket (cold store). */
interface LoadPath {
  adapters: number;
  /** `store.get`: the pointer GET and the version's meta.json GET. */
  get_ms: Summary;
  /** `store.read`: both files' GETs and the weights' SHA-256. */
  read_ms: Summary;
  /** `parseAdapterFiles`: JSON, safetensors, validation against the model. */
  parse_ms: Summary;
  /** `prepareAdapter`: transposed, scaled tensors. */
  prepare_ms: Summary;
  /** `store.get` of a known pointer after its freshness window: one conditional GET (304). */
  revalidate_ms: Summary;
  prepared_bytes: number;
}

async function loadPath(
  tenants: readonly string[],
  store: () => AdapterStore,
  config: LlamaConfig,
): Promise<LoadPath> {
  const cold = store();
  const get: number[] = [], read: number[] = [], parse: number[] = [], prepare: number[] = [];
  const revalidate: number[] = [];
  let bytes = 0;
  for (const tenant of tenants) {
    let t = performance.now();
    const record = (await cold.get(tenant, ADAPTER))!;
    get.push(performance.now() - t);
    t = performance.now();
    const files = await cold.read(record);
    read.push(performance.now() - t);
    t = performance.now();
    const peft = parseAdapterFiles(files, { model: config, source: ADAPTER });
    parse.push(performance.now() - t);
    t = performance.now();
    bytes = prepareAdapter(peft, { key: tenant, shared: true }).bytes;
    prepare.push(performance.now() - t);
  }
  const warm = store();
  for (const tenant of tenants) await warm.get(tenant, ADAPTER);
  await new Promise((r) => setTimeout(r, 30));
  for (const tenant of tenants) {
    const t = performance.now();
    await warm.get(tenant, ADAPTER);
    revalidate.push(performance.now() - t);
  }
  return {
    adapters: tenants.length,
    get_ms: summary(get),
    read_ms: summary(read),
    parse_ms: summary(parse),
    prepare_ms: summary(prepare),
    revalidate_ms: summary(revalidate),
    prepared_bytes: bytes,
  };
}

/** The tenants phase's results. */
interface TenantsResult {
  /** Where the replica reads adapters: the bucket, or a folder (`--tenants-store folder`). */
  store: string;
  cache_adapters: number;
  cache_mb: number;
  prepared_bytes: number;
  clients: number;
  max_tokens: number;
  zipf: number;
  push_seconds: number;
  runs: TenantRun[];
  ratios: {
    code: string;
    /** The round (each N runs once per round, between single-adapter runs). */
    round: number;
    tenants: number;
    tokens_per_s: number;
    single_tokens_per_s: number;
    ratio: number;
  }[];
  load_path: LoadPath;
}

async function tenantsPhase(
  s: Settings,
  common: { model: string; db: string; env: Record<string, string>; root: string; config: LlamaConfig },
  s3: { endpoint: string; accessKeyId: string; secretAccessKey: string },
): Promise<TenantsResult> {
  const store = () =>
    new S3AdapterStore({
      bucket: BUCKET,
      prefix: PREFIX,
      endpoint: s3.endpoint,
      accessKeyId: s3.accessKeyId,
      secretAccessKey: s3.secretAccessKey,
      cacheBytes: 0,
      freshnessMs: 0,
    });
  const groups = s.tenants.map((n) => Array.from({ length: n }, (_, i) => `n${n}-t${i}`));
  const all = ["single", ...groups.flat()];
  // push every tenant's adapter straight into the bucket
  const pushStarted = performance.now();
  // `--tenants-store folder`: the same adapters in a folder store (no object store on the request path)
  const folder = flags["tenants-store"] === "folder" ? `${common.root}/adapters` : undefined;
  if (folder) await Deno.mkdir(folder, { recursive: true });
  const source = (): AdapterStore => (folder ? new FolderAdapterStore(folder) : store());
  const writer = source();
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < all.length) {
      const i = next++;
      await writer.put(
        all[i],
        ADAPTER,
        randomAdapterFiles(common.config, { seed: 1 + i, rank: RANK, scale: 0.05 }),
      );
    }
  }));
  const pushSeconds = (performance.now() - pushStarted) / 1000;
  console.log(`pushed ${all.length} adapters in ${figure(pushSeconds)} s`);
  const path = await loadPath(groups.at(-1)!.slice(0, 30), source, common.config);
  // the cache holds `cacheAdapters` prepared adapters (and a little slack, never a whole one more)
  const cacheMb = ((s.cacheAdapters + 0.5) * path.prepared_bytes) / 2 ** 20;
  const keys = `${common.root}/keys_tenants.json`;
  await writeKeys(keys, all);
  const codes: [string, string][] = [["this", HERE]];
  if (flags.baseline) codes.push(["baseline", flags.baseline.replace(/\/+$/, "")]);
  const servers = new Map<string, Server>();
  const runs: TenantRun[] = [];
  try {
    for (const [code, repo] of codes) {
      servers.set(
        code,
        await Server.start({
          model: common.model,
          db: common.db,
          keys,
          env: common.env,
          workers: 1,
          cacheMb,
          repo,
          adapters: folder,
        }),
      );
    }
    // single, 10, single, 100, …, single, then again for each round; with a baseline each step runs on both
    // codes, in alternating order
    const steps = [{ label: "single #1", tenants: ["single"], seed: 0, round: 0 }];
    for (let round = 1; round <= s.rounds; round++) {
      for (const [g, tenants] of groups.entries()) {
        const label = `${tenants.length} tenants${s.rounds > 1 ? ` (round ${round})` : ""}`;
        steps.push({ label, tenants, seed: s.seed + g + (round - 1) * groups.length, round });
        steps.push({
          label: `single #${Math.ceil(steps.length / 2) + 1}`,
          tenants: ["single"],
          seed: 0,
          round,
        });
      }
    }
    for (const [i, step] of steps.entries()) {
      const order = i % 2 === 0 ? codes : [...codes].reverse();
      for (const [code] of order) {
        const server = servers.get(code)!;
        runs.push({
          ...await tenantRun(server.url, s, { ...step, code, pid: server.pid }),
          round: step.round,
        });
      }
    }
  } catch (e) {
    for (const server of servers.values()) console.error(server.log);
    throw e;
  } finally {
    await Promise.all([...servers.values()].map((server) => server.stop()));
  }
  // each N-tenant run against the single-adapter runs on either side
  const ratios = codes.flatMap(([code]) => {
    const mine = runs.filter((r) => r.code === code);
    return mine.flatMap((run, i) => {
      if (i % 2 === 0) return [];
      const single = (mine[i - 1].tokens_per_s + mine[i + 1].tokens_per_s) / 2;
      return [{
        code,
        round: run.round ?? 1,
        tenants: run.tenants,
        tokens_per_s: run.tokens_per_s,
        single_tokens_per_s: single,
        ratio: run.tokens_per_s / single,
      }];
    });
  });
  return {
    store: folder ? "folder" : "s3",
    cache_adapters: s.cacheAdapters,
    cache_mb: cacheMb,
    prepared_bytes: path.prepared_bytes,
    clients: s.clients,
    max_tokens: MAX_TOKENS,
    zipf: s.zipf,
    push_seconds: pushSeconds,
    runs,
    ratios,
    load_path: path,
  };
}

// ---- results ----

/** The headline figures for `deno task bench`'s side-by-side table. */
function sideBySide(results: Record<string, unknown>): SideBySideEntry[] {
  // deno-lint-ignore no-explicit-any
  const r = results as any;
  const entries: SideBySideEntry[] = [];
  if (r.propagation) {
    entries.push({
      area: "replicas",
      metric: `new adapter served by every replica, p99 (${r.propagation.replicas} replicas)`,
      value: r.propagation.served_ms.p99,
      baseline: "the goal",
      baselineValue: 2000,
      unit: "ms",
      higherIsBetter: false,
    });
  }
  // deno-lint-ignore no-explicit-any
  const last = r.tenants?.ratios?.filter((x: any) => (x.code ?? "this") === "this").at(-1);
  if (last) {
    entries.push({
      area: "replicas",
      metric: `${last.tenants} tenants, cache of ${r.tenants.cache_adapters}, tokens/s`,
      value: last.tokens_per_s,
      baseline: "one adapter, same run",
      baselineValue: last.single_tokens_per_s,
      unit: "tokens/s",
      higherIsBetter: true,
    });
  }
  return entries;
}

/**
 * The Markdown of the results.
 *
 * @param results The JSON written by a run.
 * @returns The Markdown (no trailing newline).
 */
export function renderMarkdown(results: Record<string, unknown>): string {
  // deno-lint-ignore no-explicit-any
  const r = results as any;
  const lines = [
    "# Replicas at scale (generated from replicas.json by bench/replicas_bench.ts)",
    "",
    `Run ${r.date} on ${r.machine}. Loopback only, stories260K, adapters in one S3-compatible bucket ` +
    `(s3rver behind a SigV4 front), ${r.database}.`,
    "",
  ];
  if (r.propagation) {
    const p = r.propagation;
    const row = (name: string, x: Summary) => [name, x.n, x.p50, x.p99, x.max];
    lines.push(
      `## Propagation: ${p.replicas} replicas, ${p.versions} new versions of one adapter`,
      "",
      "Each version is uploaded to one replica (`POST /v1/adapters`, in turn); every other replica is polled " +
        "with a greedy completion of the adapter and `GET /v1/adapters/{name}`. Times run from the upload's " +
        `answer. Pointer freshness window: ${p.freshness_ms} ms. Goal: served everywhere within 2 s.`,
      "",
      markdownTable(["figure", "samples", "p50 ms", "p99 ms", "max ms"], [
        row("upload (POST /v1/adapters)", p.upload_ms),
        row("new version named by GET /v1/adapters/{name}", p.visible_ms),
        row("new version served (completion output)", p.served_ms),
      ]),
      "",
      `Versions whose output equalled the previous one (not timed): ${p.indistinct}; replicas that missed the ` +
        `10 s deadline: ${p.timeouts}.`,
      "",
    );
  }
  if (r.tenants) {
    const t = r.tenants;
    const coded = t.runs.some((x: TenantRun) => x.code === "baseline");
    const rounds = t.ratios.some((x: TenantsResult["ratios"][number]) => (x.round ?? 1) > 1);
    lines.push(
      `## Tenants and the prepared-adapter cache (one replica, cache of ${t.cache_adapters} adapters${
        t.store === "folder" ? ", adapters in a folder store" : ""
      })`,
      "",
      `Rank-${RANK} random adapters on q/v/down (${t.prepared_bytes} bytes prepared each; --cache-mb ` +
        `${figure(t.cache_mb)}), one per tenant, pushed with ${
          t.store === "folder" ? "FolderAdapterStore" : "S3AdapterStore"
        }.put (${
          figure(t.push_seconds)
        } s for all). ${t.clients} clients send ${t.max_tokens}-token greedy completions for Zipf ` +
        `(s = ${t.zipf}, seeded) tenants, after ${
          r.settings?.warmupSeconds ?? 3
        } s of warm-up; configurations ` +
        "alternate with the single-adapter baseline" +
        (coded ? " and, step by step, the code of this checkout with the baseline code (`--baseline`)" : "") +
        ". Misses and mean load per miss from `/metrics`; request hit rate = 1 − misses / requests; cold " +
        "request = each tenant's first on the replica, sent before the warm-up (so the window measures a replica " +
        "that has served every tenant before). Passes, rows and distinct adapters per decode pass from " +
        "`/metrics`. One inference worker.",
      "",
      markdownTable(
        [
          "configuration",
          ...(coded ? ["code"] : []),
          "s",
          "requests",
          "tokens/s",
          "p50 ms",
          "p99 ms",
          "cold request p50 ms",
          "cold request p99 ms",
          "tenants used",
          "request hit rate",
          "misses",
          "mean load ms",
          "decode passes/s",
          "rows/pass",
          "adapters/pass",
        ],
        t.runs.map((x: TenantRun) => [
          x.label,
          ...(coded ? [x.code] : []),
          x.seconds,
          x.requests,
          x.tokens_per_s,
          x.latency_ms.p50,
          x.latency_ms.p99,
          x.cold_request_ms.p50,
          x.cold_request_ms.p99,
          x.tenants_used,
          x.hit_rate,
          x.misses,
          x.mean_load_ms,
          x.decode_passes_per_s,
          x.rows_per_decode,
          x.adapters_per_decode,
        ]),
      ),
      "",
      "Where each run's time goes: mean time per decode pass (from `/metrics`: the whole pass, inside " +
        "`session.run`, building the adapter feeds, and the rest: cache surgery, sampling, events), the share " +
        "of the wall time the inference worker spent in passes, and CPU seconds per second of the server's " +
        "main thread (HTTP, adapter resolution and loading), its other threads (the inference worker, " +
        "onnxruntime, the runtime) and the bench process (8 clients and the S3 server), from /proc; and a " +
        "request's mean time at the client, in the server (the completions route, from `/metrics`), resolving " +
        "its adapter, its row queued in the engine, and in the inference worker (estimated: rows per pass × " +
        "busy share ÷ requests per second):",
      "",
      markdownTable(
        [
          "configuration",
          ...(coded ? ["code"] : []),
          "decode ms/pass",
          "in session.run",
          "feeds",
          "rest",
          "worker busy",
          "CPU server main",
          "CPU server other",
          "CPU bench",
          "request ms: client",
          "server",
          "resolve",
          "queued",
          "worker (est.)",
        ],
        t.runs.map((x: TenantRun) => [
          x.label,
          ...(coded ? [x.code] : []),
          x.decode_ms ?? NaN,
          x.decode_run_ms ?? NaN,
          x.decode_feed_ms ?? NaN,
          (x.decode_ms ?? NaN) - (x.decode_run_ms ?? NaN) - (x.decode_feed_ms ?? NaN),
          x.worker_busy ?? NaN,
          x.cpu?.server_main ?? NaN,
          x.cpu?.server_other ?? NaN,
          x.cpu?.bench ?? NaN,
          x.request_ms?.client ?? NaN,
          x.request_ms?.server ?? NaN,
          x.request_ms?.resolve ?? NaN,
          x.request_ms?.queue ?? NaN,
          x.request_ms?.worker ?? NaN,
        ]),
      ),
      "",
      markdownTable(
        [
          "tenants",
          ...(rounds ? ["round"] : []),
          ...(coded ? ["code"] : []),
          "tokens/s",
          "single-adapter tokens/s (runs either side)",
          "ratio",
          "goal",
        ],
        t.ratios.map((x: TenantsResult["ratios"][number]) => [
          x.tenants,
          ...(rounds ? [x.round] : []),
          ...(coded ? [x.code] : []),
          x.tokens_per_s,
          x.single_tokens_per_s,
          `${x.ratio.toFixed(2)}×`,
          x.tenants >= 1000 ? (x.ratio >= 0.8 ? "≥ 0.8× met" : "≥ 0.8× missed") : "",
        ]),
      ),
      "",
      `Where a miss's time goes (${t.load_path.adapters} cold adapters of the largest set, timed in the bench ` +
        `process against the same ${t.store === "folder" ? "folder" : "bucket"}):`,
      "",
      markdownTable(["step", "p50 ms", "p99 ms", "max ms"], [
        ["store.get (pointer + meta.json GETs)", ...pick(t.load_path.get_ms)],
        ["store.read (2 GETs + SHA-256)", ...pick(t.load_path.read_ms)],
        ["parseAdapterFiles", ...pick(t.load_path.parse_ms)],
        ["prepareAdapter", ...pick(t.load_path.prepare_ms)],
        ["store.get after the freshness window (304)", ...pick(t.load_path.revalidate_ms)],
      ]),
      "",
    );
  }
  return lines.join("\n");
}

function pick(x: Summary): number[] {
  return [x.p50, x.p99, x.max];
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

const DOC = `${HERE}/docs/replicas.md`;

/** Replaces the generated region of `docs/replicas.md` with the tables (the Markdown less its title). */
async function writeDocTable(md: string): Promise<void> {
  const doc = await Deno.readTextFile(DOC);
  const begin = "<!-- bench:replicas -->", end = "<!-- /bench:replicas -->";
  const i = doc.indexOf(begin), j = doc.indexOf(end);
  if (i < 0 || j < i) throw new Error(`${DOC} has no ${begin} … ${end} region`);
  const body = md.split("\n").slice(1).join("\n").trim().replaceAll(/^## /gm, "### ");
  await writeAtomic(DOC, doc.slice(0, i + begin.length) + "\n\n" + body + "\n\n" + doc.slice(j));
  // the docs are formatted (`deno task check` runs `deno fmt --check`): wrap the prose as the formatter does
  const fmt = await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", DOC], stderr: "piped" }).output();
  if (!fmt.success) throw new Error(`deno fmt ${DOC} failed: ${new TextDecoder().decode(fmt.stderr)}`);
}

async function main(): Promise<void> {
  const outDir = (flags.out ?? (flags.quick ? undefined : `${HERE}/bench/results`))?.replace(/\/+$/, "");
  const jsonFile = `${outDir ?? `${HERE}/bench/results`}/replicas.json`;
  const mdFile = jsonFile.replace(/\.json$/, ".md");
  const inResults = (outDir ?? `${HERE}/bench/results`) === `${HERE}/bench/results`;
  if (flags.render) {
    // NaN (no sample) is written as null
    const md = renderMarkdown(
      JSON.parse(await Deno.readTextFile(jsonFile), (_k, v) => (v === null ? NaN : v)),
    );
    await writeAtomic(mdFile, md + "\n");
    if (inResults) await writeDocTable(md);
    return;
  }
  const s = settings();
  const adminUrl = flags["db-url"] ?? Deno.env.get("WEIGHTLORA_BENCH_PG_URL") ??
    Deno.env.get("WEIGHTLORA_TEST_PG_URL");
  const hint = "set WEIGHTLORA_BENCH_PG_URL or WEIGHTLORA_TEST_PG_URL (e.g. `pg_ctlcluster 15 main start`, " +
    "then postgres://weightlora:weightlora@127.0.0.1:5432/postgres, the role .ci/run creates)";
  if (!adminUrl && !flags["no-propagation"]) {
    console.warn(`No Postgres server: the propagation phase is skipped (${hint})`);
  }
  const model = await stories260kHf();
  const { config } = await loadModelFolder(model);
  const root = await Deno.makeTempDir({ prefix: "replicas_bench_" });
  const s3 = await startS3Server({ buckets: [BUCKET] });
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: `${Deno.build.os} ${Deno.build.arch}, ${navigator.hardwareConcurrency} cores (shared)`,
    settings: s,
  };
  try {
    const env = { ...s3.env, NO_COLOR: "1" };
    if (!flags["no-propagation"] && adminUrl) {
      const db = await benchDatabase(adminUrl, root);
      try {
        results.database = "files and jobs in one Postgres server";
        results.propagation = await propagation(s, { model, db: db.location, env, root, config });
      } finally {
        await db.remove();
      }
    }
    if (!flags["no-tenants"]) {
      const db = await benchDatabase(adminUrl, root);
      try {
        results.database ??= adminUrl ? "files and jobs in one Postgres server" : "an embedded database";
        results.tenants = await tenantsPhase(s, { model, db: db.location, env, root, config }, s3);
      } finally {
        await db.remove();
      }
    }
  } finally {
    await s3.stop();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
  results.sideBySide = sideBySide(results);
  const md = renderMarkdown(results);
  console.log(md);
  if (!flags["dry-run"] && outDir) {
    await Deno.mkdir(outDir, { recursive: true });
    await writeAtomic(jsonFile, JSON.stringify(results, null, 2) + "\n");
    await writeAtomic(mdFile, md + "\n");
    if (inResults) await writeDocTable(md);
  }
}

if (import.meta.main) await main();
