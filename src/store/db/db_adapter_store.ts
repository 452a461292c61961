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
import type { BlobStore, StagedBlob } from "../blob_store.ts";
import { blobsOf, releaseBlobs } from "./_blobs.ts";
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
  /**
   * Where adapter weights go: files beside an embedded database (rows keep their SHA-256), or `null` to
   * keep them in the rows.
   * @default {the embedded database's blob folder; none for a Postgres server}
   */
  blobs?: BlobStore | null;
}

/** An adapter whose weights were streamed to a staging file (see {@linkcode DbAdapterStore.putStaged}). */
export interface StagedAdapter {
  /** `adapter_config.json`. */
  config: Uint8Array;
  /** `adapter_model.safetensors`, staged in {@linkcode DbAdapterStore.blobs}. */
  weights: StagedBlob;
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
  /** Where weights are stored, when not in the rows. */
  readonly blobs: BlobStore | undefined;

  /**
   * Wraps a migrated database.
   *
   * @param db The database (see {@linkcode migrate}).
   * @param options Read-only mode.
   */
  constructor(db: Database, options: DbAdapterStoreOptions = {}) {
    this.db = db;
    this.readOnly = options.readOnly ?? false;
    this.blobs = options.blobs === null ? undefined : (options.blobs ?? blobsOf(db));
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
    const gone = () =>
      new AdapterVersionGoneError(
        `Cannot read adapter "${record.name}" of tenant "${record.tenant}": version ${record.version} ` +
          "no longer exists (it was replaced or deleted)",
      );
    const rows = await this.db.query<
      { config: Uint8Array; weights: Uint8Array; weights_blob: string | null }
    >(
      `select config, weights, weights_blob from weightlora_adapters
       where tenant = $1 and name = $2 and version = $3`,
      [record.tenant, record.name, record.version],
    );
    if (!rows.length) throw gone();
    const { config, weights, weights_blob: blob } = rows[0];
    if (blob === null) return { config, weights };
    if (!this.blobs) {
      throw new Error(
        `Cannot read adapter "${record.name}" of tenant "${record.tenant}": its weights are blob ${blob}, ` +
          `but ${this.db.location} has no blob folder`,
      );
    }
    try {
      return { config, weights: await this.blobs.read(blob, record.bytes - config.byteLength) };
    } catch (e) {
      // replaced between the query and the read: its blob may be gone with it
      const current = await this.get(record.tenant, record.name);
      if (current?.version !== record.version) throw gone();
      throw e;
    }
  }

  async put(tenant: string, name: string, files: AdapterFiles): Promise<PutAdapterResult> {
    this.#writable(`store adapter "${name}"`);
    validateStoreName("tenant", tenant);
    validateStoreName("adapter name", name);
    if (this.blobs) {
      const chunk = 1 << 20;
      const weights = files.weights;
      const staged = await this.blobs.stage((async function* () {
        for (let at = 0; at < weights.byteLength; at += chunk) yield weights.subarray(at, at + chunk);
      })());
      return await this.putStaged(tenant, name, { config: files.config, weights: staged });
    }
    return await this.db.transaction((tx) => DbAdapterStore.putIn(tx, { tenant, name, files }));
  }

  /**
   * Stores a new version whose weights were streamed to a staging file of {@linkcode DbAdapterStore.blobs}
   * (an upload never held in memory): the blob is committed, then the row written; a failure leaves
   * neither.
   *
   * @param tenant Tenant.
   * @param name Adapter name.
   * @param adapter The config and the staged weights.
   * @returns The new record and whether it replaced one.
   * @throws {ReadOnlyStoreError} When the store is read-only.
   * @throws {Error} When the store keeps weights in rows ({@linkcode DbAdapterStore.blobs} unset).
   */
  async putStaged(tenant: string, name: string, adapter: StagedAdapter): Promise<PutAdapterResult> {
    const staged = adapter.weights;
    const blobs = this.blobs;
    try {
      this.#writable(`store adapter "${name}"`);
      validateStoreName("tenant", tenant);
      validateStoreName("adapter name", name);
      if (!blobs) throw new Error(`Cannot store adapter "${name}": ${this.db.location} has no blob folder`);
    } catch (e) {
      await Deno.remove(staged.path).catch(() => {});
      throw e;
    }
    return await blobs!.exclusive(async () => {
      let previous: string | null = null;
      try {
        await blobs!.commit(staged);
        const result = await this.db.transaction(async (tx) => {
          const prev = await tx.query<{ weights_blob: string | null }>(
            "select weights_blob from weightlora_adapters where tenant = $1 and name = $2 for update",
            [tenant, name],
          );
          previous = prev[0]?.weights_blob ?? null;
          return await upsertAdapter(tx, {
            tenant,
            name,
            config: adapter.config,
            weights: new Uint8Array(0),
            weightsBlob: staged.sha256,
            bytes: adapter.config.byteLength + staged.bytes,
            sha256: staged.sha256,
            jobId: null,
          }, prev.length > 0);
        });
        if (previous !== staged.sha256) await releaseBlobs(this.db, blobs!, [previous]);
        return result;
      } catch (e) {
        await blobs!.discard(staged);
        await releaseBlobs(this.db, blobs!, [staged.sha256]).catch(() => {});
        throw e;
      }
    });
  }

