/**
 * {@linkcode startServer}: the engine, the app and `Deno.serve` together, with a graceful shutdown that
 * stops taking requests (503), lets requests in flight finish — streams included — and then releases
 * the sessions and workers.
 *
 * @module
 */

import type { VariantLayout } from "../serve/variant_sessions.ts";
import type { Hono } from "hono";
import type { ExecutionProviderChoice } from "../runtime/execution_provider.ts";
import type { ServeEngine } from "../serve/engine.ts";
import type { AdapterStore } from "../store/adapter_store.ts";
import { FolderAdapterStore } from "../store/folder_adapter_store.ts";
import { type AppLimits, type AppOptions, createApp, type ServeApp } from "./app.ts";
import type { KeyTable } from "./auth.ts";
import type { AppEnv } from "./context.ts";
import { createMeteredEngine } from "./_metered_engine.ts";
import type { TenantUsageSources } from "./quotas.ts";

/** Options of {@linkcode startServer}. */
export interface StartServerOptions {
  /** The model folder. */
  model: string;
  /** The adapter store. */
  store: AdapterStore;
  /** API keys; without them one tenant `default`, no authentication, and loopback only. */
  keys?: KeyTable;
  /** Execution provider. @default {"auto"} */
  ep?: ExecutionProviderChoice;
  /** Inference workers on wasm. @default two where two cores exist */
  workers?: number;
  /** Most rows per forward pass, per runner. @default {16} */
  maxBatch?: number;
  /** Byte budget of the adapter cache. @default {256 MiB} */
  cacheBytes?: number;
  /** How graph variants hold the base weights (`ServeEngineOptions.variantLayout`). @default {"auto"} */
  variantLayout?: VariantLayout | "auto";
  /** Request limits. */
  limits?: AppLimits;
  /** Address to listen on. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port (0 picks a free one). @default {8080} */
  port?: number;
  /** More routes for the app, made once the engine is loaded (fine-tuning jobs and files). */
  routes?: (engine: ServeEngine) => Hono<AppEnv>[];
  /** Files and jobs of tenants, for the quotas of the keys file (database mode). */
  usage?: TenantUsageSources;
  /** The tenant web console's options (absent: no console). */
  console?: AppOptions["console"];
}

/** A running server. */
export interface RunningServer {
  /** The base URL, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** The engine. */
  engine: ServeEngine;
  /** The app. */
  app: ServeApp;
  /**
   * Stops taking requests, waits for those in flight (at most `graceMs`), then stops.
   *
   * @param graceMs Most time to wait for requests in flight.
   */
  shutdown(graceMs?: number): Promise<void>;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1"]);

/**
 * Starts the server.
 *
 * @param options Model, store, keys, provider, limits, address.
 * @returns The running server.
 * @throws {Error} When the model cannot be loaded, or a non-loopback address is asked for without keys.
 * @example
 * ```ts ignore
 * import { startServer } from "./server.ts";
 * import { FolderAdapterStore } from "../store/folder_adapter_store.ts";
 * const server = await startServer({ model: "models/stories260K", store: new FolderAdapterStore("adapters"), port: 0 });
 * console.log(server.url);
 * await server.shutdown();
 * ```
 */
export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const hostname = options.hostname ?? "127.0.0.1";
  if (!options.keys && !LOOPBACK.has(hostname)) {
    throw new Error(
      `Cannot listen on ${hostname} without API keys: a server without --keys accepts every request, so it ` +
        "listens on 127.0.0.1 only (pass --keys FILE to serve other hosts)",
    );
  }
  if (options.store instanceof FolderAdapterStore && !options.store.readOnly) {
    // versions half-written when a previous server was killed
    const removed = await options.store.sweepTemporary();
    if (removed.length) {
      console.log(`Removed ${removed.length} interrupted upload(s) from ${options.store.root}`);
    }
  }
  const { engine, metrics } = await createMeteredEngine({
    model: options.model,
    store: options.store,
    ep: options.ep,
    workers: options.workers,
    maxBatch: options.maxBatch ?? 16,
    cacheBytes: options.cacheBytes,
    variantLayout: options.variantLayout,
    // one tenant (no keys): it may fill every seat; several: each leaves a quarter to the others
    maxRowsPerTenant: options.keys ? undefined : Number.MAX_SAFE_INTEGER,
    tenantRowQuota: options.keys ? (tenant) => options.keys!.quotasOf(tenant).concurrentRows : undefined,
  });
  const app = createApp({
    engine,
    keys: options.keys,
    limits: options.limits,
    metrics,
    routes: options.routes?.(engine),
    usage: options.usage,
    console: options.console,
  });
  let resolveAddr: (addr: Deno.NetAddr) => void;
  const listening = new Promise<Deno.NetAddr>((resolve) => (resolveAddr = resolve));
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname,
      port: options.port ?? 8080,
      onListen: (addr) => resolveAddr(addr),
      onError: (error) => {
        console.error("Request failed outside the app:", error);
        return new Response(JSON.stringify({ error: { message: "Internal error", type: "server_error" } }), {
          status: 500,
          headers: { "content-type": "application/json" },
        });
      },
    }, app.fetch);
  } catch (e) {
    await engine.close(0);
    throw e;
  }
  const addr = await listening;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  let stopping: Promise<void> | undefined;
  return {
    url: `http://${host}:${addr.port}`,
    engine,
    app,
    shutdown(graceMs = 30_000) {
      stopping ??= (async () => {
        await app.tracker.drain(graceMs);
        await server.shutdown();
        await engine.close(0);
      })();
      return stopping;
    },
  };
}
