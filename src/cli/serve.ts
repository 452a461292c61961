/**
 * `deno task serve`: one resident base model served to many tenants over OpenAI-compatible HTTP, with
 * per-tenant adapters hot-swapped per request.
 *
 *     deno task serve --model DIR [--db LOCATION | --store DIR [--read-only]] [--no-train] [--train-workers N]
 *                     [--port P] [--host H] [--keys FILE] [--ep auto|wasm|webgpu]
 *                     [--cache-mb N] [--workers N] [--max-batch N] [--max-tokens N]
 *                     [--max-concurrency N] [--timeout-s N] [--max-body-kb N] [--max-adapter-mb N]
 *
 * State: by default adapters, files and fine-tuning jobs live in a database (`--db`: an embedded folder,
 * `.weightlora/db` by default, or `postgres://…` shared by replicas), and this process also trains
 * (`--train-workers N`, or `--no-train` for a serving-only replica). `--store DIR` serves adapters from a
 * folder instead (no fine-tuning); with `--read-only` that is the edge mode.
 *
 * Least privilege (see `src/http/README.md`):
 *
 *     deno run --unstable-raw-imports --allow-net=127.0.0.1 --allow-read=MODEL,STORE \
 *       --allow-env=WEIGHTLORA_WASM_THREADS src/cli/serve.ts --model MODEL --store STORE --read-only
 *
 * Prints `Listening on http://HOST:PORT` once ready; SIGINT/SIGTERM stop it gracefully.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { KeyTable } from "../http/auth.ts";
import { type RunningServer, startServer } from "../http/server.ts";
import type { ExecutionProviderChoice } from "../runtime/execution_provider.ts";
import { FolderAdapterStore } from "../store/folder_adapter_store.ts";
import type { Hono } from "hono";
import type { AppEnv } from "../http/context.ts";
import type { ServeEngine } from "../serve/engine.ts";

const USAGE = `Usage:
  deno task serve --model DIR [--db .weightlora/db | --store DIR [--read-only]] [--no-train] [--train-workers 1]
                  [--port 8080] [--host 127.0.0.1] [--keys FILE]
                  [--ep auto|wasm|webgpu] [--cache-mb 256] [--read-only] [--workers N] [--max-batch 16]
                  [--max-tokens 1024] [--max-concurrency 16] [--timeout-s 300] [--max-body-kb 1024]
                  [--max-adapter-mb 64] [--grace-s 30]`;

/** Parsed command line of {@linkcode main}. */
export interface ServeArgs {
  /** Model folder. */
  model: string;
  /** Adapter store folder (folder mode: no database, no fine-tuning). */
  store?: string;
  /** Database: an embedded folder or a `postgres://` URL (unless `store` is given). */
  db?: string;
  /** Train fine-tuning jobs in this process. */
  train: boolean;
  /** Jobs trained at once. */
  trainWorkers: number;
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
  /** Shutdown grace period, seconds. */
  graceS: number;
}

function positiveNumber(name: string, value: string | undefined, fallback: number, integer = true): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (
    !Number.isFinite(n) || n < (name === "port" || name === "workers" ? 0 : 1e-9) ||
    (integer && !Number.isInteger(n))
  ) {
    throw new Error(
      `--${name} is ${JSON.stringify(value)}, expected a ${integer ? "whole " : ""}number\n${USAGE}`,
    );
  }
  return n;
}

/**
 * Parses the command line.
 *
 * @param args Arguments without the program name.
 * @returns The settings.
 * @throws {Error} On unknown or invalid arguments (with the usage).
 */
