/**
 * {@linkcode createApp}: the Hono app of the server — OpenAI-compatible inference, tenant adapters,
 * `/health`, `/metrics` and (optionally) the tenant web console under `/console` — as a plain `fetch` handler that runs under `Deno.serve` or any edge runtime.
 *
 * Middleware order: request tracking (graceful shutdown) → metrics → body limit → authentication
 * (`c.get("tenant")`) → per-tenant concurrency → request timeout (`c.get("signal")`) → quotas of the keys file
 * (files, bytes, jobs; adapters in their route; rows in the engine) → routes. Errors
 * from anywhere become OpenAI error bodies in one handler; a bad request never takes the server down.
 *
 * @module
 */

import { Hono } from "hono";
import { consoleRoutes, type ConsoleRoutesOptions } from "../console/routes.tsx";
import type { ServeEngine } from "../serve/engine.ts";
import { adapterRoutes } from "./adapter_routes.ts";
import { type KeyTable, tenantAuth } from "./auth.ts";
import type { AppEnv } from "./context.ts";
import { ApiError, handleError, handleNotFound } from "./errors.ts";
import { inferenceRoutes } from "./inference_routes.ts";
import { bodyLimitBytes, requestTimeout, RequestTracker, tenantConcurrency } from "./limits.ts";
import { ServeMetrics } from "./metrics.ts";
import { QuotaGuard, type TenantUsageSources } from "./quotas.ts";

/** Limits of the app; every field has a default. */
export interface AppLimits {
  /**
   * Largest JSON request body, bytes.
   * @default {1 MiB}
   */
  maxBodyBytes?: number;
  /**
   * Largest adapter upload, bytes.
   * @default {64 MiB}
   */
  maxAdapterBytes?: number;
  /**
   * Most tokens one choice may generate.
   * @default {1024}
   */
  maxTokens?: number;
  /**
   * Most requests in flight per tenant (429 beyond).
   * @default {16}
   */
  maxConcurrentPerTenant?: number;
  /**
   * Deadline of one request, including a streamed body, ms.
   * @default {300000}
   */
  requestTimeoutMs?: number;
}

/**
 * Refuses a request body that is not declared as JSON, before a route reads it as an empty object and
 * reports a missing field instead.
 */
function requireJsonBody(request: Request): void {
  if (!["POST", "PUT", "PATCH"].includes(request.method)) return;
  const length = request.headers.get("content-length");
  const hasBody = request.body !== null && (length === null || Number(length) > 0);
  if (!hasBody) return;
  const type = request.headers.get("content-type");
  const media = type?.split(";")[0].trim().toLowerCase() ?? "";
  if (media === "application/json" || /^application\/[\w.+-]*\+json$/.test(media)) return;
  throw new ApiError(
    400,
    `Content-Type must be application/json for ${request.method} ${new URL(request.url).pathname}, ` +
      `got ${type === null ? "none" : JSON.stringify(type)}`,
    { code: "invalid_content_type" },
  );
}

/** Options of {@linkcode createApp}. */
export interface AppOptions {
  /** The engine (base model, adapter store and cache, runners). */
  engine: ServeEngine;
  /** API keys; without them the single tenant `default` is served without authentication. */
  keys?: KeyTable;
  /** Limits. */
  limits?: AppLimits;
  /** Metrics (created when absent). */
  metrics?: ServeMetrics;
  /**
   * More routes behind the same middleware, mounted at `/` after the built-in ones (the fine-tuning job
   * and file routes of `fine_tuning_routes.ts` and `files_routes.ts`).
   */
  routes?: Hono<AppEnv>[];
  /** Files and jobs of tenants, for the quotas of the keys file (database mode). */
  usage?: TenantUsageSources;
  /**
   * Serve the tenant web console under `/console` (`src/console/`), with its job store for the gate heatmap
   * (absent: no console).
   */
  console?: Omit<ConsoleRoutesOptions, "engine" | "api" | "keys">;
}

/** The app and what a server needs around it. */
export interface ServeApp {
  /** The Hono app. */
  app: Hono<AppEnv>;
  /** The app as a fetch handler (`Deno.serve(handler)`, edge runtimes). */
  fetch: (request: Request) => Response | Promise<Response>;
  /** The metrics. */
  metrics: ServeMetrics;
  /** Requests in flight; `drain()` starts a graceful shutdown. */
  tracker: RequestTracker;
}

/**
 * Builds the app around an engine.
 *
 * @param options Engine, keys, limits, metrics.
 * @returns The app, its fetch handler, metrics and request tracker.
 * @example
 * ```ts ignore
 * import { createApp } from "./app.ts";
 * const { fetch } = createApp({ engine });
 * Deno.serve({ hostname: "127.0.0.1", port: 8080 }, fetch);
 * ```
 */
export function createApp(options: AppOptions): ServeApp {
  const { engine } = options;
  const limits = options.limits ?? {};
  const metrics = options.metrics ?? new ServeMetrics({
    cacheStats: () => engine.cache.stats,
    activeRows: () => engine.activeRows,
  });
  const tracker = new RequestTracker();
  const app = new Hono<AppEnv>();
  app.onError(handleError);
  app.notFound(handleNotFound);
  app.use(tracker.middleware());
  app.use(metrics.middleware());

  app.get("/health", (c) => {
    const body = {
      status: tracker.closing ? "shutting_down" : "ok",
      model: engine.modelId,
      ep: engine.ep,
      runners: engine.runnerCount,
      active_rows: engine.activeRows,
      adapter_cache: engine.cache.stats,
    };
    return c.json(body, tracker.closing ? 503 : 200);
  });
  app.get("/metrics", async (c) => {
    const { text, contentType } = await metrics.render();
    return c.body(text, 200, { "content-type": contentType });
  });

  const maxBody = limits.maxBodyBytes ?? 2 ** 20;
  const maxAdapter = limits.maxAdapterBytes ?? 64 * 2 ** 20;
  const jsonLimit = bodyLimitBytes(maxBody);
  app.use("/v1/*", async (c, next) => {
    // adapter and file uploads have their own, larger limits
    if (c.req.method === "POST" && (c.req.path === "/v1/adapters" || c.req.path === "/v1/files")) {
      return await next();
    }
    requireJsonBody(c.req.raw);
    return await jsonLimit(c, next);
  });
  app.use("/v1/*", tenantAuth({ keys: options.keys }));
  app.use("/v1/*", tenantConcurrency({ max: limits.maxConcurrentPerTenant ?? 16 }));
  app.use("/v1/*", requestTimeout({ ms: limits.requestTimeoutMs ?? 300_000 }));
  const quotas = new QuotaGuard({ keys: options.keys, adapters: engine.store, usage: options.usage });
  app.use("/v1/*", quotas.middleware());
  app.route("/", inferenceRoutes({ engine, metrics, maxTokensCap: limits.maxTokens ?? 1024 }));
  app.route("/", adapterRoutes({ engine, maxAdapterBytes: maxAdapter, quotas }));
  for (const routes of options.routes ?? []) app.route("/", routes);
  if (options.console) {
    const fetch = (request: Request) => app.fetch(request);
    // its forms carry an adapter upload (both files) or a training file, with room for the multipart framing
    const maxUploadBytes = Math.max(maxAdapter, 64 * 2 ** 20) + 64 * 1024;
    app.route(
      "/",
      consoleRoutes({ maxUploadBytes, ...options.console, engine, keys: options.keys, api: fetch }),
    );
  }
  return { app, fetch: (request) => app.fetch(request), metrics, tracker };
}
