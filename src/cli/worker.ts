/**
 * `deno task worker`: a trainer without HTTP. It claims fine-tuning jobs from the database that the
 * serving replicas write to, trains them in Workers and stores their adapters, which the replicas then
 * serve.
 *
 *     deno task worker --db postgres://weightlora@db/weightlora --model models/stories260K --train-workers 2
 *
 * @module
 */

import { FileStore, JobStore, migrate, openDatabase } from "../store/db/mod.ts";
import { openAdapterStore } from "../store/open_adapter_store.ts";
import { JobRunner, type RunnerModel } from "../jobs/job_runner.ts";
import { oneOf, positiveInt, runCli, trainNiceFlag, UsageError } from "./_args.ts";
import { chooseDatabase, DEFAULT_DATABASE } from "./_database.ts";
import { defineCommand, helpText, parseFlags } from "./_flags.ts";

/** The flags of `deno task worker`: the parser and `--help` both read them. */
export const WORKER_COMMAND = defineCommand({
  name: "worker",
  usage: ["--model [ID=]DIR [--model …] [options]"],
  description:
    `Claims fine-tuning jobs from the database, trains each in a Worker, and stores checkpoints, events and
the finished adapter there (the serving replicas on the same database serve it at once). Jobs of a
stopped or killed trainer are resumed from their last checkpoint.`,
  flags: [
    {
      name: "db",
      value: "LOCATION",
      defaultText: `$DATABASE_URL, else ${DEFAULT_DATABASE}`,
      doc: "postgres://USER:PASSWORD@HOST:PORT/DB (shared with the serving replicas), or an embedded " +
        "database folder (only one process may open it: stop the server first).",
    },
    {
      name: "model",
      value: "[ID=]DIR",
      multiple: true,
      required: true,
      doc: "A base model folder that jobs may name (ID defaults to the folder's name). Repeat for several.",
    },
    { name: "train-workers", value: "N", default: 1, doc: "Jobs trained at once." },
    {
      name: "train-nice",
      value: "N",
      default: 0,
      doc: "Scheduling niceness of the training threads, 0–19 (0: normal priority). On a machine that also " +
        "serves, training then yields the CPU to serving.",
    },
    { name: "ep", value: "E", default: "auto", doc: "Execution provider: auto, wasm or webgpu." },
    {
      name: "adapters",
      value: "LOC",
      defaultText: "the database",
      doc: "Publish finished adapters to a folder or s3://BUCKET/PREFIX (AWS_* variables) instead of the " +
        "database: the --adapters of the serving replicas.",
    },
    {
      name: "lease",
      value: "S",
      default: 15,
      doc: "Seconds after which a silent trainer's job is taken over.",
    },
  ],
  footer:
    "Ctrl-C (or SIGTERM) stops after the current steps; the jobs go back to the queue with a checkpoint.",
});

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
  const v = parseFlags(WORKER_COMMAND, Deno.args);
  if (v.help) {
    console.log(helpText(WORKER_COMMAND));
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
  if (v.adapters === "") {
    throw new UsageError('Invalid --adapters "": expected a folder or s3://BUCKET/PREFIX');
  }
  const adapters = v.adapters === undefined ? undefined : await openAdapterStore(v.adapters);
  const { location, source } = chooseDatabase(v.db);
  const opened = performance.now();
  const db = await openDatabase(location);
  await migrate(db);
  const runner = new JobRunner({
    jobs: new JobStore(db, { adapters }),
    files: new FileStore(db),
    models,
    workers: positiveInt("train-workers", v["train-workers"], 1),
    trainNice: trainNiceFlag(v["train-nice"]),
    ep: oneOf("ep", v.ep, ["auto", "wasm", "webgpu"] as const, "auto"),
    leaseSeconds: positiveInt("lease", v.lease, 15),
  });
  await runner.start();
  console.error(
    `worker: ${runner.workerId} on ${db.location} (${db.kind}, from ${source}, opened in ${
      ((performance.now() - opened) / 1000).toFixed(1)
    } s); models ${[...models.keys()].join(", ")}${
      v.adapters === undefined ? "" : `; adapters: ${v.adapters}`
    }`,
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