export function parseServeArgs(args: string[]): ServeArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        model: { type: "string" },
        store: { type: "string" },
        db: { type: "string" },
        "no-train": { type: "boolean", default: false },
        "train-workers": { type: "string" },
        port: { type: "string" },
        host: { type: "string" },
        keys: { type: "string" },
        ep: { type: "string" },
        "cache-mb": { type: "string" },
        "read-only": { type: "boolean", default: false },
        workers: { type: "string" },
        "max-batch": { type: "string" },
        "max-tokens": { type: "string" },
        "max-concurrency": { type: "string" },
        "timeout-s": { type: "string" },
        "max-body-kb": { type: "string" },
        "max-adapter-mb": { type: "string" },
        "grace-s": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${USAGE}`);
  }
  if (values.help) throw new Error(USAGE);
  if (typeof values.model !== "string") throw new Error(`Missing --model\n${USAGE}`);
  if (values["read-only"] === true && typeof values.store !== "string") {
    throw new Error(`--read-only serves adapters from a folder: pass --store DIR\n${USAGE}`);
  }
  if (typeof values.store === "string" && typeof values.db === "string") {
    throw new Error(`--store and --db exclude each other\n${USAGE}`);
  }
  const ep = (values.ep ?? "auto") as string;
  if (ep !== "auto" && ep !== "wasm" && ep !== "webgpu") {
    throw new Error(`--ep is ${JSON.stringify(ep)}, expected auto, wasm or webgpu\n${USAGE}`);
  }
  const str = (k: string) => values[k] as string | undefined;
  return {
    model: values.model,
    store: values.store as string | undefined,
    db: values.store === undefined ? (values.db as string | undefined) ?? ".weightlora/db" : undefined,
    train: values["no-train"] !== true,
    trainWorkers: positiveNumber("train-workers", str("train-workers"), 1),
    port: positiveNumber("port", str("port"), 8080),
    host: str("host") ?? "127.0.0.1",
    keys: str("keys"),
    ep,
    cacheMb: positiveNumber("cache-mb", str("cache-mb"), 256, false),
    readOnly: values["read-only"] === true,
    workers: str("workers") === undefined ? undefined : positiveNumber("workers", str("workers"), 0),
    maxBatch: positiveNumber("max-batch", str("max-batch"), 16),
    maxTokens: positiveNumber("max-tokens", str("max-tokens"), 1024),
    maxConcurrency: positiveNumber("max-concurrency", str("max-concurrency"), 16),
    timeoutS: positiveNumber("timeout-s", str("timeout-s"), 300, false),
    maxBodyKb: positiveNumber("max-body-kb", str("max-body-kb"), 1024, false),
    maxAdapterMb: positiveNumber("max-adapter-mb", str("max-adapter-mb"), 64, false),
    graceS: positiveNumber("grace-s", str("grace-s"), 30, false),
  };
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
  const keys = a.keys === undefined ? undefined : await KeyTable.load(a.keys);
  if (!keys) {
    console.warn(
      'Warning: no --keys file: every request is tenant "default" without authentication; listening on 127.0.0.1 only',
    );
  }
  const state = a.db === undefined ? undefined : await openState(a);
  const server = await startServer({
    model: a.model,
    store: state?.adapters ?? new FolderAdapterStore(a.store!, { readOnly: a.readOnly }),
    routes: state?.routes,
    keys,
    ep: a.ep,
    workers: a.workers,
    maxBatch: a.maxBatch,
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
  adapters: import("../store/db/mod.ts").DbAdapterStore;
  routes: (engine: ServeEngine) => Hono<AppEnv>[];
  attach(server: RunningServer): Promise<RunningServer>;
  close(): Promise<void>;
}

async function openState(a: ServeArgs): Promise<State> {
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
  const adapters = new dbMod.DbAdapterStore(db);
  const files = new dbMod.FileStore(db);
  const jobs = new dbMod.JobStore(db);
  let runner: InstanceType<typeof JobRunner> | undefined;
  let unwatch: (() => Promise<void>) | undefined;
  const close = async () => {
    await runner?.stop();
    await unwatch?.().catch(() => {});
    await db.close();
  };
  return {
    adapters,
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
        filesRoutes({ files, validate: jsonlValidator(model) }),
        fineTuningRoutes({ jobs, files, models }),
      ];
    },
    async attach(server) {
      const { engine } = server;
      // replicas drop cached versions that another process replaced or deleted
      unwatch = await adapters.watch((change) => engine.cache.invalidate(change.tenant, change.name));
      if (a.train) {
        runner = new JobRunner({
          jobs,
          files,
          models: new Map([[engine.modelId, { id: engine.modelId, dir: a.model }]]),
          workers: a.trainWorkers,
          ep: a.ep,
        });
        await runner.start();
      }
      console.log(
        `State: ${db.location} (${db.kind}, opened in ${seconds} s); fine-tuning: ${
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

if (import.meta.main) {
  let server: RunningServer;
  try {
    server = await main(Deno.args);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(1);
  }
  const { engine } = server;
  console.log(
    `Listening on ${server.url} (model ${engine.modelId}, ${engine.ep}, ${engine.runnerCount} runner${
      engine.runnerCount === 1 ? "" : "s"
    }, adapter store ${engine.store.readOnly ? "read-only" : "writable"})`,
  );
  const grace = parseServeArgs(Deno.args).graceS * 1000;
  const stop = async (signal: string) => {
    console.log(`${signal}: finishing requests in flight, then stopping`);
    await server.shutdown(grace);
    console.log("Stopped");
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
}
