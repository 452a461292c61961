/**
 * The Postgres schema of the durable state, as numbered migrations applied in order by
 * {@linkcode migrate} (under an advisory lock, so replicas starting together migrate once).
 *
 * Times are Unix seconds in `float8` columns, taken from the database's clock (`now()`), so that replicas
 * agree on leases. JSON lives in `text` columns (parsed by the stores).
 *
 * @module
 */

import { blobsOf, REFERENCED_BLOBS } from "./_blobs.ts";
import type { Database } from "./database.ts";

/** One schema step. */
export interface Migration {
  /** Version number (1, 2, …; applied in order). */
  version: number;
  /** What it does. */
  name: string;
  /** The SQL (several statements, no parameters). */
  sql: string;
}

const EPOCH = "extract(epoch from now())";

/** Every migration, oldest first. Append only: never edit one that has shipped. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "adapters, files, fine-tuning jobs, job events and checkpoints",
    sql: `
create table weightlora_adapters (
  tenant text not null,
  name text not null,
  version text not null,
  created_at float8 not null default ${EPOCH},
  bytes integer not null,
  sha256 text not null,
  config bytea not null,
  weights bytea not null,
  job_id text,
  primary key (tenant, name)
);

create table weightlora_files (
  id text primary key,
  tenant text not null,
  filename text not null,
  purpose text not null,
  bytes integer not null,
  rows integer not null,
  content bytea not null,
  created_at float8 not null default ${EPOCH}
);
create index weightlora_files_tenant on weightlora_files (tenant, created_at);

create table weightlora_jobs (
  id text primary key,
  tenant text not null,
  model text not null,
  training_file text not null,
  validation_file text,
  suffix text,
  method text not null,
  options text not null,
  status text not null,
  fine_tuned_model text,
  error text,
  result text,
  trained_tokens integer,
  step integer not null default 0,
  total_steps integer not null,
  created_at float8 not null default ${EPOCH},
  started_at float8,
  finished_at float8,
  locked_by text,
  heartbeat_at float8,
  attempts integer not null default 0
);
create index weightlora_jobs_tenant on weightlora_jobs (tenant, created_at);
create index weightlora_jobs_queue on weightlora_jobs (status, created_at);

create table weightlora_job_events (
  seq integer generated always as identity primary key,
  job_id text not null references weightlora_jobs (id) on delete cascade,
  created_at float8 not null default ${EPOCH},
  level text not null,
  type text not null,
  message text not null,
  data text
);
create index weightlora_job_events_job on weightlora_job_events (job_id, seq);

create table weightlora_job_checkpoints (
  job_id text primary key references weightlora_jobs (id) on delete cascade,
  step integer not null,
  trainer_state bytea not null,
  training_state bytea not null,
  created_at float8 not null default ${EPOCH}
);
`,
  },
  {
    version: 2,
    name: "large blobs in files beside an embedded database (rows keep their SHA-256)",
    sql: `
alter table weightlora_adapters add column weights_blob text;
alter table weightlora_files add column content_blob text;
`,
  },
];

/** An arbitrary constant: the advisory lock that serialises migrations across processes. */
const MIGRATION_LOCK = 7_160_331;

/**
 * Brings the schema up to date (idempotent; concurrent callers wait for each other). On an embedded
 * database (one process owns its folder) it also removes blobs no row references and staging files left
 * by a killed upload: call it once when opening, before any write.
 *
 * @param db The database.
 * @returns The versions applied now (empty when it was up to date).
 * @throws {Error} When a migration fails (it is rolled back; the message names it) or the database has a
 *   newer schema than this code knows.
 * @example
 * ```ts ignore
 * import { openDatabase, migrate } from "./mod.ts";
 * const db = await openDatabase("state/db");
 * console.log(await migrate(db)); // [1] the first time, [] after
 * ```
 */
export async function migrate(db: Database): Promise<number[]> {
  const applied = await applyMigrations(db);
  const blobs = blobsOf(db);
  if (blobs) {
    await blobs.exclusive(async () => {
      const rows = await db.query<{ sha: string }>(REFERENCED_BLOBS);
      await blobs.sweep(new Set(rows.map((r) => r.sha)));
    });
  }
  return applied;
}

async function applyMigrations(db: Database): Promise<number[]> {
  return await db.transaction(async (tx) => {
    await tx.query(`select pg_advisory_xact_lock(${MIGRATION_LOCK})`);
    await tx.query(
      `create table if not exists weightlora_migrations (
         version integer primary key, name text not null, applied_at float8 not null default ${EPOCH})`,
    );
    const rows = await tx.query<{ version: number }>("select version from weightlora_migrations");
    const done = new Set(rows.map((r) => Number(r.version)));
    const known = Math.max(...MIGRATIONS.map((m) => m.version));
    const newest = Math.max(0, ...done);
    if (newest > known) {
      throw new Error(
        `Cannot use the database ${db.location}: its schema is at version ${newest}, this code knows up to ${known}`,
      );
    }
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      for (const statement of splitStatements(m.sql)) {
        try {
          await tx.query(statement);
        } catch (e) {
          throw new Error(
            `Cannot apply migration ${m.version} (${m.name}) to ${db.location}: ${(e as Error).message}`,
          );
        }
      }
      await tx.query("insert into weightlora_migrations (version, name) values ($1, $2)", [
        m.version,
        m.name,
      ]);
      applied.push(m.version);
    }
    return applied;
  });
}

/** Splits a script at `;` line ends (the migrations hold no semicolons inside statements). */
function splitStatements(sql: string): string[] {
  return sql.split(/;\s*\n/).map((s) => s.trim().replace(/;$/, "")).filter(Boolean);
}