  async delete(tenant: string, name: string): Promise<boolean> {
    this.#writable(`delete adapter "${name}"`);
    validateStoreName("tenant", tenant);
    validateStoreName("adapter name", name);
    const remove = async () => {
      const rows = await this.db.transaction(async (tx) => {
        const rows = await tx.query<{ weights_blob: string | null }>(
          "delete from weightlora_adapters where tenant = $1 and name = $2 returning weights_blob",
          [tenant, name],
        );
        if (rows.length) await notifyChange(tx, { tenant, name, version: null });
        return rows;
      });
      if (this.blobs) await releaseBlobs(this.db, this.blobs, rows.map((r) => r.weights_blob));
      return rows.length > 0;
    };
    return this.blobs ? await this.blobs.exclusive(remove) : await remove();
  }

  /**
   * Subscribes to adapter changes made by any process on this database (including this one).
   *
   * @param onChange Called with each change.
   * @returns A function that unsubscribes.
   */
  async watch(onChange: (change: AdapterChange) => void): Promise<() => Promise<void>> {
    return await watchAdapterChanges(this.db, onChange);
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
    // a blob it replaces is removed by the next sweep (migrate)
    return await upsertAdapter(tx, {
      tenant,
      name,
      config: files.config,
      weights: files.weights,
      weightsBlob: null,
      bytes: files.config.byteLength + files.weights.byteLength,
      sha256: await sha256Hex(files.weights),
      jobId: options.jobId ?? null,
    }, previous.length > 0);
  }

  #writable(action: string): void {
    if (this.readOnly) {
      throw new ReadOnlyStoreError(`Cannot ${action}: the adapter store ${this.db.location} is read-only`);
    }
  }
}

/** Inserts or replaces the row of a new version and announces it. */
async function upsertAdapter(
  tx: Queryable,
  row: {
    tenant: string;
    name: string;
    config: Uint8Array;
    weights: Uint8Array;
    weightsBlob: string | null;
    bytes: number;
    sha256: string;
    jobId: string | null;
  },
  replaced: boolean,
): Promise<PutAdapterResult> {
  const rows = await tx.query<AdapterRow>(
    `insert into weightlora_adapters (tenant, name, version, bytes, sha256, config, weights, weights_blob, job_id)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     on conflict (tenant, name) do update set version = excluded.version, created_at = excluded.created_at,
       bytes = excluded.bytes, sha256 = excluded.sha256, config = excluded.config,
       weights = excluded.weights, weights_blob = excluded.weights_blob, job_id = excluded.job_id
     returning ${COLUMNS}`,
    [
      row.tenant,
      row.name,
      newAdapterVersion(),
      row.bytes,
      row.sha256,
      row.config,
      row.weights,
      row.weightsBlob,
      row.jobId,
    ],
  );
  const record = toRecord(rows[0]);
  await notifyChange(tx, { tenant: row.tenant, name: row.name, version: record.version });
  return { record, replaced };
}

/**
 * Announces an adapter change on {@linkcode ADAPTERS_CHANNEL} (delivered when `q`'s transaction commits).
 *
 * @param q The database or a transaction.
 * @param change The change.
 */
export async function notifyChange(q: Queryable, change: AdapterChange): Promise<void> {
  await q.query("select pg_notify($1, $2)", [ADAPTERS_CHANNEL, JSON.stringify(change)]);
}

/**
 * Hears the changes announced on {@linkcode ADAPTERS_CHANNEL} (payloads that are not changes are ignored).
 *
 * @param db The database.
 * @param onChange Called with each change.
 * @returns A function that unsubscribes.
 */
export async function watchAdapterChanges(
  db: Database,
  onChange: (change: AdapterChange) => void,
): Promise<() => Promise<void>> {
  return await db.listen(ADAPTERS_CHANNEL, (payload) => {
    let change: AdapterChange;
    try {
      change = JSON.parse(payload) as AdapterChange;
    } catch {
      return; // not ours
    }
    if (typeof change?.tenant !== "string" || typeof change?.name !== "string") return;
    onChange(change);
  });
}
