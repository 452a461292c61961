// The server backend of Database: porsager's `postgres` driver, a small pool.

import postgres from "postgres";
import type { Database, Queryable, Row } from "./database.ts";

type Sql = postgres.Sql | postgres.TransactionSql;

/** Buffers become plain Uint8Arrays (copies: the driver may reuse its buffers). */
function plainRows<T extends Row>(rows: readonly Row[]): T[] {
  return rows.map((row) => {
    const out: Row = {};
    for (const [key, value] of Object.entries(row)) {
      out[key] = value instanceof Uint8Array ? new Uint8Array(value) : value;
    }
    return out as T;
  });
}

function queryable(sql: Sql): Queryable {
  return {
    async query<T extends Row = Row>(text: string, params: readonly unknown[] = []): Promise<T[]> {
      const rows = await sql.unsafe(text, params as postgres.ParameterOrJSON<never>[]);
      return plainRows<T>(rows as unknown as Row[]);
    },
  };
}

/** Connects to a Postgres server and checks the connection with one query. */
export async function openPostgresDatabase(url: string, maxConnections: number): Promise<Database> {
  const where = redactUrl(url);
  const sql = postgres(url, { max: maxConnections, onnotice: () => {}, connect_timeout: 10 });
  try {
    await sql.unsafe("select 1");
  } catch (e) {
    await sql.end({ timeout: 1 }).catch(() => {});
    throw new Error(`Cannot connect to the database ${where}: ${(e as Error).message}`);
  }
  const base = queryable(sql);
  return {
    kind: "postgres",
    exclusive: false,
    location: where,
    query: base.query,
    async exec(text: string): Promise<void> {
      await sql.unsafe(text);
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return (await sql.begin((tx) => fn(queryable(tx)))) as T;
    },
    async listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>> {
      const { unlisten } = await sql.listen(channel, onPayload);
      return unlisten;
    },
    async close(): Promise<void> {
      await sql.end({ timeout: 5 });
    },
  };
}

/**
 * A server URL without its password, for messages and logs.
 *
 * @param url The URL.
 * @returns The URL with `:password@` replaced by `:***@`.
 */
export function redactUrl(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:/@]*):[^@]*@/i, "$1:***@");
}
