/**
 * API keys to tenants: {@linkcode KeyTable} reads the keys file
 * (`{"tenants": {"<tenant>": {"keys": ["<api key>", …], "quotas": {…}}}, "default_quotas": {…}}`; quotas
 * are optional, see {@linkcode TenantQuotas}), and {@linkcode tenantAuth} is the Hono
 * middleware that turns `Authorization: Bearer <key>` into `c.get("tenant")`. Keys are compared by their
 * SHA-256 digest, so lookups take the same time whatever the key.
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import { createHash } from "node:crypto";
import { validateStoreName } from "../store/adapter_store.ts";
import type { AppEnv } from "./context.ts";
import { ApiError } from "./errors.ts";

/**
 * A key's SHA-256, base64. Synchronous (`node:crypto`): `crypto.subtle.digest` is an asynchronous op that
 * cost the server's main thread ~0.1 ms per request (measured: 100 vs 4 µs per key), on every request.
 */
function digest(key: string): string {
  return createHash("sha256").update(key).digest("base64");
}

/**
 * A tenant's quotas, from the keys file (`"quotas"` of a tenant, over `"default_quotas"` of the file);
 * an absent field means no limit. In the file the fields are snake_case: `adapters`, `files`, `bytes`,
 * `concurrent_jobs`, `concurrent_rows`.
 */
export interface TenantQuotas {
  /** Most stored adapters. */
  adapters?: number;
  /** Most stored files. */
  files?: number;
  /** Most bytes of adapters and files stored. */
  bytes?: number;
  /** Most fine-tuning jobs not finished (validating, queued or running). */
  concurrentJobs?: number;
  /** Most generation rows (prompts × choices) waiting or running. */
  concurrentRows?: number;
}

const QUOTA_FIELDS: Record<string, keyof TenantQuotas> = {
  adapters: "adapters",
  files: "files",
  bytes: "bytes",
  concurrent_jobs: "concurrentJobs",
  concurrent_rows: "concurrentRows",
};

/** The quota's name as written in the keys file (`concurrentJobs` → `concurrent_jobs`). */
export function quotaName(field: keyof TenantQuotas): string {
  return Object.keys(QUOTA_FIELDS).find((k) => QUOTA_FIELDS[k] === field) ?? field;
}

function parseQuotas(value: unknown, where: string, fail: (message: string) => never): TenantQuotas {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return fail(`${where} must be an object such as {"adapters": 10, "bytes": 1073741824}`);
  }
  const quotas: TenantQuotas = {};
  for (const [key, n] of Object.entries(value as Record<string, unknown>)) {
    const field = QUOTA_FIELDS[key];
    if (!field) {
      fail(`${where} has an unknown quota "${key}" (known: ${Object.keys(QUOTA_FIELDS).join(", ")})`);
    }
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
      fail(`${where}.${key} is ${JSON.stringify(n)}, expected an integer ≥ 0`);
    }
    quotas[field] = n as number;
  }
  return quotas;
}

/** API keys by tenant. */
export class KeyTable {
  #byDigest: Map<string, string>;
  #quotas: Map<string, TenantQuotas>;
  #defaultQuotas: TenantQuotas;
  /** Tenant ids, sorted. */
  readonly tenants: readonly string[];

  private constructor(
    byDigest: Map<string, string>,
    tenants: string[],
    quotas: { byTenant: Map<string, TenantQuotas>; defaults: TenantQuotas },
  ) {
    this.#byDigest = byDigest;
    this.tenants = tenants;
    this.#quotas = quotas.byTenant;
    this.#defaultQuotas = quotas.defaults;
  }

