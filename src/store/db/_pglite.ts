// The embedded backend of Database: PGlite (Postgres compiled to wasm) in a data folder.

import { PGlite, type Transaction } from "@electric-sql/pglite";
import type { Database, Queryable, Row } from "./database.ts";
import { lockFolder } from "../folder_lock.ts";

function queryable(target: PGlite | Transaction): Queryable {
  return {
    async query<T extends Row = Row>(text: string, params: readonly unknown[] = []): Promise<T[]> {
      const result = await target.query<T>(text, params as unknown[]);
      return result.rows;
    },
  };
}

/**
 * Opens (creating when new) a PGlite data folder, locked for this process until closed: a second opener
 * (another process, or this one again) gets an error naming the holder.
 */
export async function openPgliteDatabase(folder: string): Promise<Database> {
  let db: PGlite;
  try {
    await Deno.mkdir(folder, { recursive: true });
  } catch (e) {
    throw new Error(`Cannot open the embedded database in ${folder}: ${(e as Error).message}`);
  }
  const lock = await lockFolder(folder, {
    what: "embedded database",
    hint: "An embedded database belongs to one process: stop that one, or share a Postgres server " +
      "(--db postgres://… or DATABASE_URL)",
  });
  try {
    db = await PGlite.create(folder);
  } catch (e) {
    lock.release();
    throw new Error(`Cannot open the embedded database in ${folder}: ${(e as Error).message}`);
  }
  const base = queryable(db);
  return {
    kind: "pglite",
    exclusive: true,
    location: folder,
    query: base.query,
    async exec(text: string): Promise<void> {
      await db.exec(text);
    },
    transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return db.transaction((tx) => fn(queryable(tx)));
    },
    async listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>> {
      return await db.listen(channel, onPayload);
    },
    async close(): Promise<void> {
      try {
        if (!db.closed) await db.close();
      } finally {
        lock.release();
      }
    },
  };
}
