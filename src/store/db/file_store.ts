/**
 * {@linkcode FileStore}: tenants' uploaded files (fine-tuning JSONL) in the database, addressed by an
 * OpenAI-style id (`file-…`). A file used by a queued or running job cannot be deleted.
 *
 * @module
 */

import type { BlobStore, StagedBlob, StageOptions } from "../blob_store.ts";
import { blobsOf, releaseBlobs } from "./_blobs.ts";
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

/** A file's content staged by {@linkcode FileStore.stage}: not a file until {@linkcode FileStore.commit}. */
export interface StagedFile {
  /** Size in bytes. */
  bytes: number;
  /** The staged blob (embedded database). */
  blob?: StagedBlob;
  /** The bytes (Postgres server: stored in the row). */
  content?: Uint8Array;
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
  /** Where contents are stored, when not in the rows (beside an embedded database). */
  readonly blobs: BlobStore | undefined;

  /**
   * @param db A migrated database.
   * @param options `blobs`: where contents go (`null`: in the rows; default: the embedded database's blob
   *   folder, none for a Postgres server).
   */
  constructor(db: Database, options: { blobs?: BlobStore | null } = {}) {
    this.db = db;
    this.blobs = options.blobs === null ? undefined : (options.blobs ?? blobsOf(db));
  }

  /**
   * Stores a file.
   *
   * @param file Tenant, name, purpose, bytes, rows.
   * @returns Its record.
   */
  async create(file: NewFile): Promise<FileRecord> {
    const content = file.content;
    const chunk = 1 << 20;
    const staged = await this.stage((async function* () {
      for (let at = 0; at < content.byteLength; at += chunk) yield content.subarray(at, at + chunk);
    })());
    return await this.commit(staged, file);
  }

  /**
   * Writes a file's content as it streams in, before it is known to be valid: to a staging blob beside an
   * embedded database (memory: one chunk), or into memory for a Postgres server (whose row holds the bytes).
   * Then {@linkcode FileStore.commit} or {@linkcode FileStore.discard} it.
   *
   * @param chunks The content.
   * @param options Size limit and its error.
   * @returns The staged content.
   * @throws {Error} From `chunks`, the file system or `tooLarge` (nothing is left behind).
   */
  async stage(chunks: AsyncIterable<Uint8Array>, options: StageOptions = {}): Promise<StagedFile> {
    if (this.blobs) {
      const blob = await this.blobs.stage(chunks, options);
      return { bytes: blob.bytes, blob };
    }
    const parts: Uint8Array[] = [];
    let bytes = 0;
    for await (const chunk of chunks) {
      bytes += chunk.byteLength;
      if (options.maxBytes !== undefined && bytes > options.maxBytes) {
        throw options.tooLarge?.(options.maxBytes) ??
          new RangeError(`Cannot store the file: it is larger than ${options.maxBytes} bytes`);
      }
      parts.push(chunk.slice());
    }
    const content = new Uint8Array(bytes);
    let at = 0;
    for (const part of parts) {
      content.set(part, at);
      at += part.byteLength;
    }
    return { bytes, content };
  }

  /**
   * Stores staged content as a file (atomic: the row and its blob appear together).
   *
   * @param staged From {@linkcode FileStore.stage}.
   * @param file Tenant, name, purpose, rows (`content` is ignored).
   * @returns Its record.
   */
  async commit(staged: StagedFile, file: Omit<NewFile, "content">): Promise<FileRecord> {
    const insert = async (content: Uint8Array, blob: string | null) => {
      const rows = await this.db.query<FileRow>(
        `insert into weightlora_files (id, tenant, filename, purpose, bytes, rows, content, content_blob)
         values ($1, $2, $3, $4, $5, $6, $7, $8) returning ${COLUMNS}`,
        [newId("file"), file.tenant, file.filename, file.purpose, staged.bytes, file.rows, content, blob],
      );
      return toRecord(rows[0]);
    };
    const blobs = this.blobs;
    const blob = staged.blob;
    if (!blobs || !blob) return await insert(staged.content ?? new Uint8Array(0), null);
    return await blobs.exclusive(async () => {
      try {
        await blobs.commit(blob);
        return await insert(new Uint8Array(0), blob.sha256);
      } catch (e) {
        await blobs.discard(blob);
        await releaseBlobs(this.db, blobs, [blob.sha256]).catch(() => {});
        throw e;
      }
    });
  }

  /**
   * Drops staged content that will not become a file.
   *
   * @param staged From {@linkcode FileStore.stage}.
   */
  async discard(staged: StagedFile): Promise<void> {
    if (staged.blob && this.blobs) await this.blobs.discard(staged.blob);
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
    const rows = await this.db.query<{ content: Uint8Array; content_blob: string | null; bytes: number }>(
      "select content, content_blob, bytes from weightlora_files where tenant = $1 and id = $2",
      [tenant, id],
    );
    if (!rows.length) return undefined;
    const { content, content_blob: blob, bytes } = rows[0];
    if (blob === null) return content;
    if (!this.blobs) throw new Error(`Cannot read file ${id}: ${this.db.location} has no blob folder`);
    return await this.blobs.read(blob, Number(bytes));
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
    const blobs = this.blobs;
    if (!blobs) return (await this.#delete(tenant, id)).length > 0;
    return await blobs.exclusive(async () => {
      const rows = await this.#delete(tenant, id);
      await releaseBlobs(this.db, blobs, rows.map((r) => r.content_blob));
      return rows.length > 0;
    });
  }

  async #delete(tenant: string, id: string): Promise<{ content_blob: string | null }[]> {
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
      return await tx.query<{ content_blob: string | null }>(
        "delete from weightlora_files where tenant = $1 and id = $2 returning content_blob",
        [tenant, id],
      );
    });
  }
}
