/**
 * `deno task serve`: one resident base model served to many tenants over OpenAI-compatible HTTP, with
 * per-tenant adapters hot-swapped per request. The flags are {@linkcode SERVE_COMMAND} (`--help` prints
 * them with their defaults).
 *
 * State: adapters, files and fine-tuning jobs live in a database (`--db`, else `DATABASE_URL`, else the
 * embedded folder `DIR/db` with `--store DIR`, else `.weightlora/db`; `postgres://…` is shared by
 * replicas), and this process also trains (`--train-workers N`, or `--no-train` for a serving-only replica
 * on a Postgres server). A new `DIR/db` first imports the adapters found in the folder layout of `DIR`.
 * `--store DIR --read-only` serves adapters from the folder alone, without a database: the edge mode.
 * `--adapters DIR|s3://BUCKET/PREFIX` keeps adapters there instead (uploads and fine-tuned adapters are
 * written there; files and jobs stay in the database), or with `--read-only` serves them from there alone.
 *
 * Least privilege:
 *
 *     deno run --unstable-raw-imports --allow-net=127.0.0.1 --allow-read=MODEL,STORE \
 *       --allow-env=WEIGHTLORA_WASM_THREADS src/cli/serve.ts --model MODEL --store STORE --read-only
 *
 * Prints `Listening on http://HOST:PORT` once ready; SIGINT/SIGTERM stop it gracefully.
 *
 * @module
 */

import { KeyTable } from "../http/auth.ts";
import { databaseUsage } from "../http/quotas.ts";
import { type RunningServer, startServer } from "../http/server.ts";
import type { ExecutionProviderChoice } from "../runtime/execution_provider.ts";
import type { AdapterStore } from "../store/adapter_store.ts";
import type { InvalidatableAdapterStore } from "../store/announced_adapter_store.ts";
import { FolderAdapterStore } from "../store/folder_adapter_store.ts";
import { openAdapterStore } from "../store/open_adapter_store.ts";
import type { Hono } from "hono";
import type { AppEnv } from "../http/context.ts";
import type { ServeEngine } from "../serve/engine.ts";
import { numberFlag, oneOf, trainNiceFlag, UsageError } from "./_args.ts";
import { chooseDatabase, DEFAULT_DATABASE, isServerLocation } from "./_database.ts";
import { defineCommand, helpText, parseFlags } from "./_flags.ts";

