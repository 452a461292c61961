/**
 * {@linkcode BlobStore}: large byte strings (adapter weights, uploaded files) as content-addressed files in
 * a folder beside the embedded database, so that the database holds only their SHA-256 and a request
 * never pushes megabytes through it. A blob is streamed to a staging file chunk by chunk (memory: one
 * chunk) while its digest is computed, flushed to disk, then renamed to `<sha[0..2]>/<sha>`: a blob is
 * either complete or absent, never half-written. Blobs no row references are removed by
 * {@linkcode BlobStore.sweep} (staging files left by a kill included).
 *
 * @module
 */

import { createHash } from "node:crypto";

/** A blob written to its staging file, not yet committed. */
export interface StagedBlob {
  /** The staging file. */
  path: string;
  /** Hex SHA-256 of the content. */
  sha256: string;
  /** Size in bytes. */
  bytes: number;
}

/** Options of {@linkcode BlobStore.stage}. */
export interface StageOptions {
  /** Refuse more bytes than this (the staging file is removed). */
  maxBytes?: number;
  /** Builds the error thrown past `maxBytes`. */
  tooLarge?: (maxBytes: number) => Error;
}

const STAGING = ".staging";

/**
 * Content-addressed files.
 *
 * @example
 * ```ts ignore
 * import { BlobStore } from "./blob_store.ts";
 * const blobs = new BlobStore("state/db.blobs");
 * const sha = await blobs.put(new TextEncoder().encode("hello"));
 * console.log(new TextDecoder().decode(await blobs.read(sha)));
 * ```
 */
export class BlobStore {
  /** The folder. */
  readonly dir: string;
  #lock: Promise<void> = Promise.resolve();

  /** @param dir The folder (created on first write). */
  constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * The file of a blob.
   *
   * @param sha256 Hex digest.
   * @returns Its path.
   * @throws {RangeError} When `sha256` is not 64 hex digits.
   */
  pathOf(sha256: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha256)) {
      throw new RangeError(`Invalid blob id "${sha256}": expected 64 hex digits`);
    }
    return `${this.dir}/${sha256.slice(0, 2)}/${sha256}`;
  }

  /**
   * Streams chunks to a new staging file, hashing them as they pass; flushes it to disk.
   *
   * @param chunks The content.
   * @param options Size limit.
   * @returns The staged blob (commit it with {@linkcode BlobStore.commit}, or {@linkcode BlobStore.discard} it).
   * @throws {Error} From `chunks`, the file system, or `tooLarge`; the staging file is removed.
   */
  async stage(chunks: AsyncIterable<Uint8Array>, options: StageOptions = {}): Promise<StagedBlob> {
    await Deno.mkdir(`${this.dir}/${STAGING}`, { recursive: true });
    const path = `${this.dir}/${STAGING}/${crypto.randomUUID()}`;
    const file = await Deno.open(path, { write: true, createNew: true });
    const hash = createHash("sha256");
    let bytes = 0;
    let closed = false;
    try {
      for await (const chunk of chunks) {
        bytes += chunk.byteLength;
        if (options.maxBytes !== undefined && bytes > options.maxBytes) {
          throw options.tooLarge?.(options.maxBytes) ??
            new RangeError(`Cannot store the blob: it is larger than ${options.maxBytes} bytes`);
        }
        hash.update(chunk);
        for (let at = 0; at < chunk.byteLength;) at += await file.write(chunk.subarray(at));
      }
      await file.sync();
      file.close();
      closed = true;
    } catch (e) {
      if (!closed) file.close();
      await Deno.remove(path).catch(() => {});
      throw e;
    }
    return { path, sha256: hash.digest("hex"), bytes };
  }

  /**
   * Moves a staged blob to its place (atomic rename; the same content already there is kept).
   *
   * @param staged From {@linkcode BlobStore.stage}.
   * @returns Its SHA-256.
   */
  async commit(staged: StagedBlob): Promise<string> {
    const target = this.pathOf(staged.sha256);
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
    await Deno.rename(staged.path, target);
    return staged.sha256;
  }

  /**
   * Removes a staged blob that will not be committed.
   *
   * @param staged From {@linkcode BlobStore.stage}.
   */
  async discard(staged: StagedBlob): Promise<void> {
    await Deno.remove(staged.path).catch(() => {});
  }

  /**
   * Stores bytes (stage and commit).
   *
   * @param bytes The content.
   * @returns Its SHA-256.
   */
  async put(bytes: Uint8Array): Promise<string> {
    const chunk = 1 << 20;
    const staged = await this.stage((async function* () {
      for (let at = 0; at < bytes.byteLength; at += chunk) yield bytes.subarray(at, at + chunk);
    })());
    return await this.commit(staged);
  }

  /**
   * Reads a blob (asynchronous file I/O: the event loop keeps running).
   *
   * @param sha256 Its digest.
   * @param bytes Its expected size.
   * @returns The content.
   * @throws {Error} When the blob is missing or has another size.
   */
  async read(sha256: string, bytes?: number): Promise<Uint8Array> {
    const path = this.pathOf(sha256);
    let data: Uint8Array;
    try {
      data = await Deno.readFile(path);
    } catch (e) {
      throw new Error(`Cannot read blob ${path}: ${(e as Error).message}`);
    }
    if (bytes !== undefined && data.byteLength !== bytes) {
      throw new Error(`Cannot read blob ${path}: it has ${data.byteLength} bytes, expected ${bytes}`);
    }
    return data;
  }

  /**
   * Runs `fn` alone among this store's exclusive sections: committing a blob and inserting the row that
   * references it must not interleave with removing a blob no row references (same content, two rows).
   *
   * @param fn The section.
   * @returns What `fn` returns.
   */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const before = this.#lock;
    let release!: () => void;
    this.#lock = new Promise<void>((resolve) => (release = resolve));
    await before;
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /**
   * Removes a committed blob (call it inside {@linkcode BlobStore.exclusive}, once no row references it).
   *
   * @param sha256 Its digest.
   */
  async remove(sha256: string): Promise<void> {
    await Deno.remove(this.pathOf(sha256)).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }

  /**
   * Removes every blob not in `keep`, and every staging file (call it when no write is in flight, e.g.
   * when the database is opened).
   *
   * @param keep Digests still referenced.
   * @returns How many files were removed.
   */
  async sweep(keep: ReadonlySet<string>): Promise<number> {
    let removed = 0;
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(this.dir));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return 0;
      throw e;
    }
    for (const entry of entries) {
      if (!entry.isDirectory) continue;
      const sub = `${this.dir}/${entry.name}`;
      for await (const file of Deno.readDir(sub)) {
        if (entry.name !== STAGING && keep.has(file.name)) continue;
        await Deno.remove(`${sub}/${file.name}`).catch(() => {});
        removed++;
      }
    }
    return removed;
  }
}
