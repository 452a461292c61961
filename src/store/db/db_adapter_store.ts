/**
 * {@linkcode DbAdapterStore}: tenants' adapters as rows of the shared database (both files as `bytea`),
 * so that every replica on the same database serves the same adapters. Each put replaces the row in one
 * transaction and sends `NOTIFY weightlora_adapters`; {@linkcode DbAdapterStore.watch} hands those
 * notifications to caches.
 *
 * @module
 */

import {
  type AdapterFiles,
  type AdapterRecord,
  type AdapterStore,
  AdapterVersionGoneError,
  newAdapterVersion,
  type PutAdapterResult,
  ReadOnlyStoreError,
  sha256Hex,
  validateStoreName,
} from "../adapter_store.ts";
import type { Database, Queryable } from "./database.ts";

/** The notification channel of adapter changes. */
export const ADAPTERS_CHANNEL = "weightlora_adapters";

/** A change announced on {@linkcode ADAPTERS_CHANNEL}. */
export interface AdapterChange {
  /** Tenant. */
  tenant: string;
  /** Adapter name. */
  name: string;
  /** The new current version, or `null` when deleted. */
  version: string | null;
}

/** Options of {@linkcode DbAdapterStore}. */
export interface DbAdapterStoreOptions {
  /**
   * Refuse writes.
   * @default {false}
   */
  readOnly?: boolean;
}

/** Options of {@linkcode DbAdapterStore.putIn}. */
export interface PutInOptions {
  /** The fine-tuning job that produced the adapter, if any. */
  jobId?: string;
}

interface AdapterRow {
  [key: string]: unknown;
  tenant: string;
  name: string;
  version: string;
  created_at: number;
  bytes: number;
  sha256: string;
}

const COLUMNS = "tenant, name, version, created_at, bytes, sha256";

function toRecord(row: AdapterRow): AdapterRecord {
  return {
    tenant: row.tenant,
    name: row.name,
    version: row.version,
    createdAt: Math.floor(Number(row.created_at)),
    bytes: Number(row.bytes),
    sha256: row.sha256,
  };
}

/**
 * Adapters in the database.
 *
 * @example
 * ```ts ignore
 * import { DbAdapterStore, migrate, openDatabase } from "./mod.ts";
 * const db = await openDatabase("state/db");
 * await migrate(db);
 * const store = new DbAdapterStore(db);
 * const { record } = await store.put("acme", "story", { config, weights });
 * ```
 */
export class DbAdapterStore implements AdapterStore {
  /** Whether writes are refused. */
  readonly readOnly: boolean;
  /** The database. */
  readonly db: Database;

  /**
   * Wraps a migrated database.
   *
   * @param db The database (see {@linkcode migrate}).
   * @param options Read-only mode.
   */
  constructor(db: Database, options: DbAdapterStoreOptions = {}) {
    this.db = db;
    this.readOnly = options.readOnly ?? false;
  }

  async list(tenant: string): Promise<AdapterRecord[]> {
    validateStoreName("tenant", tenant);
    const rows = await this.db.query<AdapterRow>(
      `select ${COLUMNS} from weightlora_adapters where tenant = $1 order by name`,
      [tenant],
    );
    return rows.map(toRecord);
  }

  async get(tenant: string, name: string): Promise<AdapterRecord | undefined> {
    validateStoreName("tenant", tenant);
    validateStoreName("adapter name", name);
    const rows = await this.db.query<AdapterRow>(
      `select ${COLUMNS} from weightlora_adapters where tenant = $1 and name = $2`,
      [tenant, name],
    );
    return rows.length ? toRecord(rows[0]) : undefined;
  }

  async read(record: AdapterRecord): Promise<AdapterFiles> {
    const rows = await this.db.query<{ config: Uint8Array; weights: Uint8Array }>(
      "select config, weights from weightlora_adapters where tenant = $1 and name = $2 and version = $3",
      [record.tenant, record.name, record.version],
    );
    if (!rows.length) {
      throw new AdapterVersionGoneError(
        `Cannot read adapter "${record.name}" of tenant "${record.tenant}": version ${record.version} ` +
          "no longer exists (it was replaced or deleted)",
      );
    }
    return { config: rows[0].config, weights: rows[0].weights };
  }

  async put(tenant: string, name: string, files: AdapterFiles): Promise<PutAdapterResult> {
    this.#writable(`store adapter "${name}"`);
    validateStoreName("tenant", tenant);
    validateStoreName("adapter name", name);
    return await this.db.transaction((tx) => DbAdapterStore.putIn(tx, { tenant, name, files }));
  }

  async delete(tenant: string, name: string): Promise<boolean> {
    this.#writable(`delete adapter "${name}"`);
    validateStoreName("tenant", tenant);
    validateStoreName("adapter name", name);
    return await this.db.transaction(async (tx) => {
      const rows = await tx.query(
        "delete from weightlora_adapters where tenant = $1 and name = $2 returning name",
        [tenant, name],
      );
      if (rows.length) await notifyChange(tx, { tenant, name, version: null });
      return rows.length > 0;
    });
  }

  /**
   * Subscribes to adapter changes made by any process on this database (including this one).
   *
   * @param onChange Called with each change.
   * @returns A function that unsubscribes.
   */
  async watch(onChange: (change: AdapterChange) => void): Promise<() => Promise<void>> {
    return await this.db.listen(ADAPTERS_CHANNEL, (payload) => {
      try {
        onChange(JSON.parse(payload) as AdapterChange);
      } catch {
        // not ours: ignore
      }
    });
  }

  /**
   * Stores a new version inside a caller's transaction (a finished job registers its adapter and marks
   * itself succeeded atomically). Names are validated here too.
   *
   * @param tx The transaction.
   * @param adapter Tenant, name, files.
   * @param options The producing job.
   * @returns The new record and whether it replaced one.
   */
  static async putIn(
    tx: Queryable,
    adapter: { tenant: string; name: string; files: AdapterFiles },
    options: PutInOptions = {},
  ): Promise<PutAdapterResult> {
    const { tenant, name, files } = adapter;
    validateStoreName("tenant", tenant);
    validateStoreName("adapter name", name);
    const previous = await tx.query(
      "select version from weightlora_adapters where tenant = $1 and name = $2 for update",
      [tenant, name],
    );
    const rows = await tx.query<AdapterRow>(
      `insert into weightlora_adapters (tenant, name, version, bytes, sha256, config, weights, job_id)
       values ($1, $2, $3, $4, $5, $6, $7, $8)
       on conflict (tenant, name) do update set version = excluded.version, created_at = excluded.created_at,
         bytes = excluded.bytes, sha256 = excluded.sha256, config = excluded.config,
         weights = excluded.weights, job_id = excluded.job_id
       returning ${COLUMNS}`,
      [
        tenant,
        name,
        newAdapterVersion(),
        files.config.byteLength + files.weights.byteLength,
        await sha256Hex(files.weights),
        files.config,
        files.weights,
        options.jobId ?? null,
      ],
    );
    const record = toRecord(rows[0]);
    await notifyChange(tx, { tenant, name, version: record.version });
    return { record, replaced: previous.length > 0 };
  }

  #writable(action: string): void {
    if (this.readOnly) {
      throw new ReadOnlyStoreError(`Cannot ${action}: the adapter store ${this.db.location} is read-only`);
    }
  }
}

async function notifyChange(tx: Queryable, change: AdapterChange): Promise<void> {
  await tx.query("select pg_notify($1, $2)", [ADAPTERS_CHANNEL, JSON.stringify(change)]);
}