/** The flags of `deno task serve`: the parser, `--help` and the README's table all read them. */
export const SERVE_COMMAND = defineCommand({
  name: "serve",
  usage: [
    "--model DIR [--store DIR] [--db LOCATION] [--no-train] [--train-workers N] [options]",
    "--model DIR --store DIR --read-only [options]",
    "--model DIR --adapters DIR|s3://BUCKET/PREFIX [--read-only] [options]",
  ],
  description: `Serves one resident base model to many tenants over OpenAI-compatible HTTP, with each tenant's
LoRA adapters swapped per request. Adapters, files and fine-tuning jobs live in a database (--db, else
DATABASE_URL, else the embedded folder DIR/db with --store DIR, else ${DEFAULT_DATABASE}) and this process
also trains jobs; --store DIR --read-only serves adapters from the folder alone (no database, no fine-tuning).
--adapters keeps adapters in a folder or S3-compatible object storage instead of the database (AWS_* variables
configure S3); with --read-only it serves them from there alone.
Prints "Listening on http://HOST:PORT" once ready; SIGINT/SIGTERM stop it gracefully.`,
  flags: [
    {
      name: "model",
      value: "DIR",
      required: true,
      doc: "Hugging Face model folder (`deno task convert` makes one from llama2.c or GGUF).",
    },
    {
      name: "db",
      value: "LOCATION",
      defaultText: `$DATABASE_URL, else DIR/db with --store DIR, else ${DEFAULT_DATABASE}`,
      doc:
        "Database of adapters, files and jobs: postgres://USER:PASSWORD@HOST:PORT/DB (shared by replicas " +
        "and workers) or an embedded database folder (created; one process only).",
    },
    {
      name: "no-train",
      type: "boolean",
      doc: "Serve only: leave fine-tuning jobs to `deno task worker` processes (needs a Postgres server).",
    },
    {
      name: "train-workers",
      value: "N",
      default: 1,
      doc: "Fine-tuning jobs trained at once by this process.",
    },
    {
      name: "train-nice",
      value: "N",
      default: 0,
      doc:
        "Scheduling niceness of the training threads, 0–19: above 0, training yields the CPU to serving and " +
        "to other processes when both want it, and runs at full speed otherwise (0: same priority as serving).",
    },
    {
      name: "store",
      value: "DIR",
      doc: "State folder (it must exist): the embedded database goes in DIR/db unless --db or DATABASE_URL " +
        "names another, and a new one first imports the adapters of DIR's folder layout " +
        "(<tenant>/<name>/<version>/adapter_{config.json,model.safetensors}). With --read-only: serve that " +
        "layout alone, without a database or fine-tuning (the edge mode).",
    },
    {
      name: "adapters",
      value: "LOC",
      defaultText: "the database",
      doc: "Where adapters live: a folder or s3://BUCKET/PREFIX (credentials, region and endpoint from " +
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL). Uploads " +
        "and fine-tuned adapters are written there; files and jobs stay in the database.",
    },
    {
      name: "read-only",
      type: "boolean",
      doc: "With --store: serve the folder's adapters without a database; with --adapters: serve those " +
        "alone, without a database; uploads and deletions get 403; needs no write permission.",
    },
    {
      name: "keys",
      value: "FILE",
      defaultText: 'none: one tenant "default", no auth, 127.0.0.1 only',
      doc: '{"tenants": {"acme": {"keys": ["sk-…"]}}}.',
    },
    {
      name: "host",
      value: "H",
      default: "127.0.0.1",
      doc: "Listening address (needs --keys to be other than 127.0.0.1).",
    },
    { name: "port", value: "P", default: 8080, doc: "Listening port (0 picks a free port)." },
    {
      name: "ep",
      value: "E",
      default: "auto",
      doc: "Execution provider: auto (WebGPU on a hardware adapter, else wasm), wasm or webgpu.",
    },
    {
      name: "workers",
      value: "N",
      defaultText: "min(2, cores)",
      doc: "wasm inference workers (each its own single-threaded session); 0 = in-process.",
    },
    {
      name: "cache-mb",
      value: "N",
      default: 256,
      doc: "Byte budget of prepared adapter tensors (LRU; GPU buffers on WebGPU).",
    },
    { name: "max-batch", value: "N", default: 16, doc: "Rows per forward pass (per worker)." },
    {
      name: "variant-layout",
      value: "auto|separate|gated|shared",
      default: "auto",
      doc:
        "How graph variants (one per set of adapted sites) hold the base weights: auto = one shared copy " +
        "(gated) on wasm for bases of 16 MiB and more, one session per variant otherwise.",
    },
    { name: "max-tokens", value: "N", default: 1024, doc: "Cap on max_tokens." },
    { name: "max-concurrency", value: "N", default: 16, doc: "Requests in flight per tenant (429 beyond)." },
    { name: "timeout-s", value: "N", default: 300, doc: "Deadline of a request, streams included (504)." },
    { name: "max-body-kb", value: "N", default: 1024, doc: "Body limit of JSON requests (413)." },
    {
      name: "max-adapter-mb",
      value: "N",
      default: 64,
      doc: "Size limit of adapter uploads (413, counted while the body streams in).",
    },
    {
      name: "max-file-mb",
      value: "N",
      default: 64,
      doc: "Size limit of /v1/files uploads (413, counted while the body streams in).",
    },
    {
      name: "grace-s",
      value: "N",
      default: 30,
      doc: "On SIGINT/SIGTERM: new requests get 503, requests in flight finish, then exit.",
    },
  ],
});

/** Parsed command line of {@linkcode main}. */
export interface ServeArgs {
  /** Model folder. */
  model: string;
  /** State folder: the default embedded database is `store/db`; with `readOnly`, the adapter folder. */
  store?: string;
  /** Where adapters live (a folder or `s3://BUCKET/PREFIX`) instead of the database. */
  adapters?: string;
  /** Database: an embedded folder or a `postgres://` URL (unless `store` is given). */
  db?: string;
  /** Where `db` came from: `--db`, `DATABASE_URL`, `--store` or the default folder. */
  dbSource?: "--db" | "DATABASE_URL" | "--store" | "default";
  /** Train fine-tuning jobs in this process. */
  train: boolean;
  /** Jobs trained at once. */
  trainWorkers: number;
  /** Niceness of the training threads. */
  trainNice: number;
  /** Port. */
  port: number;
  /** Address. */
  host: string;
  /** Keys file. */
  keys?: string;
  /** Execution provider. */
  ep: ExecutionProviderChoice;
  /** Adapter cache budget, MiB. */
  cacheMb: number;
  /** Refuse writes to the store. */
  readOnly: boolean;
  /** Inference workers (wasm). */
  workers?: number;
  /** Rows per forward pass. */
  maxBatch: number;
  /** How graph variants hold the base weights. */
  variantLayout: "auto" | "separate" | "gated" | "shared";
  /** Cap on max_tokens. */
  maxTokens: number;
  /** Requests in flight per tenant. */
  maxConcurrency: number;
  /** Request deadline, seconds. */
  timeoutS: number;
  /** JSON body limit, KiB. */
  maxBodyKb: number;
  /** Upload limit, MiB. */
  maxAdapterMb: number;
  /** `/v1/files` upload limit, MiB. */
  maxFileMb: number;
  /** Shutdown grace period, seconds. */
  graceS: number;
}

