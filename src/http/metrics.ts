/**
 * {@linkcode ServeMetrics}: the server's Prometheus metrics (prom-client): requests by route, method and
 * status, request latency (streams until their last byte), tokens, forward passes and their batch sizes,
 * and the adapter cache (hits, misses, evictions, bytes, entries, load time). No metric is labelled by
 * tenant, so `/metrics` reveals no tenant names and stays small.
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { AdapterCacheStats } from "../serve/adapter_cache.ts";
import type { EngineWaits } from "../serve/engine.ts";
import type { StepInfo } from "../serve/runner_types.ts";
import type { AppEnv } from "./context.ts";
import { onResponseEnd } from "./limits.ts";

/** Options of {@linkcode ServeMetrics}. */
export interface ServeMetricsOptions {
  /** Reads the adapter cache's counters at scrape time. */
  cacheStats?: () => AdapterCacheStats;
  /** Reads the number of rows running or waiting at scrape time. */
  activeRows?: () => number;
  /** Reads where requests waited (resolving adapters, queued rows) at scrape time. */
  waits?: () => EngineWaits;
}

/** The metrics of one server. */
export class ServeMetrics {
  /** The registry `/metrics` renders. */
  readonly registry: Registry = new Registry();
  /** `weightlora_http_requests_total{route, method, status}`. */
  readonly requests: Counter<"route" | "method" | "status">;
  /** `weightlora_http_request_duration_seconds{route, method}`. */
  readonly duration: Histogram<"route" | "method">;
  /** `weightlora_tokens_total{kind="prompt"|"completion"}`. */
  readonly tokens: Counter<"kind">;
  /** `weightlora_forward_passes_total{kind="prefill"|"decode"}`. */
  readonly passes: Counter<"kind">;
  /** `weightlora_batch_rows{kind}`: rows per forward pass. */
  readonly batchRows: Histogram<"kind">;
  /** `weightlora_batch_adapters{kind}`: distinct adapters per forward pass. */
  readonly batchAdapters: Histogram<"kind">;
  /**
   * `weightlora_forward_pass_seconds_total{kind, part}`: time in forward passes, `part` = `all` (the whole
   * pass), `run` (inside `session.run`) or `feeds` (choosing the variant, building the adapter feeds).
   */
  readonly passSeconds: Counter<"kind" | "part">;

