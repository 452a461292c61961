// Database backends for tests: a fresh embedded PGlite folder (copied from a migrated template made once
// per test process, since initdb takes seconds) and a fresh database on the Postgres server named by
// WEIGHTLORA_TEST_PG_URL (which .ci/run sets). Without that variable the server cases skip with a message
// outside CI and fail under CI=true.

import { type Database, migrate, openDatabase } from "../../src/store/db/mod.ts";
import { isCi } from "../_util/fixtures.ts";

/** An open, migrated test database and how to get rid of it. */
export interface TestDatabase {
  /** The open database. */
  db: Database;
  /** The location another process (or a second replica) would open. */
  location: string;
  /** Closes and deletes it. */
  dispose(): Promise<void>;
}

/** A backend that tests run against. */
export interface TestBackend {
  /** `pglite` or `postgres`. */
  name: "pglite" | "postgres";
  /**
   * A fresh database, or undefined (after a skip message) when the backend is absent outside CI.
   */
  create(t: Deno.TestContext): Promise<TestDatabase | undefined>;
}

let template: Promise<string> | undefined;

/** A migrated PGlite data folder made once per test process. */
function pgliteTemplate(): Promise<string> {
  template ??= (async () => {
    const dir = `${await Deno.makeTempDir({ prefix: "weightlora-pglite-template-" })}/db`;
    const db = await openDatabase(dir);
    await migrate(db);
    await db.close();
    return dir;
  })();
  return template;
}

async function copyDir(from: string, to: string): Promise<void> {
  const out = await new Deno.Command("cp", { args: ["-a", from, to] }).output();
  if (!out.success) throw new Error(`Cannot copy ${from} to ${to}: ${new TextDecoder().decode(out.stderr)}`);
}

/**
 * A fresh PGlite folder (migrated), not opened.
 *
 * @returns The folder and a function that deletes it.
 */
export async function freshPgliteFolder(): Promise<{ location: string; remove: () => Promise<void> }> {
  const root = await Deno.makeTempDir({ prefix: "weightlora-pglite-" });
  await copyDir(await pgliteTemplate(), `${root}/db`);
  return { location: `${root}/db`, remove: () => Deno.remove(root, { recursive: true }).catch(() => {}) };
}

/**
 * The admin URL of the test Postgres server, or undefined (after a skip message) outside CI.
 *
 * @param t The test.
 * @returns The URL.
 * @throws {Error} Under CI=true when WEIGHTLORA_TEST_PG_URL is not set.
 */
export function requirePostgres(t: Deno.TestContext): string | undefined {
  const url = Deno.env.get("WEIGHTLORA_TEST_PG_URL");
  if (url) return url;
  const message = `"${t.name}" needs a Postgres server: set WEIGHTLORA_TEST_PG_URL (.ci/run starts one)`;
  if (isCi()) throw new Error(message);
  console.warn(`skipped: ${message}`);
  return undefined;
}

/**
 * A fresh database on the test server (created from the admin URL, dropped on dispose).
 *
 * @param adminUrl WEIGHTLORA_TEST_PG_URL.
 * @param prefix The new database's name before its random part.
 * @returns The URL of the new database and a function that drops it.
 */
export async function freshPostgresDatabase(
  adminUrl: string,
  prefix = "weightlora_test",
): Promise<{ location: string; remove: () => Promise<void> }> {
  const name = `${prefix}_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const admin = await openDatabase(adminUrl, { maxConnections: 1 });
  try {
    await admin.exec(`create database ${name}`);
  } finally {
    await admin.close();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    location: url.toString(),
    remove: async () => {
      const admin = await openDatabase(adminUrl, { maxConnections: 1 });
      try {
        await admin.exec(`drop database if exists ${name} with (force)`);
      } finally {
        await admin.close();
      }
    },
  };
}

/** Opens and migrates a fresh database; disposing closes it and then removes it. */
async function openFresh(
  { location, remove }: { location: string; remove: () => Promise<void> },
): Promise<TestDatabase> {
  const db = await openDatabase(location);
  await migrate(db);
  return {
    db,
    location,
    dispose: async () => {
      await db.close();
      await remove();
    },
  };
}

/** Both backends: every database test runs once on each. */
export const BACKENDS: readonly TestBackend[] = [
  {
    name: "pglite",
    async create() {
      return await openFresh(await freshPgliteFolder());
    },
  },
  {
    name: "postgres",
    async create(t) {
      const adminUrl = requirePostgres(t);
      if (!adminUrl) return undefined;
      return await openFresh(await freshPostgresDatabase(adminUrl));
    },
  },
];