function positiveNumber(name: string, value: string | undefined, integer = true): number {
  const zeroOk = name === "port" || name === "workers";
  return numberFlag(
    name,
    value,
    (n) => (zeroOk ? n >= 0 : n > 0) && (!integer || Number.isInteger(n)),
    `a ${zeroOk ? "non-negative" : "positive"} ${integer ? "integer" : "number"}`,
  )!;
}

/**
 * Parses the command line and refuses configurations that cannot work.
 *
 * @param args Arguments without the program name.
 * @returns The settings, or `"help"` when `--help` was given.
 * @throws {UsageError} On unknown or invalid arguments, or a configuration that could never run a job.
 */
export function parseServeArgs(args: string[]): ServeArgs | "help" {
  const values = parseFlags(SERVE_COMMAND, args);
  if (values.help) return "help";
  if (values["read-only"] === true && values.store === undefined && values.adapters === undefined) {
    throw new UsageError("--read-only serves adapters from a folder: pass --store DIR (or --adapters LOC)");
  }
  if (values["read-only"] === true && values.store !== undefined && values.adapters !== undefined) {
    throw new UsageError(
      "--read-only serves adapters from one place: pass --store DIR or --adapters LOC, not both",
    );
  }
  if (values["read-only"] === true && values.db !== undefined) {
    throw new UsageError(
      `--read-only serves adapters from the ${
        values.adapters === undefined ? "--store folder" : "--adapters location"
      } without a database: drop --db`,
    );
  }
  if (values.adapters === "") {
    throw new UsageError('Invalid --adapters "": expected a folder or s3://BUCKET/PREFIX');
  }
  let db: { location: string; source: ServeArgs["dbSource"] } | undefined;
  if (values["read-only"] !== true) {
    db = chooseDatabase(values.db);
    if (db.source === "default" && values.store !== undefined) {
      db = { location: `${values.store.replace(/\/+$/, "")}/db`, source: "--store" };
    }
  }
  if (db && values["no-train"] === true && !isServerLocation(db.location)) {
    throw new UsageError(
      `--no-train with the embedded database ${db.location} (from ${db.source}) could never run a ` +
        "fine-tuning job: only one process may open an embedded database, so no `deno task worker` can " +
        "claim its jobs. Drop --no-train, or use a Postgres server (--db postgres://… or DATABASE_URL)",
    );
  }
  const str = (k: keyof typeof values) => values[k] as string | undefined;
  return {
    model: values.model!,
    store: values.store,
    adapters: values.adapters,
    db: db?.location,
    dbSource: db?.source,
    train: values["no-train"] !== true,
    trainWorkers: positiveNumber("train-workers", str("train-workers")),
    trainNice: trainNiceFlag(str("train-nice")),
    port: positiveNumber("port", str("port")),
    host: str("host")!,
    keys: str("keys"),
    ep: oneOf("ep", str("ep"), ["auto", "wasm", "webgpu"] as const, "auto"),
    cacheMb: positiveNumber("cache-mb", str("cache-mb"), false),
    readOnly: values["read-only"] === true,
    workers: str("workers") === undefined ? undefined : positiveNumber("workers", str("workers")),
    maxBatch: positiveNumber("max-batch", str("max-batch")),
    variantLayout: oneOf(
      "variant-layout",
      str("variant-layout"),
      ["auto", "separate", "gated", "shared"] as const,
      "auto",
    ),
    maxTokens: positiveNumber("max-tokens", str("max-tokens")),
    maxConcurrency: positiveNumber("max-concurrency", str("max-concurrency")),
    timeoutS: positiveNumber("timeout-s", str("timeout-s"), false),
    maxBodyKb: positiveNumber("max-body-kb", str("max-body-kb"), false),
    maxAdapterMb: positiveNumber("max-adapter-mb", str("max-adapter-mb"), false),
    maxFileMb: positiveNumber("max-file-mb", str("max-file-mb"), false),
    graceS: positiveNumber("grace-s", str("grace-s"), false),
  };
}

