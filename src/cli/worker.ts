/**
 * `deno task worker`: a trainer without HTTP. It claims fine-tuning jobs from the database that the
 * serving replicas write to, trains them in Workers and stores their adapters, which the replicas then
 * serve.
 *
 *     deno task worker --db postgres://weightlora@db/weightlora --model models/stories260K --train-workers 2
 *
 * @module
 */

import { parseArgs } from "node:util";
import { FileStore, JobStore, migrate, openDatabase } from "../store/db/mod.ts";
import { JobRunner, type RunnerModel } from "../jobs/job_runner.ts";
import { oneOf, positiveInt, runCli, UsageError } from "./_args.ts";

const HELP = `Usage: deno task worker --model [ID=]DIR [--model …] [options]

Claims fine-tuning jobs from the database, trains each in a Worker, and stores checkpoints, events and
the finished adapter there (the serving replicas on the same database serve it at once). Jobs of a
stopped or killed trainer are resumed from their last checkpoint.

Options:
  --db LOCATION          postgres://USER:PASSWORD@HOST:PORT/DB (shared with the serving replicas), or
                         an embedded database folder (only one process may open it).
                         Default: the DATABASE_URL environment variable, else .weightlora/db.
  --model [ID=]DIR       A base model folder that jobs may name (ID defaults to the folder's name).
                         Repeat for several. Required.
  --train-workers N      Jobs trained at once. Default: 1.
  --ep E                 Execution provider: auto, wasm or webgpu. Default: auto.
  --lease S              Seconds after which a silent trainer's job is taken over. Default: 15.
  -h, --help             Show this help.

Ctrl-C (or SIGTERM) stops after the current steps; the jobs go back to the queue with a checkpoint.`;

/**
 * Parses `--model [ID=]DIR` values.
 *
 * @param values The flag values.
 * @returns Models by id.
 * @throws {UsageError} On a repeated id or an empty value.
 */
export function parseModelFlags(values: readonly string[]): Map<string, RunnerModel> {
  const models = new Map<string, RunnerModel>();
  for (const value of values) {
    const eq = value.indexOf("=");
    const dir = (eq > 0 ? value.slice(eq + 1) : value).replace(/\/+$/, "");
    const id = eq > 0 ? value.slice(0, eq) : dir.split("/").pop() ?? "";
    if (!dir || !id) throw new UsageError(`Invalid --model ${JSON.stringify(value)}: expected [ID=]DIR`);
    if (models.has(id)) {
      throw new UsageError(`Invalid --model ${JSON.stringify(value)}: model id ${id} is repeated`);
    }
    models.set(id, { id, dir });
  }
  return models;
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    args: Deno.args,
    strict: true,
    options: {
      db: { type: "string" },
      model: { type: "string", multiple: true },
      "train-workers": { type: "string" },
      ep: { type: "string" },
      lease: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (v.help) {
    console.log(HELP);
    return;
  }
  const models = parseModelFlags(v.model ?? []);
  if (models.size === 0) throw new UsageError("--model is required");
  for (const model of models.values()) {
    try {
      await Deno.stat(`${model.dir}/config.json`);
    } catch {
      throw new UsageError(
        `Invalid --model ${model.id}=${model.dir}: ${model.dir}/config.json does not exist`,
      );
    }
  }
  const location = v.db ?? Deno.env.get("DATABASE_URL") ?? ".weightlora/db";
  const opened = performance.now();
  const db = await openDatabase(location);
  await migrate(db);
  const runner = new JobRunner({
    jobs: new JobStore(db),
    files: new FileStore(db),
    models,
    workers: positiveInt("train-workers", v["train-workers"], 1),
    ep: oneOf("ep", v.ep, ["auto", "wasm", "webgpu"] as const, "auto"),
    leaseSeconds: positiveInt("lease", v.lease, 15),
  });
  await runner.start();
  console.error(
    `worker: ${runner.workerId} on ${db.location} (${db.kind}, opened in ${
      ((performance.now() - opened) / 1000).toFixed(1)
    } s); models ${[...models.keys()].join(", ")}`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
      console.error("worker: stopping after the current steps (jobs go back to the queue)");
      resolve();
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  });
  await runner.stop();
  await db.close();
}

if (import.meta.main) await runCli("worker", main);
