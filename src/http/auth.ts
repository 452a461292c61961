/**
 * API keys to tenants: {@linkcode KeyTable} reads the keys file
 * (`{"tenants": {"<tenant>": {"keys": ["<api key>", …]}}}`), and {@linkcode tenantAuth} is the Hono
 * middleware that turns `Authorization: Bearer <key>` into `c.get("tenant")`. Keys are compared by their
 * SHA-256 digest, so lookups take the same time whatever the key.
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import { validateStoreName } from "../store/adapter_store.ts";
import type { AppEnv } from "./context.ts";
import { ApiError } from "./errors.ts";

async function digest(key: string): Promise<string> {
  const bytes = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

/** API keys by tenant. */
export class KeyTable {
  #byDigest: Map<string, string>;
  /** Tenant ids, sorted. */
  readonly tenants: readonly string[];

  private constructor(byDigest: Map<string, string>, tenants: string[]) {
    this.#byDigest = byDigest;
    this.tenants = tenants;
  }

  /**
   * Builds the table from the parsed keys file.
   *
   * @param json `{"tenants": {"<tenant>": {"keys": ["<api key>", …]}}}`.
   * @param source The file name for messages.
   * @returns The table.
   * @throws {Error} When the shape is wrong, a tenant id is invalid, a key is shorter than 8 characters,
   *   or one key belongs to two tenants.
   * @example
   * ```ts
   * import { KeyTable } from "./auth.ts";
   * const keys = await KeyTable.fromJson({ tenants: { acme: { keys: ["sk-acme-123456"] } } }, "keys.json");
   * console.assert((await keys.tenantOf("sk-acme-123456")) === "acme");
   * ```
   */
  static async fromJson(json: unknown, source: string): Promise<KeyTable> {
    const fail = (message: string): never => {
      throw new Error(`Cannot load keys file ${source}: ${message}`);
    };
    const tenants = (json as { tenants?: unknown } | null)?.tenants;
    if (tenants === null || typeof tenants !== "object" || Array.isArray(tenants)) {
      return fail('expected {"tenants": {"<tenant>": {"keys": ["<api key>", …]}}}');
    }
    const byDigest = new Map<string, string>();
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
        const d = await digest(key as string);
        const owner = byDigest.get(d);
        if (owner !== undefined && owner !== tenant) {
          fail(`key ${i} of tenant "${tenant}" is also a key of tenant "${owner}"`);
        }
        byDigest.set(d, tenant);
      }
    }
    return new KeyTable(byDigest, Object.keys(tenants).sort());
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
   * @returns The tenant, or `undefined` for an unknown key.
   */
  async tenantOf(key: string): Promise<string | undefined> {
    return this.#byDigest.get(await digest(key));
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
    const tenant = await keys.tenantOf(match[1]);
    if (tenant === undefined) {
      const shown = match[1].length > 8 ? `${match[1].slice(0, 3)}…${match[1].slice(-4)}` : "****";
      throw new ApiError(401, `Incorrect API key provided: ${shown}`, { code: "invalid_api_key" });
    }
    c.set("tenant", tenant);
    await next();
  };
}
