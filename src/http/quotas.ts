/**
 * {@linkcode QuotaGuard}: enforces each tenant's quotas from the keys file ({@linkcode TenantQuotas}) —
 * stored adapters, files and bytes (403 `quota_exceeded`), fine-tuning jobs not yet finished (429
 * `quota_exceeded`); concurrent generation rows are enforced by the engine. Writes of one tenant that a
 * storage quota governs are serialised, so that two concurrent uploads cannot both pass the check.
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import type { AdapterStore } from "../store/adapter_store.ts";
import type { FileStore } from "../store/db/file_store.ts";
import type { JobStore } from "../store/db/job_store.ts";
import { type KeyTable, quotaName, type TenantQuotas } from "./auth.ts";
import type { AppEnv } from "./context.ts";
import { ApiError } from "./errors.ts";

/** What a tenant stores outside the adapter store, and its jobs (database mode). */
export interface TenantUsageSources {
  /** The tenant's stored files: how many and their bytes. */
  files?: (tenant: string) => Promise<{ count: number; bytes: number }>;
  /** The tenant's fine-tuning jobs not finished. */
  activeJobs?: (tenant: string) => Promise<number>;
}

/**
 * The usage sources of database mode: the tenant's files and its jobs not finished.
 *
 * @param stores The file and job stores.
 * @returns The sources for {@linkcode QuotaGuardOptions.usage}.
 */
export function databaseUsage(stores: { files: FileStore; jobs: JobStore }): TenantUsageSources {
  return {
    files: async (tenant) => {
      const list = await stores.files.list(tenant);
      return { count: list.length, bytes: list.reduce((n, f) => n + f.bytes, 0) };
    },
    activeJobs: (tenant) => stores.jobs.activeCount(tenant),
  };
}

/** Options of {@linkcode QuotaGuard}. */
export interface QuotaGuardOptions {
  /** The keys file (without it there are no quotas). */
  keys?: KeyTable;
  /** The adapter store (counts and bytes of adapters). */
  adapters: AdapterStore;
  /** Files and jobs, where the server has them. */
  usage?: TenantUsageSources;
}

/**
 * The quota error of OpenAI's shape: `param` and the message name the quota.
 *
 * @param status 403 for storage, 429 for concurrency.
 * @param field The quota.
 * @param detail What the tenant has and asked for.
 * @param limit The quota's value.
 * @returns The error to throw.
 */
export function quotaError(
  status: 403 | 429,
  field: keyof TenantQuotas,
  detail: { tenant: string; has: string; limit: number },
): ApiError {
  const name = quotaName(field);
  return new ApiError(
    status,
    `Quota ${name} exceeded for tenant "${detail.tenant}": ${detail.has}, the quota is ${detail.limit}`,
    { param: name, code: "quota_exceeded" },
  );
}

/** Per-tenant quotas. */
export class QuotaGuard {
  #keys: KeyTable | undefined;
  #adapters: AdapterStore;
  #usage: TenantUsageSources;
  #locks = new Map<string, Promise<void>>();

  /** @param options Keys, adapter store, files and jobs. */
  constructor(options: QuotaGuardOptions) {
    this.#keys = options.keys;
    this.#adapters = options.adapters;
    this.#usage = options.usage ?? {};
  }

  /**
   * A tenant's quotas.
   *
   * @param tenant The tenant.
   * @returns Its quotas (empty without a keys file).
   */
  quotasOf(tenant: string): TenantQuotas {
    return this.#keys?.quotasOf(tenant) ?? {};
  }

