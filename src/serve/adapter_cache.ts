/**
 * {@linkcode AdapterCache}: prepared adapter tensors by stored version, bounded by a byte budget, least
 * recently used evicted first, loaded from the adapter store on a miss (concurrent misses of one version
 * share one load).
 *
 * Entries are immutable and keyed by version, so a replaced adapter is simply a new key: requests that
 * hold the old version finish on it, and its tensors are freed when the last one lets go. Evictions are
 * reported (`onEvict`) so that runners drop their GPU copies too.
 *
 * @module
 */

import type { AdapterRecord } from "../store/adapter_store.ts";
import type { PreparedAdapter } from "./prepared_adapter.ts";

/** Options of {@linkcode AdapterCache}. */
export interface AdapterCacheOptions {
  /** Byte budget of cached tensors. */
  maxBytes: number;
  /** Loads and prepares one version (its `key` must be {@linkcode adapterKey} of the record). */
  load: (record: AdapterRecord) => Promise<PreparedAdapter>;
  /** Called with the key of each evicted or invalidated entry. */
  onEvict?: (key: string) => void;
}

/** Counters of an {@linkcode AdapterCache}. */
export interface AdapterCacheStats {
  /** Lookups served from the cache (including waits on a load already under way). */
  hits: number;
  /** Lookups that loaded from the store. */
  misses: number;
  /** Entries evicted to stay within the budget. */
  evictions: number;
  /** Bytes of cached tensors. */
  bytes: number;
  /** Cached versions. */
  entries: number;
  /** Total seconds spent loading on misses. */
  loadSeconds: number;
}

/**
 * The cache key of a stored version.
 *
 * @param record The version.
 * @returns `tenant/name@version`.
 * @example
 * ```ts
 * import { adapterKey } from "./adapter_cache.ts";
 * console.assert(adapterKey({ tenant: "t", name: "a", version: "v1" }) === "t/a@v1");
 * ```
 */
export function adapterKey(record: Pick<AdapterRecord, "tenant" | "name" | "version">): string {
  return `${record.tenant}/${record.name}@${record.version}`;
}

/**
 * A byte-bounded LRU cache of prepared adapters.
 *
 * @example
 * ```ts ignore
 * const cache = new AdapterCache({ maxBytes: 64 << 20, load: (record) => loadAndPrepare(record) });
 * const adapter = await cache.get(await store.get("acme", "story"));
 * ```
 */
export class AdapterCache {
  /** The byte budget. */
  readonly maxBytes: number;
  #options: AdapterCacheOptions;
  #entries = new Map<string, PreparedAdapter>(); // least recently used first
  #loading = new Map<string, Promise<PreparedAdapter>>();
  #stats: AdapterCacheStats = { hits: 0, misses: 0, evictions: 0, bytes: 0, entries: 0, loadSeconds: 0 };

  /**
   * Creates an empty cache.
   *
   * @param options Budget, loader and eviction callback.
   * @throws {RangeError} When the budget is negative or not a number.
   */
  constructor(options: AdapterCacheOptions) {
    if (!(options.maxBytes >= 0)) {
      throw new RangeError(
        `Invalid adapter cache size ${options.maxBytes}: it must be a number of bytes ≥ 0`,
      );
    }
    this.maxBytes = options.maxBytes;
    this.#options = options;
  }

  /** A snapshot of the counters. */
  get stats(): AdapterCacheStats {
    return { ...this.#stats, entries: this.#entries.size };
  }

  /** Whether a version is cached now. */
  has(record: AdapterRecord): boolean {
    return this.#entries.has(adapterKey(record));
  }

  /**
   * The prepared tensors of a version, from the cache or loaded.
   *
   * @param record The version.
   * @returns The prepared adapter (an adapter larger than the whole budget is returned but not kept).
   * @throws {Error} What the loader throws (nothing is cached then).
   */
  async get(record: AdapterRecord): Promise<PreparedAdapter> {
    const key = adapterKey(record);
    const cached = this.#entries.get(key);
    if (cached) {
      this.#stats.hits++;
      this.#entries.delete(key);
      this.#entries.set(key, cached);
      return cached;
    }
    const pending = this.#loading.get(key);
    if (pending) {
      this.#stats.hits++;
      return await pending;
    }
    this.#stats.misses++;
    const started = performance.now();
    const load = this.#options.load(record);
    this.#loading.set(key, load);
    try {
      const adapter = await load;
      this.#stats.loadSeconds += (performance.now() - started) / 1000;
      this.#insert(key, adapter);
      return adapter;
    } finally {
      this.#loading.delete(key);
    }
  }

  /**
   * Drops every cached version of an adapter (after it was replaced or deleted).
   *
   * @param tenant Tenant id.
   * @param name Adapter name.
   */
  invalidate(tenant: string, name: string): void {
    const prefix = `${tenant}/${name}@`;
    for (const [key, adapter] of [...this.#entries]) {
      if (key.startsWith(prefix)) this.#remove(key, adapter);
    }
  }

  /** Drops everything. */
  clear(): void {
    for (const [key, adapter] of [...this.#entries]) this.#remove(key, adapter);
  }

  #insert(key: string, adapter: PreparedAdapter): void {
    if (adapter.bytes > this.maxBytes) return;
    this.#entries.set(key, adapter);
    this.#stats.bytes += adapter.bytes;
    for (const [oldKey, old] of this.#entries) {
      if (this.#stats.bytes <= this.maxBytes) break;
      this.#remove(oldKey, old);
      this.#stats.evictions++;
    }
  }

  #remove(key: string, adapter: PreparedAdapter): void {
    this.#entries.delete(key);
    this.#stats.bytes -= adapter.bytes;
    this.#options.onEvict?.(key);
  }
}