async function requireFolder(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "the folder does not exist" : (e as Error).message;
    throw new Error(`Cannot serve adapters from --store ${path}: ${why} (create it with mkdir -p ${path})`);
  }
  if (!info.isDirectory) {
    throw new Error(`Cannot serve adapters from --store ${path}: it is a file, not a folder`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Starts the server from command-line arguments.
 *
 * @param args Arguments without the program name.
 * @returns The running server.
 * @throws {Error} On bad arguments, an unreadable keys file or model, or a busy port.
 * @example
 * ```ts ignore
 * import { main } from "./serve.ts";
 * const server = await main(["--model", "models/stories260K", "--store", "adapters", "--port", "0"]);
 * await server.shutdown();
 * ```
 */
export async function main(args: string[]): Promise<RunningServer> {
  const a = parseServeArgs(args);
  if (a === "help") throw new UsageError("main() does not print --help: check parseServeArgs first");
  if (a.store !== undefined) await requireFolder(a.store);
  const keys = a.keys === undefined ? undefined : await KeyTable.load(a.keys);
  if (!keys) {
    console.warn(
      'Warning: no --keys file: every request is tenant "default" without authentication; listening on 127.0.0.1 only',
    );
  }
  const adapters = a.adapters === undefined ? undefined : await openAdapterStore(a.adapters, {
    readOnly: a.readOnly,
    // with a database the replicas announce their writes to each other (AnnouncedAdapterStore), so a
    // pointer held can be answered at once and revalidated in the background
    s3: { revalidateInBackground: a.db !== undefined },
  });
  const state = a.db === undefined ? undefined : await openState(a, adapters);
  const server = await startServer({
    model: a.model,
    store: state?.adapters ?? adapters ?? new FolderAdapterStore(a.store!, { readOnly: true }),
    routes: state?.routes,
    usage: state?.usage,
    // the tenant web console at /console (its gate heatmap reads the job store)
    console: { jobs: state?.jobs },
    keys,
    ep: a.ep,
    workers: a.workers,
    maxBatch: a.maxBatch,
    variantLayout: a.variantLayout,
    cacheBytes: a.cacheMb * 2 ** 20,
    hostname: keys ? a.host : "127.0.0.1",
    port: a.port,
    limits: {
      maxTokens: a.maxTokens,
      maxConcurrentPerTenant: a.maxConcurrency,
      requestTimeoutMs: a.timeoutS * 1000,
      maxBodyBytes: a.maxBodyKb * 1024,
      maxAdapterBytes: a.maxAdapterMb * 2 ** 20,
    },
  }).catch(async (e) => {
    await state?.close();
    throw e;
  });
  return state ? await state.attach(server) : server;
}

// ---- durable state and fine-tuning (src/store/db, src/jobs): loaded only in database mode, before the
// engine starts its first onnxruntime session (the job runner must see Deno's own Worker class) ----

interface State {
  adapters: AdapterStore;
  jobs: import("../store/db/mod.ts").JobStore;
  usage: import("../http/quotas.ts").TenantUsageSources;
  routes: (engine: ServeEngine) => Hono<AppEnv>[];
  attach(server: RunningServer): Promise<RunningServer>;
  close(): Promise<void>;
}

async function openState(a: ServeArgs, external: AdapterStore | undefined): Promise<State> {
  // with --adapters the database keeps files and jobs only: nothing to import into it
  const fresh = a.dbSource === "--store" && !external && !(await exists(a.db!));
  const [dbMod, { JobRunner }, { filesRoutes, jsonlValidator }, { fineTuningRoutes }] = await Promise.all([
    import("../store/db/mod.ts"),
    import("../jobs/job_runner.ts"),
    import("../http/files_routes.ts"),
    import("../http/fine_tuning_routes.ts"),
  ]);
  const opened = performance.now();
  const db = await dbMod.openDatabase(a.db!);
  try {
    await dbMod.migrate(db);
  } catch (e) {
    await db.close();
    throw e;
  }
  const seconds = ((performance.now() - opened) / 1000).toFixed(1);
  const dbAdapters = new dbMod.DbAdapterStore(db);
  // an object store shared by replicas: writes are announced through the database (see attach)
  const announced = external && "invalidate" in external
    ? new (await import("../store/announced_adapter_store.ts")).AnnouncedAdapterStore(
      external as InvalidatableAdapterStore,
      db,
    )
    : undefined;
  const adapters = announced ?? external ?? dbAdapters;
  let imported = 0;
  if (fresh) {
    try {
      imported = await importFolderAdapters(new FolderAdapterStore(a.store!, { readOnly: true }), dbAdapters);
    } catch (e) {
      await db.close();
      throw e;
    }
  }
  const files = new dbMod.FileStore(db);
  // fine-tuned adapters are published where adapters are served from
  const jobs = new dbMod.JobStore(db, { adapters: announced ?? external });
  let runner: InstanceType<typeof JobRunner> | undefined;
  let unwatch: (() => Promise<void>) | undefined;
  const close = async () => {
    await runner?.stop();
    await unwatch?.().catch(() => {});
    await db.close();
  };
  return {
    adapters,
    jobs,
    usage: databaseUsage({ files, jobs }),
    close,
    routes(engine) {
      const model = {
        id: engine.modelId,
        dir: a.model,
        config: engine.config,
        tokenizer: engine.tokenizer,
        chatTemplate: engine.chatTemplate,
      };
      const models = new Map([[model.id, model]]);
      return [
        filesRoutes({ files, validate: jsonlValidator(model), maxBytes: a.maxFileMb * 2 ** 20 }),
        fineTuningRoutes({ jobs, files, models }),
      ];
    },
    async attach(server) {
      const { engine } = server;
      // replicas drop cached versions that another process replaced or deleted (an --adapters store is
      // read by version: a replaced adapter is a new cache key once its pointer is revalidated)
      if (!external || announced) {
        unwatch = await (announced ?? dbAdapters).watch((change) =>
          engine.cache.invalidate(change.tenant, change.name)
        );
      }
      if (a.train) {
        runner = new JobRunner({
          jobs,
          files,
          models: new Map([[engine.modelId, { id: engine.modelId, dir: a.model }]]),
          workers: a.trainWorkers,
          trainNice: a.trainNice,
          ep: a.ep,
        });
        await runner.start();
      }
      if (fresh) {
        console.log(`State: created ${db.location}, imported ${imported} adapter(s) from ${a.store}`);
      }
      console.log(
        `State: ${db.location} (${db.kind}, from ${a.dbSource}, opened in ${seconds} s)${
          a.adapters === undefined ? "" : `; adapters: ${a.adapters}`
        }; fine-tuning: ${
          a.train
            ? `${a.trainWorkers} training worker${a.trainWorkers === 1 ? "" : "s"}`
            : "serving only (--no-train)"
        }`,
      );
      return {
        ...server,
        async shutdown(graceMs?: number) {
          await runner?.stop();
          await server.shutdown(graceMs);
          await close();
        },
      };
    },
  };
}

/**
 * Copies every adapter of a folder store into a database store (the first start of `--store DIR` with its
 * new `DIR/db`), skipping the database folder itself.
 */
async function importFolderAdapters(
  folder: FolderAdapterStore,
  into: import("../store/db/mod.ts").DbAdapterStore,
): Promise<number> {
  let count = 0;
  for await (const tenant of Deno.readDir(folder.root)) {
    if (!tenant.isDirectory || tenant.name.startsWith(".") || tenant.name === "db") continue;
    let records;
    try {
      records = await folder.list(tenant.name);
    } catch {
      continue; // not a tenant folder of the layout
    }
    for (const record of records) {
      if (await into.get(record.tenant, record.name)) continue;
      await into.put(record.tenant, record.name, await folder.read(record));
      count++;
    }
  }
  return count;
}

if (import.meta.main) {
  let server: RunningServer;
  let args: ServeArgs;
  try {
    const parsed = parseServeArgs(Deno.args);
    if (parsed === "help") {
      console.log(helpText(SERVE_COMMAND));
      Deno.exit(0);
    }
    args = parsed;
    server = await main(Deno.args);
  } catch (e) {
    const hint = e instanceof UsageError ? "\nRun `deno task serve --help` for the options." : "";
    console.error(`serve: ${(e as Error).message}${hint}`);
    Deno.exit(e instanceof UsageError ? 2 : 1);
  }
  const { engine } = server;
  console.log(
    `Listening on ${server.url} (model ${engine.modelId}, ${engine.ep}, ${engine.runnerCount} runner${
      engine.runnerCount === 1 ? "" : "s"
    }, adapter store ${engine.store.readOnly ? "read-only" : "writable"})`,
  );
  const grace = args.graceS * 1000;
  const stop = async (signal: string) => {
    console.log(`${signal}: finishing requests in flight, then stopping`);
    await server.shutdown(grace);
    console.log("Stopped");
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
}
