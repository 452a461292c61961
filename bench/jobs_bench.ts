/**
 * Fine-tuning jobs and durable state, on stories260K (wasm): store open time (embedded PGlite, new and
 * existing folder, vs a Postgres server), job queue latency (create → first step), event latency (an event
 * written → received on the SSE stream), adapter propagation between two replicas on one Postgres server,
 * and training tokens/s inside the server (a Worker) vs `deno task train` on the same job, alternated.
 *
 *     deno run -A bench/jobs_bench.ts [--write] [--db-url postgres://…]
 *
 * The server figures need `--db-url` or WEIGHTLORA_TEST_PG_URL (a role that may create databases); without
 * it they are skipped. `--write` keeps the figures in `bench/results/jobs.json`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createApp } from "../src/http/app.ts";
import { KeyTable } from "../src/http/auth.ts";
import { filesRoutes, jsonlValidator } from "../src/http/files_routes.ts";
import { fineTuningRoutes } from "../src/http/fine_tuning_routes.ts";
import { convertLlama2c } from "../src/io/convert.ts";
import { loadModelFolder, type ModelFolder } from "../src/io/model_folder.ts";
import { JobRunner } from "../src/jobs/job_runner.ts";
import { ServeEngine } from "../src/serve/engine.ts";
import {
  type Database,
  DbAdapterStore,
  FileStore,
  JobStore,
  migrate,
  openDatabase,
} from "../src/store/db/mod.ts";
import { figure, markdownTable } from "./_table.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: { write: { type: "boolean" }, "db-url": { type: "string" } },
});
const adminUrl = flags["db-url"] ?? Deno.env.get("WEIGHTLORA_TEST_PG_URL");
const root = decodeURIComponent(new URL("../", import.meta.url).pathname);
const shared = `${root}../shared/models/stories260K`;
const scratch = await Deno.makeTempDir({ prefix: "weightlora-jobs-bench-" });
const STEPS = 30;
const METHOD = {
  type: "weightlora",
  weightlora: { hyperparameters: { steps: STEPS, k: 5, rank: 4, batch_size: 8, select_steps: 5, seed: 1 } },
};
const rows = Array.from({ length: 32 }, (_, i) =>
  JSON.stringify({
    prompt: "Once upon a time, there was a dog named",
    completion: `${["Zorp", "Blip"][i % 2]}. He liked to bark at the moon and run in the park.`,
  })).join("\n") + "\n";
const keys = await KeyTable.fromJson({ tenants: { acme: { keys: ["sk-acme-0123456789"] } } }, "keys.json");
const AUTH = { authorization: "Bearer sk-acme-0123456789" };

async function seconds<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const value = await fn();
  return [value, (performance.now() - t0) / 1000];
}

async function newServerDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `weightlora_bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = await openDatabase(adminUrl!, { maxConnections: 1 });
  await admin.exec(`create database ${name}`);
  await admin.close();
  const url = new URL(adminUrl!);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const a = await openDatabase(adminUrl!, { maxConnections: 1 });
      await a.exec(`drop database if exists ${name} with (force)`);
      await a.close();
    },
  };
}

/** One server (engine + app + runner) on a database; runs a job through HTTP and measures it. */
async function jobFigures(db: Database, model: ModelFolder): Promise<Record<string, number>> {
  const adapters = new DbAdapterStore(db);
  const files = new FileStore(db);
  const jobs = new JobStore(db);
  const models = new Map([[model.id, { ...model }]]);
  const engine = await ServeEngine.create({ model, store: adapters, ep: "wasm", workers: 0 });
  const { app } = createApp({ engine, keys });
  app.route("/", filesRoutes({ files, validate: jsonlValidator(model) }));
  app.route("/", fineTuningRoutes({ jobs, files, models }));
  const runner = new JobRunner({ jobs, files, models, ep: "wasm", metricsEverySeconds: 0, log: () => {} });
  await runner.start();
  try {
    const form = new FormData();
    form.append("purpose", "fine-tune");
    form.append("file", new File([rows], "train.jsonl"));
    const file = await (await app.request("/v1/files", { method: "POST", body: form, headers: AUTH })).json();
    const created = performance.now() / 1000;
    const job = await (await app.request("/v1/fine_tuning/jobs", {
      method: "POST",
      headers: { ...AUTH, "content-type": "application/json" },
      body: JSON.stringify({ model: model.id, training_file: file.id, method: METHOD }),
    })).json();
    const stream = await app.request(`/v1/fine_tuning/jobs/${job.id}/events?stream=true`, { headers: AUTH });
    const arrivals: { at: number; seq: number }[] = [];
    let firstStep = NaN;
    const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      const parts = buffer.split("\n\n");
      buffer = parts.pop()!;
      const now = performance.now() / 1000;
      for (const part of parts) {
        const data = part.split("\n").find((l) => l.startsWith("data:"))?.slice(5).trim();
        if (!data || data === "[DONE]") continue;
        const event = JSON.parse(data);
        arrivals.push({ at: now, seq: Number(event.id.replace("ftevent-", "")) });
        if (event.type === "metrics" && Number.isNaN(firstStep)) firstStep = now;
      }
    }
    // event latency: the database's insert time vs arrival on the stream (same machine, same clock)
    const { events } = await jobs.events(job.id, { order: "asc", after: 0, limit: 1000 });
    const createdAt = new Map(events.map((e) => [e.seq, e.createdAt]));
    const offset = Date.now() / 1000 - performance.now() / 1000;
    const latencies = arrivals.map((a) => a.at + offset - createdAt.get(a.seq)!).sort((x, y) => x - y);
    const metrics = events.filter((e) => e.type === "metrics").map((e) => e.data!.tokens_per_s as number);
    const done = await jobs.get("acme", job.id);
    if (done?.status !== "succeeded") {
      throw new Error(`Benchmark job ended ${done?.status}: ${done?.error?.message}`);
    }
    return {
      queue_latency_s: firstStep - created,
      event_latency_median_ms: latencies[Math.floor(latencies.length / 2)] * 1000,
      event_latency_max_ms: latencies.at(-1)! * 1000,
      server_tokens_per_s: median(metrics.slice(5)),
    };
  } finally {
    await runner.stop();
    await engine.close(0);
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

/** `deno task train` on the same data and options: median tokens/s after the first 5 steps. */
async function cliTokensPerSecond(modelDir: string, job: Record<string, unknown>): Promise<number> {
  const data = `${scratch}/train.jsonl`;
  await Deno.writeTextFile(data, rows);
  const out = `${scratch}/cli-${crypto.randomUUID().slice(0, 8)}`;
  const o = job as {
    rank: number;
    k: number;
    steps: number;
    batchSize: number;
    selectSteps: number;
    seed: number;
  };
  const args = [
    "run",
    "-A",
    `${root}src/cli/train.ts`,
    ...["--model", modelDir, "--data", data, "--out", out, "--ep", "wasm", "--method", "weightlora"],
    ...["--k", String(o.k), "--rank", String(o.rank), "--steps", String(o.steps)],
    ...[
      "--batch-size",
      String(o.batchSize),
      "--select-steps",
      String(o.selectSteps),
      "--seed",
      String(o.seed),
    ],
  ];
  const result = await new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "piped" }).output();
  if (!result.success) throw new Error(`deno task train failed: ${new TextDecoder().decode(result.stderr)}`);
  const log = (await Deno.readTextFile(`${out}/train_log.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  return median(log.slice(5).map((r) => r.tokens_per_s));
}

async function main(): Promise<void> {
  const modelDir = `${scratch}/stories260K`;
  await convertLlama2c({
    model: `${shared}/stories260K.bin`,
    tokenizer: `${shared}/tok512.bin`,
    out: modelDir,
  });
  const model = await loadModelFolder(modelDir, { id: "stories260K" });
  const figures: Record<string, number> = {};

  // store open time
  const folder = `${scratch}/db`;
  let [db, t] = await seconds(async () => {
    const d = await openDatabase(folder);
    await migrate(d);
    return d;
  });
  figures.open_pglite_new_s = t;
  await db.close();
  [db, t] = await seconds(async () => {
    const d = await openDatabase(folder);
    await migrate(d);
    return d;
  });
  figures.open_pglite_existing_s = t;

  const pglite = await jobFigures(db, model);
  for (const [k, v] of Object.entries(pglite)) figures[`pglite_${k}`] = v;
  const storedJob = (await new JobStore(db).list("acme")).jobs[0].options;
  await db.close();

  if (adminUrl) {
    const server = await newServerDatabase();
    try {
      const [serverDb, open] = await seconds(async () => {
        const d = await openDatabase(server.url);
        await migrate(d);
        return d;
      });
      figures.open_server_s = open;
      const second = await openDatabase(server.url);
      try {
        const pg = await jobFigures(serverDb, model);
        for (const [k, v] of Object.entries(pg)) figures[`server_${k}`] = v;
        // propagation: upload to replica A, poll replica B until it lists the adapter
        const engines = await Promise.all(
          [serverDb, second].map((d) =>
            ServeEngine.create({ model, store: new DbAdapterStore(d), ep: "wasm", workers: 0 })
          ),
        );
        const [appA, appB] = engines.map((engine) => createApp({ engine, keys }).app);
        const source = (await new DbAdapterStore(serverDb).list("acme"))[0];
        const files = await new DbAdapterStore(serverDb).read(source);
        const times: number[] = [];
        for (let i = 0; i < 5; i++) {
          const form = new FormData();
          form.append("name", `copy-${i}`);
          form.append("adapter_config.json", new File([files.config as Uint8Array<ArrayBuffer>], "c.json"));
          form.append("adapter_model.safetensors", new File([files.weights as Uint8Array<ArrayBuffer>], "w"));
          const t0 = performance.now();
          const up = await appA.request("/v1/adapters", { method: "POST", body: form, headers: AUTH });
          if (!up.ok) throw new Error(`Upload failed: ${await up.text()}`);
          while ((await appB.request(`/v1/models/copy-${i}`, { headers: AUTH })).status !== 200) {
            await new Promise((r) => setTimeout(r, 1));
          }
          times.push((performance.now() - t0) / 1000);
        }
        figures.propagation_median_ms = median(times) * 1000;
        await Promise.all(engines.map((e) => e.close(0)));
      } finally {
        await second.close();
        await serverDb.close();
      }
    } finally {
      await server.drop();
    }
  } else {
    console.log("Postgres server figures skipped: pass --db-url or set WEIGHTLORA_TEST_PG_URL");
  }

  // training tokens/s: server (Worker, measured above) vs deno task train, alternated
  const cli: number[] = [];
  for (let i = 0; i < 2; i++) cli.push(await cliTokensPerSecond(modelDir, storedJob));
  figures.cli_tokens_per_s = median(cli);

  console.log(markdownTable(["figure", "value"], Object.entries(figures).map(([k, v]) => [k, figure(v)])));
  if (flags.write) {
    await Deno.writeTextFile(
      `${root}bench/results/jobs.json`,
      JSON.stringify({ date: new Date().toISOString(), steps: STEPS, figures }, null, 2) + "\n",
    );
  }
}

try {
  await main();
} finally {
  await Deno.remove(scratch, { recursive: true }).catch(() => {});
}
