/**
 * {@linkcode AnnouncedAdapterStore}: an adapter store shared by replicas (adapters in object storage) whose
 * writes are announced to the other replicas through their shared database, on the channel that database
 * adapters use (`NOTIFY weightlora_adapters`). A replica that hears of a write drops its copy of that
 * adapter's pointer, so the next request reads the new version at once — and the store can then answer
 * from the pointer it holds and revalidate in the background (`S3AdapterStore` option
 * `revalidateInBackground`), instead of one conditional request per request once a pointer is a second old.
 *
 * @module
 */

import type { AdapterFiles, AdapterRecord, AdapterStore, PutAdapterResult } from "./adapter_store.ts";
import { type AdapterChange, notifyChange, watchAdapterChanges } from "./db/db_adapter_store.ts";
import type { Database } from "./db/database.ts";

/** A store that can drop what it holds of one adapter (e.g. `S3AdapterStore`). */
export interface InvalidatableAdapterStore extends AdapterStore {
  /** Forget the cached pointer of one adapter. */
  invalidate(tenant: string, name: string): void;
}

/**
 * Announces puts and deletes on the shared database and hears the other replicas' announcements.
 *
 * @example
 * ```ts ignore
 * import { AnnouncedAdapterStore } from "./announced_adapter_store.ts";
 * const store = new AnnouncedAdapterStore(s3Store, db);
 * const stop = await store.watch((change) => engine.cache.invalidate(change.tenant, change.name));
 * ```
 */
export class AnnouncedAdapterStore implements AdapterStore {
  /** The store written to and read from. */
  readonly inner: InvalidatableAdapterStore;
  /** The database whose channel carries the announcements. */
  readonly db: Database;

  /**
   * @param inner The shared store.
   * @param db The replicas' shared database.
   */
  constructor(inner: InvalidatableAdapterStore, db: Database) {
    this.inner = inner;
    this.db = db;
  }

  /** Whether writes are refused. */
  get readOnly(): boolean {
    return this.inner.readOnly;
  }

  /** @inheritdoc */
  list(tenant: string): Promise<AdapterRecord[]> {
    return this.inner.list(tenant);
  }

  /** @inheritdoc */
  get(tenant: string, name: string): Promise<AdapterRecord | undefined> {
    return this.inner.get(tenant, name);
  }

  /** @inheritdoc */
  read(record: AdapterRecord): Promise<AdapterFiles> {
    return this.inner.read(record);
  }

  /** Stores a new version, then announces it. */
  async put(tenant: string, name: string, files: AdapterFiles): Promise<PutAdapterResult> {
    const result = await this.inner.put(tenant, name, files);
    this.#announce({ tenant, name, version: result.record.version });
    return result;
  }

  /** Deletes an adapter, then announces it. */
  async delete(tenant: string, name: string): Promise<boolean> {
    const deleted = await this.inner.delete(tenant, name);
    if (deleted) this.#announce({ tenant, name, version: null });
    return deleted;
  }

  /**
   * Hears announcements (this replica's own included): the inner store forgets the adapter's pointer first,
   * then `onChange` runs (e.g. the engine drops its prepared tensors).
   *
   * @param onChange Called for each change.
   * @returns Stops listening.
   */
  async watch(onChange: (change: AdapterChange) => void): Promise<() => Promise<void>> {
    return await watchAdapterChanges(this.db, (change) => {
      this.inner.invalidate(change.tenant, change.name);
      onChange(change);
    });
  }

  /**
   * Announces without waiting: a caller may hold the database (a job's row is locked in a transaction while
   * its adapter is published), and an embedded database runs one query at a time, so waiting here would
   * wait for the caller. A failed announcement costs the other replicas one stale request, not the write.
   */
  #announce(change: AdapterChange): void {
    notifyChange(this.db, change).catch(() => {});
  }
}
