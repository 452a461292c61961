// The blob folder of an embedded database (`<folder>.blobs`, beside it): adapter weights and uploaded
// files are stored there and the rows hold their SHA-256, so megabytes never pass through the in-process
// database. A Postgres server keeps them as bytea (its I/O does not block this process, and replicas on
// other hosts could not see a local folder).

import { BlobStore } from "../blob_store.ts";
import type { Database, Queryable } from "./database.ts";

const byDatabase = new WeakMap<Database, BlobStore>();

/**
 * The blob folder of a database: one shared instance per open embedded database, none for a server.
 *
 * @param db The database.
 * @returns The blob store, or `undefined` for a Postgres server.
 */
export function blobsOf(db: Database): BlobStore | undefined {
  if (db.kind !== "pglite") return undefined;
  let blobs = byDatabase.get(db);
  if (!blobs) {
    blobs = new BlobStore(`${db.location.replace(/\/+$/, "")}.blobs`);
    byDatabase.set(db, blobs);
  }
  return blobs;
}

/** The query that lists every blob a row references. */
export const REFERENCED_BLOBS =
  `select weights_blob as sha from weightlora_adapters where weights_blob is not null
  union select content_blob from weightlora_files where content_blob is not null`;

/**
 * Whether a row still references a blob.
 *
 * @param q The database.
 * @param sha256 The blob.
 * @returns True when referenced.
 */
export async function blobReferenced(q: Queryable, sha256: string): Promise<boolean> {
  const rows = await q.query(
    `select 1 from weightlora_adapters where weights_blob = $1
     union all select 1 from weightlora_files where content_blob = $1 limit 1`,
    [sha256],
  );
  return rows.length > 0;
}

/**
 * Removes blobs that no longer have a row (after a replace or delete), inside the store's exclusive section.
 *
 * @param db The database.
 * @param blobs The blob store.
 * @param candidates Digests that lost a reference.
 */
export async function releaseBlobs(
  db: Queryable,
  blobs: BlobStore,
  candidates: (string | null)[],
): Promise<void> {
  for (const sha of new Set(candidates)) {
    if (sha && !(await blobReferenced(db, sha))) await blobs.remove(sha);
  }
}
