/**
 * {@linkcode Database}: the one SQL surface of the durable state (adapters, files, jobs, job events,
 * checkpoints), with two backends that run the same schema and the same SQL:
 *
 * - embedded Postgres (`@electric-sql/pglite`) in a data folder — the zero-setup default, owned by one
 *   process ({@linkcode Database.exclusive});
 * - a Postgres server (`postgres://…`, porsager's `postgres` driver) shared by serving replicas and
 *   trainer processes.
 *
 * Values cross the boundary as plain JavaScript: text, numbers (`integer`, `float8`), booleans and
 * `Uint8Array` (`bytea`). JSON is stored as `text` and parsed by the caller, so both drivers agree.
 *
 * @module
 */

import { openPgliteDatabase } from "./_pglite.ts";
import { openPostgresDatabase } from "./_postgres.ts";

export { redactUrl } from "./_postgres.ts";

/** A row as returned by {@linkcode Queryable.query}. */
export type Row = Record<string, unknown>;

/** Something that runs SQL: the database, or one transaction of it. */
export interface Queryable {
  /**
   * Runs one statement with `$1`, `$2`, … parameters.
   *
   * @param text The SQL.
   * @param params Parameter values (strings, numbers, booleans, `Uint8Array`, `null`).
   * @returns The rows (empty for statements without `RETURNING`).
   */
  query<T extends Row = Row>(text: string, params?: readonly unknown[]): Promise<T[]>;
}

/** An open database. */
export interface Database extends Queryable {
  /** `pglite` (embedded, in a folder) or `postgres` (a server). */
  readonly kind: "pglite" | "postgres";
  /** Whether this process is the only user (true for an embedded folder): orphaned work can be taken at once. */
  readonly exclusive: boolean;
  /** Where it is, for messages (a folder, or the server URL without its password). */
  readonly location: string;
  /**
   * Runs several statements (no parameters), e.g. a migration.
   *
   * @param text The SQL script.
   */
  exec(text: string): Promise<void>;
  /**
   * Runs `fn` in one transaction: committed when it resolves, rolled back when it throws.
   *
   * @param fn The work, given the transaction.
   * @returns What `fn` returned.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Subscribes to `NOTIFY` on a channel (from this process or any other using the same database).
   *
   * @param channel The channel name (a plain identifier).
   * @param onPayload Called with each notification's payload.
   * @returns A function that unsubscribes.
   */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  /** Closes the connections (or the embedded instance). */
  close(): Promise<void>;
}

/** Options of {@linkcode openDatabase}. */
export interface OpenDatabaseOptions {
  /**
   * Connections of the server pool (unused for an embedded folder).
   * @default {4}
   */
  maxConnections?: number;
}

/**
 * Opens a database: a `postgres://` or `postgresql://` URL connects to a server, anything else is an
 * embedded PGlite data folder (created on first open, which runs initdb: several seconds).
 *
 * @param location A server URL or a folder.
 * @param options Pool size.
 * @returns The open database (not yet migrated: see {@linkcode migrate}).
 * @throws {Error} When the folder cannot be opened or the server cannot be reached (naming the location).
 * @example
 * ```ts ignore
 * import { openDatabase } from "./database.ts";
 * const db = await openDatabase("state/db");
 * console.log(await db.query("select 1 as one"));
 * await db.close();
 * ```
 */
export async function openDatabase(location: string, options: OpenDatabaseOptions = {}): Promise<Database> {
  if (isServerUrl(location)) return await openPostgresDatabase(location, options.maxConnections ?? 4);
  return await openPgliteDatabase(location);
}

/**
 * Whether a database location names a Postgres server.
 *
 * @param location A URL or a folder.
 * @returns True for `postgres://` and `postgresql://` URLs.
 */
export function isServerUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}
