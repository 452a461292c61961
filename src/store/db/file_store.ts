/**
 * {@linkcode FileStore}: tenants' uploaded files (fine-tuning JSONL) in the database, addressed by an
 * OpenAI-style id (`file-…`). A file used by a queued or running job cannot be deleted.
 *
 * @module
 */

import type { Database } from "./database.ts";

/** One stored file (without its content). */
export interface FileRecord {
  /** `file-…`. */
  id: string;
  /** Owning tenant. */
  tenant: string;
  /** The uploaded file's name. */
  filename: string;
  /** `fine-tune`. */
  purpose: string;
  /** Size in bytes. */
  bytes: number;
  /** Non-empty lines (rows). */
  rows: number;
  /** Upload time, Unix seconds. */
  createdAt: number;
}

/** What {@linkcode FileStore.create} stores. */
export interface NewFile {
  /** Owning tenant. */
  tenant: string;
  /** The file's name. */
  filename: string;
  /** Purpose (`fine-tune`). */
  purpose: string;
  /** The bytes (already validated by the caller). */
  content: Uint8Array;
  /** Non-empty lines. */
  rows: number;
}

/** Thrown by {@linkcode FileStore.delete} when a queued or running job still uses the file. */
export class FileInUseError extends Error {
  /** @param message Which file and job. */
  constructor(message: string) {
    super(message);
    this.name = "FileInUseError";
  }
}

interface FileRow {
  [key: string]: unknown;
  id: string;
  tenant: string;
  filename: string;
  purpose: string;
  bytes: number;
  rows: number;
  created_at: number;
}

const COLUMNS = "id, tenant, filename, purpose, bytes, rows, created_at";

function toRecord(row: FileRow): FileRecord {
  return {
    id: row.id,
    tenant: row.tenant,
    filename: row.filename,
    purpose: row.purpose,
    bytes: Number(row.bytes),
    rows: Number(row.rows),
    createdAt: Math.floor(Number(row.created_at)),
  };
}

/**
 * A random id with a prefix: 24 hex digits (96 bits).
 *
 * @param prefix e.g. `file`, `ftjob`.
 * @returns e.g. `file-5f3c9e0a…`.
 */
export function newId(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `${prefix}-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * Files in the database. Every read is scoped to a tenant: another tenant's file is "not found".
 *
 * @example
 * ```ts ignore
 * import { FileStore } from "./file_store.ts";
 * const files = new FileStore(db);
 * const file = await files.create({ tenant: "acme", filename: "train.jsonl", purpose: "fine-tune", content, rows: 10 });
 * console.log((await files.list("acme")).length);
 * ```
 */
export class FileStore {
  /** The database. */
  readonly db: Database;

  /** @param db A migrated database. */
  constructor(db: Database) {
    this.db = db;
  }

  /**
   * Stores a file.
   *
   * @param file Tenant, name, purpose, bytes, rows.
   * @returns Its record.
   */
  async create(file: NewFile): Promise<FileRecord> {
    const rows = await this.db.query<FileRow>(
      `insert into weightlora_files (id, tenant, filename, purpose, bytes, rows, content)
       values ($1, $2, $3, $4, $5, $6, $7) returning ${COLUMNS}`,
      [
        newId("file"),
        file.tenant,
        file.filename,
        file.purpose,
        file.content.byteLength,
        file.rows,
        file.content,
      ],
    );
    return toRecord(rows[0]);
  }

  /**
   * The tenant's files, newest first.
   *
   * @param tenant Tenant.
   * @param purpose Only this purpose, when given.
   * @returns Records.
   */
  async list(tenant: string, purpose?: string): Promise<FileRecord[]> {
    const rows = await this.db.query<FileRow>(
      `select ${COLUMNS} from weightlora_files where tenant = $1 and ($2::text is null or purpose = $2)
       order by created_at desc, id`,
      [tenant, purpose ?? null],
    );
    return rows.map(toRecord);
  }

  /**
   * One file of the tenant.
   *
   * @param tenant Tenant.
   * @param id File id.
   * @returns The record, or `undefined` when the tenant has no such file.
   */
  async get(tenant: string, id: string): Promise<FileRecord | undefined> {
    const rows = await this.db.query<FileRow>(
      `select ${COLUMNS} from weightlora_files where tenant = $1 and id = $2`,
      [tenant, id],
    );
    return rows.length ? toRecord(rows[0]) : undefined;
  }

  /**
   * A file's bytes.
   *
   * @param tenant Tenant.
   * @param id File id.
   * @returns The bytes, or `undefined` when the tenant has no such file.
   */
  async content(tenant: string, id: string): Promise<Uint8Array | undefined> {
    const rows = await this.db.query<{ content: Uint8Array }>(
      "select content from weightlora_files where tenant = $1 and id = $2",
      [tenant, id],
    );
    return rows[0]?.content;
  }

  /**
   * Deletes a file of the tenant.
   *
   * @param tenant Tenant.
   * @param id File id.
   * @returns Whether it existed.
   * @throws {FileInUseError} When a queued or running job of the tenant uses it.
   */
  async delete(tenant: string, id: string): Promise<boolean> {
    return await this.db.transaction(async (tx) => {
      const jobs = await tx.query<{ id: string }>(
        `select id from weightlora_jobs where tenant = $1 and (training_file = $2 or validation_file = $2)
         and status in ('validating_files', 'queued', 'running') limit 1`,
        [tenant, id],
      );
      if (jobs.length) {
        throw new FileInUseError(
          `Cannot delete file ${id}: fine-tuning job ${jobs[0].id} uses it (cancel the job or wait for it)`,
        );
      }
      const rows = await tx.query("delete from weightlora_files where tenant = $1 and id = $2 returning id", [
        tenant,
        id,
      ]);
      return rows.length > 0;
    });
  }
}