  /**
   * Runs `fn` after the tenant's earlier guarded writes (only when a storage quota governs the tenant).
   *
   * @param tenant The tenant.
   * @param fn The check and the write.
   * @returns What `fn` returns.
   */
  async serialize<T>(tenant: string, fn: () => Promise<T>): Promise<T> {
    const q = this.quotasOf(tenant);
    if (q.adapters === undefined && q.files === undefined && q.bytes === undefined) return await fn();
    const before = this.#locks.get(tenant) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = before.then(() => mine);
    this.#locks.set(tenant, tail);
    await before;
    try {
      return await fn();
    } finally {
      release();
      if (this.#locks.get(tenant) === tail) this.#locks.delete(tenant);
    }
  }

  /**
   * Checks that a tenant may store an adapter of `bytes` bytes under `name` (replacing one of that name
   * frees its bytes and does not count as one more).
   *
   * @param tenant The tenant.
   * @param upload The adapter's name and size.
   * @throws {ApiError} 403 naming the quota.
   */
  async checkAdapter(tenant: string, upload: { name: string; bytes: number }): Promise<void> {
    const q = this.quotasOf(tenant);
    if (q.adapters === undefined && q.bytes === undefined) return;
    const records = await this.#adapters.list(tenant);
    const same = records.find((r) => r.name === upload.name);
    if (q.adapters !== undefined && !same && records.length + 1 > q.adapters) {
      throw quotaError(403, "adapters", {
        tenant,
        has: `it stores ${records.length} adapters`,
        limit: q.adapters,
      });
    }
    if (q.bytes !== undefined) {
      const fileBytes = (await this.#usage.files?.(tenant))?.bytes ?? 0;
      const stored = records.reduce((n, r) => n + r.bytes, 0) - (same?.bytes ?? 0) + fileBytes;
      this.#checkBytes(tenant, stored, upload.bytes, q.bytes);
    }
  }

  /**
   * Checks that a tenant may store one more file of (at most) `bytes` bytes.
   *
   * @param tenant The tenant.
   * @param bytes The upload's size, as announced.
   * @returns The byte quota and the bytes the tenant may still store, when it has one.
   * @throws {ApiError} 403 naming the quota.
   */
  async checkFile(tenant: string, bytes: number): Promise<{ remaining: number; limit: number } | undefined> {
    const q = this.quotasOf(tenant);
    if (q.files === undefined && q.bytes === undefined) return undefined;
    const files = (await this.#usage.files?.(tenant)) ?? { count: 0, bytes: 0 };
    if (q.files !== undefined && files.count + 1 > q.files) {
      throw quotaError(403, "files", { tenant, has: `it stores ${files.count} files`, limit: q.files });
    }
    if (q.bytes === undefined) return undefined;
    const adapters = (await this.#adapters.list(tenant)).reduce((n, r) => n + r.bytes, 0);
    this.#checkBytes(tenant, adapters + files.bytes, bytes, q.bytes);
    return { remaining: q.bytes - adapters - files.bytes, limit: q.bytes };
  }

  /**
   * Checks that a tenant may start one more fine-tuning job.
   *
   * @param tenant The tenant.
   * @throws {ApiError} 429 naming the quota.
   */
  async checkJob(tenant: string): Promise<void> {
    const limit = this.quotasOf(tenant).concurrentJobs;
    if (limit === undefined || !this.#usage.activeJobs) return;
    const active = await this.#usage.activeJobs(tenant);
    if (active + 1 > limit) {
      throw quotaError(429, "concurrentJobs", { tenant, has: `it has ${active} jobs not finished`, limit });
    }
  }

  /**
   * Middleware for the routes the guard does not own: `POST /v1/files` (files and bytes, by the announced
   * length, then the upload runs serialised with the tenant's other guarded writes) and
   * `POST /v1/fine_tuning/jobs` (concurrent jobs).
   *
   * @returns The middleware (mount it after authentication).
   */
  middleware(): MiddlewareHandler<AppEnv> {
    return async (c, next) => {
      if (c.req.method !== "POST") return await next();
      const tenant = c.get("tenant");
      if (c.req.path === "/v1/files") {
        const announced = Number(c.req.header("content-length") ?? 0) || 0;
        return await this.serialize(tenant, async () => {
          const budget = await this.checkFile(tenant, announced);
          if (budget !== undefined) c.set("uploadByteBudget", budget);
          await next();
        });
      }
      if (c.req.path === "/v1/fine_tuning/jobs") await this.checkJob(tenant);
      await next();
    };
  }

  #checkBytes(tenant: string, stored: number, bytes: number, limit: number): void {
    if (stored + bytes > limit) {
      throw quotaError(403, "bytes", {
        tenant,
        has: `it stores ${stored} bytes and the upload has ${bytes}`,
        limit,
      });
    }
  }
}
