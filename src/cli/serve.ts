/**
 * `deno task serve`: one resident base model served to many tenants over OpenAI-compatible HTTP, with
 * per-tenant adapters hot-swapped per request.
 *
 *     deno task serve --model DIR --store DIR [--port P] [--host H] [--keys FILE] [--ep auto|wasm|webgpu]
 *                     [--cache-mb N] [--read-only] [--workers N] [--max-batch N] [--max-tokens N]
 *                     [--max-concurrency N] [--timeout-s N] [--max-body-kb N] [--max-adapter-mb N]
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

const USAGE = `Usage:
  deno task serve --model DIR --store DIR [--port 8080] [--host 127.0.0.1] [--keys FILE]
                  [--ep auto|wasm|webgpu] [--cache-mb 256] [--read-only] [--workers N] [--max-batch 16]
                  [--max-tokens 1024] [--max-concurrency 16] [--timeout-s 300] [--max-body-kb 1024]
                  [--max-adapter-mb 64] [--grace-s 30]`;

/** Parsed command line of {@linkcode main}. */
export interface ServeArgs {
  /** Model folder. */
  model: string;
  /** Adapter store folder. */
  store: string;
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
  if (typeof values.model !== "string" || typeof values.store !== "string") {
    throw new Error(`Missing --model or --store\n${USAGE}`);
  }
  const ep = (values.ep ?? "auto") as string;
  if (ep !== "auto" && ep !== "wasm" && ep !== "webgpu") {
    throw new Error(`--ep is ${JSON.stringify(ep)}, expected auto, wasm or webgpu\n${USAGE}`);
  }
  const str = (k: string) => values[k] as string | undefined;
  return {
    model: values.model,
    store: values.store,
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
  return await startServer({
    model: a.model,
    store: new FolderAdapterStore(a.store, { readOnly: a.readOnly }),
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
  });
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