  /**
   * A tenant's quotas: its own over the file's `default_quotas`.
   *
   * @param tenant The tenant.
   * @returns The quotas (absent fields: no limit).
   */
  quotasOf(tenant: string): TenantQuotas {
    return { ...this.#defaultQuotas, ...this.#quotas.get(tenant) };
  }

  /**
   * Builds the table from the parsed keys file.
   *
   * @param json `{"tenants": {"<tenant>": {"keys": ["<api key>", …], "quotas"?: {…}}}, "default_quotas"?: {…}}`.
   * @param source The file name for messages.
   * @returns The table.
   * @throws {Error} When the shape is wrong, a tenant id is invalid, a key is shorter than 8 characters,
   *   one key belongs to two tenants, or a quota is unknown or not an integer ≥ 0.
   * @example
   * ```ts
   * import { KeyTable } from "./auth.ts";
   * const keys = await KeyTable.fromJson({ tenants: { acme: { keys: ["sk-acme-123456"] } } }, "keys.json");
   * console.assert(keys.tenantOf("sk-acme-123456") === "acme");
   * ```
   */
  static fromJson(json: unknown, source: string): Promise<KeyTable> {
    try {
      return Promise.resolve(KeyTable.#parse(json, source));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  static #parse(json: unknown, source: string): KeyTable {
    const fail = (message: string): never => {
      throw new Error(`Cannot load keys file ${source}: ${message}`);
    };
    const tenants = (json as { tenants?: unknown } | null)?.tenants;
    if (tenants === null || typeof tenants !== "object" || Array.isArray(tenants)) {
      return fail('expected {"tenants": {"<tenant>": {"keys": ["<api key>", …]}}}');
    }
    const byDigest = new Map<string, string>();
    const defaults = parseQuotas((json as Record<string, unknown>).default_quotas, '"default_quotas"', fail);
    const byTenant = new Map<string, TenantQuotas>();
    for (const [tenant, entry] of Object.entries(tenants as Record<string, unknown>)) {
      try {
        validateStoreName("tenant", tenant);
      } catch (e) {
        fail((e as Error).message);
      }
      const keys = (entry as { keys?: unknown } | null)?.keys;
      if (!Array.isArray(keys) || keys.length === 0) {
        fail(`tenant "${tenant}" needs "keys": a non-empty list of strings`);
      }
      for (const [i, key] of (keys as unknown[]).entries()) {
        if (typeof key !== "string" || key.length < 8) {
          fail(`key ${i} of tenant "${tenant}" must be a string of at least 8 characters`);
        }
        const d = digest(key as string);
        const owner = byDigest.get(d);
        if (owner !== undefined && owner !== tenant) {
          fail(`key ${i} of tenant "${tenant}" is also a key of tenant "${owner}"`);
        }
        byDigest.set(d, tenant);
      }
      const quotas = (entry as { quotas?: unknown }).quotas;
      byTenant.set(tenant, parseQuotas(quotas, `"quotas" of tenant "${tenant}"`, fail));
    }
    return new KeyTable(byDigest, Object.keys(tenants).sort(), { byTenant, defaults });
  }

  /**
   * Reads a keys file.
   *
   * @param path The JSON file.
   * @returns The table.
   * @throws {Error} When the file cannot be read or parsed, or its content is invalid.
   */
  static async load(path: string): Promise<KeyTable> {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      throw new Error(`Cannot read keys file ${path}: ${(e as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new Error(`Cannot parse keys file ${path}: ${(e as Error).message}`);
    }
    return await KeyTable.fromJson(json, path);
  }

  /**
   * The tenant of a key.
   *
   * @param key The presented API key.
   * @returns The tenant, or `undefined` for an unknown key (answered at once: no asynchronous op).
   */
  tenantOf(key: string): string | undefined {
    return this.#byDigest.get(digest(key));
  }
}

/** Options of {@linkcode tenantAuth}. */
export interface TenantAuthOptions {
  /** The keys; without them every request is {@linkcode defaultTenant} (no authentication). */
  keys?: KeyTable;
  /**
   * The tenant of every request when there are no keys.
   * @default {"default"}
   */
  defaultTenant?: string;
}

/**
 * Middleware: authenticates `Authorization: Bearer <key>` and sets `c.get("tenant")`.
 *
 * @param options Keys, or the single tenant of an open server.
 * @returns The middleware; it throws a 401 {@linkcode ApiError} for a missing or unknown key.
 */
export function tenantAuth(options: TenantAuthOptions = {}): MiddlewareHandler<AppEnv> {
  const { keys } = options;
  const fallback = options.defaultTenant ?? "default";
  return async function tenantAuthMiddleware(c, next) {
    if (!keys) {
      c.set("tenant", fallback);
      return await next();
    }
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) {
      throw new ApiError(
        401,
        "Missing API key: send it as the header Authorization: Bearer <key>",
        { code: "missing_api_key" },
      );
    }
    const tenant = keys.tenantOf(match[1]);
    if (tenant === undefined) {
      const shown = match[1].length > 8 ? `${match[1].slice(0, 3)}…${match[1].slice(-4)}` : "****";
      throw new ApiError(401, `Incorrect API key provided: ${shown}`, { code: "invalid_api_key" });
    }
    c.set("tenant", tenant);
    await next();
  };
}