  /**
   * Creates the metrics in a fresh registry.
   *
   * @param options Sources read at scrape time.
   */
  constructor(options: ServeMetricsOptions = {}) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: "weightlora_http_requests_total",
      help: "HTTP requests by route, method and status",
      labelNames: ["route", "method", "status"] as const,
      registers,
    });
    this.duration = new Histogram({
      name: "weightlora_http_request_duration_seconds",
      help: "HTTP request latency until the last byte of the response, by route and method",
      labelNames: ["route", "method"] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.tokens = new Counter({
      name: "weightlora_tokens_total",
      help: "Tokens processed: prompt tokens read and completion tokens generated",
      labelNames: ["kind"] as const,
      registers,
    });
    this.passes = new Counter({
      name: "weightlora_forward_passes_total",
      help: "Forward passes of the serving graphs",
      labelNames: ["kind"] as const,
      registers,
    });
    this.batchRows = new Histogram({
      name: "weightlora_batch_rows",
      help: "Rows per forward pass",
      labelNames: ["kind"] as const,
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers,
    });
    this.batchAdapters = new Histogram({
      name: "weightlora_batch_adapters",
      help: "Distinct adapters per forward pass (the base model counts as one)",
      labelNames: ["kind"] as const,
      buckets: [1, 2, 4, 8, 16, 32],
      registers,
    });
    this.passSeconds = new Counter({
      name: "weightlora_forward_pass_seconds_total",
      help:
        "Seconds in forward passes: the whole pass (all), inside session.run (run), building adapter feeds " +
        "(feeds)",
      labelNames: ["kind", "part"] as const,
      registers,
    });
    const cacheStats = options.cacheStats;
    if (cacheStats) {
      const seen = { hits: 0, misses: 0, evictions: 0 };
      const counter = (key: "hits" | "misses" | "evictions", help: string) =>
        new Counter({
          name: `weightlora_adapter_cache_${key}_total`,
          help,
          registers,
          collect() {
            const now = cacheStats()[key];
            this.inc(now - seen[key]);
            seen[key] = now;
          },
        });
      counter("hits", "Adapter cache lookups served from memory");
      counter("misses", "Adapter cache lookups that loaded from the adapter store");
      counter("evictions", "Adapters evicted to stay within the cache budget");
      const gauge = (name: string, help: string, read: (s: AdapterCacheStats) => number) =>
        new Gauge({
          name,
          help,
          registers,
          collect() {
            this.set(read(cacheStats()));
          },
        });
      gauge(
        "weightlora_adapter_cache_bytes",
        "Bytes of prepared adapter tensors in the cache",
        (s) => s.bytes,
      );
      gauge("weightlora_adapter_cache_entries", "Adapter versions in the cache", (s) => s.entries);
      gauge(
        "weightlora_adapter_load_seconds_total",
        "Seconds spent loading adapters on misses",
        (s) => s.loadSeconds,
      );
    }
    const waits = options.waits;
    if (waits) {
      const seen: EngineWaits = { resolves: 0, resolveSeconds: 0, rows: 0, queueSeconds: 0 };
      const counter = (name: string, help: string, key: keyof EngineWaits) =>
        new Counter({
          name,
          help,
          registers,
          collect() {
            const now = waits()[key];
            this.inc(now - seen[key]);
            seen[key] = now;
          },
        });
      counter("weightlora_adapter_resolves_total", "Requests that resolved an adapter", "resolves");
      counter(
        "weightlora_adapter_resolve_seconds_total",
        "Seconds resolving adapters for requests (store lookup; load and prepare on a cache miss)",
        "resolveSeconds",
      );
      counter("weightlora_queued_rows_total", "Rows handed to an inference runner", "rows");
      counter(
        "weightlora_row_queue_seconds_total",
        "Seconds rows waited between the request and their inference runner",
        "queueSeconds",
      );
    }
    const activeRows = options.activeRows;
    if (activeRows) {
      new Gauge({
        name: "weightlora_active_rows",
        help: "Generated sequences running or waiting",
        registers,
        collect() {
          this.set(activeRows());
        },
      });
    }
  }

  /**
   * Records a forward pass.
   *
   * @param info The pass's figures.
   */
  observeStep(info: StepInfo): void {
    this.passes.inc({ kind: info.kind });
    this.batchRows.observe({ kind: info.kind }, info.rows);
    this.batchAdapters.observe({ kind: info.kind }, info.slots);
    this.passSeconds.inc({ kind: info.kind, part: "all" }, info.ms / 1000);
    this.passSeconds.inc({ kind: info.kind, part: "run" }, info.runMs / 1000);
    this.passSeconds.inc({ kind: info.kind, part: "feeds" }, info.feedMs / 1000);
  }

  /**
   * Middleware: counts every request by matched route (not raw path, so the label set stays bounded)
   * and times it until its body ends.
   *
   * @returns The middleware (mount it first, so that it sees error responses too).
   */
  middleware(): MiddlewareHandler<AppEnv> {
    return async (c, next) => {
      const started = performance.now();
      await next();
      const handler = matchedRoutes(c).findLast((r) => r.method !== "ALL");
      const route = handler?.path ?? "unmatched";
      const labels = { route, method: c.req.method };
      const status = String(c.res.status);
      c.res = onResponseEnd(c.res, () => {
        this.requests.inc({ ...labels, status });
        this.duration.observe(labels, (performance.now() - started) / 1000);
      });
    };
  }

  /**
   * The metrics in Prometheus' text format.
   *
   * @returns The exposition text and its content type.
   */
  async render(): Promise<{ text: string; contentType: string }> {
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
